"""gMLP: a gated channel MLP whose gate mixes tokens, the spatial gating unit (Liu et al., 2021).

Images: timm's MlpMixer with SpatialGatingBlock / GatedMlp injected, the gate being
parts.GatingUnit: timm's unit with a choice of initialisation (--sgu-init). The paper's near-zero
token-mixing weights and unit bias (each block starts as an identity on its gated half) are timm's
`SpatialGatingUnit.init_weights`, which MlpMixer's init calls; a test pins it. Text: the same block
over token sequences (TextSpatialGatingBlock), its gate sized for the task's maximum length and
lower-triangular in a decoder. The blocks take aMLP's tiny attention too (bench/models/amlp.py).
"""

from __future__ import annotations

from functools import partial
from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F
from timm.layers import GatedMlp
from timm.models.mlp_mixer import MlpMixer, SpatialGatingBlock

from bench.core.config import SGU_INITS, VariantConfig
from bench.models import register_model
from bench.models.image import (
    ImageSize, check_image_pair, default_size_for, linear_drop_path, mixer_image_flops, mixer_kwargs,
)
from bench.models.parts import GatingUnit, TinyAttention, replacing, tiny_attention_flops
from bench.models.text import (
    TEXT_MODALITIES, TextSize, build, cached, causal_mask, check_lengths, default_size, mix_step, mix_tokens,
    text_flops, text_sizes,
)

SIZES = {
    "ti": ImageSize(depth=30, dim=128, mlp_ratio=6),
    "s": ImageSize(depth=30, dim=256, mlp_ratio=6),
    "b": ImageSize(depth=30, dim=512, mlp_ratio=6),
    "mini": ImageSize(depth=6, dim=128, mlp_ratio=5, patch_size=None),
}


