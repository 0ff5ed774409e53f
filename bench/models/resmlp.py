"""ResMLP: one linear layer over tokens, Affine instead of normalisation, layer scale
(Touvron et al., 2021). timm's MlpMixer with its ResBlock and Affine injected.

Variants swap one part: --norm (every norm of the model, the final one included),
--token-mixing (the block's token mixer) and --layer-scale-init.
"""

from functools import partial

from timm.models.mlp_mixer import MlpMixer, ResBlock

from bench.config import NORMS, TOKEN_MIXINGS, VariantConfig
from bench.models import register_model
from bench.models.image import ImageSize, check_image_pair, default_size_for, mixer_image_flops, mixer_kwargs, mlp_flops
from bench.models.parts import NORM_LAYERS, image_token_mixer, replacing

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


def block_flops(size: ImageSize, tokens: int) -> int:
    """The linear map over tokens (N x N for each of D channels: quadratic in N) and the channel MLP."""
    return 2 * size.dim * tokens * tokens + mlp_flops(tokens, size.dim, int(size.mlp_ratio * size.dim))


@register_model(
    "resmlp", ("image",), SIZES, default_size_for("s12"), check_image_pair,
    description="ResMLP: linear token mixing + Affine + layer scale",
    variants={"norm": NORMS, "token_mixing": TOKEN_MIXINGS, "layer_scale_init": None},
    flops=mixer_image_flops(block_flops),
)
def build(spec, size: ImageSize, variant: VariantConfig):
    block = partial(
        MixingResBlock,
        token_mixing=variant.token_mixing or "linear",
        init_values=variant.layer_scale_init or size.init_values,
    )
    return MlpMixer(
        num_blocks=size.depth, block_layer=block, norm_layer=NORM_LAYERS[variant.norm or "affine"],
        **mixer_kwargs(spec, size),
    )
