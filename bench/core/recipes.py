"""Training recipes: the third registry axis beside models and tasks (`get_recipe`, `list_recipes`).

A recipe is how a model is trained: optimizer, learning rate and its scaling with the global batch,
schedule, regularisation and augmentation. Each registration is a function of (family, size) that
returns every value with its source (`Cited`): the paper's section or table, or the suite's own
choice, said so. `resolve` turns it into a frozen, validated `Recipe`.

    suite   the small CPU tasks' budget recipe: the values every published page was trained with
    plain   a ResNet-era recipe: random-resized crop and flip, nothing else
    deit    DeiT's recipe (2012.12877), for every family
    paper   each family's own paper's ImageNet-1k recipe (ViT sizes take DeiT's)

This module imports no torch: the recipe page (leaderboard/recipes.py) reads it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Callable, Mapping, Optional

from bench.core.config import OPTIMIZERS, Config, flag_name, require
from bench.core.errors import UserError
from bench.core.registry import Registry

SCHEDULES = ("cosine",)
LR_SCALINGS = ("none", "linear")


@dataclass(frozen=True)
class Cited:
    value: object
    source: str


@dataclass(frozen=True)
class Recipe(Config):
    """Every value of a recipe, resolved for one (family, size). None: not used (no warm-up in epochs,
    no clipping, no RandAugment, no EMA); label_smoothing None: the task's own."""

    optimizer: str
    lr: float  # the base learning rate, before scaling with the global batch
    lr_scaling: str  # "none": lr as given; "linear": lr x global batch / lr_batch
    lr_batch: Optional[int]
    betas: Optional[tuple[float, float]]  # adamw, lamb
    momentum: Optional[float]  # sgd
    epochs: float
    warmup_epochs: Optional[float]  # warm-up in epochs, or
    warmup_fraction: Optional[float]  # as a fraction of the run's steps
    schedule: str
    weight_decay: float
    grad_clip: Optional[float]
    label_smoothing: Optional[float]
    mixup: float  # alpha; 0 is off
    cutmix: float
    mix_prob: float
    switch_prob: float
    rand_augment: Optional[str]  # timm's auto_augment policy string
    rand_augment_min_side: int  # RandAugment only on images of this side and more
    pad_crop_below: int  # images of a smaller side crop as ResNet's CIFAR-10 recipe did (pad 4, crop, flip); 0: never
    color_jitter: Optional[float]  # timm's create_transform color jitter (not applied with RandAugment)
    re_prob: float  # random erasing
    drop_path: float  # stochastic depth rate of the last block, rising linearly from 0
    repeated_aug: int  # repeats of each sample per epoch (RepeatAugSampler); 1 is off
    ema_decay: Optional[float]
    batch_size: Optional[int]  # the paper's global batch (for the page: what lr_batch scales from)

    def validate(self):
        require(self.optimizer in OPTIMIZERS, f"--optimizer must be one of {', '.join(OPTIMIZERS)}, got {self.optimizer!r}.")
        require(self.lr > 0, f"--lr must be positive, got {self.lr}.")
        require(self.lr_scaling in LR_SCALINGS, f"lr scaling must be one of {', '.join(LR_SCALINGS)}.")
        require(self.epochs > 0, f"--epochs must be positive, got {self.epochs}.")
        require((self.warmup_epochs is None) != (self.warmup_fraction is None),
                "A recipe gives its warm-up in epochs or as a fraction of the steps, one of the two.")
        require(self.warmup_epochs is None or 0 <= self.warmup_epochs < self.epochs,
                f"--warmup-epochs must be from 0 to below --epochs ({self.epochs:g}), got {self.warmup_epochs}.")
        require(self.weight_decay >= 0, f"--weight-decay must be >= 0, got {self.weight_decay}.")
        require(self.grad_clip is None or self.grad_clip > 0, f"--grad-clip must be positive, got {self.grad_clip}.")
        for name in ("mixup", "cutmix"):
            require(getattr(self, name) >= 0, f"--{name} must be >= 0, got {getattr(self, name)}.")
        for name in ("mix_prob", "switch_prob", "re_prob"):
            value = getattr(self, name)
            require(0 <= value <= 1, f"--{name.replace('_', '-')} must be in [0, 1], got {value}.")
        require(self.pad_crop_below >= 0, f"pad_crop_below must be >= 0, got {self.pad_crop_below}.")
        require(0 <= self.drop_path < 1, f"--drop-path must be in [0, 1), got {self.drop_path}.")
        require(self.repeated_aug >= 1, f"--repeated-aug must be at least 1, got {self.repeated_aug}.")
        require(self.ema_decay is None or 0 < self.ema_decay < 1, f"--ema-decay must be in (0, 1), got {self.ema_decay}.")

    def global_lr(self, global_batch: int) -> float:
        """The learning rate a run of this global batch trains with."""
        if self.lr_scaling == "linear":
            return self.lr * global_batch / self.lr_batch
        return self.lr

    def warmup_share(self) -> float:
        """The warm-up as a fraction of the run's steps."""
        return self.warmup_fraction if self.warmup_fraction is not None else self.warmup_epochs / self.epochs


