"""ConvMixer: patches, then depthwise convolutions mix space and pointwise ones mix channels
(Trockman & Kolter, 2022). timm's ConvMixer class; images only."""

from dataclasses import dataclass
from typing import Optional

import torch.nn as nn
from timm.models.convmixer import ConvMixer

from bench.models import register_model
from bench.models.image import (
    ImageSize, check_image_pair, default_size_for, image_tokens, patch_size_for, stem_and_head_flops,
)
from bench.core.spec import TaskSpec


@dataclass(frozen=True)
class ConvMixerSize(ImageSize):
    kernel_size: int = 9  # of the depthwise convolution
    relu: bool = False  # ConvMixer-768/32 uses ReLU, the others GELU


# Named dim-depth as in the paper; their patches are 7x7. mini: a 3x3 kernel over the small grid.
SIZES = {
    "1536-20": ConvMixerSize(depth=20, dim=1536, mlp_ratio=0, patch_size=7, kernel_size=9),
    "768-32": ConvMixerSize(depth=32, dim=768, mlp_ratio=0, patch_size=7, kernel_size=7, relu=True),
    "mini": ConvMixerSize(depth=12, dim=240, mlp_ratio=0, patch_size=None, kernel_size=3),
}


def flops(spec: TaskSpec, size: ConvMixerSize, scored: Optional[float] = None) -> int:
    """Per block a depthwise k x k convolution (k^2 D per patch) and a pointwise one (D^2 per patch):
    linear in the number of patches."""
    D, N = size.dim, image_tokens(spec, size)
    return stem_and_head_flops(spec, size) + size.depth * (2 * N * D * size.kernel_size**2 + 2 * N * D * D)


@register_model(
    "convmixer", ("image",), SIZES, default_size_for("768-32"), check_image_pair, relative_of="mixer",
    description="ConvMixer: depthwise + pointwise convolutions over patches",
    flops=flops,
)
def build(spec, size: ConvMixerSize, variant):
    c, _, _ = spec.image_size
    return ConvMixer(
        dim=size.dim, depth=size.depth, kernel_size=size.kernel_size, patch_size=patch_size_for(spec, size),
        in_chans=c, num_classes=spec.num_classes, act_layer=nn.ReLU if size.relu else nn.GELU,
    )
