"""Text models of every registered family: training signal, causality, padding, generation, sizes."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

import dataclasses

import pytest
import torch
import torch.nn.functional as F
from timm.models.mlp_mixer import SpatialGatingUnit

from bench.config import VariantConfig
from bench.errors import PairError, UnknownNameError
from bench.models import create_model, list_models, model_entries, resolve
from tasks.base import TaskSpec
from tests.model_checks import variant_names

PAD, BOS, EOS = 0, 1, 2


pytestmark = pytest.mark.usefixtures("one_thread")


def text_spec(modality: str, vocab_size=100, seq_len=16, target_len=12, eos_token_id=EOS) -> TaskSpec:
    return TaskSpec(
        name=f"tiny-{modality}",
        modality=modality,
        metric="loss",
        higher_is_better=False,
        vocab_size=vocab_size,
        seq_len=seq_len,
        target_len=target_len,
        pad_token_id=PAD,
        bos_token_id=BOS,
        eos_token_id=eos_token_id,
    )


def text_entry(family: str, modality: str):
    return next((e for e in model_entries(family) if modality in e.modalities), None)


def text_families(modality: str) -> list[str]:
    return [f for f in list_models() if text_entry(f, modality) is not None]


PAIRS = [(f, m) for m in ("mlm", "seq2seq") for f in text_families(m)]
SEQ2SEQ = text_families("seq2seq")
# Relatives are a family's shape plus a part (aMLP: gMLP + attention), so they are not held to the
# Transformer's parameter count; test_amlp_adds_tiny_attention counts them.
RELATIVES = {"amlp"}
MLP_PAIRS = [(f, m) for f, m in PAIRS if not text_entry(f, m).baseline and f not in RELATIVES]
# Every pair with every variant it takes ("" is the family's default)
VARIANT_PAIRS = [(f, m, v) for f, m in PAIRS for v in variant_names(text_entry(f, m))]
SEQ2SEQ_VARIANTS = [(f, v) for f, m, v in VARIANT_PAIRS if m == "seq2seq"]


def baseline(modality: str) -> str:
    (name,) = [f for f in text_families(modality) if text_entry(f, modality).baseline]
    return name


def build(family: str, modality: str, variant: str = "", **spec_fields):
    torch.manual_seed(0)
    return create_model(family, "mini", text_spec(modality, **spec_fields), VariantConfig.parse(variant)).eval()


def away_from_init(model):
    """Random weights away from the init, where near-identity blocks (gMLP's gate ~ 1, ResMLP's
    LayerScale 1e-4) would hide any mixing across tokens below the tests' tolerance."""
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p), alpha=0.05)
    return model


def random_batch(lengths: list[int], width: int, generator: torch.Generator):
    """Right-padded ids (random real tokens, random tokens under the padding too) and the 1/0 mask."""
    ids = torch.randint(3, 100, (len(lengths), width), generator=generator)
    mask = (torch.arange(width)[None, :] < torch.tensor(lengths)[:, None]).long()
    return ids, mask


def forward(model, modality: str, src, src_mask, tgt=None, tgt_mask=None):
    if modality == "mlm":
        return model(src, src_mask)
    return model(src, src_mask, tgt, tgt_mask)


@pytest.mark.parametrize("family,modality,variant", VARIANT_PAIRS)
def test_every_parameter_learns(family, modality, variant):
    model = build(family, modality, variant).train()
    g = torch.Generator().manual_seed(1)
    src, src_mask = random_batch([16, 11, 5], 16, g)
    tgt, tgt_mask = random_batch([12, 7, 3], 12, g)
    logits = forward(model, modality, src, src_mask, tgt, tgt_mask)
    labels, label_mask = (src, src_mask) if modality == "mlm" else (tgt, tgt_mask)
    assert logits.shape == (*labels.shape, 100)
    loss = F.cross_entropy(logits[label_mask.bool()], labels[label_mask.bool()])
    assert torch.isfinite(loss)
    loss.backward()
    for name, p in model.named_parameters():
        assert p.grad is not None, f"{name} gets no gradient"
        assert torch.isfinite(p.grad).all(), f"{name} has a non-finite gradient"


