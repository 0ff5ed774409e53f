"""gMLP: a gated channel MLP whose gate mixes tokens, the spatial gating unit (Liu et al., 2021).

timm's MlpMixer with SpatialGatingBlock / GatedMlp injected, the gate being parts.GatingUnit:
timm's unit with a choice of initialisation (--sgu-init). The paper's near-zero token-mixing
weights and unit bias (each block starts as an identity on its gated half) are timm's
`SpatialGatingUnit.init_weights`, which MlpMixer's init calls; a test pins it.
"""

from functools import partial

from timm.layers import GatedMlp
from timm.models.mlp_mixer import MlpMixer, SpatialGatingBlock

from bench.config import SGU_INITS, VariantConfig
from bench.models import register_model
from bench.models.image import ImageSize, check_image_pair, default_size_for, mixer_kwargs
from bench.models.parts import GatingUnit, TinyAttention, replacing

SIZES = {
    "ti": ImageSize(depth=30, dim=128, mlp_ratio=6),
    "s": ImageSize(depth=30, dim=256, mlp_ratio=6),
    "b": ImageSize(depth=30, dim=512, mlp_ratio=6),
    "mini": ImageSize(depth=6, dim=128, mlp_ratio=5, patch_size=None),
}


class GatingBlock(SpatialGatingBlock):
    """timm's SpatialGatingBlock with its gate injected and, for aMLP, a tiny attention from the
    block's normalised input added to the gate."""

    def __init__(self, dim, seq_len, mlp_ratio=4, *, paper_init=True, attention=False, **kwargs):
        super().__init__(dim, seq_len, mlp_ratio, **kwargs)
        width = self.mlp_channels.fc1.out_features
        self.mlp_channels.gate = replacing(self.mlp_channels.gate, lambda: GatingUnit(width, seq_len, paper_init))
        self.attn = TinyAttention(dim, width // 2) if attention else None

    def forward(self, x):
        if self.attn is None:
            return super().forward(x)
        y = self.norm(x)  # (B, N, C)
        mlp = self.mlp_channels
        h = mlp.act(mlp.fc1(y))  # (B, N, F)
        h = mlp.gate(h, self.attn(y))  # (B, N, F/2)
        return x + mlp.fc2(h)  # (B, N, C)


def build_gating_mixer(spec, size: ImageSize, variant: VariantConfig, attention: bool = False):
    """gMLP, or aMLP with attention, on images."""
    block = partial(GatingBlock, paper_init=(variant.sgu_init or "paper") == "paper", attention=attention)
    return MlpMixer(num_blocks=size.depth, block_layer=block, mlp_layer=GatedMlp, **mixer_kwargs(spec, size))


register_model(
    "gmlp", ("image",), SIZES, default_size_for("s"), check_image_pair,
    description="gMLP: gated MLP with a spatial gating unit",
    variants={"sgu_init": SGU_INITS},
)(build_gating_mixer)
