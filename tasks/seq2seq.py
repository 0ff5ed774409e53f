"""Sequence-to-sequence tasks. Each gives only its source of pairs; tasks.text does the rest.

Every task also reads local pair files given by --data-files (.tsv with a header row, or .jsonl),
with the fields named by --source-field and --target-field."""

from __future__ import annotations

import random

from num2words import num2words

from bench.core.errors import DataError
from tasks.base import register_task
from tasks.text import Seq2SeqTask, load_hub


@register_task
class Wmt14DeEn(Seq2SeqTask):
    name = "wmt14-de-en"
    description = "WMT14 German -> English translation; scored on newstest2014"
    offline = False
    data_flags = (*Seq2SeqTask.data_flags, "data_dir", "hub_id")  # data_dir: a clone of the dataset repository

    def default_source(self, data_cfg):
        def side_by_side(batch):
            translations = batch["translation"]  # [{"de": ..., "en": ...}, ...]
            return {"source": [t["de"] for t in translations], "target": [t["en"] for t in translations]}

        splits = (load_hub(data_cfg, "wmt/wmt14", "de-en", split) for split in ("train", "test"))
        return tuple(ds.map(side_by_side, batched=True, remove_columns=ds.column_names) for ds in splits)


@register_task
class Pairs(Seq2SeqTask):
    name = "pairs"
    description = "seq2seq on local pair files (--data-files: .tsv with a header row or .jsonl)"
    offline = True

    def default_source(self, data_cfg):
        raise DataError("The pairs task needs --data-files: comma-separated .tsv (with a header row) or .jsonl files.")


NUMBERS_COUNT = 20_000  # distinct integers drawn from NUMBERS_RANGE: ~16k train / ~4k eval at --val-fraction 0.2
NUMBERS_RANGE = 100_000
NUMBERS_SEED = 0  # the same numbers for every run


@register_task
class Numbers(Seq2SeqTask):
    """Integers in digits -> English words: "4821" -> "four thousand, eight hundred and twenty-one".
    Every answer is checkable, and a small Transformer learns it in minutes on a CPU."""

    name = "numbers"
    description = "integers -> English words with num2words (offline default)"
    offline = True
    default_target_len = 16  # the longest answer is 11 tokens + [EOS] with the trained tokenizer

    def default_source(self, data_cfg):
        numbers = random.Random(NUMBERS_SEED).sample(range(NUMBERS_RANGE), NUMBERS_COUNT)
        return [(str(n), num2words(n)) for n in numbers], None