# The values that mean something for every task; the rest are image-only (augmentation, mixing,
# stochastic depth) and a text task is trained without them.
COMMON_VALUES = ("optimizer", "lr", "lr_scaling", "lr_batch", "betas", "momentum", "epochs", "warmup_epochs",
                 "warmup_fraction", "schedule", "weight_decay", "grad_clip", "label_smoothing", "batch_size")
IMAGE_VALUES = tuple(f.name for f in dataclasses.fields(Recipe) if f.name not in COMMON_VALUES)
# The off value of each image-only value: what a text task takes.
IMAGE_OFF = {"mixup": 0.0, "cutmix": 0.0, "mix_prob": 1.0, "switch_prob": 0.5, "rand_augment": None,
             "rand_augment_min_side": 0, "pad_crop_below": 0, "color_jitter": None, "re_prob": 0.0, "drop_path": 0.0,
             "repeated_aug": 1, "ema_decay": None}


@dataclass(frozen=True)
class RecipeEntry:
    name: str
    description: str
    values: Callable[[str, str], Mapping[str, Cited]]  # (family, size) -> every field of Recipe, cited
    # (family, size) -> the ImageNet-1k top-1 its paper reports with this recipe, cited (the page's target)
    top1: Callable[[str, str], Optional[Cited]] = lambda family, size: None


RECIPES: Registry[RecipeEntry] = Registry("recipe")


def register_recipe(name: str, description: str, top1: Optional[Callable] = None):
    """Decorator for `(family, size) -> {field: Cited}` giving every field of Recipe."""

    def wrap(values):
        RECIPES.add(name, RecipeEntry(name, description, values, top1 or (lambda family, size: None)))
        return values

    return wrap


def get_recipe(name: str) -> RecipeEntry:
    return RECIPES.get(name)


def list_recipes() -> list[str]:
    return RECIPES.names()


def cited_values(name: str, family: str, size: str) -> dict[str, Cited]:
    values = dict(get_recipe(name).values(family, size))
    missing = {f.name for f in dataclasses.fields(Recipe)} - set(values)
    assert not missing, f"recipe {name!r} lacks {sorted(missing)}"
    return values


def resolve(name: str, family: str, size: str, overrides: Mapping[str, object] = {}) -> tuple[Recipe, dict[str, str]]:
    """(the recipe for this family and size with `overrides` in place, {field: source}); an override's
    source is "override". UserError with one sentence for a value out of range."""
    cited = cited_values(name, family, size)
    values = {key: c.value for key, c in cited.items()}
    sources = {key: c.source for key, c in cited.items()}
    for key, value in overrides.items():
        values[key], sources[key] = value, "override"
        if key == "warmup_epochs":
            values["warmup_fraction"], sources["warmup_fraction"] = None, "override (--warmup-epochs)"
        if key == "warmup_fraction":
            values["warmup_epochs"], sources["warmup_epochs"] = None, "override (--warmup-fraction)"
    return Recipe(**values), sources


