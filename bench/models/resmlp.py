"""ResMLP: one linear layer over tokens, Affine instead of normalisation, layer scale
(Touvron et al., 2021). timm's MlpMixer with its ResBlock and Affine injected."""

from functools import partial

from timm.models.mlp_mixer import Affine, MlpMixer, ResBlock

from bench.models import register_model
from bench.models.image import ImageSize, check_image_pair, default_size_for, mixer_kwargs

# Layer-scale initial values follow the paper: 0.1 for 12 blocks, 1e-5 for 24, 1e-6 for B24.
SIZES = {
    "s12": ImageSize(depth=12, dim=384, mlp_ratio=4, init_values=0.1),
    "s24": ImageSize(depth=24, dim=384, mlp_ratio=4, init_values=1e-5),
    "b24": ImageSize(depth=24, dim=768, mlp_ratio=4, init_values=1e-6),
    "mini": ImageSize(depth=6, dim=128, mlp_ratio=4, init_values=0.1, patch_size=None),
}


@register_model(
    "resmlp", ("image",), SIZES, default_size_for("s12"), check_image_pair,
    description="ResMLP: linear token mixing + Affine + layer scale",
)
def build(spec, size: ImageSize):
    block = partial(ResBlock, init_values=size.init_values)
    return MlpMixer(num_blocks=size.depth, block_layer=block, norm_layer=Affine, **mixer_kwargs(spec, size))