class GatingBlock(SpatialGatingBlock):
    """timm's SpatialGatingBlock with its gate injected and, for aMLP, a tiny attention from the
    block's normalised input added to the gate."""

    def __init__(self, dim, seq_len, mlp_ratio=4, *, paper_init=True, attention=False, **kwargs):
        super().__init__(dim, seq_len, mlp_ratio, **kwargs)
        width = self.mlp_channels.fc1.out_features
        self.mlp_channels.gate = replacing(self.mlp_channels.gate, lambda: GatingUnit(width, seq_len, paper_init))
        self.attn = TinyAttention(dim, width // 2) if attention else None

    def forward(self, x):
        if self.attn is None:
            return super().forward(x)
        y = self.norm(x)  # (B, N, C)
        mlp = self.mlp_channels
        h = mlp.act(mlp.fc1(y))  # (B, N, F)
        h = mlp.gate(h, self.attn(y))  # (B, N, F/2)
        return x + mlp.fc2(h)  # (B, N, C)


def build_gating_mixer(spec, size: ImageSize, variant: VariantConfig, attention: bool = False,
                       drop_path_rate: float = 0.0):
    """gMLP, or aMLP with attention, on images."""
    block = partial(GatingBlock, paper_init=(variant.sgu_init or "paper") == "paper", attention=attention)
    block = linear_drop_path(block, drop_path_rate, size.depth)
    return MlpMixer(num_blocks=size.depth, block_layer=block, mlp_layer=GatedMlp, **mixer_kwargs(spec, size))


def gating_block_flops(size: ImageSize | TextSize, tokens: int, attention: bool = False) -> int:
    """One gMLP block (aMLP's with attention) over N tokens, width D, channel MLP width H: D -> H,
    the gate's token mixing (N x N over H/2 channels), H/2 -> D; quadratic in N. The same for images
    and text, causal or not (a masked weight is counted whole)."""
    D, N = size.dim, tokens
    H = int(size.mlp_ratio * D)
    gate = H // 2
    flops = 2 * N * D * H + 2 * gate * N * N + 2 * N * gate * D
    return flops + (tiny_attention_flops(D, gate, N) if attention else 0)


register_model(
    "gmlp", ("image",), SIZES, default_size_for("s"), check_image_pair,
    description="gMLP: gated MLP with a spatial gating unit",
    variants={"sgu_init": SGU_INITS},
    flops=mixer_image_flops(gating_block_flops),
    stochastic_depth=True,
)(build_gating_mixer)


# ---------------------------------------------------------------------------------------------
# Text


class TextSpatialGatingUnit(GatingUnit):
    """gMLP's gate: half the channels, normalised and mixed over tokens, multiply the other half.
    paper_init: timm's init_weights (proj weight ~ N(0, 1e-6), bias 1: the unit starts as identity)."""

    def __init__(self, dim: int, seq_len: int, causal: bool, paper_init: bool = True):
        super().__init__(dim, seq_len, paper_init)
        self.register_buffer("causal", causal_mask(seq_len, seq_len) if causal else None, persistent=False)

    def forward(self, x: torch.Tensor, keep: torch.Tensor, gate_term: Optional[torch.Tensor] = None) -> torch.Tensor:
        u, v = x.chunk(2, dim=-1)  # (B, T, F/2) each
        v = (self.norm(v) * keep).transpose(1, 2)  # (B, F/2, T), padded positions zeroed
        v = mix_tokens(self.proj, v, x.shape[1], self.causal).transpose(1, 2)  # (B, T, F/2)
        if gate_term is not None:
            v = v + gate_term
        return u * v  # (B, T, F/2)


class TextSpatialGatingBlock(SpatialGatingBlock):
    """gMLP block: channel projection up, spatial gating unit, projection down. aMLP (attention=True)
    adds a tiny attention from the normalised input to the gate."""

    norm_layer = partial(nn.LayerNorm, eps=1e-6)

    def __init__(self, dim: int, seq_len: int, mlp_ratio: float, causal: bool,
                 paper_init: bool = True, attention: bool = False):
        super().__init__(dim, seq_len, mlp_ratio, norm_layer=self.norm_layer)
        width = self.mlp_channels.fc1.out_features
        self.mlp_channels.gate = TextSpatialGatingUnit(width, seq_len, causal, paper_init)
        self.attn = TinyAttention(dim, width // 2) if attention else None
        self.causal = causal

    def forward(self, x: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        mlp = self.mlp_channels
        y = self.norm(x)  # (B, T, C)
        gate_term = None if self.attn is None else self.attn(y, keep, self.causal)  # (B, T, F/2)
        y = mlp.act(mlp.fc1(y))  # (B, T, F)
        y = mlp.gate(y, keep, gate_term)  # (B, T, F/2)
        return x + mlp.fc2(y)  # (B, T, C)

    def step(self, x: torch.Tensor, t: int, cache: dict) -> torch.Tensor:
        """The decoder block at position t: x (B, 1, C) -> (B, 1, C), as forward computes it there: the
        gate's row t over the cached gate inputs of positions 0..t, aMLP's attention over their keys."""
        mlp, gate = self.mlp_channels, self.mlp_channels.gate
        y = self.norm(x)  # (B, 1, C)
        gate_term = None if self.attn is None else attention_step(self.attn, y, t, cache, gate.proj.in_features)
        u, v = mlp.act(mlp.fc1(y)).chunk(2, dim=-1)  # (B, 1, F/2) each
        inputs = cached(cache, "gate", (v.shape[0], v.shape[-1], gate.proj.in_features), v)  # (B, F/2, L)
        inputs[..., t] = gate.norm(v)[:, 0]
        v = mix_step(gate.proj.weight, gate.proj.bias, inputs, t)[:, None]  # (B, 1, F/2)
        if gate_term is not None:
            v = v + gate_term
        return x + mlp.fc2(u * v)


def attention_step(attn: TinyAttention, x: torch.Tensor, t: int, cache: dict, max_len: int) -> torch.Tensor:
    """aMLP's causal tiny attention at position t: x (B, 1, C) -> (B, 1, out_dim), over the cached
    keys and values of positions 0..t."""
    q, k, v = attn.qkv(x).chunk(3, dim=-1)  # (B, 1, A) each
    keys = cached(cache, "keys", (x.shape[0], max_len, k.shape[-1]), k)  # (B, L, A)
    values = cached(cache, "values", (x.shape[0], max_len, v.shape[-1]), v)
    keys[:, t], values[:, t] = k[:, 0], v[:, 0]
    y = F.scaled_dot_product_attention(q[:, None], keys[:, None, : t + 1], values[:, None, : t + 1])  # (B, 1, 1, A)
    return attn.proj(y[:, 0])


def build_text_gating(spec, size: TextSize, variant: VariantConfig, attention: bool = False) -> nn.Module:
    """gMLP, or aMLP with attention, on text."""
    paper_init = (variant.sgu_init or "paper") == "paper"
    block = partial(TextSpatialGatingBlock, paper_init=paper_init, attention=attention)
    return build(spec, size, block, TextSpatialGatingBlock.norm_layer)


def text_gating_flops(attention: bool = False):
    return text_flops(lambda size, tokens, causal: gating_block_flops(size, tokens, attention))


# Depth makes up for lighter blocks (bench/models/transformer.py gives the Transformer's): a gMLP
# block holds about 9 d^2 weights (channel ratio 6, as in the paper), plus 4 d^2 of cross-attention
# in a decoder, and its gate L^2, which max_len <= dim keeps small; every size stays within 10% of
# the Transformer's parameters for the same task.
TEXT_SIZES = text_sizes(6.0, mini=(5, 3, 2), small=(5, 3, 2), base=(16, 7, 8))
register_model(
    "gmlp", TEXT_MODALITIES, TEXT_SIZES, default_size,
    check=check_lengths,
    description="gMLP over tokens: spatial gating unit",
    variants={"sgu_init": SGU_INITS},
    flops=text_gating_flops(),
)(build_text_gating)