# ---------------------------------------------------------------------------------------------
# suite: the small CPU tasks' recipe, as every run before recipes existed trained

SUITE = "the suite's budget recipe for small CPU tasks (bench.core.config defaults before recipes)"


@register_recipe("suite", "the small CPU tasks' budget recipe: AdamW, cosine, 5% warm-up, clipping at 1, "
                          "RandAugment on images of 128 px and more, the task's label smoothing")
def suite(family: str, size: str) -> dict[str, Cited]:
    own = lambda value: Cited(value, SUITE)  # noqa: E731
    return {
        "optimizer": own("adamw"), "lr": own(1e-3), "lr_scaling": own("none"), "lr_batch": own(None),
        "betas": own((0.9, 0.999)), "momentum": own(None), "epochs": own(10.0), "warmup_epochs": own(None),
        "warmup_fraction": own(0.05), "schedule": own("cosine"), "weight_decay": own(0.05), "grad_clip": own(1.0),
        "label_smoothing": Cited(None, "the task's: 0.1 for images (DeiT) and translation, 0 for masked LM (BERT)"),
        "mixup": own(0.0), "cutmix": own(0.0), "mix_prob": own(1.0), "switch_prob": own(0.5),
        "rand_augment": Cited("rand-m9-mstd0.5-inc1", "DeiT 2012.12877 Table 9"),
        "rand_augment_min_side": own(128), "pad_crop_below": own(0),
        "color_jitter": Cited(0.4, "timm's create_transform default"),
        "re_prob": own(0.0), "drop_path": own(0.0), "repeated_aug": own(1), "ema_decay": own(None),
        "batch_size": own(None),
    }


# ---------------------------------------------------------------------------------------------
# plain: a ResNet-era recipe (random-resized crop and flip only; pad-and-crop on small images, as on CIFAR-10)

RESNET = "He et al. 1512.03385 section 3.4 (ImageNet): SGD, momentum 0.9, weight decay 1e-4, batch 256"
RESNET_CIFAR = ("He et al. 1512.03385 section 4.2 (CIFAR-10, 32x32 images): 4 pixels padded on each side, a crop of "
                "the image's side randomly sampled from the padded image or its horizontal flip")


@register_recipe("plain", "a ResNet-era recipe: SGD with momentum, random-resized crop and flip (pad-and-crop and flip "
                          "under 64 px), no mixing, no erasing, no stochastic depth, no label smoothing")
def plain(family: str, size: str) -> dict[str, Cited]:
    off = lambda value: Cited(value, "off: a ResNet-era recipe has none")  # noqa: E731
    return {
        "optimizer": Cited("sgd", RESNET), "lr": Cited(0.1, RESNET + ", lr 0.1 at batch 256"),
        "lr_scaling": Cited("linear", "Goyal et al. 1706.02677 section 2.1 (linear scaling rule)"),
        "lr_batch": Cited(256, RESNET), "betas": off(None), "momentum": Cited(0.9, RESNET),
        "epochs": Cited(90.0, "Goyal et al. 1706.02677 section 5.1 (90 epochs)"),
        "warmup_epochs": Cited(5.0, "Goyal et al. 1706.02677 section 2.2 (gradual warm-up, 5 epochs)"),
        "warmup_fraction": off(None),
        "schedule": Cited("cosine", "the suite's one schedule (ResNet divided the lr by 10 at set epochs)"),
        "weight_decay": Cited(1e-4, RESNET), "grad_clip": off(None), "label_smoothing": off(0.0),
        "mixup": off(0.0), "cutmix": off(0.0), "mix_prob": off(1.0), "switch_prob": off(0.5),
        "rand_augment": off(None), "rand_augment_min_side": off(0),
        # ResNet trained small images otherwise: a random-resized crop of a 28 px image can keep 8% of it
        "pad_crop_below": Cited(64, RESNET_CIFAR + "; below 64 px, the suite's line between small images and "
                                                   "ImageNet-style ones"),
        "color_jitter": off(None), "re_prob": off(0.0), "drop_path": off(0.0), "repeated_aug": off(1),
        "ema_decay": off(None), "batch_size": Cited(256, RESNET),
    }


