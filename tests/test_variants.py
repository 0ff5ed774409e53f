"""Variants and relatives on images (text variants run in test_text_models): every variant builds,
trains a step and has the expected parameter count; the papers' initialisations hold; flags that do
not apply are refused with one sentence before any data loads."""

from functools import partial

import pytest
import torch
from timm.layers import GatedMlp
from timm.models.mlp_mixer import Affine, MixerBlock, MlpMixer, ResBlock, SpatialGatingBlock, SpatialGatingUnit

from bench import run as runner
from bench.core.config import DataConfig, VariantConfig
from bench.models import create_model, list_models, model_entries
from bench.models.image import mixer_kwargs
from bench.models.mixer import TokensFirstMixerBlock
from bench.models.parts import GatingUnit
from bench.core.spec import TaskSpec
from tasks import create_task
from tests.model_checks import assert_every_parameter_learns, variant_names

pytestmark = pytest.mark.usefixtures("one_thread")

DIGITS = create_task("digits").spec(DataConfig())  # 8x8 images: mini sizes have 16 tokens
IMAGE_ENTRIES = [e for f in list_models() for e in model_entries(f) if "image" in e.modalities]
IMAGE_VARIANTS = [(e.family, v) for e in IMAGE_ENTRIES for v in variant_names(e)]


def count(model) -> int:
    return sum(p.numel() for p in model.parameters())


def build(family, variant="", spec=DIGITS, size="mini"):
    torch.manual_seed(0)
    return create_model(family, size, spec, VariantConfig.parse(variant))


@pytest.mark.parametrize("family,variant", IMAGE_VARIANTS)
def test_every_variant_trains_a_step(family, variant):
    model = build(family, variant)
    images, labels = torch.randn(4, *DIGITS.image_size), torch.tensor([0, 1, 2, 3])
    assert_every_parameter_learns(model, images, labels, f"{family} [{variant}]")


def parameter_change(variant: str, dim: int, tokens: int, depth: int, kernel: int, mlp_ratio: float) -> int:
    """Parameters a ResMLP / gMLP variant adds to its default: `kernel` is 9 on images (3x3), 3 on text."""
    if variant.startswith("token-mixing="):
        linear = tokens * tokens + tokens
        hidden = int(mlp_ratio * tokens)
        per_block = {
            "linear": linear,
            "mlp": tokens * hidden + hidden + hidden * tokens + tokens,
            "conv3x3": kernel * dim * dim + dim,
            "dwconv": kernel * dim + dim + dim * dim + dim,  # depthwise, then 1x1
        }[variant.partition("=")[2]]
        return depth * (per_block - linear)
    if variant == "norm=none":
        return -(2 * depth + 1) * 2 * dim  # two norms a block and the final one, each alpha and beta
    return 0  # the other norms have two vectors as Affine does; inits change no shape


@pytest.mark.parametrize("family,variant", IMAGE_VARIANTS)
def test_every_image_variant_has_the_expected_parameter_count(family, variant):
    size = model_entries(family)[0].sizes["mini"]
    expected = count(build(family)) + parameter_change(variant, size.dim, 16, size.depth, 9, size.mlp_ratio)
    assert count(build(family, variant)) == expected


def text_spec(modality):
    return TaskSpec(f"tiny-{modality}", modality, "loss", False, vocab_size=100, seq_len=16, target_len=12,
                    pad_token_id=0, bos_token_id=1, eos_token_id=2)


@pytest.mark.parametrize("variant", variant_names(next(e for e in model_entries("resmlp") if "mlm" in e.modalities)))
def test_every_text_variant_has_the_expected_parameter_count(variant):
    spec = text_spec("mlm")
    size = next(e for e in model_entries("resmlp") if "mlm" in e.modalities).sizes["mini"]
    expected = count(build("resmlp", "", spec)) + parameter_change(variant, size.dim, 16, size.layers, 3, size.mlp_ratio)
    assert count(build("resmlp", variant, spec)) == expected


@pytest.mark.parametrize("family", ["gmlp", "amlp"])
def test_paper_gate_init_is_identity_and_default_is_not(family):
    """The paper's init makes the gate 1: the unit returns its first half unchanged at step 0."""
    for variant, identity in (("", True), ("sgu-init=paper", True), ("sgu-init=default", False)):
        units = [m for m in build(family, variant).modules() if isinstance(m, GatingUnit)]
        assert units
        for unit in units:
            x = torch.randn(2, unit.proj.in_features, 2 * unit.norm.normalized_shape[0])  # (B, N, F)
            first_half = x.chunk(2, dim=-1)[0]
            assert torch.allclose(unit(x), first_half, atol=1e-3, rtol=1e-3) == identity, (variant, unit)


