"""gMLP: a gated channel MLP whose gate mixes tokens, the spatial gating unit (Liu et al., 2021).

timm's MlpMixer with SpatialGatingBlock / GatedMlp injected. The SGU's near-zero token-mixing
weights and unit bias (so each block starts as an identity on its gated half) are timm's
`SpatialGatingUnit.init_weights`, which MlpMixer's init calls; a test pins it.
"""

from timm.layers import GatedMlp
from timm.models.mlp_mixer import MlpMixer, SpatialGatingBlock

from bench.models import register_model
from bench.models.image import ImageSize, check_image_pair, default_size_for, mixer_kwargs

SIZES = {
    "ti": ImageSize(depth=30, dim=128, mlp_ratio=6),
    "s": ImageSize(depth=30, dim=256, mlp_ratio=6),
    "b": ImageSize(depth=30, dim=512, mlp_ratio=6),
    "mini": ImageSize(depth=6, dim=128, mlp_ratio=5, patch_size=None),
}


@register_model(
    "gmlp", ("image",), SIZES, default_size_for("s"), check_image_pair,
    description="gMLP: gated MLP with a spatial gating unit",
)
def build(spec, size: ImageSize):
    return MlpMixer(
        num_blocks=size.depth, block_layer=SpatialGatingBlock, mlp_layer=GatedMlp, **mixer_kwargs(spec, size)
    )