# ---------------------------------------------------------------------------------------------
# deit: DeiT's recipe, the same for every family

DEIT = "DeiT 2012.12877 Table 9"
# The code the paper was trained with: its defaults at the release (the first commit; --color-jitter
# became 0.3 in 4da6691 for DeiT III).
DEIT_CODE = "DeiT's main.py as released (facebookresearch/deit, first commit 1d38fa4)"
IMAGENET_TRAIN = 1281167  # ImageNet-1k training images: DeiT 2012.12877 Table 6


def deit_values() -> dict[str, Cited]:
    deit = lambda value, note="": Cited(value, DEIT + (f" ({note})" if note else ""))  # noqa: E731
    return {
        "optimizer": deit("adamw"),
        "lr": deit(5e-4, "0.0005 x batchsize / 512; section 6: lr_scaled = lr / 512 x batchsize"),
        "lr_scaling": deit("linear", "section 6: lr_scaled = lr / 512 x batchsize"),
        "lr_batch": deit(512, "section 6: 512 as the base value"),
        "betas": Cited((0.9, 0.999), DEIT_CODE + " (--opt-betas None: torch.optim.AdamW's default betas)"),
        "momentum": deit(None, "AdamW: no momentum"), "epochs": deit(300.0), "warmup_epochs": deit(5.0),
        "warmup_fraction": deit(None, "warm-up given in epochs"), "schedule": deit("cosine", "learning rate decay"),
        "weight_decay": deit(0.05), "grad_clip": deit(None, "gradient clipping: no"),
        "label_smoothing": deit(0.1, "label smoothing epsilon; section 4: 0.1"),
        "mixup": deit(0.8, "Mixup 0.8; the alpha of " + DEIT_CODE + " --mixup"),
        "cutmix": deit(1.0, "Cutmix 1.0; the alpha of " + DEIT_CODE + " --cutmix"),
        "mix_prob": Cited(1.0, DEIT_CODE + " (--mixup-prob)"), "switch_prob": Cited(0.5, DEIT_CODE + " (--mixup-switch-prob)"),
        "rand_augment": deit("rand-m9-mstd0.5-inc1", "Rand Augment 9/0.5; the string: " + DEIT_CODE + " --aa"),
        "rand_augment_min_side": deit(0, "RandAugment on every image"),
        "pad_crop_below": Cited(0, DEIT_CODE + " (timm's random-resized crop at every side, its build_transform)"),
        "color_jitter": Cited(0.4, DEIT_CODE + " (--color-jitter 0.4; timm skips it under RandAugment)"),
        "re_prob": deit(0.25, "erasing prob."), "drop_path": deit(0.1, "stoch. depth"),
        "repeated_aug": deit(3, "repeated aug: yes; section 6, training time: 3 repetitions"),
        "ema_decay": Cited(None, "DeiT 2012.12877 Table 8 (the default configuration, row 'none', has no EMA; "
                                 "section 6: EMA gains vanish after fine-tuning)"),
        "batch_size": deit(1024),
    }


# DeiT 2012.12877 Table 5 (and Table 3, "DeiT - no distillation"): 224 px, 300 epochs, no distillation
DEIT_TOP1 = {"ti": 72.2, "s": 79.8, "b": 81.8}


def deit_top1(family: str, size: str) -> Optional[Cited]:
    if family == "vit" and size in DEIT_TOP1:
        name = {"ti": "Ti", "s": "S", "b": "B"}[size]
        return Cited(DEIT_TOP1[size], f"DeiT 2012.12877 Table 5 (DeiT-{name}, 224 px, no distillation; also Table 3)")
    return None


@register_recipe("deit", "DeiT's recipe (2012.12877 Table 9) for every family: AdamW at 5e-4 x batch / 512, 300 epochs, "
                         "RandAugment, Mixup, CutMix, random erasing, stochastic depth 0.1, repeated augmentation",
                 top1=deit_top1)
