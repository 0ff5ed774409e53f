"""What the image families share: a size table entry, the patch rule, the pair check and the parts
of their FLOP formulas.

Paper sizes keep the papers' 16x16 patches (so they need image sides divisible by 16);
the `mini` size picks its patch from the task's image so that small images still give a
sensible number of tokens (8x8 -> 16 tokens, 28x28 -> 49, 32x32 -> 64).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from bench.core.spec import TaskSpec

MAX_MINI_TOKENS = 64
LARGE_IMAGE_SIDE = 160  # from here on a family's default is its paper size


@dataclass(frozen=True)
class ImageSize:
    depth: int
    dim: int
    mlp_ratio: float | tuple[float, float]
    patch_size: Optional[int] = 16  # None: chosen from the image by mini_patch_size
    heads: int = 0  # attention heads (vit only)
    init_values: float = 1e-4  # layer-scale initial value (resmlp only)


def mini_patch_size(side_h: int, side_w: int) -> int:
    """Smallest patch (>= 2) dividing both sides that gives at most MAX_MINI_TOKENS tokens."""
    for p in range(2, min(side_h, side_w) + 1):
        if side_h % p == 0 and side_w % p == 0 and (side_h // p) * (side_w // p) <= MAX_MINI_TOKENS:
            return p
    return min(side_h, side_w)


def patch_size_for(spec: TaskSpec, size: ImageSize) -> int:
    _, h, w = spec.image_size
    return size.patch_size or mini_patch_size(h, w)


def check_image_pair(spec: TaskSpec, size_name: str, size: ImageSize) -> Optional[str]:
    """Why this size cannot take the task's images, or None."""
    _, h, w = spec.image_size
    p = patch_size_for(spec, size)
    if h % p or w % p:
        return (
            f"its {p}x{p} patches do not tile {h}x{w} images; "
            f"use --size mini, whose patch is chosen from the image size."
        )
    return None


def default_size_for(paper_default: str):
    def default(spec: TaskSpec) -> str:
        _, h, w = spec.image_size
        return paper_default if min(h, w) >= LARGE_IMAGE_SIDE else "mini"

    return default


def linear_drop_path(block_layer, drop_path_rate: float, depth: int):
    """`block_layer` for timm's MlpMixer with stochastic depth rising linearly over the blocks, from 0 at
    the first to drop_path_rate at the last, as timm's VisionTransformer spaces it
    (timm.layers.calculate_drop_path_rates). Written here because MlpMixer gives every block the same
    rate (a FIXME in timm's mlp_mixer.py); the blocks are made in order, so each takes the next rate."""
    from timm.layers import calculate_drop_path_rates

    rates = iter(calculate_drop_path_rates(drop_path_rate, depth))

    def block(*args, drop_path: float = 0.0, **kwargs):
        return block_layer(*args, drop_path=next(rates), **kwargs)

    return block


def mixer_kwargs(spec: TaskSpec, size: ImageSize) -> dict:
    """Arguments of timm's MlpMixer / VisionTransformer that come from the task and the size."""
    c, h, w = spec.image_size
    assert h == w, "timm's MLP backbones take square images"
    return dict(
        num_classes=spec.num_classes,
        img_size=h,
        in_chans=c,
        patch_size=patch_size_for(spec, size),
        embed_dim=size.dim,
        mlp_ratio=size.mlp_ratio,
    )


# ---------------------------------------------------------------------------------------------
# FLOP formulas: forward FLOPs per image as torch's FLOP counter counts them (2 per multiply-add of
# the matmuls, convolutions and attention; norms, activations and pooling are not counted).
# `mlp_flops` (bench.models.parts) counts a channel or token MLP.


def image_tokens(spec: TaskSpec, size: ImageSize) -> int:
    """Patches per image: the number of tokens the blocks mix."""
    _, h, w = spec.image_size
    p = patch_size_for(spec, size)
    return (h // p) * (w // p)


def stem_and_head_flops(spec: TaskSpec, size: ImageSize) -> int:
    """The patch embedding (a p x p convolution of stride p: one linear map per patch) and the
    classifier on the pooled features."""
    c, _, _ = spec.image_size
    p = patch_size_for(spec, size)
    return 2 * image_tokens(spec, size) * c * p * p * size.dim + 2 * size.dim * spec.num_classes


def mixer_image_flops(block_flops):
    """The formula of an MlpMixer-backbone family whose block costs block_flops(size, tokens)."""

    def flops(spec: TaskSpec, size: ImageSize, scored: Optional[float] = None) -> int:
        return stem_and_head_flops(spec, size) + size.depth * block_flops(size, image_tokens(spec, size))

    return flops
