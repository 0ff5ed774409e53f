"""The Transformer baseline for images: DeiT-style ViT, timm's VisionTransformer (Touvron et al., 2021)."""

from timm.models.vision_transformer import VisionTransformer

from bench.models import register_model
from bench.models.image import ImageSize, check_image_pair, default_size_for, mixer_kwargs

SIZES = {
    "ti": ImageSize(depth=12, dim=192, mlp_ratio=4, heads=3),
    "s": ImageSize(depth=12, dim=384, mlp_ratio=4, heads=6),
    "b": ImageSize(depth=12, dim=768, mlp_ratio=4, heads=12),
    "mini": ImageSize(depth=4, dim=128, mlp_ratio=4, heads=4, patch_size=None),
}


@register_model(
    "vit", ("image",), SIZES, default_size_for("s"), check_image_pair, baseline=True,
    description="DeiT-style Vision Transformer (the image baseline)",
)
def build(spec, size: ImageSize, variant):
    return VisionTransformer(depth=size.depth, num_heads=size.heads, **mixer_kwargs(spec, size))