@pytest.mark.parametrize("spec", [DIGITS, text_spec("mlm"), text_spec("seq2seq")], ids=lambda s: s.modality)
def test_affine_is_an_identity_at_initialisation(spec):
    """ResMLP's Aff in place of normalisation starts at alpha = 1, beta = 0 (Touvron et al., 2021)."""
    affines = [m for m in build("resmlp", "", spec).modules() if isinstance(m, Affine)]
    assert affines
    for aff in affines:
        x = torch.randn(2, 5, aff.alpha.shape[-1])
        assert torch.equal(aff.alpha, torch.ones_like(aff.alpha)) and torch.equal(aff.beta, torch.zeros_like(aff.beta))
        assert torch.equal(aff(x), x)


def test_layer_scale_init_sets_every_layer_scale():
    for spec in (DIGITS, text_spec("mlm")):
        model = build("resmlp", "layer-scale-init=0.5", spec)
        scales = [p for name, p in model.named_parameters() if name.rsplit(".", 1)[-1] in ("ls1", "ls2")]
        assert scales and all(torch.equal(p, torch.full_like(p, 0.5)) for p in scales)


def test_convmixer_is_timms_class():
    from timm.models.convmixer import ConvMixer

    assert isinstance(build("convmixer"), ConvMixer)


@pytest.mark.parametrize(
    "argv,sentence",
    [
        (["--model", "resmlp", "--sgu-init", "paper"],
         "--sgu-init does not apply to model 'resmlp'; it takes --norm, --token-mixing, --layer-scale-init."),
        (["--model", "vit", "--norm", "layernorm"], "--norm does not apply to model 'vit'; it takes no variant flags."),
        (["--task", "numbers", "--model", "resmlp", "--norm", "batchnorm"],
         "--norm batchnorm does not apply to model 'resmlp' on seq2seq tasks; valid values there are: "
         "affine, layernorm, none."),
        (["--model", "resmlp", "--layer-scale-init", "-1"], "--layer-scale-init must be positive, got -1.0."),
        (["--task", "numbers", "--model", "convmixer"],
         "Model 'convmixer' cannot run task 'numbers': it is built for image tasks, and 'numbers' is a seq2seq task."),
        (["--task", "wordnet", "--model", "ffvit"],
         "Model 'ffvit' cannot run task 'wordnet': it is built for image tasks, and 'wordnet' is an mlm task."),
    ],
    ids=["flag-of-another-family", "family-without-variants", "batchnorm-on-text", "negative-layer-scale",
         "convmixer-on-text", "ffvit-on-text"],
)
def test_inapplicable_variant_is_one_sentence_and_exit_2(tmp_path, capsys, argv, sentence):
    assert runner.main([*argv, "--output-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err == f"error: {sentence}\n"
    assert not list(tmp_path.iterdir()), "nothing written"


def test_bad_variant_value_is_refused_by_argparse(capsys):
    with pytest.raises(SystemExit) as stop:
        runner.main(["--token-mixing", "conv5x5"])
    assert stop.value.code == 2
    assert "argument --token-mixing: invalid choice: 'conv5x5'" in capsys.readouterr().err


@pytest.mark.slow
def test_sweep_runs_each_listed_variant_under_its_own_name(tmp_path, capsys):
    from bench.sweeps.grid import load_grid
    from bench.sweeps.plan import plan
    from tasks import create_task

    (tmp_path / "base.toml").write_text('[args]\nepochs = 2\n[task_args.digits]\nlr = 0.002\nbatch-size = 8\n')
    (tmp_path / "grid.toml").write_text(
        f'output_dir = "{tmp_path / "out"}"\nargs_from = "base.toml"\ntasks = ["digits", "numbers"]\n'
        'models = ["resmlp", "vit"]\nseeds = [0]\n[task_args.digits]\nbatch-size = 16\n'
        '[variants]\nresmlp = ["", "norm=batchnorm", "layer-scale-init=1"]\n'
    )
    runs = plan(load_grid(tmp_path / "grid.toml", create_task), create_task)
    assert [r["name"] for r in runs] == [
        "digits__resmlp-mini__fp32__seed0",
        "digits__resmlp-mini__norm=batchnorm__fp32__seed0",
        "digits__resmlp-mini__layer-scale-init=1__fp32__seed0",
        "digits__vit-mini__fp32__seed0",
        "numbers__resmlp-mini__fp32__seed0",
        "numbers__resmlp-mini__layer-scale-init=1__fp32__seed0",
    ]
    assert runs[1]["argv"][-2:] == ["--norm", "batchnorm"]
    # [args] and [task_args] come from base.toml; the grid's own batch size wins
    assert runs[0]["argv"][10:] == ["--epochs", "2", "--lr", "0.002", "--batch-size", "16"]
    assert "skip: --norm batchnorm does not apply to model 'resmlp' on seq2seq tasks" in capsys.readouterr().out


@pytest.mark.slow
def test_a_variant_run_records_its_variant(tmp_path):
    from bench.core.results import load_result

    argv = ["--task", "digits", "--model", "resmlp", "--norm", "none", "--max-steps", "2", "--batch-size", "16",
            "--max-eval-samples", "32", "--no-measure", "--checkpoint-every", "none", "--output-dir", str(tmp_path)]
    assert runner.main(argv) == 0
    result = load_result(tmp_path / "digits__resmlp-mini__norm=none__fp32__seed0.json")
    assert result["variant"] == "norm=none"
    assert result["config"]["variant"] == {"norm": "none", "token_mixing": None, "sgu_init": None,
                                           "layer_scale_init": None}


def test_ablation_sweep_covers_every_variant_on_both_tasks():
    from pathlib import Path

    from bench.sweeps.grid import load_grid
    from bench.sweeps.plan import plan
    from tasks import create_task

    grid = load_grid(Path(__file__).resolve().parent.parent / "sweeps" / "ablations.toml", create_task)
    names = {run["name"] for run in plan(grid, create_task)}
    for family, variants in grid["variants"].items():
        for variant in variants:
            suffix = f"__{variant}" if variant else ""
            for seed in (0, 1, 2):
                assert f"digits__{family}-mini{suffix}__fp32__seed{seed}" in names
                if variant != "norm=batchnorm":  # image-only
                    assert f"wordnet__{family}-mini{suffix}__fp32__seed{seed}" in names


# The plain timm models the families were before their parts became injectable.
PLAIN_TIMM = {
    "gmlp": lambda size: dict(block_layer=SpatialGatingBlock, mlp_layer=GatedMlp),
    "resmlp": lambda size: dict(block_layer=partial(ResBlock, init_values=size.init_values), norm_layer=Affine),
    "mixer": lambda size: dict(block_layer=MixerBlock),
}


@pytest.mark.parametrize("family", sorted(PLAIN_TIMM))
def test_default_model_has_the_plain_timm_weights(family):
    """Injected parts draw no extra random numbers: seed for seed, a model without variants has
    exactly the weights of timm's MlpMixer with the family's own blocks."""
    size = model_entries(family)[0].sizes["mini"]
    torch.manual_seed(0)
    plain = MlpMixer(num_blocks=size.depth, **PLAIN_TIMM[family](size), **mixer_kwargs(DIGITS, size))
    ours = build(family).state_dict()
    assert list(ours) == list(plain.state_dict())
    for name, value in plain.state_dict().items():
        assert torch.equal(ours[name], value), name


@pytest.mark.parametrize("theirs, ours, width", [
    (SpatialGatingUnit, GatingUnit, 64),  # gMLP's gate
    (MixerBlock, TokensFirstMixerBlock, 32),  # Mixer's block, its token MLP 16 -> 16 -> 16
])
def test_tokens_first_parts_compute_timms_transposing_parts(theirs, ours, width):
    """The gate and the Mixer block mix tokens as batched matmuls on (B, N, C)
    (parts.linear_over_tokens) where timm's transpose to (B, C, N) and back: the same output and
    gradients, up to the rounding of sums taken in another order (within a millionth of the
    largest value)."""

    def assert_same(mine, reference, name):
        torch.testing.assert_close(mine, reference, rtol=1e-5, atol=1e-6 * reference.abs().max().item(), msg=name)

    torch.manual_seed(0)
    reference, part = theirs(width, 16), ours(width, 16)
    for weight in reference.parameters():  # far from the identity the gate starts as
        torch.nn.init.normal_(weight)
    part.load_state_dict(reference.state_dict())
    x = torch.randn(4, 16, width)
    inputs = [x.clone().requires_grad_() for _ in range(2)]
    outputs = [module(inp) for module, inp in zip((reference, part), inputs)]
    assert_same(outputs[1], outputs[0], "output")
    for out in outputs:
        out.square().sum().backward()
    assert_same(inputs[1].grad, inputs[0].grad, "input gradient")
    for (name, expected), mine in zip(reference.named_parameters(), part.parameters()):
        assert_same(mine.grad, expected.grad, name)
