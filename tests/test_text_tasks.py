"""The text tasks (MLM and seq2seq): specs, offline sources, file readers, errors, masking,
tokenizer cache, metrics, and one train / eval step through the model interface.

The models here are tiny `transformers` BERT and BART models wrapped to the suite's interface:
    MLM:     model(input_ids, attention_mask) -> (B, T, V); model(input_ids, attention_mask, labels_mask) -> (N, V),
             the N positions of the (B, T) bool labels_mask only
    seq2seq: model(input_ids, attention_mask, decoder_input_ids, decoder_attention_mask) -> (B, T, V)
             model.generate(input_ids, attention_mask, max_new_tokens) -> (B, L), greedy, no [BOS]
"""

from __future__ import annotations

import json
import math
import random
from pathlib import Path

import datasets
import huggingface_hub
from dataclasses import replace

import pytest
from conftest import need_debian_data
import sacrebleu
import torch
import torch.nn as nn
import torch.nn.functional as F
from num2words import num2words
from transformers import BartConfig, BartForConditionalGeneration, BertConfig, BertForMaskedLM

import tasks.mlm
import tasks.seq2seq  # noqa: F401  (registers the seq2seq tasks)
import tasks.text
from bench.core.config import DataConfig
from bench.core.errors import DataError
from tasks import create_task, list_tasks
from tasks.text import IGNORE, MlmCollate, is_held_out

MLM_TASKS = ("wikitext-103", "wikitext-2", "text", "wordnet")
SEQ2SEQ_TASKS = ("wmt14-de-en", "pairs", "numbers")


