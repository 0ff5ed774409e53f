"""ResMLP: one linear layer over tokens, Affine instead of normalisation, layer scale
(Touvron et al., 2021). Images: timm's MlpMixer with its ResBlock and Affine injected. Text: the same
block over token sequences (TextResBlock), its linear map sized for the task's maximum length and
lower-triangular in a decoder (LinearTokens).

Variants swap one part: --norm (every norm of the model, the final one included),
--token-mixing (the block's token mixer) and --layer-scale-init.
"""

from __future__ import annotations

from functools import partial
from typing import Optional

import torch
import torch.nn as nn
from timm.models.mlp_mixer import Affine, MlpMixer, ResBlock

from bench.core.config import NORMS, TOKEN_MIXINGS, VariantConfig
from bench.models import register_model
from bench.models.image import (
    ImageSize, check_image_pair, default_size_for, linear_drop_path, mixer_image_flops, mixer_kwargs,
)
from bench.models.parts import NORM_LAYERS, ConvTokens, image_token_mixer, mlp_flops, replacing
from bench.models.text import (
    TEXT_MODALITIES, TextSize, TokenMlp, build, cached, causal_mask, check_lengths, default_size, mix_step, mix_tokens,
    text_flops, text_sizes,
)

# Layer-scale initial values follow the paper: 0.1 for 12 blocks, 1e-5 for 24, 1e-6 for B24.
SIZES = {
    "s12": ImageSize(depth=12, dim=384, mlp_ratio=4, init_values=0.1),
    "s24": ImageSize(depth=24, dim=384, mlp_ratio=4, init_values=1e-5),
    "b24": ImageSize(depth=24, dim=768, mlp_ratio=4, init_values=1e-6),
    "mini": ImageSize(depth=6, dim=128, mlp_ratio=4, init_values=0.1, patch_size=None),
}


class MixingResBlock(ResBlock):
    """timm's ResBlock with its token mixer injected. The mixer keeps timm's attribute name
    `linear_tokens`, which timm's forward calls, whatever kind it is."""

    def __init__(self, dim, seq_len, mlp_ratio=4, *, token_mixing="linear", **kwargs):
        super().__init__(dim, seq_len, mlp_ratio, **kwargs)
        self.linear_tokens = replacing(self.linear_tokens, lambda: image_token_mixer(token_mixing, dim, seq_len, mlp_ratio))


def block_flops(size: ImageSize | TextSize, tokens: int) -> int:
    """The linear map over tokens (N x N for each of D channels: quadratic in N) and the channel MLP;
    the same for images and text, causal or not (a masked weight is counted whole)."""
    return 2 * size.dim * tokens * tokens + mlp_flops(tokens, size.dim, int(size.mlp_ratio * size.dim))


@register_model(
    "resmlp", ("image",), SIZES, default_size_for("s12"), check_image_pair,
    description="ResMLP: linear token mixing + Affine + layer scale",
    variants={"norm": NORMS, "token_mixing": TOKEN_MIXINGS, "layer_scale_init": None},
    flops=mixer_image_flops(block_flops),
    stochastic_depth=True,
)
def build_image(spec, size: ImageSize, variant: VariantConfig, drop_path_rate: float = 0.0):
    block = partial(
        MixingResBlock,
        token_mixing=variant.token_mixing or "linear",
        init_values=variant.layer_scale_init or size.init_values,
    )
    block = linear_drop_path(block, drop_path_rate, size.depth)
    return MlpMixer(
        num_blocks=size.depth, block_layer=block, norm_layer=NORM_LAYERS[variant.norm or "affine"],
        **mixer_kwargs(spec, size),
    )


# ---------------------------------------------------------------------------------------------
# Text


