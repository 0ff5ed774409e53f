"""Text models of every registered family: training signal, causality, padding, generation, sizes."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

import dataclasses

import re

import pytest
import torch
import torch.nn.functional as F
from timm.models.mlp_mixer import SpatialGatingUnit

from bench.core.config import VariantConfig
from bench.core.errors import PairError, UnknownNameError
from bench.measure.timing import count_flops, head_flops_share
from bench.models import create_model, list_models, model_entries, resolve
from bench.core.spec import TaskSpec
from tasks.mlm import TextFiles
from tasks.seq2seq import Numbers
from tasks.text import IGNORE, token_loss
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
# Transformer's parameter count; test_amlp_adds_tiny_attention counts them. References (the baseline
# built from torch.nn) have their own backbone, tested by the registry-wide tests.
MLP_PAIRS = [(f, m) for f, m in PAIRS
             if not (text_entry(f, m).baseline or text_entry(f, m).reference) and text_entry(f, m).relative_of is None]
# Every pair with every variant it takes ("" is the family's default)
VARIANT_PAIRS = [(f, m, v) for f, m in PAIRS for v in variant_names(text_entry(f, m))]
SEQ2SEQ_VARIANTS = [(f, v) for f, m, v in VARIANT_PAIRS if m == "seq2seq"]


# Learned position tables: the MLP families' TokenStack.pos, RoBERTa's and mBART's
POSITION_TABLE = re.compile(r"(^|\.)(pos|position_embeddings(\.weight)?|embed_positions\.weight)$")


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


@pytest.mark.parametrize("family,modality", PAIRS)
def test_every_position_learns(family, modality):
    """Every position of a full-length batch gets a gradient in each learned position table.
    RoBERTa's table kept a row at the padding index that never learned, so the masked-LM baseline
    had one position without a position embedding of its own."""
    model = build(family, modality).train()
    g = torch.Generator().manual_seed(1)
    src, src_mask = random_batch([16, 16], 16, g)
    tgt, tgt_mask = random_batch([12, 12], 12, g)
    logits = forward(model, modality, src, src_mask, tgt, tgt_mask)
    labels = src if modality == "mlm" else tgt
    F.cross_entropy(logits.flatten(0, 1), labels.flatten()).backward()
    tables = {name: p for name, p in model.named_parameters() if POSITION_TABLE.search(name)}
    for name, table in tables.items():
        learning = (table.grad.reshape(-1, table.shape[-1]).abs().sum(-1) > 0).sum().item()
        used = 12 if "decoder" in name else 16
        assert learning == used, f"{name}: {learning} of the {used} positions used learn"


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


BASELINE_PAIRS = [(f, m) for f, m in PAIRS if text_entry(f, m).baseline]


@pytest.mark.parametrize("family,modality", BASELINE_PAIRS)
def test_baseline_weights_start_at_one_over_sqrt_width(family, modality):
    """Every weight matrix and embedding of the Transformer baselines starts with std 1/sqrt(width).
    At BERT's fixed 0.02 (4.4 times smaller at width 128) attention starts uniform and learns slowly:
    the seq2seq baseline needed four times the MLPs' steps to copy its input (docs/sanity.md)."""
    model = build(family, modality, vocab_size=1000)
    width = 128
    # the masked-LM baseline's token-type vector starts at zero (test_nothing_but_token_and_position_...)
    matrices = {name: p for name, p in model.named_parameters() if p.dim() == 2 and "token_type" not in name}
    assert len(matrices) > 10
    for name, weight in matrices.items():
        std = weight.detach()[weight.detach().abs().sum(-1) > 0].std().item()  # the padding row is zero
        assert 0.85 < std * width**0.5 < 1.15, f"{name} starts at std {std:.4f}, not 1/sqrt({width})"


def test_nothing_but_token_and_position_enters_the_masked_lm_baseline():
    """What enters the baseline's blocks is a token and a position, as in every family and the torch.nn
    reference, with no vector shared by every position. RoBERTa's single token type added one, as
    large as a token's embedding, before the embedding norm: beside sinusoidal positions it cost 0.012
    masked-token accuracy at four times wordnet's budget (docs/baselines.md, "What the 4x gap is")."""
    model = build(baseline("mlm"), "mlm", vocab_size=1000, seq_len=128)
    ids = torch.randint(3, 1000, (64, 128))
    positions = torch.arange(128).expand_as(ids)
    x = model.roberta.embeddings(input_ids=ids, position_ids=positions).detach()  # (B, T, C), after the norm
    shared = x.mean(dim=(0, 1))  # (C,)
    spread = (x - shared).norm(dim=-1).mean()
    assert shared.norm() < 0.25 * spread, f"a vector of norm {shared.norm():.2f} enters every position ({spread:.2f} per token)"


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


# ---------------------------------------------------------------- decoding: incremental, stops at eos, capped


