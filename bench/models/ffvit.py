"""The feed-forward-only ViT: DeiT-style ViT whose attention is replaced by a feed-forward layer over
the token dimension (Melas-Kyriazi, 2021, "Do You Even Need Attention?"). timm's
VisionTransformer with its Block's attention swapped for parts.TokenFeedForward.

The paper's block runs the channel MLP first and normalises over tokens before its token MLP;
here timm's block order and its norm over channels stay (the parameters differ only by the norms'
widths), so ffvit differs from vit in nothing but the token mixer.
"""

from dataclasses import replace
from functools import partial
from typing import Optional

from timm.models.vision_transformer import Block, VisionTransformer

from bench.models import register_model
from bench.models.image import (
    ImageSize, check_image_pair, default_size_for, image_tokens, mixer_kwargs, patch_size_for,
    stem_and_head_flops,
)
from bench.models.parts import TokenFeedForward, mlp_flops
from bench.models.vit import SIZES as VIT_SIZES
from bench.core.spec import TaskSpec


class FeedForwardBlock(Block):
    """timm's ViT block with a feed-forward layer over the seq_len tokens in place of attention."""

    def __init__(self, *, seq_len: int, **kwargs):
        super().__init__(**kwargs)
        self.attn = TokenFeedForward(seq_len, kwargs["mlp_ratio"])


# The paper's tiny and base are ViT's shapes; mini is deeper than vit-mini (6 blocks, not 4) to make
# up for the attention weights it lacks, so the two minis have about the same parameters.
SIZES = {"ti": VIT_SIZES["ti"], "b": VIT_SIZES["b"], "mini": replace(VIT_SIZES["mini"], depth=6)}


def flops(spec: TaskSpec, size: ImageSize, scored: Optional[float] = None) -> int:
    """As ViT, with the token feed-forward layer (M -> int(ratio x M) -> M for each of D channels:
    quadratic in N) in place of attention and its maps."""
    D, M = size.dim, image_tokens(spec, size) + 1
    block = mlp_flops(D, M, int(size.mlp_ratio * M)) + mlp_flops(M, D, int(size.mlp_ratio * D))
    return stem_and_head_flops(spec, size) + size.depth * block


@register_model(
    "ffvit", ("image",), SIZES, default_size_for("b"), check_image_pair, relative_of="vit",
    description="ViT with attention replaced by a feed-forward layer over tokens",
    flops=flops,
    stochastic_depth=True,
)
def build(spec, size: ImageSize, variant, drop_path_rate: float = 0.0):
    _, h, w = spec.image_size
    p = patch_size_for(spec, size)
    tokens = (h // p) * (w // p) + 1  # the patches and the class token
    block = partial(FeedForwardBlock, seq_len=tokens)
    return VisionTransformer(depth=size.depth, num_heads=size.heads, block_fn=block, drop_path_rate=drop_path_rate,
                             **mixer_kwargs(spec, size))
