"""An independent reference for the Transformer baselines: the same architecture from `torch.nn` alone.

The suite's baselines come from `transformers` (pre-norm RoBERTa for masked LM, mBART for seq2seq,
bench/models/transformer.py). This family builds the same shape, at the same sizes, from PyTorch's
own modules, written the way the PyTorch tutorial and fairseq's Transformer write it, so that a
configuration of ours that slows the baseline down (initialisation, positions, embedding scale)
shows up as a gap between the two trained by the same loop:

- `nn.TransformerEncoder` / `nn.Transformer` with pre-norm layers (`norm_first=True`) and a final
  LayerNorm, GELU, no dropout (as every family here);
- sinusoidal positions (Vaswani et al., 2017) instead of the baselines' learned ones;
- token embeddings ~ N(0, 1/d) multiplied by sqrt(d), tied to the output head (fairseq);
- every weight matrix xavier-uniform (`nn.Transformer._reset_parameters`), biases zero.

It is registered as a reference, never a contender: pages show it apart from the families they
rank, and studies of the architectures (bench.scaling) leave it out. docs/baselines.md compares it
with the baseline.
"""

from __future__ import annotations

import math
from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

from bench.models import register_model
from bench.models.text import (
    TEXT_MODALITIES, MaskedLM, Seq2SeqModel, TextSize, check_lengths, default_size, tied_embedding,
)
from bench.models.transformer import SIZES, flops
from bench.core.spec import TaskSpec


def sinusoids(length: int, dim: int) -> torch.Tensor:
    """(length, dim) sinusoidal positions: sin on even channels, cos on odd ones (Vaswani et al., 2017)."""
    position = torch.arange(length, dtype=torch.float32)[:, None]  # (T, 1)
    frequency = torch.exp(torch.arange(0, dim, 2, dtype=torch.float32) * (-math.log(10_000.0) / dim))  # (C/2,)
    table = torch.zeros(length, dim)
    table[:, 0::2] = torch.sin(position * frequency)
    table[:, 1::2] = torch.cos(position * frequency)
    return table


def gelu(x: torch.Tensor) -> torch.Tensor:
    """GELU as a function of our own: with F.gelu or nn.GELU an encoder layer in inference takes PyTorch's
    fused path (torch._transformer_encoder_layer_fwd), whose FLOPs torch's counter cannot see; this
    keeps inference on the ops training runs."""
    return F.gelu(x)


def layer_args(size: TextSize) -> dict:
    return dict(
        d_model=size.dim, nhead=size.heads, dim_feedforward=int(size.mlp_ratio * size.dim), dropout=0.0,
        activation=gelu, batch_first=True, norm_first=True,
    )


def xavier_matrices(module: nn.Module) -> None:
    """nn.Transformer's own initialisation (`_reset_parameters`): every matrix xavier-uniform."""
    for p in module.parameters():
        if p.dim() > 1:
            nn.init.xavier_uniform_(p)


class Embed(nn.Module):
    """Scaled token embedding plus sinusoidal positions: (B, T) ids -> (B, T, C)."""

    def __init__(self, embed: nn.Embedding, max_len: int, dim: int):
        super().__init__()
        self.embed = embed
        self.register_buffer("positions", sinusoids(max_len, dim), persistent=False)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.embed(ids) + self.positions[: ids.shape[1]]  # (B, T, C)


class TorchMaskedLM(MaskedLM):
    """`MaskedLM`'s interface and head; the encoder is nn.TransformerEncoder (pre-norm, final norm)."""

    def __init__(self, spec: TaskSpec, size: TextSize):
        nn.Module.__init__(self)
        self.embed, self.head = tied_embedding(spec.vocab_size, size.dim)
        self.inputs = Embed(self.embed, spec.seq_len, size.dim)
        self.encoder = nn.TransformerEncoder(
            nn.TransformerEncoderLayer(**layer_args(size)), size.layers, norm=nn.LayerNorm(size.dim),
            enable_nested_tensor=False,
        )
        xavier_matrices(self.encoder)

    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, labels_mask: Optional[torch.Tensor] = None
    ) -> torch.Tensor:
        x = self.encoder(self.inputs(input_ids), src_key_padding_mask=attention_mask == 0)  # (B, T, C)
        if labels_mask is not None:
            x = x[labels_mask]  # (N, C)
        return self.head(x)  # (B, T, V), or (N, V) with labels_mask


class TorchSeq2Seq(Seq2SeqModel):
    """nn.Transformer (pre-norm encoder and decoder, each with its final norm) between a shared,
    tied, scaled embedding and the output head. Greedy decoding is Seq2SeqModel's (the prefix rerun
    at every step: nn.Transformer keeps no key/value cache)."""

    def __init__(self, spec: TaskSpec, size: TextSize):
        super().__init__(spec)
        self.embed, self.head = tied_embedding(spec.vocab_size, size.dim)
        self.source = Embed(self.embed, spec.seq_len, size.dim)
        self.target = Embed(self.embed, spec.target_len, size.dim)
        # nn.Transformer's two stacks, built as its constructor builds them (without the nested-tensor
        # fast path, which pre-norm layers cannot take)
        self.encoder = nn.TransformerEncoder(
            nn.TransformerEncoderLayer(**layer_args(size)), size.encoder_layers, norm=nn.LayerNorm(size.dim),
            enable_nested_tensor=False,
        )
        self.decoder = nn.TransformerDecoder(
            nn.TransformerDecoderLayer(**layer_args(size)), size.decoder_layers, norm=nn.LayerNorm(size.dim)
        )
        xavier_matrices(self.encoder)
        xavier_matrices(self.decoder)

    def encode(self, input_ids, attention_mask):
        return self.encoder(self.source(input_ids), src_key_padding_mask=attention_mask == 0)  # (B, S, C)

    def decode(self, decoder_input_ids, decoder_attention_mask, memory, attention_mask):
        T = decoder_input_ids.shape[1]
        causal = torch.ones(T, T, dtype=torch.bool, device=decoder_input_ids.device).triu(1)  # (T, T): True = hidden
        x = self.decoder(
            self.target(decoder_input_ids), memory, tgt_mask=causal, tgt_is_causal=True,
            tgt_key_padding_mask=None if decoder_attention_mask is None else decoder_attention_mask == 0,
            memory_key_padding_mask=attention_mask == 0,
        )  # (B, T, C)
        return self.head(x)  # (B, T, V)


@register_model(
    "torch-transformer",
    TEXT_MODALITIES,
    SIZES,
    default_size,
    check=check_lengths,
    reference=True,
    description="reference: the Transformer baseline's shape from torch.nn alone (sinusoidal positions, xavier)",
    flops=flops,  # the baseline's formula: the same layers and head (torch's FLOP counter sees this family's
                  # attention otherwise, so a run's counted FLOPs differ from it; the scaling study leaves references out)
)
def build(spec: TaskSpec, size: TextSize, variant) -> nn.Module:
    if spec.modality == "mlm":
        return TorchMaskedLM(spec, size)
    return TorchSeq2Seq(spec, size)
