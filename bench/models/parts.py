"""Parts that variants and relatives inject into the image and text backbones, and the FLOP count
of an MLP, which image and text formulas share.

Token mixers take and return (B, C, N): channels first, tokens last, which is what timm's
ResBlock hands its `linear_tokens` and what the text blocks mix.
"""

from __future__ import annotations

import math
from functools import partial
from typing import Callable, Optional

import torch
import torch.nn as nn
import torch.nn.functional as F
from timm.layers import Mlp
from timm.models.mlp_mixer import Affine, SpatialGatingUnit


def mlp_flops(positions: int, width: int, hidden: int) -> int:
    """Forward FLOPs of an MLP width -> hidden -> width applied at each of `positions` positions."""
    return 4 * positions * width * hidden


def replacing(old: nn.Module, build: Callable[[], nn.Module]) -> nn.Module:
    """The part `build()` makes to take the place of `old` in a block built by timm. One with the same
    parameter shapes is built without drawing random numbers: the model's init redraws its weights
    anyway, so a model without variants gets, seed for seed, the weights of the plain timm model
    (a test pins this). A part of another shape draws its own."""
    with torch.random.fork_rng(devices=[]):
        new = build()
    if [p.shape for p in new.parameters()] != [p.shape for p in old.parameters()]:
        new = build()
    return new


# ---------------------------------------------------------------------------------------------
# Normalisation (--norm): each takes (B, N, C) and keeps its shape.


class TokenBatchNorm(nn.BatchNorm1d):
    """BatchNorm over the channels of (B, N, C): statistics over the batch and every token."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x.transpose(1, 2)).transpose(1, 2)  # (B, N, C)


NORM_LAYERS = {
    "affine": Affine,  # ResMLP's Aff: alpha * x + beta, identity at initialisation
    "layernorm": partial(nn.LayerNorm, eps=1e-6),
    "batchnorm": TokenBatchNorm,
    "none": nn.Identity,  # nn.Identity ignores the width it is given
}

# ---------------------------------------------------------------------------------------------
# Token mixing (--token-mixing)


def linear_over_tokens(proj: nn.Linear, x: torch.Tensor) -> torch.Tensor:
    """proj (N -> M) applied over the token axis of x (B, N, C), giving (B, M, C), as timm's
    proj(x.transpose(1, 2)) transposed back computes it, but as one batched matmul W @ x[b] + bias
    on the tokens-first layout: no transposed copies forward or backward. gMLP's gate and Mixer's
    image block use it (training at batch 128, one thread: gMLP-mini 1.08x faster on digits and
    1.26x on fashion-mnist, Mixer-mini 1.12x and 1.04x, interleaved with timm's way)."""
    return torch.baddbmm(proj.bias[:, None], proj.weight.expand(x.shape[0], -1, -1), x)  # (B, M, C)


class ConvTokens(nn.Module):
    """A convolution of kernel 3 over the tokens, mixing channels too: dense, or depthwise-separable
    (a 3-wide depthwise convolution, then a 1x1 one). Images: 3x3 over the patch grid. Sequences
    (grid None): 1-D over positions; causal pads on the left only, so position t sees t-2..t."""

    def __init__(self, dim: int, grid: Optional[tuple[int, int]], separable: bool, causal: bool = False):
        super().__init__()
        conv = nn.Conv2d if grid else nn.Conv1d
        self.grid = grid
        self.causal = causal
        padding = 0 if causal else 1
        if separable:
            self.conv = nn.Sequential(conv(dim, dim, 3, padding=padding, groups=dim), conv(dim, dim, 1))
        else:
            self.conv = conv(dim, dim, 3, padding=padding)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, C, N = x.shape
        if self.grid:
            return self.conv(x.reshape(B, C, *self.grid)).reshape(B, C, N)  # (B, C, H, W) -> (B, C, N)
        if self.causal:
            x = F.pad(x, (2, 0))  # (B, C, 2 + N)
        return self.conv(x)  # (B, C, N)

    def step(self, y: torch.Tensor, t: int, cache: dict) -> torch.Tensor:
        """Causal decoding, output t (B, C) given the input at position t, y (B, C): the kernel over
        the inputs of positions t-2..t, zeros before position 0."""
        window = cache.get("window", y.new_zeros(*y.shape, 3))
        cache["window"] = window = torch.cat([window[..., 1:], y[..., None]], dim=-1)  # (B, C, 3)
        return self.conv(window)[..., 0]


def image_token_mixer(kind: str, dim: int, seq_len: int, mlp_ratio: float) -> nn.Module:
    """A token mixer over a square patch grid of seq_len tokens. The MLP's hidden width is the
    channel MLP's ratio times the number of tokens."""
    side = math.isqrt(seq_len)
    if kind == "linear":
        return nn.Linear(seq_len, seq_len)
    if kind == "mlp":
        return Mlp(seq_len, int(mlp_ratio * seq_len))
    return ConvTokens(dim, (side, side), separable=kind == "dwconv")


# ---------------------------------------------------------------------------------------------
# gMLP's gate (--sgu-init) and aMLP's tiny attention


class GatingUnit(SpatialGatingUnit):
    """timm's spatial gating unit with a choice of initialisation and an optional term added to the
    gate (aMLP's tiny attention). paper_init: token-mixing weights ~ N(0, 1e-6) and bias 1, so the
    gate is 1 and the unit returns its first half unchanged; otherwise the proj keeps the init every
    other linear layer of the model gets."""

    def __init__(self, dim: int, seq_len: int, paper_init: bool = True):
        super().__init__(dim, seq_len)
        self.paper_init = paper_init

    def init_weights(self) -> None:  # called by the models' init after the proj's own init
        if self.paper_init:
            super().init_weights()

    def forward(self, x: torch.Tensor, gate_term: Optional[torch.Tensor] = None) -> torch.Tensor:
        u, v = x.chunk(2, dim=-1)  # (B, N, F/2) each
        v = linear_over_tokens(self.proj, self.norm(v))  # (B, N, F/2)
        if gate_term is not None:
            v = v + gate_term
        return u * v


TINY_ATTENTION_WIDTH = 64  # the paper's


class TinyAttention(nn.Module):
    """aMLP's tiny single-head attention (Liu et al., 2021: width 64) from the block's normalised input to
    the gate's width. keep: (B, N, 1) 1 = real token, masks padded keys; causal masks later keys."""

    def __init__(self, dim: int, out_dim: int, attn_dim: int = TINY_ATTENTION_WIDTH):
        super().__init__()
        self.qkv = nn.Linear(dim, 3 * attn_dim, bias=False)
        self.proj = nn.Linear(attn_dim, out_dim)

    def forward(self, x: torch.Tensor, keep: Optional[torch.Tensor] = None, causal: bool = False) -> torch.Tensor:
        q, k, v = self.qkv(x)[:, None].chunk(3, dim=-1)  # (B, 1, N, A) each: one head
        mask = None
        if keep is not None:
            mask = keep.transpose(1, 2).bool()[:, None]  # (B, 1, 1, N): which keys are real
            if causal:
                mask = mask & torch.ones(x.shape[1], x.shape[1], dtype=torch.bool, device=x.device).tril()
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=causal and keep is None)  # (B, 1, N, A)
        return self.proj(y[:, 0])  # (B, N, out_dim)