class LinearTokens(nn.Linear):
    """A linear map over tokens, (B, C, T) -> (B, C, T): ResMLP's token mixing."""

    def __init__(self, seq_len: int, causal: bool):
        super().__init__(seq_len, seq_len)
        self.register_buffer("causal", causal_mask(seq_len, seq_len) if causal else None, persistent=False)

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        return mix_tokens(self, y, y.shape[-1], self.causal)

    def step(self, y: torch.Tensor, t: int, cache: dict) -> torch.Tensor:
        """Causal decoding, output t (B, C) given the input at position t, y (B, C): row t of the
        lower-triangular matrix times the inputs of positions 0..t."""
        inputs = cached(cache, "inputs", (*y.shape, self.in_features), y)  # (B, C, L)
        inputs[..., t] = y
        return mix_step(self.weight, self.bias, inputs, t)


def text_token_mixer(kind: str, dim: int, seq_len: int, mlp_ratio: float, causal: bool) -> nn.Module:
    """--token-mixing on text; the MLP's hidden width is the channel MLP's ratio times the length."""
    if kind == "linear":
        return LinearTokens(seq_len, causal)
    if kind == "mlp":
        return TokenMlp(seq_len, int(mlp_ratio * seq_len), causal)
    return ConvTokens(dim, None, separable=kind == "dwconv", causal=causal)


class TextResBlock(ResBlock):
    """ResMLP block: a linear map over tokens and the channel MLP, Affine instead of norms, LayerScale.
    Variants inject the norm, the token mixer (kept under timm's name `linear_tokens`) and the
    layer-scale initial value."""

    norm_layer = Affine
    # The papers' layer-scale start for up to 18 blocks (1e-5 from 24 on); every text size has at
    # most 18. timm's default of 1e-4 leaves the blocks nearly silent for a short CPU budget.
    init_values = 0.1

    def __init__(self, dim: int, seq_len: int, mlp_ratio: float, causal: bool,
                 norm_layer=None, token_mixing: str = "linear", init_values: Optional[float] = None):
        super().__init__(dim, seq_len, mlp_ratio, norm_layer=norm_layer or self.norm_layer,
                         init_values=init_values or self.init_values)
        self.linear_tokens = replacing(
            self.linear_tokens, lambda: text_token_mixer(token_mixing, dim, seq_len, mlp_ratio, causal)
        )

    def forward(self, x: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        y = (self.norm1(x) * keep).transpose(1, 2)  # (B, C, T), padded positions zeroed
        y = self.linear_tokens(y)  # (B, C, T)
        x = x + self.ls1 * y.transpose(1, 2)  # (B, T, C)
        x = x + self.ls2 * self.mlp_channels(self.norm2(x))  # (B, T, C)
        return x

    def step(self, x: torch.Tensor, t: int, cache: dict) -> torch.Tensor:
        """The decoder block at position t: x (B, 1, C) -> (B, 1, C), as forward computes it there."""
        x = x + self.ls1 * self.linear_tokens.step(self.norm1(x)[:, 0], t, cache)[:, None]  # (B, 1, C)
        return x + self.ls2 * self.mlp_channels(self.norm2(x))


# Depth makes up for lighter blocks (bench/models/transformer.py gives the Transformer's): a ResMLP
# block holds about 8 d^2 weights, plus 4 d^2 of cross-attention in a decoder, and its token mixing
# L^2, which max_len <= dim keeps small; every size stays within 10% of the Transformer's parameters
# for the same task. BatchNorm is not offered on text: its batch statistics would mix padded
# positions into real ones.
@register_model(
    "resmlp", TEXT_MODALITIES, text_sizes(4.0, mini=(6, 2, 3), small=(6, 2, 3), base=(18, 9, 8)), default_size,
    check=check_lengths,
    description="ResMLP over tokens: linear token mixing, Affine norms, LayerScale",
    variants={"norm": ("affine", "layernorm", "none"), "token_mixing": TOKEN_MIXINGS, "layer_scale_init": None},
    flops=text_flops(lambda size, tokens, causal: block_flops(size, tokens)),
)
def build_text(spec, size: TextSize, variant: VariantConfig):
    norm_layer = NORM_LAYERS[variant.norm] if variant.norm else TextResBlock.norm_layer
    block = partial(TextResBlock, norm_layer=norm_layer, token_mixing=variant.token_mixing or "linear",
                    init_values=variant.layer_scale_init)
    return build(spec, size, block, norm_layer)
