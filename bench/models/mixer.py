"""MLP-Mixer: an MLP over tokens, then an MLP over channels (Tolstikhin et al., 2021).

timm's MlpMixer with its default MixerBlock is the reference implementation.
"""

from timm.models.mlp_mixer import MixerBlock, MlpMixer

from bench.models import register_model
from bench.models.image import ImageSize, check_image_pair, default_size_for, mixer_image_flops, mixer_kwargs, mlp_flops

# mlp_ratio = (token MLP ratio, channel MLP ratio), as in the paper's S/16 and B/16.
SIZES = {
    "s16": ImageSize(depth=8, dim=512, mlp_ratio=(0.5, 4.0)),
    "b16": ImageSize(depth=12, dim=768, mlp_ratio=(0.5, 4.0)),
    "mini": ImageSize(depth=5, dim=128, mlp_ratio=(2.0, 4.0), patch_size=None),
}


def block_flops(size: ImageSize, tokens: int) -> int:
    """The token MLP (N -> int(token ratio x D) -> N, for each of D channels) and the channel MLP:
    linear in N, as the token MLP's width follows D, not N."""
    D = size.dim
    token_ratio, channel_ratio = size.mlp_ratio
    return mlp_flops(D, tokens, int(token_ratio * D)) + mlp_flops(tokens, D, int(channel_ratio * D))


@register_model(
    "mixer", ("image",), SIZES, default_size_for("s16"), check_image_pair,
    description="MLP-Mixer: token-mixing MLP + channel MLP",
    flops=mixer_image_flops(block_flops),
)
def build(spec, size: ImageSize, variant):
    return MlpMixer(num_blocks=size.depth, block_layer=MixerBlock, **mixer_kwargs(spec, size))