def deit(family: str, size: str) -> dict[str, Cited]:
    return deit_values()


# ---------------------------------------------------------------------------------------------
# paper: each family's own paper, per size. A value marked "UNVERIFIED" was not found in the stored
# copies of the paper and its code; its source says what was looked at. Check it before trusting it.

GMLP = "gMLP 2105.08050"
RESMLP = "ResMLP 2105.03404"
MIXER = "MLP-Mixer 2105.01601"
UNVERIFIED = "UNVERIFIED, check: "
# What was tried for gMLP, twice: its paper's text (the stored ar5iv, Hugging Face papers, NeurIPS,
# OpenReview and reproducibility-digest pages hold its first page only), any copy of its Table 1,
# Table 2 or Appendix A in the stored repositories, issues and docs (none; one LLM-generated
# "reproduction" lists these very values but is no source), and timm's gMLP training (its gMLP-S
# top-1 only). It has no official code.
GMLP_NOT_FOUND = ("the paper's tables and appendix are in no stored copy: its stored pages hold its first page "
                  "only, and no repository, issue or doc quotes them")
# timm's reproduction of gMLP-S, the one gMLP figure found outside the paper's own first page.
TIMM_GMLP_S = ("timm (huggingface/pytorch-image-models) README, What's New June 23, 2021 (commit 20a2be14): "
               "'gmlp_s16_224 trained to 79.6 top-1, matching paper'; its results/results-imagenet.csv: "
               "gmlp_s16_224.ra3_in1k top-1 79.652")
# ResMLP's first author on its ImageNet hyperparameters (the paper gives lr, weight decay and epochs).
RESMLP_AUTHOR = "facebookresearch/deit issue #106 (ResMLP's first author)"
# The DeiT code ResMLP trained with (May 2021): it scales --lr by the global batch / 512, always.
DEIT_CODE_2021 = "DeiT's main.py at 2f76ec6 (May 2021): lr x global batch / 512"


def _unverified(value, where: str) -> Cited:
    return Cited(value, UNVERIFIED + where)


def gmlp_paper(size: str) -> dict[str, Cited]:
    # gMLP's ImageNet recipe is said to follow DeiT's with the changes below; none of it was found
    # (searched twice, see GMLP_NOT_FOUND): every value stays UNVERIFIED.
    values = {k: _unverified(c.value, f"{GMLP} follows DeiT here ({GMLP_NOT_FOUND}); DeiT's: {c.source}")
              for k, c in deit_values().items()}
    survival = {"ti": 1.0, "s": 0.95, "b": 0.8}[size]  # stochastic depth survival probability per size
    values.update({
        "drop_path": _unverified(round(1 - survival, 2), f"{GMLP} Table 1 (stochastic depth survival probability "
                                                         f"{survival} for gMLP-{size.upper()}; {GMLP_NOT_FOUND})"),
        "lr": _unverified(1e-3, f"{GMLP} appendix (peak learning rate 1e-3 at batch 4096; {GMLP_NOT_FOUND})"),
        "lr_scaling": _unverified("none", f"{GMLP} appendix (one peak learning rate at batch 4096; {GMLP_NOT_FOUND})"),
        "lr_batch": _unverified(None, f"{GMLP} appendix ({GMLP_NOT_FOUND})"),
        "batch_size": _unverified(4096, f"{GMLP} appendix ({GMLP_NOT_FOUND})"),
        "warmup_epochs": _unverified(10000 * 4096 / IMAGENET_TRAIN,
                                     f"{GMLP} appendix (10k warm-up steps at batch 4096; {GMLP_NOT_FOUND})"),
        "grad_clip": _unverified(1.0, f"{GMLP} appendix (gradient clipping 1.0; {GMLP_NOT_FOUND})"),
        "repeated_aug": _unverified(1, f"{GMLP} appendix (no repeated augmentation listed; {GMLP_NOT_FOUND})"),
        "re_prob": _unverified(0.0, f"{GMLP} appendix (no random erasing listed; {GMLP_NOT_FOUND})"),
    })
    return values


