"""ResNet: the ConvNet reference of the image families (He et al., 2016), timm's ResNet class with
basic blocks; images only.

A reference, not a baseline: the image baseline stays ViT, and pages show the reference apart
from the families they compare. Every size has ResNet-18's layout (timm's stem of 64 channels, then
four stages of `depth` basic blocks, widths dim, 2 dim, 4 dim, 8 dim) with its width chosen so that its parameters are within
10% of those of every image family's size of the same name (tests/test_image_models.py holds them
there). Paper sizes keep timm's ImageNet stem (a 7x7 convolution of stride 2, then a 3x3 max pool
of stride 2: a stride of 4); `mini` replaces it with a convolution over the image families' mini
patches (kernel and stride the patch), so it sees the grid of positions the MLPs see.
Stochastic depth: timm's drop_path_rate, rising linearly over the blocks from 0 to the rate.
"""

from dataclasses import dataclass
from typing import Optional

import torch.nn as nn
from timm.models.resnet import BasicBlock, ResNet

from bench.models import register_model
from bench.models.image import ImageSize, check_image_pair, default_size_for, patch_size_for
from bench.core.spec import TaskSpec

STAGES = 4
IMAGENET_STEM_STRIDE = 4  # timm's stem: 7x7 convolution of stride 2, 3x3 max pool of stride 2
STEM_WIDTH = 64  # timm's ResNet stem (its `inplanes`), whatever the stages' widths


@dataclass(frozen=True)
class ResNetSize(ImageSize):
    """depth: basic blocks per stage; dim: the first stage's width; patch_size: the
    stem's stride, timm's ImageNet stem where it is 4 and `imagenet_stem`, else a patch convolution."""

    imagenet_stem: bool = True

    @property
    def blocks(self) -> int:
        """Basic blocks in all: stochastic depth rises over them."""
        return self.depth * STAGES


def _size(dim: int, stem: bool = True) -> ResNetSize:
    return ResNetSize(depth=2, dim=dim, mlp_ratio=0, patch_size=IMAGENET_STEM_STRIDE if stem else None,
                      imagenet_stem=stem)


# Named after the image families' sizes; each within 10% of the parameters of every family's size of
# that name (at 224 px and 1000 classes; mini at Fashion-MNIST's 28x28 and 10 classes).
SIZES = {
    "ti": _size(44), "s": _size(86), "b": _size(170),  # gMLP's and ViT's
    "s12": _size(74), "s24": _size(104), "b24": _size(206),  # ResMLP's
    "s16": _size(80), "b16": _size(146),  # Mixer's
    "mini": _size(17, stem=False),
}


def widths(size: ResNetSize) -> list[int]:
    return [size.dim * 2**i for i in range(STAGES)]


def _uses_imagenet_stem(spec: TaskSpec, size: ResNetSize) -> bool:
    return size.imagenet_stem and patch_size_for(spec, size) == IMAGENET_STEM_STRIDE


def _conv_out(side: int, kernel: int, stride: int, padding: int) -> int:
    return (side + 2 * padding - kernel) // stride + 1


def flops(spec: TaskSpec, size: ResNetSize, scored: Optional[float] = None) -> int:
    """Convolutions and the head, 2 per multiply-add of each (batch norms, activations and pooling are
    not counted): the stem, then per stage its blocks' two 3x3 convolutions (the first of stages 2-4
    of stride 2; a 1x1 projection of the shortcut where the width or the side changes); linear in the
    number of pixels."""
    c, h, w = spec.image_size
    if _uses_imagenet_stem(spec, size):
        h, w = _conv_out(h, 7, 2, 3), _conv_out(w, 7, 2, 3)
        total = 2 * h * w * c * 49 * STEM_WIDTH
        h, w = _conv_out(h, 3, 2, 1), _conv_out(w, 3, 2, 1)
    else:
        p = patch_size_for(spec, size)
        h, w = h // p, w // p
        total = 2 * h * w * c * p * p * STEM_WIDTH
    previous = STEM_WIDTH
    for stage, width in enumerate(widths(size)):
        if stage:
            h, w = _conv_out(h, 3, 2, 1), _conv_out(w, 3, 2, 1)
        if stage or width != previous:
            total += 2 * h * w * previous * width  # the shortcut's 1x1 projection
        total += 2 * h * w * 9 * width * (previous + width)  # the first block's two convolutions
        total += (size.depth - 1) * 2 * h * w * 9 * width * width * 2
        previous = width
    return total + 2 * previous * spec.num_classes


@register_model(
    "resnet", ("image",), SIZES, default_size_for("s"), check_image_pair, reference=True,
    description="ResNet with basic blocks (the ConvNet reference, not a baseline)",
    flops=flops,
    stochastic_depth=True,
)
def build(spec, size: ResNetSize, variant, drop_path_rate: float = 0.0):
    c, _, _ = spec.image_size
    model = ResNet(BasicBlock, [size.depth] * STAGES, num_classes=spec.num_classes, in_chans=c,
                   channels=tuple(widths(size)), drop_path_rate=drop_path_rate)
    if not _uses_imagenet_stem(spec, size):
        p = patch_size_for(spec, size)
        model.conv1 = nn.Conv2d(c, STEM_WIDTH, kernel_size=p, stride=p, bias=False)  # (B, 64, H/p, W/p)
        model.maxpool = nn.Identity()
    return model
