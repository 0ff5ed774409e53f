"""aMLP: gMLP with a tiny single-head attention (width 64) added to the spatial gating unit's gate
(Liu et al., 2021, section 4.3). The gMLP backbone with the attention injected; the sizes are
gMLP's, so the two compare at the same shape. The text aMLP is registered in text.py."""

from functools import partial

from bench.config import SGU_INITS, VariantConfig
from bench.models import gmlp, register_model
from bench.models.image import ImageSize, check_image_pair, default_size_for, mixer_image_flops

@register_model(
    "amlp", ("image",), gmlp.SIZES, default_size_for("s"), check_image_pair,
    description="aMLP: gMLP + tiny single-head attention in the gate",
    variants={"sgu_init": SGU_INITS},
    flops=mixer_image_flops(partial(gmlp.gating_block_flops, attention=True)),
)
def build(spec, size: ImageSize, variant: VariantConfig):
    return gmlp.build_gating_mixer(spec, size, variant, attention=True)
