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
from bench.models.image import ImageSize, check_image_pair, default_size_for, mixer_image_flops, mixer_kwargs
from bench.models.parts import GatingUnit, TinyAttention, replacing, tiny_attention_flops

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


def gating_block_flops(size, tokens: int, attention: bool = False) -> int:
    """One gMLP block (aMLP's with attention) over N tokens, width D, channel MLP width H: D -> H,
    the gate's token mixing (N x N over H/2 channels), H/2 -> D; quadratic in N."""
    D, N = size.dim, tokens
    H = int(size.mlp_ratio * D)
    gate = H // 2
    flops = 2 * N * D * H + 2 * gate * N * N + 2 * N * gate * D
    return flops + (tiny_attention_flops(D, gate, N) if attention else 0)


register_model(
    "gmlp", ("image",), SIZES, default_size_for("s"), check_image_pair,
    description="gMLP: gated MLP with a spatial gating unit",
    variants={"sgu_init": SGU_INITS},
    flops=mixer_image_flops(gating_block_flops),
)(build_gating_mixer)