def resmlp_paper(size: str) -> dict[str, Cited]:
    # "The rest of the hyper-parameters follow the default setting used in DeiT" (section 3.1)
    rest = f"{RESMLP} section 3.1 (the rest follows DeiT's defaults)"
    listed = ("warmup_epochs", "schedule", "label_smoothing", "rand_augment", "mixup", "cutmix", "repeated_aug")
    values = {k: Cited(c.value, f"{rest}{f'; {RESMLP_AUTHOR} lists it' if k in listed else ''}; DeiT's: {c.source}")
              for k, c in deit_values().items()}
    values.update({
        "optimizer": Cited("lamb", f"{RESMLP} section 3.1 (Lamb optimizer)"),
        "lr": Cited(5e-3, f"{RESMLP} section 3.1 (learning rate 5e-3; {RESMLP_AUTHOR}: lr 5e-3)"),
        "lr_scaling": Cited("linear", f"{RESMLP} section 3.1 (the rest follows DeiT); {DEIT_CODE_2021}"),
        "lr_batch": Cited(512, f"{RESMLP} section 3.1 (the rest follows DeiT); {DEIT_CODE_2021}"),
        "betas": Cited((0.9, 0.999), f"{rest}; DeiT's main.py passes no betas: timm's Lamb default (0.9, 0.999)"),
        "weight_decay": Cited(0.2, f"{RESMLP} section 3.1 (weight decay 0.2)"),
        "epochs": Cited(400.0, f"{RESMLP} Table 3 (by default we train during 400 epochs)"),
        "re_prob": Cited(0.25, f"{RESMLP} Table D.1 (random erasing is part of its DeiT-style training); "
                               f"{RESMLP_AUTHOR}: erasing 0.25"),
        "drop_path": (Cited(0.05, f"{RESMLP_AUTHOR}: stochastic depth 0.05 for ResMLP-S12 (the paper gives no rate; "
                                  "resmlp_models.py gives every block this rate, the suite rises linearly to it)")
                      if size == "s12" else
                      _unverified(0.1, f"{RESMLP} gives no rate per size, nor does {RESMLP_AUTHOR} beyond S12; "
                                       "facebookresearch/deit issue #117 gives 0.1 for 24 layers on CIFAR")),
        "batch_size": Cited(2048, f"{RESMLP_AUTHOR}: batch size 2048 (the paper gives none)"),
    })
    return values


def mixer_paper(size: str) -> dict[str, Cited]:
    pre = f"{MIXER} section 3 (Pre-training)"
    table = f"{MIXER} Appendix B Table 4 (Mixer-B on ImageNet{'' if size == 'b16' else '; Mixer-S has no ImageNet row'})"
    listed = f"{pre} lists RandAugment, mixup, dropout and stochastic depth for ImageNet"
    values = {k: Cited(c.value, f"{c.source}; {MIXER} gives none: DeiT's") for k, c in deit_values().items()}
    values.update({
        "optimizer": _unverified("adamw", f"{pre}: Adam with weight decay; that the decay is decoupled (AdamW) is not said"),
        "betas": Cited((0.9, 0.999), f"{pre}: Adam beta1 0.9, beta2 0.999"),
        "lr": Cited(1e-3, f"{table}: lr 0.001"),
        "lr_scaling": Cited("none", f"{pre}: one learning rate at batch 4096, no scaling rule"),
        "lr_batch": Cited(None, f"{pre}: batch 4096, no scaling rule"),
        "batch_size": Cited(4096, f"{pre}: batch size 4096"),
        "epochs": Cited(300.0, f"{table}: 300 epochs"),
        "warmup_epochs": Cited(10000 * 4096 / IMAGENET_TRAIN,
                               f"{pre}: linear warm-up of 10k steps at batch 4096, over DeiT Table 6's 1,281,167 images"),
        "schedule": Cited("cosine", f"the suite's one schedule: {pre} decays the learning rate linearly"),
        "weight_decay": Cited(0.1, f"{table}: wd 0.1"),
        "grad_clip": Cited(1.0, f"{pre}: gradient clipping at global norm 1"),
        "mixup": Cited(0.5, f"{table}: mixup 0.5"),
        "cutmix": Cited(0.0, f"{listed}: no CutMix"),
        "rand_augment": Cited("rand-m15-n2-mmax15", f"{table} and Appendix B: two layers, magnitude 15; mmax15: timm's "
                                                    "auto_augment.py clips magnitudes to 10 unless raised"),
        "re_prob": Cited(0.0, f"{listed}: no random erasing"),
        "repeated_aug": Cited(1, f"{listed}: no repeated augmentation"),
        "label_smoothing": Cited(0.0, f"{listed}, Table 4 has no label smoothing: none"),
        "drop_path": Cited(0.1, f"{table}: stoch. depth 0.1, rising linearly from 0 (Appendix B)"),
    })
    return values


