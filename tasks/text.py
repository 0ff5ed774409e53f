"""What the text tasks share: tokenizers, file readers, hub loading, the held-out split, and the
MLM and seq2seq modality bases (batching, loss, evaluation outputs, metrics).

A subclass only says where its text comes from (`default_source`); everything after that is
here, so every text task tokenizes, batches and scores the same way.

Tokenizers are trained on the task's training split with `tokenizers` and cached in
$MLPBENCH_CACHE/tokenizers (default ~/.cache/mlpbench/tokenizers), keyed by a hash of the corpus
and the vocabulary size (a cached file that does not load is said so and trained again); or read
from a local folder or tokenizer.json given by --tokenizer.
Nothing is downloaded. Trained tokenizers use the ids below; a local tokenizer brings its own.
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
import os
from abc import abstractmethod
from collections import Counter
from dataclasses import replace
from pathlib import Path
from typing import Callable, Iterator, Optional

import datasets
import sacrebleu
import torch
import torch.nn.functional as F
from torch.nn.utils.rnn import pad_sequence
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import DataCollatorForLanguageModeling, PreTrainedTokenizerFast

from bench.core.errors import DataError, first_line
from bench.core.results import atomic_path
from bench.core.spec import TaskSpec
from tasks.base import VALIDATION_FRACTION, Task, TaskData
from tasks.hub import load_hub_dataset

# Special tokens of a trained tokenizer, in id order: [PAD] = 0, ..., [BOS] = 5, [EOS] = 6.
SPECIAL_TOKENS = {
    "pad_token": "[PAD]",
    "unk_token": "[UNK]",
    "cls_token": "[CLS]",
    "sep_token": "[SEP]",
    "mask_token": "[MASK]",
    "bos_token": "[BOS]",
    "eos_token": "[EOS]",
}
PAD_ID, BOS_ID, EOS_ID = 0, 5, 6
MLM_ROLES = ("pad_token", "unk_token", "cls_token", "sep_token", "mask_token")
ROLES = {"mlm": MLM_ROLES, "seq2seq": MLM_ROLES + ("bos_token", "eos_token")}  # by modality
TOKENIZER_RECIPE = 2  # part of the cache key: bump when train_tokenizer changes (2: byte-level BPE for MLM too)

IGNORE = -100  # label of positions that are not scored (cross_entropy's ignore_index)
MASK_PROBABILITY = 0.15  # BERT: 15% of tokens, of which 80% [MASK], 10% random, 10% unchanged
EVAL_MASK_SEED = 0  # one fixed set of evaluation masks, shared by every run and seed


# ---------------------------------------------------------------- tokenizers


def cache_dir() -> Path:
    return Path(os.environ.get("MLPBENCH_CACHE", "~/.cache/mlpbench")).expanduser() / "tokenizers"


def text_batches(ds: datasets.Dataset, columns: tuple[str, ...], size: int = 10_000) -> Iterator[list[str]]:
    """The texts of `columns`, in chunks, without holding the whole corpus as Python strings."""
    for start in range(0, len(ds), size):
        chunk = ds[start : start + size]
        for column in columns:
            yield chunk[column]


def get_tokenizer(data_cfg, corpus: Callable[[], Iterator[list[str]]], kind: str) -> PreTrainedTokenizerFast:
    """The tokenizer of a run: the local one given by --tokenizer, or one trained on `corpus` (cached).

    `kind` is the modality, "mlm" or "seq2seq" (one vocabulary shared by source and target), which
    decides the special tokens.
    """
    if data_cfg.tokenizer:
        return load_local_tokenizer(data_cfg.tokenizer, ROLES[kind])
    return _wrap(cached_tokenizer(corpus, kind, data_cfg.vocab_size), ROLES[kind])


def cached_tokenizer(corpus: Callable[[], Iterator[list[str]]], kind: str, vocab_size: int) -> Tokenizer:
    """Train once per (corpus, kind, vocabulary size); later runs read the cached file."""
    digest = hashlib.blake2b(f"{kind}|{vocab_size}|{TOKENIZER_RECIPE}".encode(), digest_size=16)
    for texts in corpus():
        # NUL separators: a different split of the same characters gives a different key
        digest.update("\0".join(texts).encode("utf-8") + b"\0")
    path = cache_dir() / f"{kind}-{vocab_size}-{digest.hexdigest()}.json"
    if path.exists():
        try:
            return Tokenizer.from_file(str(path))
        except Exception as e:  # tokenizers raises a bare Exception for a file that is not a tokenizer
            print(f"The cached tokenizer {path} is corrupt ({first_line(e)}); training it again.", flush=True)
    tokenizer = train_tokenizer(corpus(), kind, vocab_size)
    with atomic_path(path) as tmp:  # a crash or a second process never leaves half a file under the key
        tokenizer.save(str(tmp))
    return Tokenizer.from_file(str(path))


def train_tokenizer(corpus: Iterator[list[str]], kind: str, vocab_size: int) -> Tokenizer:
    """Byte-level BPE (GPT-2's and RoBERTa's) for every text task. It decodes back to exactly the text it
    read, so BLEU and exact match compare the model's words with the reference and not tokenization
    artefacts; and it trains to the same file in every process. BERT's WordPiece, which the masked-LM
    tasks used before, does not: tokenizers' WordPiece trainer numbers the continuing-subword pieces
    ("##x") in a hash map's order, which varies from process to process, so merges of equal count were
    broken differently and the vocabulary and its ids changed with the process that trained it, and with
    them the masked-LM accuracy of the same command and seed on another machine or an emptied cache.
    Digits are split one by one so a number's tokens do not depend on which digit pairs happened to be
    frequent."""
    specials = [SPECIAL_TOKENS[role] for role in ROLES[kind]]
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Digits(individual_digits=True), pre_tokenizers.ByteLevel(add_prefix_space=False)]
    )
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=specials, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    tokenizer.train_from_iterator(corpus, trainer=trainer)
    return tokenizer


def _wrap(tokenizer: Tokenizer, roles: tuple[str, ...]) -> PreTrainedTokenizerFast:
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        model_input_names=["input_ids", "attention_mask"],
        **{role: SPECIAL_TOKENS[role] for role in roles},
    )


def load_local_tokenizer(path: str, roles: tuple[str, ...]) -> PreTrainedTokenizerFast:
    """A tokenizer.json file or a transformers tokenizer folder; special tokens it does not declare
    are taken from its vocabulary by this suite's names ([PAD], [MASK], [BOS], ...)."""
    where = Path(path).expanduser()
    if not (where.is_file() or where.is_dir()):
        raise DataError(f"The tokenizer {path} does not exist; give a tokenizer.json file or a tokenizer folder.")
    try:
        if where.is_file():
            tokenizer = PreTrainedTokenizerFast(tokenizer_file=str(where))
        else:
            tokenizer = PreTrainedTokenizerFast.from_pretrained(str(where), local_files_only=True)
    except Exception as e:  # tokenizers raises a bare Exception for a file that is not one; transformers others
        reason = (str(e).strip().splitlines() or [""])[0].rstrip(".")
        raise DataError(f"The tokenizer {path} is not a fast tokenizer, a tokenizer.json file or a folder holding one "
                        f"({type(e).__name__}: {reason}).") from None
    vocab = tokenizer.get_vocab()
    for role in roles:
        if getattr(tokenizer, role) is None and SPECIAL_TOKENS[role] in vocab:
            setattr(tokenizer, role, SPECIAL_TOKENS[role])
    required = [role for role in roles if role != "unk_token"]  # byte-level tokenizers need no [UNK]
    missing = [role.removesuffix("_token") for role in required if getattr(tokenizer, role) is None]
    if missing:
        raise DataError(
            f"The tokenizer {path} has no {', '.join(missing)} token; "
            f"this task needs {', '.join(SPECIAL_TOKENS[r] for r in required)} or their declared equivalents."
        )
    tokenizer.model_input_names = ["input_ids", "attention_mask"]
    return tokenizer


