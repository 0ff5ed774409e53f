"""Sanity tasks: synthetic, offline and deterministic, each one a skill every family must show within
a small budget before its scores on real tasks mean anything (bench.sanity runs them all).

Words are pseudo-words of two or three consonant-vowel syllables ("tavo", "keniru"), a fixed
vocabulary of SANITY_WORDS drawn with SANITY_SEED: the same for every run, no language's frequencies.

- copy (seq2seq): a sentence of 5-20 pseudo-words, drawn uniformly with repetition, into itself.
- reverse (seq2seq): the same sentences into their words in reverse order.
  Both hold out --val-fraction of SANITY_PAIRS sentences by a hash of the source, as numbers does.
- memorize-pairs (seq2seq): MEMORIZE_PAIRS random sources of 3-6 words, each with a random target
  of 3-6 words that nothing in the source predicts; scored on the same pairs.
- memorize-digits (image): MEMORIZE_IMAGES of scikit-learn's digits with random labels, so only
  memorization can fit them; scored on the same images.
- motif (mlm): each block repeats a motif of 3-6 random pseudo-words (the period drawn per block),
  so every masked token is the token one period before or after it. Each line of text is one block.

The memorization tasks score their training set whichever --eval-split is given: fitting it is the
skill. Their floors are the modality's: the commonest class (images), the copy-the-source BLEU
(seq2seq, near 0 for memorize-pairs and 100 for copy, whose solution it is) and the commonest
masked token (motif).
"""

from __future__ import annotations

import random

import torch
from torch.utils.data import TensorDataset

from bench.core.spec import TaskSpec
from tasks.base import TaskData, register_task
from tasks.image import ImageClassification, _limit, _normalise
from tasks.text import MlmTask, Seq2SeqTask

SANITY_SEED = 0  # the vocabulary, the sentences, the motifs and the random labels
SANITY_WORDS = 1500
CONSONANTS, VOWELS = "bdfgklmnprstvz", "aeiou"
SANITY_PAIRS = 20_000  # copy / reverse sentences: ~16k train (less the validation tenth) / ~4k test
SENTENCE_WORDS = (5, 20)
MEMORIZE_PAIRS = 256
MEMORIZE_WORDS = (3, 6)
MEMORIZE_IMAGES = 256
MOTIF_LINES = 12_000
MOTIF_PERIODS = (3, 6)


def pseudo_words(count: int = SANITY_WORDS, seed: int = SANITY_SEED) -> list[str]:
    """`count` distinct pseudo-words of 2-3 consonant-vowel syllables, always the same for a seed."""
    rng = random.Random(seed)
    words: dict[str, None] = {}  # insertion-ordered set
    while len(words) < count:
        words["".join(rng.choice(CONSONANTS) + rng.choice(VOWELS) for _ in range(rng.randint(2, 3)))] = None
    return list(words)


def sentences(rng: random.Random, words: list[str], count: int, lengths: tuple[int, int]) -> list[list[str]]:
    """`count` distinct sentences of lengths[0]-lengths[1] words drawn uniformly with repetition."""
    found: dict[tuple[str, ...], None] = {}
    while len(found) < count:
        found[tuple(rng.choices(words, k=rng.randint(*lengths)))] = None
    return [list(s) for s in found]


class SyntheticPairs(Seq2SeqTask):
    """copy / reverse: SANITY_PAIRS sentences into `target_words` of their words."""

    offline = True
    data_flags = ("val_fraction", "tokenizer", "vocab_size", "seq_len")  # its own sentences, no files

    @staticmethod
    def target_words(words: list[str]) -> list[str]:
        raise NotImplementedError

    def default_source(self, data_cfg):
        rng = random.Random(SANITY_SEED)
        return [(" ".join(s), " ".join(self.target_words(s))) for s in sentences(rng, pseudo_words(), SANITY_PAIRS,
                                                                                   SENTENCE_WORDS)], None


