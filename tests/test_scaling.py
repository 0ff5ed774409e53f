"""The cost-scaling study (bench/scaling.py): FLOP formulas, point statuses, resuming, the page.

Tiny widths and two token counts keep each test to a few seconds on one thread.
"""

from __future__ import annotations

import dataclasses

import pytest
import torch

import tasks  # noqa: F401  (registers every task)
from bench.config import DataConfig, OptimConfig, VariantConfig
from bench.measure import count_flops
from bench.models import list_models, model_entries, resized
from tasks.base import get_task

# Every (family, modality) the registry has.
ENTRIES = [(family, modality) for family in list_models() for entry in model_entries(family)
           for modality in entry.modalities]
# Task shapes per modality, and two token counts each: image sides at 16x16 patches (4 and 16
# patches); text lengths past the tiny Mixer's token-MLP width (8), where its causal decoder turns quadratic.
SHAPES = {"image": ("imagenet", (4, 16)), "mlm": ("wordnet", (16, 24)), "seq2seq": ("wmt14-de-en", (16, 24))}
TINY = {"image": {"dim": 16, "depth": 2}, "mlm": {"dim": 16, "layers": 2},
        "seq2seq": {"dim": 16, "encoder_layers": 1, "decoder_layers": 2}}


def tiny_model(family: str, modality: str, tokens: int):
    """(task, spec, entry, size config, model, batch of 2) of a tiny model at `tokens` tokens."""
    name, _ = SHAPES[modality]
    task = get_task(name)
    task.configure(OptimConfig())
    if modality == "image":
        spec, fields = task.spec(DataConfig(image_size=16 * int(tokens**0.5))), {"patch_size": 16}
    else:
        spec, fields = task.spec(DataConfig(seq_len=tokens)), {"max_len": tokens}
    entry, size_cfg = resized(family, "mini", spec, **fields, **TINY[modality])
    torch.manual_seed(0)
    model = entry.build(spec, size_cfg, VariantConfig())
    batch = task.synthetic_batch(spec, 2, torch.Generator().manual_seed(0))
    return task, spec, entry, size_cfg, model, batch


@pytest.mark.parametrize("family, modality", ENTRIES)
def test_flop_counts_match_the_registered_formula_at_two_token_counts(family, modality, one_thread):
    """The counter's forward FLOPs (what the study records and fits) equal the family's analytic
    formula exactly, at two input sizes, so the fitted FLOP exponent is the formula's."""
    for tokens in SHAPES[modality][1]:
        task, spec, entry, size_cfg, model, batch = tiny_model(family, modality, tokens)
        counted = count_flops(model, batch, task.loss, task.loss)["forward_per_sample"]
        scored = task.scored_positions(batch) / 2 if modality == "mlm" else None
        assert entry.flops is not None, f"{family} registers no FLOP formula for {modality}"
        assert counted == entry.flops(spec, size_cfg, scored), (family, modality, tokens)


def test_resized_keeps_width_and_depth_and_checks_the_pair():
    from bench.errors import PairError

    spec = get_task("wordnet").spec(DataConfig(seq_len=1024))
    entry, size_cfg = resized("gmlp", "mini", spec, max_len=1024)
    assert size_cfg == dataclasses.replace(entry.sizes["mini"], max_len=1024)
    with pytest.raises(PairError, match="sequence length 1024 exceeds the 128 tokens"):
        resized("gmlp", "mini", spec)
