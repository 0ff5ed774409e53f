"""MLP-Mixer: an MLP over tokens, then an MLP over channels (Tolstikhin et al., 2021).

Images: timm's MlpMixer and MixerBlock, the block's token MLP computed on the tokens-first layout
(TokensFirstMixerBlock: the same weights and function, without timm's transposed copies). Text: the same
block over token sequences (TextMixerBlock), its token MLP sized for the task's maximum length and
causal in a decoder (bench.models.text.TokenMlp).
"""

from __future__ import annotations

import math
from functools import partial

import torch
import torch.nn as nn
from timm.models.mlp_mixer import MixerBlock, MlpMixer

from bench.models import register_model
from bench.models.image import (
    ImageSize, check_image_pair, default_size_for, linear_drop_path, mixer_image_flops, mixer_kwargs,
)
from bench.models.parts import linear_over_tokens, mlp_flops, replacing
from bench.models.text import (
    TEXT_MODALITIES, TextSize, TokenMlp, build, check_lengths, default_size, text_flops, text_sizes,
)

# mlp_ratio = (token MLP ratio, channel MLP ratio), as in the paper's S/16 and B/16.
SIZES = {
    "s16": ImageSize(depth=8, dim=512, mlp_ratio=(0.5, 4.0)),
    "b16": ImageSize(depth=12, dim=768, mlp_ratio=(0.5, 4.0)),
    "mini": ImageSize(depth=5, dim=128, mlp_ratio=(2.0, 4.0), patch_size=None),
}


def block_flops(size: ImageSize, tokens: int) -> int:
    """The token MLP (N -> int(token ratio x D) -> N, for each of D channels) and the channel MLP:
    linear in N, as the token MLP's width follows D, not N."""
    D = size.dim
    token_ratio, channel_ratio = size.mlp_ratio
    return mlp_flops(D, tokens, int(token_ratio * D)) + mlp_flops(tokens, D, int(channel_ratio * D))


class TokensFirstMixerBlock(MixerBlock):
    """timm's MixerBlock, its token MLP applied as batched matmuls W @ x[b] on (B, N, C) where timm
    transposes to (B, C, N) and back: no transposed copies forward or backward (see
    parts.linear_over_tokens)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tokens = self.mlp_tokens  # timm's Mlp; its norm is an identity, so no axis is assumed
        y = tokens.drop1(tokens.act(linear_over_tokens(tokens.fc1, self.norm1(x))))  # (B, token hidden, C)
        x = x + self.drop_path(tokens.drop2(linear_over_tokens(tokens.fc2, y)))  # (B, N, C)
        return x + self.drop_path(self.mlp_channels(self.norm2(x)))


@register_model(
    "mixer", ("image",), SIZES, default_size_for("s16"), check_image_pair,
    description="MLP-Mixer: token-mixing MLP + channel MLP",
    flops=mixer_image_flops(block_flops),
    stochastic_depth=True,
)
def build_image(spec, size: ImageSize, variant, drop_path_rate: float = 0.0):
    block = linear_drop_path(TokensFirstMixerBlock, drop_path_rate, size.depth)
    return MlpMixer(num_blocks=size.depth, block_layer=block, **mixer_kwargs(spec, size))


# ---------------------------------------------------------------------------------------------
# Text


class TextMixerBlock(MixerBlock):
    """MLP-Mixer block: an MLP over tokens, then the channel MLP."""

    norm_layer = partial(nn.LayerNorm, eps=1e-6)

    def __init__(self, dim: int, seq_len: int, mlp_ratio: tuple[float, float], causal: bool):
        super().__init__(dim, seq_len, mlp_ratio, norm_layer=self.norm_layer)
        hidden = self.mlp_tokens.fc1.out_features
        self.mlp_tokens = replacing(self.mlp_tokens, lambda: TokenMlp(seq_len, hidden, causal))

    def forward(self, x: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        y = (self.norm1(x) * keep).transpose(1, 2)  # (B, C, T), padded positions zeroed
        y = self.mlp_tokens(y)  # (B, C, T)
        x = x + y.transpose(1, 2)  # (B, T, C)
        x = x + self.mlp_channels(self.norm2(x))  # (B, T, C)
        return x

    def step(self, x: torch.Tensor, t: int, cache: dict) -> torch.Tensor:
        """The decoder block at position t: x (B, 1, C) -> (B, 1, C), as forward computes it there."""
        x = x + self.mlp_tokens.step(self.norm1(x)[:, 0], t, cache)[:, None]  # (B, 1, C)
        return x + self.mlp_channels(self.norm2(x))


def text_block_flops(size: TextSize, tokens: int, causal: bool) -> int:
    """The token MLP and the channel MLP. Bidirectional, the token MLP's width follows the model
    width (int(token ratio x D)), so the block is linear in T; causal, it is rounded up to whole
    units per position (a multiple of T, at least T), so the block becomes quadratic in T."""
    D, T = size.dim, tokens
    token_ratio, channel_ratio = size.mlp_ratio
    hidden = int(token_ratio * D)
    if causal:
        hidden = math.ceil(hidden / T) * T
    return mlp_flops(D, T, hidden) + mlp_flops(T, D, int(channel_ratio * D))


# Depth makes up for lighter blocks (bench/models/transformer.py gives the Transformer's): a Mixer
# block holds about 8 d^2 weights, plus 4 d^2 of cross-attention in a decoder, and its token MLP
# about L*d, which max_len <= dim keeps small; every size stays within 10% of the Transformer's
# parameters for the same task.
@register_model(
    "mixer", TEXT_MODALITIES, text_sizes((0.5, 4.0), mini=(6, 2, 3), small=(6, 2, 3), base=(18, 9, 8)), default_size,
    check=check_lengths,
    description="MLP-Mixer over tokens: token MLP + channel MLP",
    flops=text_flops(text_block_flops),
)
def build_text(spec, size: TextSize, variant):
    return build(spec, size, TextMixerBlock, TextMixerBlock.norm_layer)