@register_task
class Copy(SyntheticPairs):
    name = "copy"
    description = "sanity: 5-20 pseudo-words copied to the output (offline, synthetic)"

    @staticmethod
    def target_words(words):
        return words


@register_task
class Reverse(SyntheticPairs):
    name = "reverse"
    description = "sanity: 5-20 pseudo-words written out in reverse order (offline, synthetic)"

    @staticmethod
    def target_words(words):
        return words[::-1]


@register_task
class MemorizePairs(Seq2SeqTask):
    name = "memorize-pairs"
    description = f"sanity: {MEMORIZE_PAIRS} random pseudo-word pairs learnt by heart, scored on themselves"
    offline = True
    data_flags = ("tokenizer", "vocab_size", "seq_len")  # no files, no held-out part

    def default_source(self, data_cfg):
        rng = random.Random(SANITY_SEED)
        words = pseudo_words()
        sources = sentences(rng, words, MEMORIZE_PAIRS, MEMORIZE_WORDS)
        pairs = [(" ".join(s), " ".join(rng.choices(words, k=rng.randint(*MEMORIZE_WORDS)))) for s in sources]
        return pairs, pairs, pairs  # (train, validation, test): both scored splits are the training pairs


@register_task
class MemorizeDigits(ImageClassification):
    name = "memorize-digits"
    description = f"sanity: {MEMORIZE_IMAGES} of scikit-learn's digits with random labels, scored on themselves"
    offline = True
    in_memory = True

    def spec(self, data_cfg):
        return TaskSpec(self.name, "image", self.metric, image_size=(1, 8, 8), num_classes=10)

    def load(self, data_cfg, seed):
        from sklearn.datasets import load_digits

        generator = torch.Generator().manual_seed(SANITY_SEED)
        images = torch.tensor(load_digits().images, dtype=torch.float32)[:, None]  # (1797, 1, 8, 8)
        chosen = torch.randperm(len(images), generator=generator)[:MEMORIZE_IMAGES]
        labels = torch.randint(10, (MEMORIZE_IMAGES,), generator=generator)  # nothing in an image predicts its label
        images = TensorDataset(_normalise(images[chosen]), labels)  # (256, 1, 8, 8), (256,)
        # the first n of one fixed order for both: a smaller scored set is part of the trained one
        train = _limit(images, data_cfg.max_train_samples)
        return TaskData(self.spec(data_cfg), train, _limit(images, data_cfg.max_eval_samples),
                        train_scored=train if data_cfg.score_train else None)


@register_task
class Motif(MlmTask):
    name = "motif"
    description = "sanity: masked LM on blocks that repeat a motif of 3-6 pseudo-words (offline, synthetic)"
    offline = True
    data_flags = ("val_fraction", "tokenizer", "vocab_size", "seq_len")

    def default_source(self, data_cfg):
        """MOTIF_LINES lines, each a motif repeated to seq_len words: at least one block's worth of tokens."""
        rng = random.Random(SANITY_SEED)
        words = pseudo_words()
        lines = []
        for _ in range(MOTIF_LINES):
            motif = rng.sample(words, rng.randint(*MOTIF_PERIODS))
            # a leading space: byte-level BPE marks a word's preceding space, so without it a line's first
            # word would be another token than the same word later in the line
            lines.append("".join(" " + motif[i % len(motif)] for i in range(data_cfg.seq_len)))
        return lines, None

    @staticmethod
    def blocks(texts, tokenizer, seq_len, part):
        """One block per line, [CLS] + its first seq_len - 2 tokens + [SEP]: a block never joins two
        motifs (MlmTask's blocks run across lines)."""
        body = seq_len - 2
        cls, sep = tokenizer.cls_token_id, tokenizer.sep_token_id

        def cut(batch):
            rows = tokenizer(batch["text"], add_special_tokens=False)["input_ids"]
            return {"input_ids": [[cls] + row[:body] + [sep] for row in rows]}

        return texts.map(cut, batched=True, batch_size=1000, remove_columns=texts.column_names, desc=f"{part} blocks")
