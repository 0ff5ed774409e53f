"""Masked language modelling tasks. Each gives only its source of text; tasks.text does the rest.

Every task also reads local files given by --data-files (.txt lines or .jsonl "text" fields)."""

from __future__ import annotations

import os
from pathlib import Path

from bench.core.errors import DataError
from tasks.base import register_task
from tasks.text import MlmTask, load_hub, read_text


class WikiText(MlmTask):
    """WikiText (raw) from the hub; trained on its train split and scored on its test split."""

    offline = False
    config = ""
    data_flags = (*MlmTask.data_flags, "data_dir", "hub_id")  # data_dir: a clone of the dataset repository

    def default_source(self, data_cfg):
        return tuple(load_hub(data_cfg, "Salesforce/wikitext", self.config, split) for split in ("train", "test"))


@register_task
class WikiText103(WikiText):
    name = "wikitext-103"
    description = "WikiText-103 (raw, 100M words of Wikipedia articles), masked LM"
    config = "wikitext-103-raw-v1"


@register_task
class WikiText2(WikiText):
    name = "wikitext-2"
    description = "WikiText-2 (raw, 2M words of Wikipedia articles), masked LM"
    config = "wikitext-2-raw-v1"


@register_task
class TextFiles(MlmTask):
    name = "text"
    description = "masked LM on local text files (--data-files: .txt lines or .jsonl with a \"text\" field)"
    offline = True

    def default_source(self, data_cfg):
        raise DataError("The text task needs --data-files: comma-separated .txt or .jsonl files.")


WORDNET_PARTS = ("noun", "verb", "adj", "adv")
WORDNET_DEFAULT_DIR = Path("/usr/share/wordnet")  # Debian's wordnet-base


def wordnet_dir() -> Path:
    """WordNet's dict folder: $WNSEARCHDIR, $WNHOME/dict, or where Debian's wordnet-base puts it."""
    candidates = [os.environ.get("WNSEARCHDIR"), os.environ.get("WNHOME") and Path(os.environ["WNHOME"]) / "dict"]
    for folder in [Path(c) for c in candidates if c] + [WORDNET_DEFAULT_DIR]:
        if all((folder / f"data.{part}").is_file() for part in WORDNET_PARTS):
            return folder
    raise DataError(
        "The WordNet database was not found; install it (apt-get install wordnet-base, or set WNHOME) "
        "or give text files with --data-files."
    )


def wordnet_glosses(folder: Path) -> list[str]:
    """The gloss of every synset: the text after " | " on each data line (the licence lines start with spaces)."""
    glosses = []
    for part in WORDNET_PARTS:
        for line in read_text(folder / f"data.{part}").splitlines():
            if not line.startswith("  ") and " | " in line:
                glosses.append(line.split(" | ", 1)[1].strip())
    return glosses


@register_task
class WordNet(MlmTask):
    name = "wordnet"
    description = "masked LM on the 117k English glosses of WordNet (offline default; Debian's wordnet-base)"
    offline = True

    def default_source(self, data_cfg):
        return wordnet_glosses(wordnet_dir()), None