def tiny_attention_flops(dim: int, out_dim: int, tokens: int, attn_dim: int = TINY_ATTENTION_WIDTH) -> int:
    """Forward FLOPs of TinyAttention over `tokens` tokens (the counter counts every query-key pair,
    masked or not): the q, k, v map, the two attention products and the output map."""
    return 2 * tokens * dim * 3 * attn_dim + 4 * tokens * tokens * attn_dim + 2 * tokens * attn_dim * out_dim


# ---------------------------------------------------------------------------------------------
# The feed-forward-only ViT's token layer


class TokenFeedForward(nn.Module):
    """A feed-forward layer over the token axis of (B, N, C), in place of attention
    (Melas-Kyriazi, 2021): an MLP from N tokens to mlp_ratio * N hidden units and back.

    Its output layer has no bias: that bias would add one constant to every channel of a token,
    which the LayerNorm in front of every later layer removes, so it could never learn."""

    def __init__(self, seq_len: int, mlp_ratio: float):
        super().__init__()
        self.mlp = Mlp(seq_len, int(mlp_ratio * seq_len), bias=(True, False))

    def forward(self, x: torch.Tensor, attn_mask: Optional[torch.Tensor] = None, is_causal: bool = False) -> torch.Tensor:
        # timm's Block passes attention's arguments, which the image ViT leaves unset.
        assert attn_mask is None and not is_causal, "a feed-forward layer over tokens takes no attention mask"
        return self.mlp(x.transpose(1, 2)).transpose(1, 2)  # (B, N, C)