def full_recompute_greedy(model, src, src_mask, steps: int) -> torch.Tensor:
    """The reference: greedy decoding that reruns the decoder over the whole prefix at every step,
    free-running (no stop at eos): (B, steps)."""
    with torch.no_grad():
        memory = model.encode(src, src_mask)
        prefix = torch.full((src.shape[0], 1), BOS)
        for _ in range(steps):
            token = model.decode(prefix, None, memory, src_mask)[:, -1].argmax(-1)  # (B,)
            prefix = torch.cat([prefix, token[:, None]], dim=1)
    return prefix[:, 1:]


def output_layer(model) -> torch.nn.Module:
    """The linear map to the vocabulary, run once per decoding step."""
    return model.mbart.lm_head if hasattr(model, "mbart") else model.head


@pytest.mark.parametrize("family,variant", SEQ2SEQ_VARIANTS)
def test_incremental_decoding_equals_full_recompute(family, variant):
    """generate computes one new position per step from its cache; its tokens are those of the
    full recompute, cut after eos, and each step's logits are the full decoder's at that position."""
    model = away_from_init(build(family, "seq2seq", variant))
    g = torch.Generator().manual_seed(5)
    src, src_mask = random_batch([16, 9, 4, 13, 1, 16], 16, g)
    free = full_recompute_greedy(model, src, src_mask, 12)  # target_len: every position
    eos = int(free[0, 3])  # row 0 stops at step 3 at the latest, the others maybe never
    stopping = build(family, "seq2seq", variant, eos_token_id=eos)
    stopping.load_state_dict(model.state_dict())
    out = stopping.generate(src, src_mask, max_new_tokens=12)
    assert out.dtype == torch.long and out.shape == (6, 12)
    assert torch.equal(out, cut_after_eos(free, eos))
    # each step against the full decoder, teacher-forced on random targets
    tgt, _ = random_batch([12] * 6, 12, g)
    tgt[:, 0] = BOS
    with torch.no_grad():
        memory = model.encode(src, src_mask)
        full = model.decode(tgt, None, memory, src_mask)  # (B, T, V)
        state = model.start_decoding(memory, src_mask)
        steps = torch.stack([model.decode_step(state, tgt[:, t], t) for t in range(12)], dim=1)  # (B, T, V)
    torch.testing.assert_close(steps, full, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("family", SEQ2SEQ)
def test_decoding_ends_when_every_row_has_emitted_eos(family):
    """A model whose head makes eos win decodes one step: eos, then pad."""
    model = build(family, "seq2seq")
    calls = []

    def eos_wins(module, inputs, logits):
        calls.append(logits.shape)
        return logits.index_add(-1, torch.tensor([EOS]), torch.full((*logits.shape[:-1], 1), 1e4))

    output_layer(model).register_forward_hook(eos_wins)
    src, src_mask = random_batch([16, 5, 11], 16, torch.Generator().manual_seed(6))
    out = model.generate(src, src_mask, max_new_tokens=10)
    assert len(calls) == 1, f"the decoder ran {len(calls)} steps"
    assert out.shape == (3, 10)
    assert (out[:, 0] == EOS).all() and (out[:, 1:] == PAD).all()


@pytest.mark.parametrize("family", SEQ2SEQ)
def test_decoding_is_capped(family):
    """generate runs at most max_new_tokens steps (a model that never emits eos runs them all) and
    refuses more than the target length; the task asks for min(target_len, ceil(1.5 S + 10)) new
    tokens, S the longest source of the batch."""
    model = build(family, "seq2seq")
    calls = []
    output_layer(model).register_forward_hook(lambda module, inputs, logits: calls.append(1))
    never_eos = lambda module, inputs, logits: logits.index_fill(-1, torch.tensor([EOS, PAD]), -1e4)  # noqa: E731
    output_layer(model).register_forward_hook(never_eos)
    src, src_mask = random_batch([16, 5], 16, torch.Generator().manual_seed(7))
    out = model.generate(src, src_mask, max_new_tokens=5)
    assert out.shape == (2, 5) and len(calls) == 5 and (out != PAD).all()
    with pytest.raises(ValueError, match="exceeds the model's target length 12"):
        model.generate(src, src_mask, max_new_tokens=13)

    class Recorder(torch.nn.Module):  # a stand-in model: records what the task asks for
        def forward(self, input_ids, attention_mask, decoder_input_ids, decoder_attention_mask):
            return torch.zeros(*decoder_input_ids.shape, 100)

        def generate(self, input_ids, attention_mask, max_new_tokens):
            self.asked = max_new_tokens
            return torch.full((input_ids.shape[0], max_new_tokens), 7)

    task = Numbers()
    spec = text_spec("seq2seq", target_len=64)
    assert (task.decode_factor, task.decode_margin) == (1.5, 10)
    recorder = Recorder()
    for longest, expected in [(1, 12), (4, 16), (35, 63), (36, 64), (60, 64)]:
        ids, mask = random_batch([longest, 1], 60, torch.Generator().manual_seed(8))
        labels = torch.randint(3, 100, (2, 20))
        batch = {"input_ids": ids, "attention_mask": mask, "decoder_input_ids": labels,
                 "decoder_attention_mask": torch.ones_like(labels), "labels": labels, "index": torch.arange(2)}
        outputs = task.eval_outputs(recorder, batch, spec)
        assert recorder.asked == expected, f"longest source {longest}"
        assert outputs["generated"].shape == (2, 64)  # padded to target_len for the gather
        assert (outputs["generated"][:, :expected] == 7).all() and (outputs["generated"][:, expected:] == PAD).all()


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


# ---------------------------------------------------------------- masked LM: only the scored positions reach the head

MLM_FAMILIES = text_families("mlm")


def mlm_batch(generator: torch.Generator) -> dict:
    """A padded MLM batch: ~15% of the real positions scored, one row with none."""
    ids, mask = random_batch([16, 12, 7, 16], 16, generator)
    scored = (torch.rand(ids.shape, generator=generator) < 0.15) & mask.bool()
    scored[0, :3] = True  # at least a few in the first row
    scored[2] = False  # a block with nothing masked
    return {"input_ids": ids, "attention_mask": mask, "labels": torch.where(scored, ids, IGNORE)}


@pytest.mark.parametrize("family", MLM_FAMILIES)
def test_masked_head_scores_like_the_full_projection(family):
    """Projecting only the scored positions gives the full projection's logits there, and MlmTask's
    loss and per-block loss sum, masked count and correct count are those of the full logits."""
    model = away_from_init(build(family, "mlm"))
    batch = mlm_batch(torch.Generator().manual_seed(3))
    ids, mask, labels = batch["input_ids"], batch["attention_mask"], batch["labels"]
    scored = labels != IGNORE
    task = TextFiles()
    with torch.no_grad():
        full = model(ids, mask)  # (B, T, V): callers without a mask get every position
        assert full.shape == (*ids.shape, 100)
        gathered = model(ids, mask, scored)  # (N, V)
        torch.testing.assert_close(gathered, full[scored], atol=1e-5, rtol=1e-5)
        outputs = task.eval_outputs(model, batch, text_spec("mlm"))
    expected_sum = token_loss(full, labels, per_position=True).sum(1)  # (B,)
    torch.testing.assert_close(outputs["loss_sum"], expected_sum, atol=1e-5, rtol=1e-6)
    assert outputs["loss_sum"][2] == 0
    assert torch.equal(outputs["masked"], scored.sum(1))
    assert torch.equal(outputs["correct"], ((full.argmax(-1) == labels) & scored).sum(1))
    for smoothing in (0.0, 0.1):
        expected = token_loss(model(ids, mask), labels, smoothing)
        torch.testing.assert_close(TextFiles(label_smoothing=smoothing).loss(model, batch), expected, atol=1e-6, rtol=1e-6)


@pytest.mark.parametrize("family", MLM_FAMILIES)
def test_flops_count_only_the_masked_head(family):
    """bench.measure.timing counts MlmTask.loss with the head on the scored positions only, and
    head_flops_share is the head's part of that forward."""
    model = build(family, "mlm")
    batch = mlm_batch(torch.Generator().manual_seed(4))
    ids, mask, labels = batch["input_ids"], batch["attention_mask"], batch["labels"]
    task = TextFiles()
    rows = ids.shape[0]
    masked = count_flops(model, batch, task.loss, task.loss)
    def full_loss(m, b):  # the head on every position, as before
        return token_loss(m(b["input_ids"], b["attention_mask"]), b["labels"])

    full = count_flops(model, batch, full_loss, full_loss)
    head_per_position = sum(
        2 * m.in_features * m.out_features for m in model.lm_head.modules() if isinstance(m, torch.nn.Linear)
    )
    n = int((labels != IGNORE).sum())
    assert (full["forward_per_sample"] - masked["forward_per_sample"]) * rows == head_per_position * (ids.numel() - n)
    assert full["train_per_sample"] - masked["train_per_sample"] == pytest.approx(
        3 * head_per_position * (ids.numel() - n) / rows)  # forward + two backward matmuls
    share = head_flops_share(model, batch, task.loss, task.scored_positions(batch))
    assert share == pytest.approx(head_per_position * n / (masked["forward_per_sample"] * rows))
    assert 0 < share < 1
    assert not model.training  # left as it was


@pytest.mark.parametrize("family,modality", PAIRS)
def test_every_layer_norm_and_convolution_has_thread_invariant_gradients(family, modality):
    from bench.models.thread_invariant import THREAD_INVARIANT, ThreadInvariantLayerNorm

    model = build(family, modality)
    norms = [m for m in model.modules() if isinstance(m, torch.nn.LayerNorm)]
    plain = [type(m).__name__ for m in model.modules() if type(m) in THREAD_INVARIANT and not getattr(m, "_fast_norm", False)]
    assert not plain, f"modules whose backward depends on the thread count: {plain}"
    assert all(type(m) is ThreadInvariantLayerNorm for m in norms)