@pytest.fixture(scope="session", autouse=True)
def offline_cache(tmp_path_factory):
    """No hub, and a tokenizer cache of the test session's own."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HF_HUB_OFFLINE", "1")
        mp.setenv("HF_DATASETS_OFFLINE", "1")
        # the libraries read those variables at import, which has happened by now
        mp.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
        mp.setattr(datasets.config, "HF_HUB_OFFLINE", True)
        mp.setenv("MLPBENCH_CACHE", str(tmp_path_factory.mktemp("cache")))
        yield


# ---------------------------------------------------------------- tiny models with the suite's interface


class TinyMlm(nn.Module):
    def __init__(self, spec):
        super().__init__()
        config = BertConfig(
            vocab_size=spec.vocab_size, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
            intermediate_size=64, max_position_embeddings=spec.seq_len, pad_token_id=spec.pad_token_id,
        )
        self.bert = BertForMaskedLM(config)

    def forward(self, input_ids, attention_mask, labels_mask=None):
        logits = self.bert(input_ids=input_ids, attention_mask=attention_mask).logits  # (B, T, V)
        return logits if labels_mask is None else logits[labels_mask]  # (N, V)


class TinySeq2Seq(nn.Module):
    def __init__(self, spec, d_model=32, layers=1):
        super().__init__()
        config = BartConfig(
            vocab_size=spec.vocab_size, d_model=d_model, encoder_layers=layers, decoder_layers=layers,
            encoder_attention_heads=2, decoder_attention_heads=2, encoder_ffn_dim=4 * d_model,
            decoder_ffn_dim=4 * d_model, max_position_embeddings=max(spec.seq_len, spec.target_len) + 2,
            pad_token_id=spec.pad_token_id, bos_token_id=spec.bos_token_id, eos_token_id=spec.eos_token_id,
            decoder_start_token_id=spec.bos_token_id, forced_eos_token_id=None, dropout=0.0,
        )
        self.bart = BartForConditionalGeneration(config)
        self.bos, self.eos, self.pad = spec.bos_token_id, spec.eos_token_id, spec.pad_token_id

    def forward(self, input_ids, attention_mask, decoder_input_ids, decoder_attention_mask):
        return self.bart(
            input_ids=input_ids, attention_mask=attention_mask,
            decoder_input_ids=decoder_input_ids, decoder_attention_mask=decoder_attention_mask,
        ).logits

    @torch.no_grad()
    def generate(self, input_ids, attention_mask, max_new_tokens):
        encoded = self.bart.get_encoder()(input_ids=input_ids, attention_mask=attention_mask)
        out = torch.full((len(input_ids), 1), self.bos, dtype=torch.long)
        done = torch.zeros(len(input_ids), dtype=torch.bool)
        for _ in range(max_new_tokens):
            logits = self.bart(encoder_outputs=encoded, attention_mask=attention_mask, decoder_input_ids=out).logits
            token = logits[:, -1].argmax(-1).masked_fill(done, self.pad)
            out = torch.cat([out, token[:, None]], 1)
            done |= token == self.eos
            if done.all():
                break
        return out[:, 1:]


# ---------------------------------------------------------------- data written for the tests

WORDS = "the a cat dog sat on mat ran far away quickly slowly red blue green house tree river stone".split()


def sentences(n: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    return [" ".join(rng.choice(WORDS) for _ in range(rng.randint(5, 15))) + "." for _ in range(n)]


@pytest.fixture
def text_files(tmp_path) -> str:
    lines = sentences(300)
    (tmp_path / "a.txt").write_text("\n".join(lines[:200]) + "\n\n", encoding="utf-8")
    (tmp_path / "b.jsonl").write_text("\n".join(json.dumps({"text": t, "id": i}) for i, t in enumerate(lines[200:])))
    return f"{tmp_path / 'a.txt'},{tmp_path / 'b.jsonl'}"


def write_pairs(tmp_path, n=200) -> tuple[str, str]:
    """The same pairs as a TSV (columns "de", "en" and a spare one) and as JSONL; returns both paths."""
    pairs = [(str(i * 37 % 1000), num2words(i * 37 % 1000)) for i in range(n)]
    tsv = tmp_path / "pairs.tsv"
    tsv.write_text("id\tde\ten\n" + "".join(f"{i}\t{s}\t{t}\n" for i, (s, t) in enumerate(pairs)), encoding="utf-8")
    jsonl = tmp_path / "pairs.jsonl"
    jsonl.write_text("".join(json.dumps({"de": s, "en": t}) + "\n" for s, t in pairs), encoding="utf-8")
    return str(tsv), str(jsonl)


SMALL = dict(vocab_size=300, seq_len=16)


@pytest.fixture(scope="session")
def wordnet_data():
    need_debian_data("wordnet-base")
    return create_task("wordnet").load(DataConfig(seq_len=64, max_train_samples=2000, max_eval_samples=200), seed=0)


@pytest.fixture(scope="session")
def numbers_data():
    return create_task("numbers").load(DataConfig(), seed=0)


# ---------------------------------------------------------------- specs


def test_every_text_task_is_registered():
    assert set(MLM_TASKS + SEQ2SEQ_TASKS) <= set(list_tasks())
    assert [create_task(n).offline for n in MLM_TASKS] == [False, False, True, True]
    assert [create_task(n).offline for n in SEQ2SEQ_TASKS] == [False, True, True]


@pytest.mark.parametrize("name", MLM_TASKS)
def test_mlm_spec(name):
    spec = create_task(name).spec(DataConfig(vocab_size=1234, seq_len=64))
    assert (spec.name, spec.modality, spec.metric, spec.needs) == (name, "mlm", "mlm_accuracy", "encoder")
    assert (spec.vocab_size, spec.seq_len, spec.pad_token_id, spec.target_len) == (1234, 64, 0, None)


@pytest.mark.parametrize("name", SEQ2SEQ_TASKS)
def test_seq2seq_spec(name):
    spec = create_task(name).spec(DataConfig(vocab_size=1234, seq_len=64))
    assert (spec.modality, spec.metric, spec.needs) == ("seq2seq", "bleu", "encoder-decoder")
    assert (spec.vocab_size, spec.seq_len) == (1234, 64)
    assert (spec.pad_token_id, spec.bos_token_id, spec.eos_token_id) == (0, 5, 6)
    assert spec.target_len == (16 if name == "numbers" else 64)


# ---------------------------------------------------------------- offline defaults


def test_wordnet_glosses_are_read():
    need_debian_data("wordnet-base")
    glosses = tasks.mlm.wordnet_glosses(tasks.mlm.wordnet_dir())
    assert len(glosses) > 100_000
    entity = "that which is perceived or known or inferred to have its own distinct existence (living or nonliving)"
    assert entity in glosses


def test_wordnet_loads_as_blocks(wordnet_data):
    spec, tokenizer = wordnet_data.spec, wordnet_data.extra["tokenizer"]
    assert spec.vocab_size == len(tokenizer) <= 8000
    assert (len(wordnet_data.train), len(wordnet_data.eval)) == (2000, 200)
    for block in (wordnet_data.train[0]["input_ids"], wordnet_data.eval[5]["labels"]):
        assert len(block) == 64
    block = wordnet_data.train[0]["input_ids"]
    assert (block[0], block[-1]) == (tokenizer.cls_token_id, tokenizer.sep_token_id)
    assert tokenizer.convert_ids_to_tokens(list(range(5))) == ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def test_numbers_are_checkable_and_split_without_overlap(numbers_data):
    tokenizer, refs = numbers_data.extra["tokenizer"], numbers_data.extra["references"]
    # test: --val-fraction 0.2 of the 20,000; validation: 10% of the rest, carved out of training
    assert 3500 < len(numbers_data.eval) < 4500
    assert 0.85 < len(numbers_data.train) / (20_000 - len(numbers_data.eval)) < 0.95
    decode = lambda ids: tokenizer.decode(ids, clean_up_tokenization_spaces=False)
    train_sources = {decode(it["source_ids"]) for it in numbers_data.train}
    for item in numbers_data.eval.select(range(200)):
        source = decode(item["source_ids"])
        assert source not in train_sources
        assert refs[item["index"]] == num2words(int(source)) == decode(item["labels"][:-1])
        assert item["labels"][-1] == tokenizer.eos_token_id
    assert tokenizer.convert_ids_to_tokens(tokenizer("4821", add_special_tokens=False)["input_ids"]) == list("4821")
    assert max(len(it["labels"]) for it in numbers_data.train) <= numbers_data.spec.target_len


def test_held_out_split_ignores_order_and_seed():
    texts = sentences(500)
    assert [is_held_out(t, 0.2) for t in texts] == [is_held_out(t, 0.2) for t in texts[::-1]][::-1]
    assert 60 < sum(is_held_out(t, 0.2) for t in texts) < 140


# ---------------------------------------------------------------- local files


def test_text_files_load(text_files):
    data = create_task("text").load(DataConfig(data_files=text_files, **SMALL), seed=0)
    assert data.spec.vocab_size == len(data.extra["tokenizer"]) <= 300
    assert len(data.train) > 4 * len(data.eval) > 0
    assert all(len(block["input_ids"]) == 16 for block in data.train)
    batch = data.collate([data.train[i] for i in range(4)])
    assert batch["input_ids"].shape == (4, 16) and create_task("text").tokens(batch) == 64


@pytest.mark.parametrize("fmt", ["tsv", "jsonl"])
def test_pairs_load_with_named_fields(tmp_path, fmt):
    tsv, jsonl = write_pairs(tmp_path)
    cfg = DataConfig(data_files=tsv if fmt == "tsv" else jsonl, source_field="de", target_field="en", **SMALL)
    data = create_task("pairs").load(cfg, seed=0)
    tokenizer = data.extra["tokenizer"]
    validation = create_task("pairs").load(replace(cfg, eval_split="validation"), seed=0).eval
    assert len(data.train) + len(validation) + len(data.eval) == 200  # train, validation, test
    for item in data.eval:
        source = tokenizer.decode(item["source_ids"], clean_up_tokenization_spaces=False)
        assert data.extra["references"][item["index"]] == num2words(int(source))


def test_pairs_are_truncated_and_padded_per_batch(tmp_path):
    tsv, _ = write_pairs(tmp_path)
    cfg = DataConfig(data_files=tsv, source_field="de", target_field="en", vocab_size=300, seq_len=8)
    data = create_task("pairs").load(cfg, seed=0)
    items = [data.train[i] for i in range(16)]
    batch = data.collate(items)
    assert batch["labels"].shape[1] == max(len(it["labels"]) for it in items) <= 8  # target_len = seq_len
    assert batch["input_ids"].shape[1] == max(len(it["source_ids"]) for it in items) <= 8
    teacher_forced = batch["decoder_attention_mask"][:, 1:] == 1  # the decoder reads the previous label
    assert (batch["labels"][:, :-1] == batch["decoder_input_ids"][:, 1:])[teacher_forced].all()
    assert (batch["decoder_input_ids"][:, 0] == data.spec.bos_token_id).all()
    tokens = batch["attention_mask"].sum() + (batch["labels"] != IGNORE).sum()
    assert create_task("pairs").tokens(batch) == tokens


# ---------------------------------------------------------------- errors a user can cause


def data_error(name: str, **cfg) -> str:
    with pytest.raises(DataError) as caught:
        create_task(name).load(DataConfig(**cfg), seed=0)
    return str(caught.value)


@pytest.mark.parametrize("name", ["wikitext-2", "wikitext-103", "wmt14-de-en"])
def test_hub_task_offline_is_a_data_error(name):
    message = data_error(name)
    assert "could not be loaded (HF_HUB_OFFLINE or HF_DATASETS_OFFLINE is set" in message and "--data-files" in message


def test_missing_and_unreadable_files(tmp_path):
    assert "does not exist" in data_error("text", data_files=str(tmp_path / "nope.txt"))
    latin1 = tmp_path / "latin1.txt"
    latin1.write_bytes("Grüße aus Köln\n".encode("latin-1"))
    message = data_error("text", data_files=str(latin1))
    assert str(latin1) in message and "UTF-8" in message
    other = tmp_path / "data.csv"
    other.write_text("a,b\n")
    assert "neither .txt nor .jsonl" in data_error("text", data_files=str(other))
    assert "needs --data-files" in data_error("text")
    assert "needs --data-files" in data_error("pairs")


def test_missing_fields(tmp_path):
    bad_text = tmp_path / "bad.jsonl"
    bad_text.write_text('{"text": "fine"}\n{"body": "no text field"}\n')
    message = data_error("text", data_files=str(bad_text))
    assert "Line 2" in message and "'text'" in message and "'body'" in message
    broken = tmp_path / "broken.jsonl"
    broken.write_text('{"text": "fine"}\n{"text": \n')
    assert "not valid JSON" in data_error("text", data_files=str(broken))
    tsv, jsonl = write_pairs(tmp_path)
    message = data_error("pairs", data_files=tsv)  # fields "source" / "target" by default
    assert "'source' column" in message and "--source-field" in message
    message = data_error("pairs", data_files=jsonl, source_field="de")
    assert "no 'target' field" in message


def test_too_little_text_for_a_block(tmp_path):
    short = tmp_path / "short.txt"
    short.write_text("\n".join(sentences(50)))
    assert "too short for one block" in data_error("text", data_files=str(short), seq_len=512)


@pytest.mark.parametrize("fraction, empty", [(0.999999, "training"), (0.000001, "evaluation")])
def test_a_val_fraction_that_empties_a_split(text_files, fraction, empty):
    message = data_error("text", data_files=text_files, val_fraction=fraction, **SMALL)
    assert message.startswith(f"Holding out {fraction:g} of 300 examples left no {empty} examples") and "--val-fraction" in message


def test_missing_wordnet(tmp_path, monkeypatch):
    monkeypatch.delenv("WNHOME", raising=False)
    monkeypatch.delenv("WNSEARCHDIR", raising=False)
    monkeypatch.setattr(tasks.mlm, "WORDNET_DEFAULT_DIR", tmp_path)
    assert "apt-get install wordnet-base" in data_error("wordnet")


# ---------------------------------------------------------------- tokenizer cache and local tokenizers


def test_tokenizer_cache_is_reused_and_keyed_by_vocab_size(text_files, tmp_path, monkeypatch):
    monkeypatch.setenv("MLPBENCH_CACHE", str(tmp_path / "cache"))
    first = create_task("text").load(DataConfig(data_files=text_files, **SMALL), seed=0)
    cached = list((tmp_path / "cache" / "tokenizers").iterdir())
    assert len(cached) == 1 and cached[0].suffix == ".json"  # no temporary file left behind

    def no_training(*args):
        raise AssertionError("the cached tokenizer was retrained")

    monkeypatch.setattr(tasks.text, "train_tokenizer", no_training)
    again = create_task("text").load(DataConfig(data_files=text_files, **SMALL), seed=0)
    assert again.extra["tokenizer"].get_vocab() == first.extra["tokenizer"].get_vocab()
    with pytest.raises(AssertionError, match="retrained"):
        create_task("text").load(DataConfig(data_files=text_files, vocab_size=400, seq_len=16), seed=0)


TRAIN_IN_A_PROCESS = """
import random, sys
from tasks.text import train_tokenizer
rng = random.Random(0)
words = ["".join(rng.choice("abcdefghij") for _ in range(rng.randint(2, 9))) for _ in range(3000)]
texts = [" ".join(rng.choice(words) for _ in range(12)) for _ in range(4000)]
print(train_tokenizer(iter([texts[i:i + 100] for i in range(0, len(texts), 100)]), sys.argv[1], 800).to_str())
"""


@pytest.mark.slow  # four processes each train a tokenizer: about 27 s apiece
@pytest.mark.parametrize("kind", ["mlm", "seq2seq"])
def test_a_tokenizer_trains_to_the_same_file_in_every_process(kind):
    """Many merges of equal count: BERT's WordPiece trainer, which masked LM used, gave another vocabulary
    (or other ids) in about one process in three on this corpus, and so another metric for the same seed."""
    import subprocess
    import sys

    trained = {subprocess.run([sys.executable, "-c", TRAIN_IN_A_PROCESS, kind], capture_output=True, text=True,
                              check=True, cwd=Path(__file__).resolve().parent.parent).stdout for _ in range(4)}
    assert len(trained) == 1


def test_local_tokenizer_folder_and_file(text_files, tmp_path):
    trained = create_task("text").load(DataConfig(data_files=text_files, **SMALL), seed=0).extra["tokenizer"]
    trained.save_pretrained(tmp_path / "tok")
    for path in (tmp_path / "tok", tmp_path / "tok" / "tokenizer.json"):
        data = create_task("text").load(DataConfig(data_files=text_files, tokenizer=str(path), **SMALL), seed=0)
        assert data.extra["tokenizer"].get_vocab() == trained.get_vocab()
        assert data.spec.vocab_size == len(trained)
    # a masked-LM tokenizer has no [BOS] / [EOS]: seq2seq tasks refuse it with a sentence
    tsv, _ = write_pairs(tmp_path)
    cfg = dict(data_files=tsv, source_field="de", target_field="en", tokenizer=str(tmp_path / "tok"))
    assert "has no bos, eos token" in data_error("pairs", **cfg)


NOT_TOKENIZERS = {
    "another-tools-json": lambda path: path.write_text('{"model_type": "bert", "hidden_size": 768}'),
    "json-list": lambda path: path.write_text("[1, 2, 3]"),
    "plain-text": lambda path: path.write_text("these are words, not a tokenizer\n"),
    "binary": lambda path: path.write_bytes(bytes(range(256))),
    "empty-file": lambda path: path.write_text(""),
    "folder-without-one": lambda path: path.mkdir(),
    "folder-with-a-broken-one": lambda path: (path.mkdir(), (path / "tokenizer.json").write_text('{"model": 5}')),
}


@pytest.mark.parametrize("make", NOT_TOKENIZERS.values(), ids=NOT_TOKENIZERS.keys())
def test_a_tokenizer_that_is_not_one_is_one_sentence(text_files, tmp_path, make):
    path = tmp_path / "tokenizer.json"
    make(path)
    message = data_error("text", data_files=text_files, tokenizer=str(path), **SMALL)
    assert message.startswith(f"The tokenizer {path} is not a fast tokenizer, a tokenizer.json file or a folder "
                              f"holding one (") and message.endswith(").") and "\n" not in message


# ---------------------------------------------------------------- masking


def test_masking_is_bert_style(wordnet_data):
    tokenizer = wordnet_data.extra["tokenizer"]
    collate = MlmCollate(tokenizer, seed=0)
    items = [wordnet_data.train[i] for i in range(1000)]
    original = torch.tensor([it["input_ids"] for it in items])
    batch = collate(items)
    labels, inputs = batch["labels"], batch["input_ids"]
    masked = labels != IGNORE
    special = (original == tokenizer.cls_token_id) | (original == tokenizer.sep_token_id)
    assert not masked[special].any()
    assert (labels[masked] == original[masked]).all()
    assert (inputs[~masked] == original[~masked]).all()
    n = masked.sum().item()
    assert abs(n / (~special).sum().item() - 0.15) < 0.005
    as_mask = (inputs[masked] == tokenizer.mask_token_id).sum().item() / n
    unchanged = (inputs[masked] == original[masked]).sum().item() / n
    assert abs(as_mask - 0.8) < 0.015 and abs(unchanged - 0.1) < 0.015  # the rest, ~10%, random tokens
    # seeded: the same seed masks the same positions; the next batch masks others
    assert torch.equal(MlmCollate(tokenizer, seed=0)(items)["labels"], labels)
    assert not torch.equal(collate(items)["labels"], labels)


def test_evaluation_masks_are_fixed(text_files):
    cfg = DataConfig(data_files=text_files, **SMALL)
    a, b = (create_task("text").load(cfg, seed=s) for s in (0, 1))
    assert a.eval["labels"] == b.eval["labels"] and a.eval["input_ids"] == b.eval["input_ids"]
    items = [a.eval[i] for i in range(len(a.eval))]
    assert torch.equal(a.collate(items)["labels"], a.collate(items)["labels"])
    assert (a.collate(items)["labels"] != IGNORE).any()


# ---------------------------------------------------------------- metrics


def test_mlm_metrics_match_a_hand_computation(wordnet_data):
    task, data = create_task("wordnet"), wordnet_data
    torch.manual_seed(0)
    model = TinyMlm(data.spec).eval()
    batches = [data.collate([data.eval[i] for i in range(s, s + 50)]) for s in range(0, 200, 50)]
    with torch.no_grad():
        parts = [task.eval_outputs(model, b, data.spec) for b in batches]
        outputs = {k: torch.cat([p[k] for p in parts]) for k in parts[0]}  # what gather_for_metrics gives
        logits = torch.cat([model(b["input_ids"], b["attention_mask"]) for b in batches])
    labels = torch.cat([b["labels"] for b in batches])
    scored = labels != IGNORE
    metrics = task.compute_metrics(outputs, data)
    loss = F.cross_entropy(logits[scored], labels[scored]).item()
    assert metrics["loss"] == pytest.approx(loss, rel=1e-5)
    assert metrics["perplexity"] == pytest.approx(math.exp(loss), rel=1e-5)
    assert metrics["mlm_accuracy"] == pytest.approx((logits[scored].argmax(-1) == labels[scored]).float().mean().item())
    commonest = labels[scored].mode().values
    assert metrics["majority_baseline_accuracy"] == pytest.approx((labels[scored] == commonest).float().mean().item())
    assert 0 < metrics["majority_baseline_accuracy"] < 0.2


def generated_outputs(hypotheses: list[str], tokenizer, width: int) -> dict[str, torch.Tensor]:
    """eval_outputs-shaped rows for given hypotheses: tokens + [EOS], padded to `width`."""
    rows = [tokenizer(h, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id] for h in hypotheses]
    generated = torch.tensor([r + [tokenizer.pad_token_id] * (width - len(r)) for r in rows])
    n = len(hypotheses)
    return {"generated": generated, "index": torch.arange(n), "loss_sum": torch.ones(n), "tokens": torch.ones(n)}


def test_bleu_matches_sacrebleu(numbers_data):
    task, data = create_task("numbers"), numbers_data
    tokenizer, refs = data.extra["tokenizer"], data.extra["references"][:6]
    width = data.spec.target_len
    perfect = task.compute_metrics(generated_outputs(refs, tokenizer, width), data)
    assert perfect["bleu"] == pytest.approx(100) and perfect["chrf"] == pytest.approx(100)
    assert perfect["exact_match"] == 1
    hyps = [refs[0], refs[1].replace("thousand", "hundred"), "seven", refs[3], "four thousand, and ten", refs[5][:-4]]
    metrics = task.compute_metrics(generated_outputs(hyps, tokenizer, width), data)
    assert metrics["bleu"] == pytest.approx(sacrebleu.corpus_bleu(hyps, [refs]).score)
    assert metrics["chrf"] == pytest.approx(sacrebleu.corpus_chrf(hyps, [refs]).score)
    assert metrics["exact_match"] == pytest.approx(2 / 6)
    bleu = sacrebleu.BLEU()
    bleu.corpus_score(hyps, [refs])
    assert metrics["sacrebleu_signature"] == str(bleu.get_signature())
    assert metrics["sacrebleu_signature"].startswith("nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp|version:")
    # rows come back in any order from the processes: the index pairs each with its reference
    shuffled = {k: v.flip(0) for k, v in generated_outputs(hyps, tokenizer, width).items()}
    assert task.compute_metrics(shuffled, data)["bleu"] == pytest.approx(metrics["bleu"])


# ---------------------------------------------------------------- one step through the interface


def train_step(task, data, model) -> float:
    batch = data.collate([data.train[i] for i in range(8)])
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    loss = task.loss(model, batch)
    loss.backward()
    optimizer.step()
    return loss.item()


@pytest.mark.parametrize("source", ["wordnet", "text"])
def test_mlm_train_and_eval_step(source, wordnet_data, text_files):
    data = wordnet_data if source == "wordnet" else create_task("text").load(DataConfig(data_files=text_files, **SMALL), 0)
    task = create_task(source, label_smoothing=0.1)
    torch.manual_seed(0)
    model = TinyMlm(data.spec)
    assert math.isfinite(train_step(task, data, model))
    batch = data.collate([data.eval[i] for i in range(4)])
    with torch.no_grad():
        outputs = task.eval_outputs(model.eval(), batch, data.spec)
    assert all(v.shape[0] == 4 for v in outputs.values())
    metrics = task.compute_metrics(outputs, data)
    assert set(metrics) == {"mlm_accuracy", "perplexity", "loss", "majority_baseline_accuracy"}
    assert 0 <= metrics["mlm_accuracy"] <= 1 and metrics["perplexity"] > 1


@pytest.mark.parametrize("source", ["numbers", "pairs"])
def test_seq2seq_train_and_eval_step(source, numbers_data, tmp_path):
    if source == "numbers":
        data = numbers_data
    else:
        tsv, _ = write_pairs(tmp_path)
        data = create_task("pairs").load(DataConfig(data_files=tsv, source_field="de", target_field="en", **SMALL), 0)
    task = create_task(source, label_smoothing=0.1)
    torch.manual_seed(0)
    model = TinySeq2Seq(data.spec)
    assert math.isfinite(train_step(task, data, model))
    batch = data.collate([data.eval[i] for i in range(5)])
    with torch.no_grad():
        outputs = task.eval_outputs(model.eval(), batch, data.spec)
    assert outputs["generated"].shape == (5, data.spec.target_len)
    assert outputs["index"].tolist() == [0, 1, 2, 3, 4]
    metrics = task.compute_metrics(outputs, data)
    assert set(metrics) == {"bleu", "chrf", "exact_match", "loss", "sacrebleu_signature", "floor_copy_bleu",
                            "floor_copy_chrf", "source_target_similarity"}
    assert 0 <= metrics["bleu"] <= 100 and math.isfinite(metrics["loss"])