@pytest.mark.parametrize("family,modality,variant", VARIANT_PAIRS)
def test_padding_does_not_leak(family, modality, variant):
    """A right-padded batch (random tokens under the padding) gives each sequence's real tokens
    the outputs it gets alone, unpadded: neither pad content nor pad length matters."""
    model = away_from_init(build(family, modality, variant))
    g = torch.Generator().manual_seed(2)
    src_lengths, tgt_lengths = [16, 9, 4], [12, 5, 2]
    src, src_mask = random_batch(src_lengths, 16, g)
    tgt, tgt_mask = random_batch(tgt_lengths, 12, g)
    with torch.no_grad():
        batched = forward(model, modality, src, src_mask, tgt, tgt_mask)
        for i, (s, t) in enumerate(zip(src_lengths, tgt_lengths)):
            n = s if modality == "mlm" else t
            alone = forward(
                model, modality, src[i : i + 1, :s], src_mask[i : i + 1, :s], tgt[i : i + 1, :t], tgt_mask[i : i + 1, :t]
            )
            # float32 sums in another order differ by ~1e-5 on unit-scale logits; a leak moves them by ~0.1
            torch.testing.assert_close(batched[i, :n], alone[0], atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("family,variant", SEQ2SEQ_VARIANTS)
def test_decoder_is_causal(family, variant):
    model = away_from_init(build(family, "seq2seq", variant))
    g = torch.Generator().manual_seed(3)
    src, src_mask = random_batch([16, 10], 16, g)
    tgt, tgt_mask = random_batch([12, 12], 12, g)
    changed = tgt.clone()
    changed[:, 6] = (changed[:, 6] + 1) % 97 + 3  # another real token at position 6
    with torch.no_grad():
        before = model(src, src_mask, tgt, tgt_mask)
        after = model(src, src_mask, changed, tgt_mask)
    torch.testing.assert_close(after[:, :6], before[:, :6], atol=1e-6, rtol=1e-5)
    assert not torch.allclose(after[:, 6], before[:, 6]), "the changed token does not reach its own output"


@pytest.mark.parametrize("family", ["gmlp", "amlp"])
def test_spatial_gating_starts_as_identity(family):
    """gMLP's gate keeps the paper's init: token-mixing weights ~ 0 and bias 1."""
    for modality in ("mlm", "seq2seq"):
        units = [m for m in build(family, modality).modules() if isinstance(m, SpatialGatingUnit)]
        assert units
        for unit in units:
            assert unit.proj.weight.abs().max() < 1e-4
            assert torch.equal(unit.proj.bias, torch.ones_like(unit.proj.bias))


@pytest.mark.parametrize("modality", ["mlm", "seq2seq"])
def test_amlp_adds_tiny_attention(modality):
    """aMLP is gMLP's shape plus, per block, qkv (dim x 3*64, no bias) and a projection to half the gate."""
    spec = text_spec(modality)
    size = text_entry("gmlp", modality).sizes["mini"]
    half = int(size.dim * size.mlp_ratio) // 2
    blocks = size.layers if modality == "mlm" else size.encoder_layers + size.decoder_layers
    count = lambda family: sum(p.numel() for p in create_model(family, "mini", spec).parameters())  # noqa: E731
    assert count("amlp") - count("gmlp") == blocks * (size.dim * 3 * 64 + 64 * half + half)


def cut_after_eos(tokens: torch.Tensor, eos: int) -> torch.Tensor:
    """What greedy decoding that stops at eos gives, from free-running tokens: pad after the first eos."""
    after_eos = (tokens == eos).long().cumsum(dim=1) - (tokens == eos).long() > 0
    return tokens.masked_fill(after_eos, PAD)


@pytest.mark.parametrize("family,modality", MLP_PAIRS)
def test_tokens_enter_at_unit_scale_and_keep_their_identity(family, modality):
    """At initialisation the blocks see unit-scale token embeddings, so the first token mixing does
    not drown each position's own token: the encoder output still tells the tokens apart."""
    model = build(family, modality, vocab_size=1000)
    ids = torch.randint(3, 1000, (4, 16))
    embedded = model.embed(ids)
    assert 0.8 < embedded.std().item() < 1.2
    out = model.encoder(embedded, torch.ones_like(ids))  # (B, T, C)
    # each output is closer to its own token's embedding than to the other tokens' embeddings
    similarity = F.normalize(out, dim=-1) @ F.normalize(model.embed.weight, dim=-1).T  # (B, T, V)
    own = (similarity.argmax(-1) == ids).float().mean().item()
    assert own > 0.9, f"only {own:.0%} of positions still look like their own token"


@pytest.mark.parametrize("family", SEQ2SEQ)
def test_generate_is_greedy_and_stops_at_eos(family):
    model = away_from_init(build(family, "seq2seq"))
    g = torch.Generator().manual_seed(4)
    src, src_mask = random_batch([16, 8, 3, 12], 16, g)
    # Free-running greedy through the plain forward pass: the argmax after bos + the tokens so far.
    prefix = torch.full((4, 1), BOS)
    with torch.no_grad():
        for _ in range(10):
            token = model(src, src_mask, prefix, torch.ones_like(prefix))[:, -1].argmax(-1)  # (B,)
            prefix = torch.cat([prefix, token[:, None]], dim=1)
    free = prefix[:, 1:]
    eos = int(free[0, 2])  # an eos that row 0 reaches at step 2 at the latest
    assert eos != PAD
    for eos_token_id in (EOS, eos):
        stopping = build(family, "seq2seq", eos_token_id=eos_token_id)
        stopping.load_state_dict(model.state_dict())
        out = stopping.generate(src, src_mask, max_new_tokens=10)
        assert out.dtype == torch.long
        assert torch.equal(out, cut_after_eos(free, eos_token_id))
    assert (out[0, 3:] == PAD).all()


@pytest.mark.parametrize(
    "spec_fields",
    [
        dict(vocab_size=100, seq_len=16, target_len=12),  # the tests' tiny tasks
        dict(vocab_size=8000, seq_len=128, target_len=64),  # the offline text tasks' defaults
        dict(vocab_size=8000, seq_len=None, target_len=None),  # each size's longest input
    ],
)
@pytest.mark.parametrize("family,modality", MLP_PAIRS)
def test_parameters_match_the_transformer(family, modality, spec_fields):
    entry, reference = text_entry(family, modality), text_entry(baseline(modality), modality)
    assert list(entry.sizes) == list(reference.sizes)
    for name, size in entry.sizes.items():
        fields = dict(spec_fields)
        if fields["seq_len"] is None:
            fields.update(seq_len=size.max_len, target_len=size.max_len)
        spec = text_spec(modality, **fields)
        with torch.device("meta"):  # counts shapes only: base sizes build in milliseconds
            params = sum(p.numel() for p in create_model(family, name, spec).parameters())
            expected = sum(p.numel() for p in create_model(baseline(modality), name, spec).parameters())
        assert abs(params / expected - 1) < 0.10, f"{family}-{name}: {params} vs {expected}"


@pytest.mark.parametrize("family,modality", PAIRS)
def test_sizes_and_lengths_are_checked(family, modality):
    spec = text_spec(modality)
    entry, size = resolve(family, None, spec)
    assert size == "mini"
    with pytest.raises(UnknownNameError) as error:
        resolve(family, "huge", spec)
    assert str(error.value) == (
        f"Unknown size 'huge' for model {family!r} on {modality} tasks; valid sizes are: {', '.join(entry.sizes)}."
    )
    too_long = dataclasses.replace(spec, seq_len=entry.sizes["mini"].max_len + 1)
    with pytest.raises(PairError, match="exceeds the 128 tokens"):
        resolve(family, "mini", too_long)
    with pytest.raises(PairError, match="needs a fixed sequence length"):
        resolve(family, "mini", dataclasses.replace(spec, seq_len=None))
