"""The Transformer baseline for images: DeiT-style ViT, timm's VisionTransformer (Touvron et al., 2021)."""

from typing import Optional

from timm.models.vision_transformer import VisionTransformer

from bench.models import register_model
from bench.models.image import (
    ImageSize, check_image_pair, default_size_for, image_tokens, mixer_kwargs, stem_and_head_flops,
)
from bench.models.parts import mlp_flops
from bench.core.spec import TaskSpec

SIZES = {
    "ti": ImageSize(depth=12, dim=192, mlp_ratio=4, heads=3),
    "s": ImageSize(depth=12, dim=384, mlp_ratio=4, heads=6),
    "b": ImageSize(depth=12, dim=768, mlp_ratio=4, heads=12),
    "mini": ImageSize(depth=4, dim=128, mlp_ratio=4, heads=4, patch_size=None),
}


def flops(spec: TaskSpec, size: ImageSize, scored: Optional[float] = None) -> int:
    """N patches and the class token, M = N + 1 positions, width D: per block the q, k, v and output
    maps (4 M D^2), attention (4 M^2 D: quadratic in N) and the channel MLP; the head reads the class token."""
    D, M = size.dim, image_tokens(spec, size) + 1
    block = 8 * M * D * D + 4 * M * M * D + mlp_flops(M, D, int(size.mlp_ratio * D))
    return stem_and_head_flops(spec, size) + size.depth * block


@register_model(
    "vit", ("image",), SIZES, default_size_for("s"), check_image_pair, baseline=True,
    description="DeiT-style Vision Transformer (the image baseline)",
    flops=flops,
    stochastic_depth=True,
)
def build(spec, size: ImageSize, variant, drop_path_rate: float = 0.0):
    return VisionTransformer(depth=size.depth, num_heads=size.heads, drop_path_rate=drop_path_rate,
                             **mixer_kwargs(spec, size))
