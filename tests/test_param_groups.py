"""bench.training.loop.param_groups: one weight-decay rule for every family, modality and variant.

No decay on biases, norm and affine parameters, layer scales, position embeddings and class
tokens; decay on the weight matrices of Linear, convolution and (token) embedding modules.
"""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import re

import pytest
import torch
from torch import nn

from bench.core.config import VariantConfig
from bench.training.loop import param_groups
from bench.models import create_model, list_models, model_entries
from bench.core.spec import TaskSpec
from tests.model_checks import variant_names

pytestmark = pytest.mark.usefixtures("one_thread")

WEIGHT_DECAY = 0.05
IMAGE = TaskSpec("tiny-image", "image", "top1", image_size=(3, 32, 32), num_classes=10)


def text_spec(modality: str) -> TaskSpec:
    return TaskSpec(f"tiny-{modality}", modality, "loss", higher_is_better=False, vocab_size=100, seq_len=16,
                    target_len=12, pad_token_id=0, bos_token_id=1, eos_token_id=2)


# Every registered (family, modality), with every variant the entry takes ("" is the default).
CASES = [
    (family, modality, variant)
    for family in list_models()
    for entry in model_entries(family)
    for modality in entry.modalities
    for variant in variant_names(entry)
]
# Written out here, apart from the rule in bench.training.loop, so a renamed parameter fails loudly.
POSITION_OR_CLASS_TOKEN = re.compile(r"(^|\.)(pos|pos_embed|cls_token|position_embeddings|embed_positions)(\.|$)")
NORM_OR_AFFINE = re.compile(r"Norm|Affine")


def build(family: str, modality: str, variant: str) -> nn.Module:
    spec = IMAGE if modality == "image" else text_spec(modality)
    return create_model(family, "mini", spec, VariantConfig.parse(variant))


def split(model: nn.Module, weight_decay: float = WEIGHT_DECAY) -> tuple[set[int], set[int]]:
    """ids of the decayed parameters and of the others; each parameter in exactly one group."""
    decay, no_decay = set(), set()
    for group in param_groups(model, weight_decay):
        ids = {id(p) for p in group["params"]}
        assert not ids & (decay | no_decay), "a parameter in two groups"
        (decay if group["weight_decay"] else no_decay).update(ids)
        assert group["weight_decay"] in (0.0, weight_decay)
    assert decay | no_decay == {id(p) for p in model.parameters() if p.requires_grad}
    return decay, no_decay


@pytest.mark.parametrize("family, modality, variant", CASES, ids=[f"{f}-{m}-{v or 'default'}" for f, m, v in CASES])
def test_one_rule_for_every_family(family, modality, variant):
    model = build(family, modality, variant)
    decay, no_decay = split(model)
    modules = dict(model.named_modules())
    positions = 0
    for name, p in model.named_parameters():
        owner = modules[name.rpartition(".")[0]]
        if POSITION_OR_CLASS_TOKEN.search(name):
            positions += 1
            assert id(p) in no_decay, f"{name}: a position embedding or class token is decayed"
        elif name.endswith(".bias") or p.ndim <= 1 or NORM_OR_AFFINE.search(type(owner).__name__):
            assert id(p) in no_decay, f"{name} ({type(owner).__name__}, {tuple(p.shape)}) is decayed"
    for module_name, module in modules.items():
        if isinstance(module, (nn.Linear, nn.modules.conv._ConvNd)):
            assert id(module.weight) in decay, f"{module_name}.weight ({type(module).__name__}) is not decayed"
        elif isinstance(module, nn.Embedding) and not POSITION_OR_CLASS_TOKEN.search(module_name):
            assert id(module.weight) in decay, f"{module_name}.weight (a token embedding) is not decayed"
    # Every family has some position information or none at all by design: the MLP image models
    # learn positions in their token mixing; every other model has a position embedding, learned or fixed.
    fixed = any(name.endswith("positions") for name, _ in model.named_buffers())  # sinusoids: nothing to decay
    assert positions > 0 or fixed or (modality == "image" and family not in ("vit", "ffvit"))


def test_vit_pos_embed_cls_token_and_resmlp_affine_are_not_decayed():
    """The parameters of more than one dimension that the old ndim rule decayed."""
    vit = build("vit", "image", "")
    _, no_decay = split(vit)
    assert {id(vit.pos_embed), id(vit.cls_token)} <= no_decay and vit.pos_embed.ndim == 3
    resmlp = build("resmlp", "image", "")
    _, no_decay = split(resmlp)
    affine = [p for n, p in resmlp.named_parameters() if n.endswith((".alpha", ".beta"))]
    assert affine and all(p.ndim == 3 and id(p) in no_decay for p in affine)


def test_adamw_decays_only_the_decay_group():
    """With zero gradients an AdamW step is weight decay alone: it shrinks the weight matrices by
    lr x weight_decay and leaves the position embedding, class token and norms as they were."""
    model = build("vit", "image", "")
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    optimizer = torch.optim.AdamW(param_groups(model, WEIGHT_DECAY), lr=0.1)
    for p in model.parameters():
        p.grad = torch.zeros_like(p)
    optimizer.step()
    after = dict(model.named_parameters())
    for name in ("pos_embed", "cls_token", "norm.weight", "blocks.0.attn.qkv.bias"):
        assert torch.equal(after[name], before[name]), name
    shrunk = before["blocks.0.attn.qkv.weight"] * (1 - 0.1 * WEIGHT_DECAY)
    torch.testing.assert_close(after["blocks.0.attn.qkv.weight"], shrunk)


def test_no_weight_decay_of_a_submodule_counts_with_its_prefix():
    """A timm model wrapped in another module: its no_weight_decay() names are relative to it."""

    class Wrapped(nn.Module):
        def __init__(self):
            super().__init__()
            self.inner = build("vit", "image", "")
            self.scale = nn.Parameter(torch.ones(4, 4))  # a matrix of no Linear: decayed

    model = Wrapped()
    decay, no_decay = split(model)
    assert {id(model.inner.pos_embed), id(model.inner.cls_token)} <= no_decay
    assert id(model.scale) in decay


def test_zero_weight_decay_puts_everything_undecayed():
    model = build("gmlp", "image", "")
    decay, no_decay = split(model, weight_decay=0.0)
    assert not decay and no_decay