PAPER_SIZES = {  # family -> {size: (the paper's name, where its own values come from)}
    "gmlp": {"ti": gmlp_paper, "s": gmlp_paper, "b": gmlp_paper},
    "amlp": {"ti": gmlp_paper, "s": gmlp_paper, "b": gmlp_paper},
    "resmlp": {"s12": resmlp_paper, "s24": resmlp_paper, "b24": resmlp_paper},
    "mixer": {"s16": mixer_paper, "b16": mixer_paper},
}
# The sizes of no paper (`mini`) take the family's smallest paper size's values.
SMALLEST = {"gmlp": "ti", "amlp": "ti", "resmlp": "s12", "mixer": "s16"}

RESMLP_TOP1 = f"{RESMLP} Table 1 and Table 3 (baseline models, 224 px, 16 x 16 patches, no distillation)"
PAPER_TOP1 = {  # (family, size) -> (top-1, where)
    ("gmlp", "ti"): (72.3, f"{UNVERIFIED}{GMLP} Table 2 ({GMLP_NOT_FOUND})"),
    ("gmlp", "s"): (79.6, f"{TIMM_GMLP_S} ({GMLP} Table 2 itself: {GMLP_NOT_FOUND})"),
    ("gmlp", "b"): (81.6, f"{UNVERIFIED}{GMLP} Table 2 ({GMLP_NOT_FOUND}; Papers with Code's results of the "
                          "paper list gMLP-B 81.6%, a secondary listing)"),
    ("resmlp", "s12"): (76.6, RESMLP_TOP1), ("resmlp", "s24"): (79.4, RESMLP_TOP1),
    ("resmlp", "b24"): (81.0, RESMLP_TOP1),
    ("mixer", "b16"): (76.4, f"{MIXER} section 3.1 and Table 3 (Mixer-B/16 on ImageNet with extra regularization, "
                             "224 px: 76.44)"),
}


def paper_top1(family: str, size: str) -> Optional[Cited]:
    if (family, size) in PAPER_TOP1:
        return Cited(*PAPER_TOP1[(family, size)])
    return deit_top1(family, size)


@register_recipe("paper", "for each family and size, the recipe its own paper trained with on ImageNet-1k (ViT and "
                          "the families of no paper recipe take DeiT's)", top1=paper_top1)
def paper(family: str, size: str) -> dict[str, Cited]:
    sizes = PAPER_SIZES.get(family)
    if sizes is None:  # vit (DeiT is its paper) and the relatives without an ImageNet recipe of their own
        values = deit_values()
        if family != "vit":
            values = {k: Cited(c.value, f"{c.source}; {family} has no paper recipe in the suite: DeiT's")
                      for k, c in values.items()}
        return values
    own = size if size in sizes else SMALLEST[family]
    values = sizes[own](own)
    if own != size:
        values = {k: Cited(c.value, f"{c.source} ({family}-{own}'s: {size} is no paper size)") for k, c in values.items()}
    return values


def text_values(recipe: Recipe) -> Recipe:
    """The recipe as a text task takes it: the image-only values off."""
    return dataclasses.replace(recipe, **IMAGE_OFF)


