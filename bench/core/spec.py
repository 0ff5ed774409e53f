"""What a task gives a model (TaskSpec): the one type that models and tasks both need, so neither
imports the other."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

MODALITIES = ("image", "mlm", "seq2seq")


@dataclass(frozen=True)
class TaskSpec:
    """What a task gives a model. Known before any data is loaded, so bad pairs fail at once."""

    name: str
    modality: str  # one of MODALITIES
    metric: str  # the primary metric, ranked on by the leaderboard
    higher_is_better: bool = True
    image_size: Optional[tuple[int, int, int]] = None  # (C, H, W)
    num_classes: Optional[int] = None
    vocab_size: Optional[int] = None
    seq_len: Optional[int] = None  # MLM block length / maximum source length
    target_len: Optional[int] = None  # maximum target length (seq2seq)
    pad_token_id: Optional[int] = None
    bos_token_id: Optional[int] = None  # decoder start token (seq2seq)
    eos_token_id: Optional[int] = None

    def __post_init__(self):
        if self.modality not in MODALITIES:
            raise ValueError(f"modality must be one of {MODALITIES}, got {self.modality!r}")

    @property
    def needs(self) -> str:
        """Which parts a model must have: an encoder, or an encoder and a causal decoder."""
        return "encoder-decoder" if self.modality == "seq2seq" else "encoder"

    def describe(self) -> str:
        if self.modality == "image":
            c, h, w = self.image_size
            return f"{c}x{h}x{w} images, {self.num_classes} classes"
        if self.modality == "mlm":
            return f"masked LM, {self.seq_len}-token blocks"
        return f"seq2seq, source <= {self.seq_len} / target <= {self.target_len} tokens"
