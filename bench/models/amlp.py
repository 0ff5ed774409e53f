"""aMLP: gMLP with a tiny single-head attention (width 64) added to the spatial gating unit's gate
(Liu et al., 2021, section 4.3). gMLP's blocks with the attention injected, on images and on text;
the sizes are gMLP's, so the two compare at the same shape."""

from functools import partial

from bench.core.config import SGU_INITS, VariantConfig
from bench.models import gmlp, register_model
from bench.models.image import ImageSize, check_image_pair, default_size_for, mixer_image_flops
from bench.models.text import TEXT_MODALITIES, check_lengths, default_size


@register_model(
    "amlp", ("image",), gmlp.SIZES, default_size_for("s"), check_image_pair, relative_of="gmlp",
    description="aMLP: gMLP + tiny single-head attention in the gate",
    variants={"sgu_init": SGU_INITS},
    flops=mixer_image_flops(partial(gmlp.gating_block_flops, attention=True)),
    stochastic_depth=True,
)
def build_image(spec, size: ImageSize, variant: VariantConfig, drop_path_rate: float = 0.0):
    return gmlp.build_gating_mixer(spec, size, variant, attention=True, drop_path_rate=drop_path_rate)


register_model(
    "amlp", TEXT_MODALITIES, gmlp.TEXT_SIZES, default_size,
    check=check_lengths, relative_of="gmlp",
    description="aMLP over tokens: gMLP + tiny single-head attention in the gate",
    variants={"sgu_init": SGU_INITS},
    flops=gmlp.text_gating_flops(attention=True),
)(partial(gmlp.build_text_gating, attention=True))