def as_record(recipe: Recipe, name: str, sources: Mapping[str, str], overrides: Mapping[str, object]) -> dict:
    """What a result and a checkpoint record of the recipe: its name, every value, each value's source
    and the overrides."""
    values = {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(recipe).items()}
    return {"name": name, "values": values, "sources": dict(sources), "overrides": sorted(overrides)}


def run_recipe(optim_cfg, recipe_cfg, task, modality: str, family: str, size: str, processes: int,
               stochastic_depth: bool = True):
    """What a run trains with: (the OptimConfig it records, with the recipe's values in place of those
    left unset and the learning rate scaled; the Recipe; its record for the result and checkpoints).
    `task` is a task made without settings (for its default recipe and label smoothing);
    `stochastic_depth`: whether the model's blocks take it (a recipe's rate is then off, and a flag
    asking for it refused). UserError with one sentence for an image-only value asked of a text task."""
    name = recipe_cfg.recipe or task.default_recipe
    get_recipe(name)  # an unknown name lists the recipes
    overrides = {**optim_cfg.recipe_overrides(), **recipe_cfg.overrides()}
    if modality != "image":
        image_only = [key for key in overrides if key in IMAGE_VALUES]
        if image_only:
            raise UserError(f"{', '.join(flag_name(k) for k in image_only)} "
                            f"{'is an image-only recipe value' if len(image_only) == 1 else 'are image-only recipe values'}"
                            f"; --task {task.name} is a {modality} task, drop {'it' if len(image_only) == 1 else 'them'}.")
    if overrides.get("drop_path") and not stochastic_depth:
        raise UserError(f"--drop-path does not apply to model {family!r}: its blocks have no stochastic depth.")
    recipe, sources = resolve(name, family, size, overrides)
    if modality != "image":
        recipe = text_values(recipe)
        sources.update({key: f"off: an image-only value ({modality} task)" for key in IMAGE_VALUES})
    elif not stochastic_depth and recipe.drop_path:
        recipe = dataclasses.replace(recipe, drop_path=0.0)
        sources["drop_path"] = f"off: {family}'s blocks have no stochastic depth"
    if recipe.label_smoothing is None:
        recipe = dataclasses.replace(recipe, label_smoothing=task.default_label_smoothing)
    global_batch = processes * optim_cfg.batch_size * optim_cfg.grad_accum
    resolved = dataclasses.replace(
        optim_cfg, lr=recipe.global_lr(global_batch), weight_decay=recipe.weight_decay, epochs=recipe.epochs,
        warmup_fraction=recipe.warmup_share(), label_smoothing=recipe.label_smoothing, grad_clip=recipe.grad_clip,
    )
    record = as_record(recipe, name, sources, overrides)
    record["global_batch"], record["lr"] = global_batch, resolved.lr
    return resolved, recipe, record


def describe_start(record: dict, processes: int, batch_size: int, grad_accum: int) -> str:
    """The line a run prints as it starts: the recipe, the global batch and the learning rate."""
    values = record["values"]
    if values["lr_scaling"] == "linear":
        rule = f" = {values['lr']:g} x {record['global_batch']} / {values['lr_batch']}"
    else:
        rule = " (not scaled with the batch)"
    return (f"Recipe {record['name']}: global batch {record['global_batch']} ({processes} process"
            f"{'es' if processes != 1 else ''} x {batch_size} x {grad_accum} accumulation), "
            f"learning rate {record['lr']:.4g}{rule}, {values['optimizer']}, {values['epochs']:g} epochs.")


def suite_optim(optim_cfg, task):
    """The OptimConfig a run of `task` with these flags trains with under the suite recipe, for the
    tools that time one training step as runs take it (the harness check, the regression worker, the
    cost pass); they make the task without the recipe's augmentation, which the suite recipe's
    small tasks do not use."""
    from bench.core.config import RecipeConfig

    resolved, _, _ = run_recipe(optim_cfg, RecipeConfig(recipe="suite"), task, "image", "any", "any", 1)
    return resolved
