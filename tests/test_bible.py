"""The bible-en-es task: OSIS to text, alignment, splits by book, the seeded evaluation sample,
the copy floor, and its errors. Tests that read the SWORD modules skip, with the reason, where
mod2imp or the modules are not installed."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

import re
import shutil

import pytest
import sacrebleu
import torch

from bench.core.config import DataConfig
from bench.core.errors import DataError
from tasks.bible import INSTALL, BibleEnEs, aligned_verses, read_modules, split_of, verse_text


@pytest.fixture(scope="module")
def corpus():
    """(book, chapter, verse, English, Spanish) rows, or a skip saying what is missing."""
    try:
        return aligned_verses()[0]
    except DataError as e:
        if os.environ.get("MLPBENCH_REQUIRE_DATA"):  # CI installs the SWORD modules: a skip would hide a fault
            pytest.fail(str(e))
        pytest.skip(str(e))


# ---------------------------------------------------------------- OSIS to text (no modules needed)


def test_removed_tags_never_glue_words():
    osis = (
        '<w lemma="strong:H7225">In the beginning</w>, <w lemma="strong:H0430">God</w><note placement="foot">'
        '<reference type="annotateRef">1:1 </reference>The Hebrew word rendered “God” is “Elohim”.</note>'
        '<w lemma="strong:H1254">created</w> <w>the heavens</w> &amp; <w>the earth</w>.<div eID="gen1" type="x-p"/>'
        '<div sID="gen2" type="x-p"/>It was <q marker="">“good</q>”<note placement="foot">Or, fine.</note>, and'
        '<note placement="foot">a note between words</note>light<l eID="gen3" level="1"/><l sID="gen4" level="2"/>came.'
    )
    assert verse_text(osis) == (
        "In the beginning, God created the heavens & the earth. It was “good”, and light came."
    )


def test_notes_titles_and_speakers_are_dropped_canonical_titles_kept():
    osis = (
        '<title type="x-introduction">Deliverance from the Furnace</title> <speaker>Beloved</speaker> '
        '<div type="x-milestone" subType="x-preverse" sID="pv1"/><title canonical="true" type="psalm">'
        'A Psalm by David.</title> <lg sID="g1"/><l level="1" sID="g2"/>Yahweh, how many<note placement="foot">'
        '<reference>3:1 </reference><catchWord>many</catchWord><rdg type="alternate">numerous</rdg></note> are they!'
        '<chapter eID="Ps.3"/><div eID="g1" type="x-p"/> <title level="1" type="main">Glossary</title> Abaddon...'
    )
    assert verse_text(osis) == "A Psalm by David. Yahweh, how many are they!"


def test_spanish_added_words_are_spaced_and_enclitics_attached():
    osis = (
        '<w lemma="strong:H6635">ejército</w><transChange type="added">se llamaba</transChange>'
        '<w lemma="strong:H5516">Sísara</w>: <w>sáca</w><transChange type="added">lo</transChange> <w>fuera</w>, '
        '<w>Dios</w><transChange type="added">lo</transChange><w>hizo</w>; <w>Dad</w><transChange>nos</transChange> '
        '<w>pan</w>, y <w>Jehová</w><transChange>los</transChange><w>vendió</w>.'
    )
    expected = "ejército se llamaba Sísara: sácalo fuera, Dios lo hizo; Dadnos pan, y Jehová los vendió."
    assert verse_text(osis) == expected


# ---------------------------------------------------------------- the corpus


def test_about_thirty_thousand_clean_pairs(corpus):
    assert 29_500 < len(corpus) < 31_200
    assert len({row[0] for row in corpus}) == 65  # 3 John's only chapter goes (WEB 1:15 has no Spanish slot)
    for book, chapter, verse, en, es in corpus:
        for text in (en, es):
            assert text and text == " ".join(text.split()), (book, chapter, verse)
            assert not re.search(r"[<>\x00\x01]|&\w+;", text), (book, chapter, verse, text)
    rows = {row[:3]: row[3:] for row in corpus}
    assert rows["Genesis", 1, 1] == (
        "In the beginning, God created the heavens and the earth.", "EN el principio crió Dios los cielos y la tierra."
    )
    assert rows["Psalms", 3, 1][0].startswith("A Psalm by David, when he fled from Absalom his son. Yahweh,")
    assert rows["Revelation of John", 22, 21][0] == "The grace of the Lord Jesus Christ be with all the saints. Amen."
    # notes are gone: no WEB verse carries a note's wording
    assert not any("Hebrew word rendered" in en or "NU omits" in en for _, _, _, en, _ in corpus)
    # chapters whose verses the modules number differently are gone whole
    chapters = {row[:2] for row in corpus}
    for dropped in [("Numbers", 13), ("Jonah", 2), ("Acts", 8), ("I Kings", 22), ("Judges", 14)]:
        assert dropped not in chapters
    assert ("Numbers", 14) in chapters and ("Jonah", 3) in chapters


def test_no_book_in_two_splits(corpus):
    task = BibleEnEs()
    train, validation, test = task.default_source(DataConfig())
    books_of = {}
    for book, _, _, en, es in corpus:
        books_of.setdefault((en, es), set()).add(book)
    books = {  # the books of the verses that occur in one book only
        name: {book for pair in part if len(books_of[pair]) == 1 for book in books_of[pair]}
        for name, part in [("train", train), ("validation", validation), ("test", test)]
    }
    assert not (books["train"] & books["validation"]) and not (books["train"] & books["test"])
    assert not (books["validation"] & books["test"])
    assert len(books["train"] | books["validation"] | books["test"]) == 65
    # held-out verses whose English is also a training verse's are left out, and only those
    train_sources = {en for en, _ in train}
    assert not any(en in train_sources for en, _ in validation + test)
    assert len(corpus) - 40 < len(train) + len(validation) + len(test) <= len(corpus)
    assert 0.08 < len(test) / len(corpus) < 0.12
    assert 0.08 < len(validation) / (len(corpus) - len(test)) < 0.12
    assert {"Old", "New"} == {("New" if book in NEW_TESTAMENT else "Old") for book in books["test"]}
    # books that repeat each other stay together
    for group in [("I Samuel", "II Samuel", "I Kings", "II Kings", "I Chronicles", "II Chronicles"),
                  ("Matthew", "Mark", "Luke", "John"), ("II Peter", "Jude"), ("Ephesians", "Colossians"),
                  ("Ezra", "Nehemiah"), ("Psalms", "II Samuel")]:
        assert len({split_of(book) for book in group}) == 1, group


NEW_TESTAMENT = {"Romans", "I Corinthians", "Hebrews", "Revelation of John"}


def test_eval_split_picks_disjoint_sets(corpus):
    task = BibleEnEs()
    train_t, test = task.pairs(DataConfig(eval_split="test"))
    train_v, validation = task.pairs(DataConfig(eval_split="validation"))
    assert train_t["source"] == train_v["source"]  # training is the same whichever split is scored
    train, test, validation = set(train_t["source"]), set(test["source"]), set(validation["source"])
    assert test and validation
    assert not (test & validation) and not (train & test) and not (train & validation)


def test_the_evaluation_sample_is_seeded_and_stable(corpus):
    task = BibleEnEs()
    _, whole = task.pairs(DataConfig())
    _, a = task.pairs(DataConfig(max_eval_samples=200))
    _, b = task.pairs(DataConfig(max_eval_samples=200))
    assert len(a) == 200 and a["source"] == b["source"] and a["target"] == b["target"]
    assert a["source"] != whole["source"][:200]  # a sample across the split's books, not its first verses
    positions = {s: i for i, s in enumerate(whole["source"])}
    chosen = [positions[s] for s in a["source"]]
    assert chosen == sorted(chosen) and chosen[-1] > 1000  # in the split's order, from all of it


def test_load_and_metrics_with_the_copy_floor(corpus, tmp_path, monkeypatch):
    monkeypatch.setenv("MLPBENCH_CACHE", str(tmp_path))
    task = BibleEnEs()
    data = task.load(DataConfig(vocab_size=1000, max_train_samples=3000, max_eval_samples=40), seed=0)
    assert len(data.eval) == 40 and data.spec.modality == "seq2seq"
    tokenizer, refs, sources = data.extra["tokenizer"], data.extra["references"], data.extra["sources"]
    width = data.spec.target_len
    rows = [tokenizer(r, add_special_tokens=False)["input_ids"][: width - 1] + [tokenizer.eos_token_id] for r in refs]
    outputs = {
        "generated": torch.tensor([r + [tokenizer.pad_token_id] * (width - len(r)) for r in rows]).flip(0),
        "index": torch.arange(40).flip(0),  # rows come back in any order
        "loss_sum": torch.ones(40),
        "tokens": torch.ones(40),
    }
    metrics = task.compute_metrics(outputs, data)
    assert metrics["bleu"] > 95  # the references themselves (a few longer than target_len are cut)
    assert metrics["floor_copy_bleu"] == pytest.approx(sacrebleu.corpus_bleu(sources, [refs]).score)
    assert metrics["floor_copy_chrf"] == pytest.approx(sacrebleu.corpus_chrf(sources, [refs]).score)
    assert 0 < metrics["floor_copy_bleu"] < 5 and metrics["floor_copy_chrf"] < metrics["chrf"]


# ---------------------------------------------------------------- without the modules


def test_data_files_replace_the_modules(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # no mod2imp: the files are all it reads
    pairs = tmp_path / "pairs.tsv"
    pairs.write_text("source\ttarget\n" + "".join(f"word {i}\tpalabra {i}\n" for i in range(100)), encoding="utf-8")
    train, held = BibleEnEs().pairs(DataConfig(data_files=str(pairs)))
    _, validation = BibleEnEs().pairs(DataConfig(data_files=str(pairs), eval_split="validation"))
    assert len(train) + len(validation) + len(held) == 100 and len(held) > 0 and len(validation) > 0


def test_missing_tools_or_modules_name_the_packages(tmp_path, monkeypatch):
    if shutil.which("mod2imp"):
        with pytest.raises(DataError, match="cannot read the SWORD module noSuchModule") as error:
            read_modules("noSuchModule")
        assert INSTALL in str(error.value)
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(DataError, match="mod2imp, which is not installed") as error:
        read_modules("engWEB2015eb")
    assert str(error.value).endswith(f"`{INSTALL}`.") and INSTALL == (
        "apt-get install libsword-utils sword-text-web sword-text-sparv"
    )