# ---------------------------------------------------------------- sources


def data_file_paths(data_cfg) -> list[Path]:
    paths = [Path(p.strip()).expanduser() for p in data_cfg.data_files.split(",") if p.strip()]
    if not paths:
        raise DataError("--data-files names no file; give comma-separated file paths.")
    for path in paths:
        if not path.is_file():
            raise DataError(f"The data file {path} does not exist.")
    return paths


def read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise DataError(f"The data file {path} is not UTF-8 text (byte {e.start}); convert it to UTF-8.") from None
    except OSError as e:
        raise DataError(f"The data file {path} cannot be read ({e.strerror}).") from None


def read_jsonl(path: Path) -> Iterator[tuple[int, dict]]:
    """(line number, record) for each non-blank line."""
    for number, line in enumerate(read_text(path).splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as e:
            raise DataError(f"Line {number} of {path} is not valid JSON ({e.msg}).") from None
        if not isinstance(record, dict):
            raise DataError(f"Line {number} of {path} is not a JSON object.")
        yield number, record


def field_of(record: dict, field: str, path: Path, number: int, flag: str) -> str:
    if field not in record:
        raise DataError(
            f"Line {number} of {path} has no {field!r} field (it has {', '.join(map(repr, record)) or 'none'}){flag}."
        )
    return str(record[field])


def read_text_files(paths: list[Path]) -> list[str]:
    """Non-blank lines of .txt files and the "text" field of .jsonl records."""
    texts: list[str] = []
    for path in paths:
        if path.suffix == ".txt":
            texts += [line for line in read_text(path).splitlines() if line.strip()]
        elif path.suffix == ".jsonl":
            texts += [field_of(rec, "text", path, n, "") for n, rec in read_jsonl(path)]
        else:
            raise DataError(f"The data file {path} is neither .txt nor .jsonl, the text formats this task reads.")
    if not texts:
        raise DataError(f"The data files {', '.join(map(str, paths))} hold no text.")
    return texts


def read_pair_files(paths: list[Path], source_field: str, target_field: str) -> list[tuple[str, str]]:
    """(source, target) pairs from .tsv files with a header row or from .jsonl records."""
    flag = "; name the fields with --source-field and --target-field"
    pairs: list[tuple[str, str]] = []
    for path in paths:
        if path.suffix == ".tsv":
            rows = csv.reader(read_text(path).splitlines(), delimiter="\t", quoting=csv.QUOTE_NONE)
            header = next(rows, [])
            for field in (source_field, target_field):
                if field not in header:
                    raise DataError(
                        f"The header row of {path} has no {field!r} column "
                        f"(it has {', '.join(map(repr, header))}){flag}."
                    )
            for number, row in enumerate(rows, 2):
                if not any(cell.strip() for cell in row):
                    continue
                if len(row) != len(header):
                    raise DataError(
                        f"Line {number} of {path} has {len(row)} tab-separated fields, the header {len(header)}."
                    )
                record = dict(zip(header, row))
                pairs.append((record[source_field], record[target_field]))
        elif path.suffix == ".jsonl":
            pairs += [
                (field_of(rec, source_field, path, n, flag), field_of(rec, target_field, path, n, flag))
                for n, rec in read_jsonl(path)
            ]
        else:
            raise DataError(f"The data file {path} is neither .tsv nor .jsonl, the pair formats this task reads.")
    if not pairs:
        raise DataError(f"The data files {', '.join(map(str, paths))} hold no pairs.")
    return pairs


def load_hub(data_cfg, hub_id: str, config: str, split: str) -> datasets.Dataset:
    """One split of a hub dataset (or of its local clone given by --data-dir), through `datasets`."""
    source = data_cfg.data_dir or data_cfg.hub_id or hub_id
    return load_hub_dataset(source, config, split=split, remedy="give a local copy with --data-files (text files) "
                            "or --data-dir (a clone of the dataset repository)")


def is_held_out(key: str, val_fraction: float) -> bool:
    """Whether an example goes to the evaluation part. A hash of its text decides, so the split
    depends neither on file order nor on the run's seed, and repeated texts stay on one side."""
    h = int.from_bytes(hashlib.blake2b(key.encode("utf-8"), digest_size=8).digest(), "big")
    return h < val_fraction * 2**64


def split_held_out(items: list, key: Callable, val_fraction: float) -> tuple[list, list]:
    """(train, eval) by `is_held_out` on key(item); DataError if either part ends up empty."""
    train, held = [], []
    for item in items:
        (held if is_held_out(key(item), val_fraction) else train).append(item)
    if not train or not held:
        raise DataError(
            f"Holding out {val_fraction:g} of {len(items)} examples left no "
            f"{'training' if not train else 'evaluation'} examples (identical texts stay on one side); "
            f"give more distinct data or change --val-fraction."
        )
    return train, held


def carve_validation(train: datasets.Dataset, key_column: str) -> tuple[datasets.Dataset, datasets.Dataset]:
    """(training, validation): VALIDATION_FRACTION of the training rows, by a hash of `key_column`
    salted apart from the test split's hash, so the choice is fixed and repeated texts stay together."""

    def keep(batch):
        return [not is_held_out("validation\0" + key, VALIDATION_FRACTION) for key in batch[key_column]]

    kept = train.filter(keep, batched=True, desc="carving the validation split")
    validation = train.filter(lambda batch: [not k for k in keep(batch)], batched=True, desc="validation split")
    if len(kept) == 0 or len(validation) == 0:
        raise DataError(
            f"Carving a validation split of {VALIDATION_FRACTION:g} from {len(train)} training examples left one "
            f"side empty; give more distinct training data."
        )
    return kept, validation


def first(ds: datasets.Dataset, n: Optional[int]) -> datasets.Dataset:
    return ds if n is None or n >= len(ds) else ds.select(range(n))


EVAL_SAMPLE_SEED = 0  # --max-eval-samples draws the same examples for every run, seed and model


def sample(ds: datasets.Dataset, n: Optional[int]) -> datasets.Dataset:
    """A seeded random sample of n rows in their original order (the first n of a corpus would be
    one book or one topic), or the whole set."""
    if n is None or n >= len(ds):
        return ds
    chosen = torch.randperm(len(ds), generator=torch.Generator().manual_seed(EVAL_SAMPLE_SEED))[:n]
    return ds.select(sorted(chosen.tolist()))


def pad(rows: list[list[int]], value: int) -> torch.Tensor:
    """(B, longest row) long tensor, right-padded with `value`."""
    return pad_sequence([torch.as_tensor(row, dtype=torch.long) for row in rows], batch_first=True, padding_value=value)


def token_loss(logits: torch.Tensor, labels: torch.Tensor, label_smoothing: float = 0.0, per_position: bool = False):
    """Cross entropy of the scored positions: their mean, or per position (0 where IGNORE).
    `logits` is (*labels.shape, V): (B, T, V) with (B, T) labels, or (N, V) with (N,) labels."""
    loss = F.cross_entropy(
        logits.flatten(0, -2).float(), labels.flatten(), ignore_index=IGNORE,
        label_smoothing=label_smoothing, reduction="none" if per_position else "mean",
    )
    return loss.view_as(labels) if per_position else loss


def as_dataset(rows, columns: tuple[str, ...]) -> datasets.Dataset:
    """A list of texts (one column) or of tuples (one column each) as a Dataset; a Dataset as is."""
    if isinstance(rows, datasets.Dataset):
        return rows
    if len(columns) == 1:
        return datasets.Dataset.from_dict({columns[0]: rows})
    return datasets.Dataset.from_dict({c: [row[i] for row in rows] for i, c in enumerate(columns)})


# ---------------------------------------------------------------- masked language modelling


class MlmCollate:
    """Pads a batch of blocks. Training blocks are masked afresh in every batch (seeded);
    evaluation blocks carry the fixed masks they were given at load time."""

    def __init__(self, tokenizer: PreTrainedTokenizerFast, seed: int):
        self.masker = DataCollatorForLanguageModeling(tokenizer, mlm_probability=MASK_PROBABILITY, seed=seed)
        self.pad_id = tokenizer.pad_token_id

    def __call__(self, items: list[dict]) -> dict[str, torch.Tensor]:
        if "labels" in items[0]:
            return {
                "input_ids": pad([it["input_ids"] for it in items], self.pad_id),
                "attention_mask": pad([it["attention_mask"] for it in items], 0),
                "labels": pad([it["labels"] for it in items], IGNORE),
            }
        return dict(self.masker([{"input_ids": it["input_ids"]} for it in items]))


class MlmTask(Task):
    """BERT-style masked language modelling on blocks of seq_len tokens: [CLS] + seq_len - 2 tokens
    of the concatenated text + [SEP], as in transformers' run_mlm (the text of each 1,000 lines is
    concatenated and its last partial block dropped). 15% of the tokens are masked (80% [MASK],
    10% random, 10% unchanged); the metrics score exactly those positions."""

    default_label_smoothing = 0.0  # BERT and RoBERTa train without it
    data_flags = ("data_files", "val_fraction", "tokenizer", "vocab_size", "seq_len")

    def spec(self, data_cfg) -> TaskSpec:
        return TaskSpec(
            name=self.name, modality="mlm", metric="mlm_accuracy", vocab_size=data_cfg.vocab_size,
            seq_len=data_cfg.seq_len, pad_token_id=PAD_ID,
        )

    @abstractmethod
    def default_source(self, data_cfg) -> tuple[list | datasets.Dataset, Optional[datasets.Dataset]]:
        """Training texts (a Dataset with a "text" column) and the source's evaluation split;
        or a list of texts and None, to hold out a part with --val-fraction."""

    def texts(self, data_cfg) -> tuple[datasets.Dataset, datasets.Dataset]:
        """--data-files when given, else the task's own source; a held-out part where it has no split."""
        if data_cfg.data_files:
            train, held = read_text_files(data_file_paths(data_cfg)), None
        else:
            train, held = self.default_source(data_cfg)
        if held is None:
            train, held = split_held_out(train, lambda text: text, data_cfg.val_fraction)
        train, validation = carve_validation(as_dataset(train, ("text",)), "text")
        return train, validation if data_cfg.eval_split == "validation" else as_dataset(held, ("text",))

    def load(self, data_cfg, seed: int) -> TaskData:
        train_text, eval_text = self.texts(data_cfg)
        tokenizer = get_tokenizer(data_cfg, lambda: text_batches(train_text, ("text",)), "mlm")
        train = first(self.blocks(train_text, tokenizer, data_cfg.seq_len, "training"), data_cfg.max_train_samples)
        eval_blocks = self.blocks(eval_text, tokenizer, data_cfg.seq_len, "evaluation")
        eval_blocks = sample(eval_blocks, data_cfg.max_eval_samples)
        eval_masker = DataCollatorForLanguageModeling(tokenizer, mlm_probability=MASK_PROBABILITY, seed=EVAL_MASK_SEED)
        evaluation = eval_blocks.map(
            lambda b: {k: v.tolist() for k, v in eval_masker([{"input_ids": x} for x in b["input_ids"]]).items()},
            batched=True, desc="masking evaluation blocks",
        )
        spec = replace(self.spec(data_cfg), vocab_size=len(tokenizer), pad_token_id=tokenizer.pad_token_id)
        return TaskData(spec, train, evaluation, MlmCollate(tokenizer, seed), extra={"tokenizer": tokenizer})

    @staticmethod
    def blocks(texts: datasets.Dataset, tokenizer, seq_len: int, part: str) -> datasets.Dataset:
        body = seq_len - 2  # room for [CLS] and [SEP]
        cls, sep = tokenizer.cls_token_id, tokenizer.sep_token_id

        def group(batch):
            ids = [i for row in tokenizer(batch["text"], add_special_tokens=False)["input_ids"] for i in row]
            return {"input_ids": [[cls] + ids[s : s + body] + [sep] for s in range(0, len(ids) - body + 1, body)]}

        blocks = texts.map(
            group, batched=True, batch_size=1000, remove_columns=texts.column_names, desc=f"{part} blocks"
        )
        if len(blocks) == 0:
            raise DataError(
                f"The {part} text is too short for one block of {seq_len} tokens; "
                f"give more text or a smaller --seq-len."
            )
        return blocks

    # Only the scored positions reach the output head: the model gathers their hidden states before
    # it (`model(input_ids, attention_mask, labels_mask)` -> (N, V), see bench.models.text.MaskedLM),
    # as fairseq's masked LM does, so the head costs 15% of a full projection and FLOP counts of
    # `loss` count only that (bench.measure.head_flops_share measures its share).

    def loss(self, model, batch) -> torch.Tensor:
        labels = batch["labels"]
        scored = labels != IGNORE  # (B, T)
        logits = model(batch["input_ids"], batch["attention_mask"], scored)  # (N, V)
        return token_loss(logits, labels[scored], self.label_smoothing)

    def eval_outputs(self, model, batch, spec) -> dict[str, torch.Tensor]:
        """Per block: summed loss, number of masked tokens and of correct predictions, so sums over
        the gathered blocks of all processes give exact corpus-level numbers."""
        labels = batch["labels"]
        scored = labels != IGNORE  # (B, T)
        logits = model(batch["input_ids"], batch["attention_mask"], scored)  # (N, V)
        target = labels[scored]  # (N,), in the order of the logits
        loss = torch.zeros(labels.shape, dtype=torch.float32, device=labels.device)  # (B, T)
        loss[scored] = token_loss(logits, target, per_position=True)
        correct = torch.zeros_like(scored)  # (B, T)
        correct[scored] = logits.argmax(-1) == target
        return {"loss_sum": loss.sum(1), "masked": scored.sum(1), "correct": correct.sum(1)}

    def compute_metrics(self, outputs, data: TaskData) -> dict[str, float]:
        masked = outputs["masked"].sum().item()
        loss = outputs["loss_sum"].sum().item() / masked
        # always predicting the commonest masked token: the floor a trained model must clear
        counts = torch.bincount(torch.tensor([t for row in data.eval["labels"] for t in row if t != IGNORE]))
        return {
            "mlm_accuracy": outputs["correct"].sum().item() / masked,
            "perplexity": float(torch.tensor(loss).exp()),
            "loss": loss,
            "majority_baseline_accuracy": counts.max().item() / counts.sum().item(),
        }

    def scored_positions(self, batch) -> int:
        """Masked positions in a batch: where the loss scores a prediction and the output head runs."""
        return int((batch["labels"] != IGNORE).sum())

    def tokens(self, batch) -> int:
        return int(batch["attention_mask"].sum())

    def synthetic_batch(self, spec, batch_size, generator):
        """Full blocks of random ids, MASK_PROBABILITY of the positions scored."""
        ids = torch.randint(len(SPECIAL_TOKENS), spec.vocab_size, (batch_size, spec.seq_len), generator=generator)
        scored = torch.rand(batch_size, spec.seq_len, generator=generator) < MASK_PROBABILITY  # (B, T)
        return {
            "input_ids": ids,
            "attention_mask": torch.ones_like(ids),
            "labels": torch.where(scored, ids, IGNORE),
        }


# ---------------------------------------------------------------- sequence to sequence


class Seq2SeqCollate:
    """Pads source and target per batch. The decoder reads [BOS] + target and predicts target + [EOS]."""

    def __init__(self, pad_id: int, bos_id: int):
        self.pad_id, self.bos_id = pad_id, bos_id

    def __call__(self, items: list[dict]) -> dict[str, torch.Tensor]:
        source = pad([it["source_ids"] for it in items], self.pad_id)  # (B, S)
        labels = pad([it["labels"] for it in items], IGNORE)  # (B, T), ends with [EOS]
        decoder_input_ids = pad([[self.bos_id] + it["labels"][:-1] for it in items], self.pad_id)  # (B, T)
        return {
            "input_ids": source,
            "attention_mask": pad([[1] * len(it["source_ids"]) for it in items], 0),
            "decoder_input_ids": decoder_input_ids,
            "decoder_attention_mask": (labels != IGNORE).long(),
            "labels": labels,
            "index": torch.tensor([it["index"] for it in items]),  # pairs a hypothesis with its reference
        }


def trigram_similarity(texts: list[str], others: list[str]) -> float:
    """The cosine of the character-trigram counts of two sets of texts (lower-cased, spaces collapsed):
    about 0.8 or more for two sets in one language, under 0.1 for English and Spanish verses, 0 for
    numbers in digits and in words. The pages say "different languages" under
    leaderboard.tables.SAME_LANGUAGE_SIMILARITY."""
    def counts(lines):
        found = Counter()
        for line in lines:
            line = f" {' '.join(line.lower().split())} "
            found.update(line[i : i + 3] for i in range(len(line) - 2))
        return found

    a, b = counts(texts), counts(others)
    norm = math.sqrt(sum(v * v for v in a.values()) * sum(v * v for v in b.values()))
    return sum(v * b[k] for k, v in a.items()) / norm if norm else 0.0


class Seq2SeqTask(Task):
    """Translation-style tasks: teacher-forced cross entropy for training, greedy decoding for
    corpus BLEU and chrF (sacrebleu, default settings, detokenized text against the raw references),
    and the copy-the-source floor of both (`floor_copy_bleu`, `floor_copy_chrf`) with the sides'
    `source_target_similarity` (trigram_similarity)."""

    default_label_smoothing = 0.1  # the Transformer's (Vaswani et al., 2017)
    data_flags = ("data_files", "source_field", "target_field", "val_fraction", "tokenizer", "vocab_size", "seq_len")
    default_target_len: Optional[int] = None  # None: the same as --seq-len
    # Greedy decoding in evaluation stops when every row has emitted [EOS], and after at most
    # min(target_len, ceil(decode_factor * S + decode_margin)) new tokens, S the longest source of the
    # batch in tokens: a translation is rarely more than 1.5 times its source plus a few tokens, and
    # a random or untrained model that never emits [EOS] then costs a fraction of target_len steps.
    # A task whose outputs are long next to their inputs (G2P: letters -> phonemes) sets its own.
    decode_factor: float = 1.5
    decode_margin: int = 10

    def spec(self, data_cfg) -> TaskSpec:
        return TaskSpec(
            name=self.name, modality="seq2seq", metric="bleu", vocab_size=data_cfg.vocab_size,
            seq_len=data_cfg.seq_len, target_len=self.default_target_len or data_cfg.seq_len,
            pad_token_id=PAD_ID, bos_token_id=BOS_ID, eos_token_id=EOS_ID,
        )

    @abstractmethod
    def default_source(self, data_cfg) -> tuple:
        """Training pairs (a Dataset with "source" and "target" columns, or a list of (source, target))
        and the source's evaluation split, or None to hold out a part with --val-fraction; or three
        parts, (train, validation, test), for a source with its own validation split, of which
        --eval-split picks the one scored (training never holds either)."""

    def pairs(self, data_cfg) -> tuple[datasets.Dataset, datasets.Dataset]:
        """--data-files when given, else the task's own source; a held-out part where it has no split.
        The tokenizer is trained on the training pairs that are used, so they are cut here; the
        evaluation pairs are a seeded sample (`sample`) when --max-eval-samples cuts them."""
        if data_cfg.data_files:
            parts = read_pair_files(data_file_paths(data_cfg), data_cfg.source_field, data_cfg.target_field), None
        else:
            parts = self.default_source(data_cfg)
        columns = ("source", "target")
        if len(parts) == 3:
            train, validation, test = parts
        else:
            train, test = parts
            if test is None:
                train, test = split_held_out(train, lambda pair: pair[0], data_cfg.val_fraction)
            train, validation = carve_validation(as_dataset(train, columns), "source")
        held = validation if data_cfg.eval_split == "validation" else test
        return (
            first(as_dataset(train, columns), data_cfg.max_train_samples),
            sample(as_dataset(held, columns), data_cfg.max_eval_samples),
        )

    def load(self, data_cfg, seed: int) -> TaskData:
        train_pairs, eval_pairs = self.pairs(data_cfg)
        tokenizer = get_tokenizer(data_cfg, lambda: text_batches(train_pairs, ("source", "target")), "seq2seq")
        spec = replace(
            self.spec(data_cfg), vocab_size=len(tokenizer), pad_token_id=tokenizer.pad_token_id,
            bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        )
        eos = tokenizer.eos_token_id

        def encode(batch, indices):
            source = tokenizer(batch["source"], add_special_tokens=False)["input_ids"]
            target = tokenizer(batch["target"], add_special_tokens=False)["input_ids"]
            return {
                "source_ids": [s[: spec.seq_len] for s in source],
                "labels": [t[: spec.target_len - 1] + [eos] for t in target],
                "index": indices,
            }

        def encoded(pairs: datasets.Dataset, part: str) -> datasets.Dataset:
            return pairs.map(encode, batched=True, with_indices=True, remove_columns=["source", "target"], desc=part)

        return TaskData(
            spec, encoded(train_pairs, "encoding training pairs"), encoded(eval_pairs, "encoding evaluation pairs"),
            Seq2SeqCollate(spec.pad_token_id, spec.bos_token_id),
            extra={
                "tokenizer": tokenizer, "references": list(eval_pairs["target"]), "sources": list(eval_pairs["source"]),
            },
        )

    def forward(self, model, batch) -> torch.Tensor:
        return model(
            batch["input_ids"], batch["attention_mask"], batch["decoder_input_ids"], batch["decoder_attention_mask"]
        )  # (B, T, V)

    def loss(self, model, batch) -> torch.Tensor:
        return token_loss(self.forward(model, batch), batch["labels"], self.label_smoothing)

    def max_new_tokens(self, attention_mask: torch.Tensor, target_len: int) -> int:
        """How many tokens greedy decoding may emit for a batch of sources: see decode_factor."""
        longest = int(attention_mask.sum(1).max())
        return min(target_len, math.ceil(self.decode_factor * longest + self.decode_margin))

    def eval_outputs(self, model, batch, spec) -> dict[str, torch.Tensor]:
        """Per pair: summed teacher-forced loss and target tokens, the greedy output padded with the
        pad id to target_len (a fixed width, so processes can gather it) and the pair's index."""
        labels = batch["labels"]
        max_new_tokens = self.max_new_tokens(batch["attention_mask"], spec.target_len)
        generated = model.generate(batch["input_ids"], batch["attention_mask"], max_new_tokens=max_new_tokens)
        generated = generated[:, :max_new_tokens]  # (B, L), L <= max_new_tokens <= target_len
        width = spec.target_len - generated.shape[1]
        return {
            "loss_sum": token_loss(self.forward(model, batch), labels, per_position=True).sum(1),
            "tokens": (labels != IGNORE).sum(1),
            "generated": F.pad(generated, (0, width), value=spec.pad_token_id),
            "index": batch["index"],
        }

    def compute_metrics(self, outputs, data: TaskData) -> dict[str, float]:
        tokenizer, references = data.extra["tokenizer"], data.extra["references"]
        hypotheses = [self.detokenize(row.tolist(), tokenizer) for row in outputs["generated"]]
        refs = [references[i] for i in outputs["index"].tolist()]
        data.extra["predictions"] = (hypotheses, refs)  # written beside the result, to read or rescore
        sources = [data.extra["sources"][i] for i in outputs["index"].tolist()]
        bleu = sacrebleu.BLEU()
        return {
            "bleu": bleu.corpus_score(hypotheses, [refs]).score,
            "chrf": sacrebleu.CHRF().corpus_score(hypotheses, [refs]).score,
            "exact_match": sum(h.strip() == r.strip() for h, r in zip(hypotheses, refs)) / len(refs),
            "loss": outputs["loss_sum"].sum().item() / outputs["tokens"].sum().item(),
            "sacrebleu_signature": str(bleu.get_signature()),
            # the floor: copying each source as its own output, which a model must beat where the two sides
            # share a language (an English-to-English pair file), and how alike the two sides' letters are
            "floor_copy_bleu": sacrebleu.BLEU().corpus_score(sources, [refs]).score,
            "floor_copy_chrf": sacrebleu.CHRF().corpus_score(sources, [refs]).score,
            "source_target_similarity": trigram_similarity(sources, refs),
        }

    @staticmethod
    def detokenize(ids: list[int], tokenizer) -> str:
        """Text of a generated row: up to its first [EOS], without special tokens."""
        if tokenizer.eos_token_id in ids:
            ids = ids[: ids.index(tokenizer.eos_token_id)]
        return tokenizer.decode(ids, skip_special_tokens=True, clean_up_tokenization_spaces=False)

    def tokens(self, batch) -> int:
        return int(batch["attention_mask"].sum() + batch["decoder_attention_mask"].sum())

    def synthetic_batch(self, spec, batch_size, generator):
        """Sources and targets of the full lengths (seq_len, target_len), random ids, as
        Seq2SeqCollate gives them: the decoder reads [BOS] + target and predicts target + [EOS]."""
        first_id = max(spec.pad_token_id, spec.bos_token_id, spec.eos_token_id) + 1
        source = torch.randint(first_id, spec.vocab_size, (batch_size, spec.seq_len), generator=generator)
        labels = torch.randint(first_id, spec.vocab_size, (batch_size, spec.target_len), generator=generator)
        labels[:, -1] = spec.eos_token_id
        bos = torch.full((batch_size, 1), spec.bos_token_id)
        return {
            "input_ids": source,
            "attention_mask": torch.ones_like(source),
            "decoder_input_ids": torch.cat([bos, labels[:, :-1]], dim=1),
            "decoder_attention_mask": torch.ones_like(labels),
            "labels": labels,
            "index": torch.arange(batch_size),
        }
