"""Training recipes (bench/core/recipes.py): the cited values, stochastic depth in every image family,
Mixup / CutMix with soft targets, the training and evaluation transforms, EMA, resume, the learning
rate's scaling with the global batch, and two steps of every image family under every recipe."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from bench import run as runner
from bench.core.config import DataConfig, OptimConfig, RecipeConfig, VariantConfig
from bench.models import list_models, model_entries, resolve
from bench.core.recipes import cited_values, get_recipe, list_recipes, run_recipe
from bench.core.results import load_result
from bench.core.spec import TaskSpec
from tasks import create_task

ROOT = Path(__file__).resolve().parent.parent
IMAGE_224 = TaskSpec("imagenet", "image", "top1", image_size=(3, 224, 224), num_classes=10)
IMAGE_FAMILIES = [f for f in list_models() if any("image" in e.modalities for e in model_entries(f))]
PAPER_SIZE = {"gmlp": "s", "amlp": "s", "resmlp": "s24", "mixer": "b16", "vit": "s", "ffvit": "b", "convmixer": "768-32",
              "resnet": "s"}

# The values of deit and paper, each with the place it must cite: what was checked against the paper
# (or its code, or its author) and found there, corrected where it said otherwise. UNVERIFIED: not found.
T9, MAIN = "DeiT 2012.12877 Table 9", "DeiT's main.py as released (facebookresearch/deit, first commit 1d38fa4)"
RESMLP, MIXER_PRE, MIXER_T4 = "ResMLP 2105.03404", "MLP-Mixer 2105.01601 section 3 (Pre-training)", "Appendix B Table 4"
AUTHOR = "facebookresearch/deit issue #106"
CITED = [
    ("deit", "gmlp", "s", "optimizer", "adamw", T9),
    ("deit", "gmlp", "s", "lr", 5e-4, T9 + " (0.0005 x batchsize / 512"),
    ("deit", "gmlp", "s", "lr_batch", 512, "section 6: 512 as the base value"),
    ("deit", "gmlp", "s", "betas", (0.9, 0.999), MAIN + " (--opt-betas None"),
    ("deit", "gmlp", "s", "weight_decay", 0.05, T9),
    ("deit", "gmlp", "s", "epochs", 300.0, T9),
    ("deit", "gmlp", "s", "warmup_epochs", 5.0, T9),
    ("deit", "gmlp", "s", "schedule", "cosine", T9),
    ("deit", "gmlp", "s", "label_smoothing", 0.1, T9),
    ("deit", "gmlp", "s", "drop_path", 0.1, T9),
    ("deit", "gmlp", "s", "repeated_aug", 3, "section 6, training time: 3 repetitions"),
    ("deit", "gmlp", "s", "rand_augment", "rand-m9-mstd0.5-inc1", "Rand Augment 9/0.5; the string: " + MAIN),
    ("deit", "gmlp", "s", "mixup", 0.8, T9),
    ("deit", "gmlp", "s", "cutmix", 1.0, T9),
    ("deit", "gmlp", "s", "mix_prob", 1.0, MAIN + " (--mixup-prob)"),
    ("deit", "gmlp", "s", "switch_prob", 0.5, MAIN + " (--mixup-switch-prob)"),
    ("deit", "gmlp", "s", "color_jitter", 0.4, MAIN + " (--color-jitter 0.4"),
    ("deit", "gmlp", "s", "re_prob", 0.25, T9),
    ("deit", "gmlp", "s", "ema_decay", None, "DeiT 2012.12877 Table 8 (the default configuration"),
    ("deit", "gmlp", "s", "grad_clip", None, T9),
    ("deit", "gmlp", "s", "batch_size", 1024, T9),
    ("paper", "vit", "b", "lr", 5e-4, T9),
    ("paper", "vit", "ti", "drop_path", 0.1, T9),
    ("paper", "gmlp", "ti", "drop_path", 0.0, "UNVERIFIED, check: gMLP 2105.08050 Table 1"),
    ("paper", "gmlp", "s", "drop_path", 0.05, "UNVERIFIED, check: gMLP 2105.08050 Table 1"),
    ("paper", "gmlp", "b", "drop_path", 0.2, "UNVERIFIED, check: gMLP 2105.08050 Table 1"),
    ("paper", "gmlp", "s", "weight_decay", 0.05, "UNVERIFIED, check: gMLP 2105.08050 follows DeiT here"),
    ("paper", "resmlp", "s12", "optimizer", "lamb", RESMLP + " section 3.1 (Lamb optimizer)"),
    ("paper", "resmlp", "s24", "lr", 5e-3, RESMLP + " section 3.1 (learning rate 5e-3"),
    ("paper", "resmlp", "s24", "lr_batch", 512, "DeiT's main.py at 2f76ec6 (May 2021): lr x global batch / 512"),
    ("paper", "resmlp", "s24", "weight_decay", 0.2, RESMLP + " section 3.1 (weight decay 0.2)"),
    ("paper", "resmlp", "b24", "epochs", 400.0, RESMLP + " Table 3 (by default we train during 400 epochs)"),
    ("paper", "resmlp", "s12", "re_prob", 0.25, RESMLP + " Table D.1"),
    ("paper", "resmlp", "s12", "drop_path", 0.05, AUTHOR + " (ResMLP's first author): stochastic depth 0.05"),
    ("paper", "resmlp", "s24", "drop_path", 0.1, "UNVERIFIED, check: " + RESMLP + " gives no rate per size"),
    ("paper", "resmlp", "s12", "batch_size", 2048, AUTHOR + " (ResMLP's first author): batch size 2048"),
    ("paper", "resmlp", "s12", "mixup", 0.8, RESMLP + " section 3.1 (the rest follows DeiT's defaults)"),
    ("paper", "mixer", "b16", "optimizer", "adamw", "UNVERIFIED, check: " + MIXER_PRE + ": Adam with weight decay"),
    ("paper", "mixer", "b16", "betas", (0.9, 0.999), MIXER_PRE + ": Adam beta1 0.9, beta2 0.999"),
    ("paper", "mixer", "b16", "lr", 1e-3, MIXER_T4),
    ("paper", "mixer", "b16", "batch_size", 4096, MIXER_PRE + ": batch size 4096"),
    ("paper", "mixer", "b16", "warmup_epochs", 10000 * 4096 / 1281167, MIXER_PRE + ": linear warm-up of 10k steps"),
    ("paper", "mixer", "b16", "weight_decay", 0.1, MIXER_T4),
    ("paper", "mixer", "b16", "grad_clip", 1.0, MIXER_PRE + ": gradient clipping at global norm 1"),
    ("paper", "mixer", "b16", "mixup", 0.5, MIXER_T4),
    ("paper", "mixer", "b16", "cutmix", 0.0, MIXER_PRE + " lists RandAugment, mixup, dropout and stochastic depth"),
    ("paper", "mixer", "b16", "rand_augment", "rand-m15-n2-mmax15", MIXER_T4 + " (Mixer-B on ImageNet) and Appendix B"),
    ("paper", "mixer", "s16", "label_smoothing", 0.0, MIXER_PRE + " lists RandAugment, mixup, dropout and stochastic"),
    ("paper", "mixer", "b16", "drop_path", 0.1, MIXER_T4),
    ("paper", "mixer", "b16", "epochs", 300.0, MIXER_T4),
]


@pytest.mark.parametrize("recipe,family,size,field,value,source", CITED)
def test_deit_and_paper_values_are_the_cited_ones(recipe, family, size, field, value, source):
    cited = cited_values(recipe, family, size)[field]
    assert cited.value == value
    assert source in cited.source


# The ImageNet-1k top-1 each paper reports for the paper recipe, with the place it must cite.
TOP1 = [
    ("vit", "ti", 72.2, "DeiT 2012.12877 Table 5 (DeiT-Ti, 224 px, no distillation"),
    ("vit", "s", 79.8, "DeiT 2012.12877 Table 5 (DeiT-S, 224 px, no distillation"),
    ("vit", "b", 81.8, "DeiT 2012.12877 Table 5 (DeiT-B, 224 px, no distillation"),
    ("resmlp", "s12", 76.6, RESMLP + " Table 1 and Table 3 (baseline models, 224 px, 16 x 16 patches"),
    ("resmlp", "s24", 79.4, RESMLP + " Table 1 and Table 3"),
    ("resmlp", "b24", 81.0, RESMLP + " Table 1 and Table 3"),
    ("mixer", "b16", 76.4, "MLP-Mixer 2105.01601 section 3.1 and Table 3"),
    ("mixer", "s16", None, None),
    ("gmlp", "ti", 72.3, "UNVERIFIED, check: gMLP 2105.08050 Table 2"),
    ("gmlp", "s", 79.6, "timm (huggingface/pytorch-image-models) README, What's New June 23, 2021 (commit 20a2be14): "
                        "'gmlp_s16_224 trained to 79.6 top-1, matching paper'"),
    ("gmlp", "b", 81.6, "UNVERIFIED, check: gMLP 2105.08050 Table 2"),
]


@pytest.mark.parametrize("family,size,value,source", TOP1)
def test_paper_top1_figures_are_the_cited_ones(family, size, value, source):
    top1 = get_recipe("paper").top1(family, size)
    if value is None:
        assert top1 is None
        return
    assert top1.value == value
    assert source in top1.source


@pytest.mark.parametrize("recipe", ["deit", "paper"])
def test_every_value_of_deit_and_paper_names_its_source(recipe):
    for family in IMAGE_FAMILIES:
        for size in [PAPER_SIZE[family], "mini"]:
            for field, cited in cited_values(recipe, family, size).items():
                assert any(ref in cited.source for ref in ("2012.12877", "2105.", "deit", "DeiT")), (family, field)


@pytest.mark.parametrize("recipe", ["paper", "deit", "plain"])
@pytest.mark.parametrize("family", IMAGE_FAMILIES)
def test_stochastic_depth_rises_linearly_over_the_blocks(family, recipe):
    from timm.layers import DropPath, calculate_drop_path_rates

    entry, size = resolve(family, PAPER_SIZE[family], IMAGE_224)
    task = create_task("imagenet")
    _, resolved, record = run_recipe(OptimConfig(), RecipeConfig(recipe=recipe), task, "image", family, size, 1,
                                     entry.stochastic_depth)
    with torch.device("meta"):
        model = entry.build(IMAGE_224, entry.sizes[size], VariantConfig(),
                            **({"drop_path_rate": resolved.drop_path} if entry.stochastic_depth else {}))
    drops = [m for m in model.modules() if isinstance(m, DropPath)]
    if recipe == "plain" or not entry.stochastic_depth or resolved.drop_path == 0:
        assert drops == []
        if not entry.stochastic_depth and recipe != "plain":
            assert record["values"]["drop_path"] == 0.0 and "no stochastic depth" in record["sources"]["drop_path"]
        return
    blocks = [m for m in model.modules() if hasattr(m, "drop_path") or hasattr(m, "drop_path1")]
    assert len(blocks) == getattr(entry.sizes[size], "blocks", entry.sizes[size].depth)  # a ResNet's: over its stages
    expected = calculate_drop_path_rates(resolved.drop_path, len(blocks))
    rates = []
    for block in blocks:
        path = block.drop_path if hasattr(block, "drop_path") else block.drop_path1  # None in a ResNet: no rate
        rates.append(path.drop_prob if isinstance(path, DropPath) else 0.0)
    assert rates == pytest.approx(expected)
    assert rates[-1] == pytest.approx(resolved.drop_path) and rates[0] == 0.0


def _image_task(**overrides):
    task = create_task("imagenet")
    _, recipe, _ = run_recipe(OptimConfig(), RecipeConfig(**overrides), task, "image", "vit", "mini", 1)
    return create_task("imagenet", label_smoothing=recipe.label_smoothing, recipe=recipe), recipe


def test_mixup_gives_soft_targets_and_the_loss_smooths_once():
    from timm.data import Mixup
    from timm.loss import SoftTargetCrossEntropy

    task, recipe = _image_task(recipe="deit")
    assert recipe.label_smoothing == 0.1
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 8 * 8, 10))
    model.get_classifier = lambda: model[1]
    images, labels = torch.randn(8, 3, 8, 8), torch.arange(8) % 10
    np.random.seed(0)
    torch.manual_seed(0)
    loss = task.loss(model, (images.clone(), labels))  # timm mixes the batch in place

    np.random.seed(0)
    torch.manual_seed(0)
    mix = Mixup(mixup_alpha=0.8, cutmix_alpha=1.0, prob=1.0, switch_prob=0.5, label_smoothing=0.1, num_classes=10)
    mixed, targets = mix(images.clone(), labels)
    assert targets.shape == (8, 10)
    assert torch.allclose(targets.sum(dim=1), torch.ones(8))
    assert targets.min().item() == pytest.approx(0.1 / 10)  # smoothed once, in the targets
    assert loss.item() == pytest.approx(SoftTargetCrossEntropy()(model(mixed), targets).item())

    model.eval()  # evaluation scores the true labels, unmixed
    plain = torch.nn.functional.cross_entropy(model(images), labels, label_smoothing=0.1)
    assert task.loss(model, (images, labels)).item() == pytest.approx(plain.item())


def test_augmentation_is_in_the_training_transform_only():
    from timm.data.auto_augment import RandAugment
    from timm.data.random_erasing import RandomErasing

    from tasks.image import image_transform

    spec = TaskSpec("imagenet", "image", "top1", image_size=(3, 224, 224), num_classes=10)
    evaluation = repr(image_transform(spec, False))
    for name in list_recipes():
        _, recipe = _image_task(recipe=name)
        train = image_transform(spec, True, recipe).transforms
        kinds = {type(t) for t in train}
        assert (RandAugment in kinds) == (recipe.rand_augment is not None), name
        assert (RandomErasing in kinds) == (recipe.re_prob > 0), name
        assert repr(image_transform(spec, False, recipe)) == evaluation
        assert all(type(t) not in (RandAugment, RandomErasing) for t in image_transform(spec, False).transforms)


FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")


@pytest.mark.skipif(not FASHION_MNIST.is_dir(), reason="needs Debian's dataset-fashion-mnist")
@pytest.mark.parametrize("name", list_recipes())
def test_fashion_mnist_augments_its_training_images_under_every_recipe_but_suite(name):
    from timm.data.auto_augment import RandAugment
    from timm.data.random_erasing import RandomErasing
    from timm.data.transforms import RandomResizedCropAndInterpolation
    from torch.utils.data import TensorDataset
    from torchvision.transforms import RandomCrop, RandomHorizontalFlip

    from tasks.image import GrayImages

    plain = create_task("fashion-mnist")
    _, recipe, _ = run_recipe(OptimConfig(), RecipeConfig(recipe=name), plain, "image", "vit", "mini", 1)
    task = create_task("fashion-mnist", label_smoothing=recipe.label_smoothing, recipe=recipe, recipe_name=name)
    data_cfg = DataConfig(eval_split="validation", max_train_samples=16, score_train=True)
    data = task.load(data_cfg, seed=0)
    tensors = plain.load(data_cfg, seed=0)
    train, base = data.train.dataset.dataset, tensors.train.dataset.dataset  # Subset(Subset(images))
    assert data.train.indices == tensors.train.indices and data.train.dataset.indices == tensors.train.dataset.indices
    assert all(torch.equal(a, b) for a, b in zip(data.eval[0], tensors.eval[0])), "evaluation: the same tensors"
    # --score-train scores the images it trains on, unaugmented: the tensors, whatever the recipe
    scored = data.train_scored
    assert (scored.indices, scored.dataset.indices) == (data.train.indices, data.train.dataset.indices)
    assert all(torch.equal(a, b) for i in (0, 7) for a, b in zip(scored[i], tensors.train[i]))
    if name == "suite":
        assert isinstance(train, TensorDataset) and all(torch.equal(a, b) for a, b in zip(train[3], base[3]))
        return
    assert isinstance(train, GrayImages) and task.check_recipe(OptimConfig()) is None
    kinds = {type(t) for t in train.transform.transforms}
    # 28 px: a random-resized crop, or ResNet's CIFAR-10 pad-and-crop where the recipe crops small images so
    crops = {RandomResizedCropAndInterpolation, RandomCrop} & kinds
    assert crops == {RandomCrop if 28 < recipe.pad_crop_below else RandomResizedCropAndInterpolation}, crops
    assert RandomHorizontalFlip in kinds
    assert (RandAugment in kinds) == (recipe.rand_augment is not None)
    assert (RandomErasing in kinds) == (recipe.re_prob > 0)
    image, label = data.train[0]
    assert image.shape == (1, 28, 28) and image.dtype == torch.float32 and label == tensors.train[0][1]
    # the bytes it augments are the image the tensors hold, normalised the same way
    normalise = train.transform.transforms[-2 if recipe.re_prob else -1]
    held = torch.from_numpy(train.images[5]).float().div(255)[None]
    assert torch.allclose(normalise(held), base[5][0], atol=1e-6)


DIGITS = ["--task", "digits", "--model", "vit", "--batch-size", "16", "--max-train-samples", "64",
          "--max-eval-samples", "32", "--no-measure", "--mixup", "0.8", "--cutmix", "1.0", "--repeated-aug", "3",
          "--ema-decay", "0.9"]
NAME = "digits__vit-mini__fp32__seed0"


def test_score_train_records_the_metrics_of_the_training_images_it_was_asked_for(tmp_path, one_thread):
    # a training set of 16 images, trained on for 40 steps: scored apart from the held-out images, it shows the gap
    argv = ["--task", "digits", "--model", "vit", "--batch-size", "16", "--max-train-samples", "16", "--lr", "0.003",
            "--max-steps", "40", "--no-measure", "--checkpoint-every", "none"]
    assert runner.main([*argv, "--score-train", "--output-dir", str(tmp_path / "scored")]) == 0
    assert runner.main([*argv, "--output-dir", str(tmp_path / "not")]) == 0
    scored, unscored = (load_result(tmp_path / d / f"{NAME}.json") for d in ("scored", "not"))
    assert "scored" not in unscored["train"] and scored["metrics"] == unscored["metrics"], "scoring trains nothing"
    train = scored["train"]["scored"]
    assert train["samples"] == 16 and set(train) == {*scored["metrics"], "samples"} - {"eval_samples"}
    assert train["top1"] > scored["metrics"]["top1"] + 0.2, (train, scored["metrics"])


def test_ema_weights_are_evaluated_saved_and_checkpointed(tmp_path, one_thread):
    assert runner.main([*DIGITS, "--max-steps", "4", "--save-model", "--output-dir", str(tmp_path)]) == 0
    result = load_result(tmp_path / f"{NAME}.json")
    assert result["recipe"]["values"]["ema_decay"] == 0.9 and "ema_decay" in result["recipe"]["overrides"]
    final = tmp_path / "checkpoints" / NAME / "step-00000004"
    trained = load_file(final / "model.safetensors")
    ema = torch.load(final / "custom_checkpoint_0.pkl", weights_only=True)  # the registered ModelEmaV3
    saved = load_file(tmp_path / f"{NAME}.safetensors")
    for key, value in saved.items():
        assert torch.equal(value, ema[f"module.{key}"]), key
    assert any(not torch.equal(trained[k], saved[k]) for k in saved), "the EMA weights differ from the trained ones"

    from bench.models import load_saved

    model = load_saved(tmp_path / f"{NAME}.model.json")  # the evaluated weights: scoring them again agrees
    task = create_task("digits")
    data = task.load(DataConfig(max_eval_samples=32), 0)
    images, labels = next(iter(torch.utils.data.DataLoader(data.eval, batch_size=32)))
    with torch.inference_mode():
        top1 = (model(images).argmax(-1) == labels).float().mean().item()
    assert top1 == pytest.approx(result["metrics"]["top1"])


def test_resume_with_mixup_repeated_augmentation_and_ema_matches_a_whole_run(tmp_path, one_thread):
    whole, resumed = tmp_path / "whole", tmp_path / "resumed"
    run = [*DIGITS, "--max-steps", "7", "--checkpoint-every", "3"]
    assert runner.main([*run, "--output-dir", str(whole)]) == 0
    # step 6 is mid-epoch (4 batches an epoch): resume from a copy of it
    shutil.copytree(whole / "checkpoints" / NAME / "step-00000006", resumed / "checkpoints" / NAME / "step-00000006")
    assert runner.main([*run, "--output-dir", str(resumed), "--resume"]) == 0
    a, b = load_result(whole / f"{NAME}.json"), load_result(resumed / f"{NAME}.json")
    assert b["train"]["resumed_from_step"] == 6
    assert a["metrics"] == b["metrics"] and a["train"]["final_loss"] == b["train"]["final_loss"]
    for kind in ("model.safetensors",):
        x, y = (load_file(d / "checkpoints" / NAME / "step-00000007" / kind) for d in (whole, resumed))
        assert all(torch.equal(x[k], y[k]) for k in x)
    x, y = (torch.load(d / "checkpoints" / NAME / "step-00000007" / "custom_checkpoint_0.pkl", weights_only=True)
            for d in (whole, resumed))
    assert all(torch.equal(x[k], y[k]) for k in x), "the EMA weights too"


def test_image_values_are_refused_on_text_and_augmentation_on_tensor_images(capsys):
    assert runner.main(["--task", "wordnet", "--model", "gmlp", "--mixup", "0.8", "--output-dir", "/nonexistent"]) == 2
    assert capsys.readouterr().err.strip() == (
        "error: --mixup is an image-only recipe value; --task wordnet is a mlm task, drop it.")
    assert runner.main(["--task", "digits", "--model", "gmlp", "--recipe", "deit", "--output-dir", "/nonexistent"]) == 2
    assert capsys.readouterr().err.strip() == (
        "error: --task digits holds its images as tensors, which RandAugment and random erasing cannot transform; "
        "pass --rand-augment off --re-prob 0, or use a folder task (imagefolder).")
    assert runner.main(["--task", "digits", "--model", "gmlp", "--recipe", "nope"]) == 2
    assert capsys.readouterr().err.strip() == (
        "error: Unknown recipe 'nope'; valid recipes are: deit, paper, plain, suite.")


def jpeg_folder(root: Path, per_class: int = 4) -> Path:
    from PIL import Image

    rng = np.random.default_rng(0)
    for split in ("train", "val"):
        for label in ("a", "b"):
            folder = root / split / label
            folder.mkdir(parents=True)
            for i in range(per_class):
                pixels = rng.integers(0, 255, (224, 224, 3), dtype=np.uint8)
                Image.fromarray(pixels).save(folder / f"{i}.jpg")
    return root


@pytest.mark.slow
@pytest.mark.parametrize("recipe", ["suite", "plain", "deit", "paper"])
def test_two_steps_of_every_image_family_at_224_px(tmp_path, recipe, one_thread, capsys):
    data = jpeg_folder(tmp_path / "data")
    for family in IMAGE_FAMILIES:
        out = tmp_path / family
        args = ["--task", "imagenet", "--model", family, "--size", "mini", "--data-dir", str(data),
                "--recipe", recipe, "--batch-size", "4", "--max-steps", "2", "--no-measure", "--output-dir", str(out)]
        if recipe in ("deit", "paper"):
            args += ["--repeated-aug", "1"]  # DeiT's 3 repeats of 8 images leave an epoch of one batch
        assert runner.main(args) == 0, family
        result = load_result(next(out.glob("imagenet__*.json")))
        assert result["status"] == "ok" and result["train"]["steps"] == 2
        assert result["recipe"]["name"] == recipe == result["config"]["recipe"]["recipe"]
        assert f"Recipe {recipe}: global batch 4 (1 process x 4 x 1 accumulation)" in capsys.readouterr().out


@pytest.mark.slow
def test_learning_rate_scales_with_two_processes(tmp_path):
    env = {**os.environ, "ACCELERATE_USE_CPU": "1", "OMP_NUM_THREADS": "1"}
    out = subprocess.run(
        [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
         "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
         "bench/run.py", "--task", "digits", "--model", "gmlp", "--recipe", "deit", "--rand-augment", "off",
         "--re-prob", "0", "--batch-size", "8", "--grad-accum", "2", "--max-steps", "1", "--no-measure",
         "--output-dir", str(tmp_path)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert ("Recipe deit: global batch 32 (2 processes x 8 x 2 accumulation), learning rate 3.125e-05 "
            "= 0.0005 x 32 / 512, adamw, 300 epochs.") in out.stdout
    result = load_result(tmp_path / "digits__gmlp-mini__fp32__seed0.json")
    assert result["environment"]["num_processes"] == 2
    assert result["recipe"]["global_batch"] == 32 and result["config"]["optim"]["lr"] == pytest.approx(3.125e-05)
