"""Image classification tasks.

Small datasets that fit in memory (digits, Fashion-MNIST) are decoded once into normalised
tensors, so the loader is never the bottleneck; folder and hub datasets decode per sample
with timm's transforms. Fashion-MNIST's training images go through timm's training transform
too under every recipe but its default (`suite`, which every published page trained with).
"""

from __future__ import annotations

import functools
import gzip
import os
import stat
import struct
import sys
from collections import Counter
from pathlib import Path
from typing import Optional

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset, Subset, TensorDataset

from bench.core.errors import DataError, UserError
from bench.core.spec import TaskSpec
from tasks.base import VALIDATION_FRACTION, Task, TaskData, register_task
from tasks.hub import load_hub_dataset

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm")
RAND_AUGMENT = "rand-m9-mstd0.5-inc1"  # DeiT's RandAugment, for images of 128 px and more
PAD_CROP = 4  # pixels of padding on each side: ResNet's CIFAR-10 recipe (1512.03385 section 4.2)
SPLIT_SEED = 1234  # fixed, so every run and seed is evaluated on the same held-out images


class ImageClassification(Task):
    """Loss and metrics of every image task: label-smoothed cross entropy, top-1 and top-5. With the
    recipe's Mixup or CutMix, timm's Mixup turns the labels into soft targets (smoothed there, once)
    and the loss is timm's SoftTargetCrossEntropy."""

    metric = "top1"
    default_label_smoothing = 0.1  # DeiT's
    in_memory = False  # images held as normalised tensors: no per-sample transform to augment them with
    modality_data_flags = ("score_train",)

    def __init__(self, label_smoothing=None, recipe=None, recipe_name=None):
        super().__init__(label_smoothing, recipe, recipe_name)
        self.mixup = None
        if recipe is not None and (recipe.mixup > 0 or recipe.cutmix > 0):
            from timm.data import Mixup

            self.mixup = Mixup(mixup_alpha=recipe.mixup, cutmix_alpha=recipe.cutmix, prob=recipe.mix_prob,
                               switch_prob=recipe.switch_prob, label_smoothing=self.label_smoothing,
                               num_classes=0)  # set from the model's head at the first batch

    def check_recipe(self, optim_cfg) -> None:
        """Refuse what this task cannot train with: augmentation of images held as tensors, and Mixup /
        CutMix (which mix the two halves of a batch) with an odd batch."""
        recipe = self.recipe
        if recipe is None:
            return
        if self.in_memory and (recipe.rand_augment and recipe.rand_augment_min_side == 0 or recipe.re_prob):
            raise UserError(
                f"--task {self.name} holds its images as tensors, which RandAugment and random erasing cannot "
                f"transform; pass --rand-augment off --re-prob 0, or use a folder task (imagefolder)."
            )
        if self.mixup is not None and optim_cfg.batch_size % 2:
            raise UserError(f"Mixup and CutMix mix the two halves of a batch; --batch-size must be even, "
                            f"got {optim_cfg.batch_size}.")

    def loss(self, model, batch):
        images, labels = batch
        if self.mixup is not None and model.training:
            from timm.loss import SoftTargetCrossEntropy

            self.mixup.num_classes = _head(model).out_features
            images, targets = self.mixup(images, labels)  # targets (B, classes), rows summing to 1
            return SoftTargetCrossEntropy()(model(images).float(), targets)
        logits = model(images)  # (B, classes)
        return F.cross_entropy(logits.float(), labels, label_smoothing=self.label_smoothing)

    def eval_outputs(self, model, batch, spec):
        images, labels = batch
        logits = model(images).float()  # (B, classes)
        k = min(5, logits.shape[-1])
        topk = logits.topk(k, dim=-1).indices  # (B, k)
        hits = topk == labels[:, None]
        return {
            "top1": hits[:, 0].float(),
            "top5": hits.any(dim=-1).float(),
            "loss": F.cross_entropy(logits, labels, reduction="none"),
            "label": labels,
        }

    def compute_metrics(self, outputs, data):
        labels = outputs.pop("label")
        metrics = {name: values.mean().item() for name, values in outputs.items()}
        # always answering the commonest class of the scored split: the floor a model must clear
        metrics["majority_baseline_accuracy"] = torch.bincount(labels).max().item() / len(labels)
        return metrics

    def synthetic_batch(self, spec, batch_size, generator):
        images = torch.randn(batch_size, *spec.image_size, generator=generator)  # (B, C, H, W)
        labels = torch.randint(spec.num_classes, (batch_size,), generator=generator)  # (B,)
        return images, labels


def _head(model):
    """The classifier of a (possibly wrapped) timm model: its number of classes sizes Mixup's targets."""
    model = getattr(model, "module", model)  # DistributedDataParallel
    return getattr(model, "_orig_mod", model).get_classifier()


def _normalise(images: torch.Tensor) -> torch.Tensor:
    """Per-dataset standardisation of (N, C, H, W) float images."""
    mean = images.mean(dim=(0, 2, 3), keepdim=True)
    std = images.std(dim=(0, 2, 3), keepdim=True)
    return (images - mean) / std


def _limit(dataset, limit: Optional[int], seed: int = SPLIT_SEED):
    if limit is None or limit >= len(dataset):
        return dataset
    order = torch.randperm(len(dataset), generator=torch.Generator().manual_seed(seed))
    return Subset(dataset, order[:limit].tolist())


def held_out_split(n: int, val_fraction: float, seed: int = SPLIT_SEED) -> tuple[list[int], list[int]]:
    """A fixed random split of range(n) into (train, eval) indices, neither empty (DataError)."""
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed)).tolist()
    n_eval = max(1, round(n * val_fraction))
    if n_eval >= n:
        raise DataError(f"Holding out {val_fraction:g} of {n} images leaves no training images; "
                        f"give more images or a smaller --val-fraction.")
    return sorted(order[n_eval:]), sorted(order[:n_eval])


def _finish(spec, train, test, data_cfg, train_for_eval=None) -> TaskData:
    """The run's splits: training without its validation part, and the scored split (--eval-split).

    `train_for_eval` is the training data with the evaluation transform (no augmentation), where
    the two differ; validation images are taken from it."""
    train_idx, val_idx = held_out_split(len(train), VALIDATION_FRACTION, SPLIT_SEED + 1)
    held = Subset(train_for_eval or train, val_idx) if data_cfg.eval_split == "validation" else test
    return TaskData(
        spec=spec,
        train=_limit(Subset(train, train_idx), data_cfg.max_train_samples),
        eval=_limit(held, data_cfg.max_eval_samples),
        # the same images as `train` (the same indices, the same draw of --max-train-samples), unaugmented
        train_scored=(_limit(Subset(train_for_eval or train, train_idx), data_cfg.max_train_samples)
                      if data_cfg.score_train else None),
    )


@register_task
class Digits(ImageClassification):
    name = "digits"
    description = "scikit-learn's 8x8 handwritten digits (1,797 images), always offline"
    offline = True
    in_memory = True
    data_flags = ("val_fraction",)

    def spec(self, data_cfg):
        return TaskSpec(self.name, "image", self.metric, image_size=(1, 8, 8), num_classes=10)

    def load(self, data_cfg, seed):
        from sklearn.datasets import load_digits

        digits = load_digits()
        images = _normalise(torch.tensor(digits.images, dtype=torch.float32)[:, None])  # (N, 1, 8, 8)
        labels = torch.tensor(digits.target, dtype=torch.long)
        train_idx, eval_idx = held_out_split(len(labels), data_cfg.val_fraction)
        return _finish(
            self.spec(data_cfg),
            TensorDataset(images[train_idx], labels[train_idx]),
            TensorDataset(images[eval_idx], labels[eval_idx]),
            data_cfg,
        )


def read_idx(path: Path) -> np.ndarray:
    """An MNIST-style idx file (optionally gzipped) as a numpy array. Not torchvision's
    read_sn3_pascalvincent_tensor: it reads only uncompressed files (Debian ships them gzipped)
    and checks them with assert statements."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            raw = f.read()
        zero, dtype_code, ndim = struct.unpack(">HBB", raw[:4])
        if zero != 0 or dtype_code != 0x08:
            raise ValueError("not an unsigned-byte idx file")
        shape = struct.unpack(">" + "I" * ndim, raw[4 : 4 + 4 * ndim])
        return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(shape)
    except (OSError, ValueError, struct.error, EOFError) as e:
        raise DataError(f"{path} is not a readable idx file ({e}).") from None


FASHION_MNIST_DIRS = ("/usr/share/datasets/fashion-mnist",)  # Debian's dataset-fashion-mnist
FASHION_MNIST_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


def _find_idx(folder: Path, stem: str) -> Optional[Path]:
    for name in (stem + ".gz", stem):
        if (folder / name).is_file():
            return folder / name
    return None


@register_task
class FashionMNIST(ImageClassification):
    """Under its default recipe (suite) every image is a normalised tensor, as every published page
    trained; under any other recipe the training images are decoded per sample from their bytes
    through timm's training transform (random-resized crop, flip and the recipe's RandAugment, colour
    jitter and random erasing), at 28x28 and one channel, and the evaluation images stay tensors."""

    name = "fashion-mnist"
    description = "Zalando's 28x28 Fashion-MNIST (70,000 images): idx files from --data-dir or Debian's dataset-fashion-mnist, else the hub"
    offline = True  # when Debian's package or a local copy is installed
    hub_id = "zalando-datasets/fashion_mnist"
    data_flags = ("data_dir", "hub_id")

    @property
    def augments(self) -> bool:
        """Its training images go through the recipe's training transform."""
        return self.recipe is not None and self.recipe_name != self.default_recipe

    @property
    def in_memory(self) -> bool:
        return not self.augments

    def spec(self, data_cfg):
        return TaskSpec(self.name, "image", self.metric, image_size=(1, 28, 28), num_classes=10)

    def load(self, data_cfg, seed):
        folders = [Path(data_cfg.data_dir)] if data_cfg.data_dir else [Path(d) for d in FASHION_MNIST_DIRS]
        for folder in folders:
            files = {split: [_find_idx(folder, stem) for stem in stems] for split, stems in FASHION_MNIST_FILES.items()}
            if all(p is not None for pair in files.values() for p in pair):
                return self._from_idx(files, data_cfg)
        if data_cfg.data_dir:
            raise DataError(
                f"--data-dir {data_cfg.data_dir} has no Fashion-MNIST idx files "
                f"(train-images-idx3-ubyte[.gz], t10k-images-idx3-ubyte[.gz] and their labels)."
            )
        return self._from_hub(data_cfg)

    def _from_idx(self, files, data_cfg):
        splits = {}
        needed = ("train", "test") if data_cfg.eval_split == "test" else ("train",)  # tuning never reads test
        for split, (images_path, labels_path) in ((s, files[s]) for s in needed):
            images = torch.from_numpy(read_idx(images_path).copy()).float().div_(255)[:, None]  # (N, 1, 28, 28)
            labels = torch.from_numpy(read_idx(labels_path).astype(np.int64))
            if len(images) != len(labels):
                raise DataError(f"{images_path} and {labels_path} hold different numbers of samples.")
            splits[split] = (images, labels)
        mean, std = splits["train"][0].mean(), splits["train"][0].std()
        normalised = {split: TensorDataset((x - mean) / std, y) for split, (x, y) in splits.items()}
        spec = self.spec(data_cfg)
        if not self.augments:
            return _finish(spec, normalised["train"], normalised.get("test"), data_cfg)
        images, labels = splits["train"]
        transform = image_transform(spec, True, self.recipe, mean=(mean.item(),), std=(std.item(),))
        augmented = GrayImages(images[:, 0].mul(255).round().to(torch.uint8).numpy(), labels, transform)
        return _finish(spec, augmented, normalised.get("test"), data_cfg, train_for_eval=normalised["train"])

    def _from_hub(self, data_cfg):
        spec = self.spec(data_cfg)
        train, test = load_hub_splits(data_cfg.hub_id or self.hub_id, "image", "label",
                                      "pass --data-dir, a folder of its idx files")
        return _finish(spec, HubImages(train, spec, "image", "label", self.augments, self.recipe),
                       HubImages(test, spec, "image", "label", False), data_cfg,
                       train_for_eval=HubImages(train, spec, "image", "label", False))


class GrayImages(Dataset):
    """One-channel images held as bytes (N, H, W), each made a PIL image and transformed as it is read."""

    def __init__(self, images: np.ndarray, labels: torch.Tensor, transform):
        self.images, self.labels, self.transform = images, labels, transform

    def __len__(self):
        return len(self.images)

    def __getitem__(self, i):
        from PIL import Image

        return self.transform(Image.fromarray(self.images[i])), self.labels[i]  # (H, W) bytes: mode L


def load_hub_splits(hub_id: str, image_key: str, label_key: str, offline: str):
    """(train, eval) splits of a hub dataset; an unreachable hub or an unknown id is one DataError
    sentence (tasks.hub), which ends with `offline`: how to give the task a local copy."""
    ds = load_hub_dataset(hub_id, remedy=f"if this machine is offline, copy the data here and {offline}")
    eval_name = next((s for s in ("validation", "test") if s in ds), None)
    if "train" not in ds or eval_name is None:
        raise DataError(f"The dataset {hub_id!r} has splits {list(ds)}; it needs 'train' and 'validation' or 'test'.")
    for key in (image_key, label_key):
        if key not in ds["train"].column_names:
            raise DataError(f"The dataset {hub_id!r} has no column {key!r} (columns: {ds['train'].column_names}).")
    return ds["train"], ds[eval_name]


def image_transform(spec: TaskSpec, is_training: bool, recipe=None, mean=None, std=None):
    """timm's ImageNet-style transform, sized to the task's images: for training, random-resized crop
    and flip with the recipe's RandAugment, colour jitter and random erasing (without a recipe, the
    suite's: RandAugment on images of 128 px and more); on images smaller than the recipe's
    pad_crop_below, ResNet's CIFAR-10 crop (PAD_CROP pixels of padding, a random crop back to the side,
    and a flip) in place of the random-resized crop; for evaluation, resize and centre crop.
    `mean`, `std`: per channel, of the normalisation (None: timm's ImageNet values, three channels)."""
    from timm.data import create_transform
    from torchvision import transforms

    c, h, _ = spec.image_size
    stats = {} if mean is None else {"mean": tuple(mean), "std": tuple(std)}
    if not is_training:
        return create_transform(h, is_training=False, interpolation="bicubic", **stats)
    policy, min_side, jitter, erase = (
        (RAND_AUGMENT, 128, 0.4, 0.0) if recipe is None
        else (recipe.rand_augment, recipe.rand_augment_min_side, recipe.color_jitter, recipe.re_prob)
    )
    made = dict(is_training=True, auto_augment=policy if h >= min_side else None, color_jitter=jitter, re_prob=erase,
                interpolation="bicubic", **stats)
    if recipe is None or h >= recipe.pad_crop_below:
        return create_transform(h, **made)
    # timm has no pad-and-crop: its first stage (random-resized crop and flip) is swapped for torchvision's
    _, augment, finish = create_transform(h, separate=True, **made)
    crop = [transforms.RandomCrop(h, padding=PAD_CROP), transforms.RandomHorizontalFlip()]
    return transforms.Compose([*crop, *augment.transforms, *finish.transforms])


class HubImages(Dataset):
    """A `datasets` split of PIL images decoded and transformed per sample."""

    def __init__(self, split, spec: TaskSpec, image_key: str, label_key: str, is_training: bool, recipe=None):
        self.split, self.image_key, self.label_key = split, image_key, label_key
        self.mode = "RGB" if spec.image_size[0] == 3 else "L"
        if self.mode == "RGB":
            self.transform = image_transform(spec, is_training, recipe)
        elif is_training and recipe is not None:  # one channel, normalised as _gray_transform does
            self.transform = image_transform(spec, True, recipe, mean=(0.5,), std=(0.5,))
        else:
            self.transform = _gray_transform(spec)

    def __len__(self):
        return len(self.split)

    def __getitem__(self, i):
        row = self.split[i]
        return self.transform(row[self.image_key].convert(self.mode)), int(row[self.label_key])


def _gray_transform(spec: TaskSpec):
    from torchvision import transforms

    _, h, w = spec.image_size
    return transforms.Compose([transforms.Resize((h, w)), transforms.ToTensor(), transforms.Normalize([0.5], [0.5])])


def image_errors() -> tuple[type[BaseException], ...]:
    """Every error PIL raises for a file it cannot decode: OSError (truncated data, UnidentifiedImageError),
    DecompressionBombError (more than twice Image.MAX_IMAGE_PIXELS), ValueError, SyntaxError (broken
    headers of some formats), EOFError and struct.error (cut headers)."""
    from PIL import Image, UnidentifiedImageError

    return (OSError, UnidentifiedImageError, Image.DecompressionBombError, ValueError, SyntaxError, EOFError,
            struct.error)


def decode_image(path: str, mode: str):
    """The image at `path`, fully decoded and converted to `mode`; one of image_errors() if it cannot be."""
    from PIL import Image

    with Image.open(path) as img:
        return img.convert(mode)  # decodes the whole file: a truncated one fails here, not in verify()


class ImageFolderSplit(Dataset):
    """Images listed from class sub-folders. Files PIL cannot open are left out when the task loads
    (readable_images); a file that still fails to decode when a batch needs it (a truncated JPEG, which
    passes PIL's header check, or an oversized image) is replaced by the next decodable sample of the
    list, so the run goes on, deterministically, and is marked: `skipped()` counts the marked files. The
    marks live in shared memory, so the loader's worker processes add to the same count. (torchvision's
    ImageFolder would end the run at the first file that fails to decode.)"""

    def __init__(self, samples: list[tuple[str, int]], transform, mode: str = "RGB"):
        self.samples, self.transform, self.mode = samples, transform, mode
        self.bad = torch.zeros(len(samples), dtype=torch.uint8).share_memory_()

    def __len__(self):
        return len(self.samples)

    def __getitem__(self, i):
        for k in range(len(self.samples)):
            j = (i + k) % len(self.samples)
            if self.bad[j]:
                continue
            path, label = self.samples[j]
            try:
                image = decode_image(path, self.mode)
            except image_errors() as e:
                self.bad[j] = 1
                reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
                print(f"Skipped unreadable image {path} ({reason}); the next readable one takes its place.",
                      file=sys.stderr, flush=True)
                continue
            return self.transform(image), label
        raise DataError(f"None of the {len(self.samples)} images of this split could be decoded.")

    def skipped(self) -> int:
        """Files that failed to decode while loading batches (each counted once)."""
        return int(self.bad.sum())


SKIP_REASONS = {  # why an entry of an image folder is left out: what the count is of
    "loop": "link(s) back to a folder already walked",
    "outside": "link(s) to a folder outside the image folder",
    "broken": "broken link(s)",
    "unreadable": "unreadable folder(s)",
    "special": "special file(s) (FIFOs, sockets, devices)",
}


def walk_class_folder(folder: Path, image_root: Path, visited: set, skipped: Counter, examples: dict) -> list[str]:
    """The image files under one class folder, in os.walk's sorted order (as torchvision's scan lists
    them). Links are followed, each folder at most once (`visited`: (device, inode) of the folders
    walked, this class's and the others', so a link back up the tree is no loop); a link to a folder
    outside this class folder and `image_root`, a broken link, a folder that cannot be listed and
    a special file (a FIFO would block the reader forever) are left out and counted in `skipped` by
    SKIP_REASONS, with a path of each in `examples`."""
    inside = (folder.resolve(), image_root.resolve())
    found: dict[str, list[str]] = {}
    stack = [folder]

    def skip(reason: str, path: str) -> None:
        skipped[reason] += 1
        examples.setdefault(reason, path)

    while stack:
        here = stack.pop()
        try:
            entries = list(os.scandir(here))
        except OSError:
            skip("unreadable", str(here))
            continue
        names = found.setdefault(str(here), [])
        for entry in entries:
            try:
                info = os.stat(entry.path)  # follows links
            except OSError:
                skip("broken", entry.path)
                continue
            if stat.S_ISDIR(info.st_mode):
                key = (info.st_dev, info.st_ino)
                if key in visited:
                    skip("loop", entry.path)
                elif entry.is_symlink() and not any(Path(entry.path).resolve().is_relative_to(r) for r in inside):
                    skip("outside", entry.path)
                else:
                    visited.add(key)
                    stack.append(Path(entry.path))
            elif not stat.S_ISREG(info.st_mode):
                skip("special", entry.path)
            elif entry.name.lower().endswith(IMAGE_EXTENSIONS):
                names.append(entry.name)
    return [os.path.join(where, name) for where in sorted(found) for name in sorted(found[where])]


def list_image_folder(root: Path, report: bool = False) -> tuple[list[str], list[tuple[str, int]], dict[str, int]]:
    """(class names, [(path, class index)], {SKIP_REASONS key: entries left out}) of a folder of class
    sub-folders; DataError if none. `report`: print one line saying what was left out."""
    if not root.is_dir():
        raise DataError(f"--data-dir {root} does not exist or is not a folder.")
    try:
        classes = sorted(d.name for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    except OSError as e:
        raise DataError(f"--data-dir {root} cannot be listed ({e.strerror}).") from None
    if not classes:
        raise DataError(f"{root} has no class sub-folders; an image folder holds one sub-folder of images per class.")
    if len(classes) < 2:
        raise DataError(f"{root} has only one class sub-folder ({classes[0]}); classification needs at least 2.")
    # our own scan, not torchvision's make_dataset: its os.walk(followlinks=True) never ends on a link
    # back up the tree, and its find_classes would also take hidden folders (.ipynb_checkpoints) as classes
    visited = {(s.st_dev, s.st_ino) for s in (os.stat(p) for p in (root, *(root / c for c in classes)))}
    skipped, examples = Counter(), {}
    samples = [(path, label) for label, name in enumerate(classes)
               for path in walk_class_folder(root / name, root, visited, skipped, examples)]
    if report and skipped:
        parts = ", ".join(f"{skipped[r]} {SKIP_REASONS[r]} (e.g. {examples[r]})" for r in SKIP_REASONS if skipped[r])
        print(f"Left out of {root}: {parts}.")
    if not samples:
        raise DataError(f"{root} has class sub-folders but no image files ({', '.join(IMAGE_EXTENSIONS)}).")
    return classes, samples, {r: skipped[r] for r in SKIP_REASONS if skipped[r]}


def readable_images(samples: list[tuple[str, int]]) -> tuple[list[tuple[str, int]], list[str]]:
    """Split samples into those PIL can open and the paths of corrupt ones (headers and, for PNG,
    checksums only: a truncated JPEG passes and is caught by ImageFolderSplit when decoded)."""
    from PIL import Image

    errors = image_errors()
    good, bad = [], []
    for path, label in samples:
        try:
            with Image.open(path) as img:
                img.verify()
            good.append((path, label))
        except errors:
            bad.append(path)
    return good, bad


class SkippedImages:
    """TaskData.extra["skipped_images"] of a folder task: called, {"train": n, "eval": n}, the image
    files of each split left out, at load time (unreadable) and while training or evaluating (failed
    to decode); the runner writes it into the result's "data" section."""

    def __init__(self, at_load: dict[str, int], train: ImageFolderSplit, eval_: ImageFolderSplit):
        self.at_load, self.train, self.eval = at_load, train, eval_

    def __call__(self) -> dict[str, int]:
        return {"train": self.at_load["train"] + self.train.skipped(),
                "eval": self.at_load["eval"] + self.eval.skipped()}


class FolderTask(ImageClassification):
    """Shared by `imagenet` and `imagefolder`: class sub-folders, decoded per sample with timm's transforms."""

    default_side = 224

    def _side(self, data_cfg) -> int:
        return data_cfg.image_size or self.default_side

    def _classes(self, data_cfg) -> list[str]:
        if not data_cfg.data_dir:
            raise DataError(f"Task {self.name!r} needs --data-dir, a folder of class sub-folders.")
        return list_image_folder(self._train_root(Path(data_cfg.data_dir)))[0]

    def _train_root(self, root: Path) -> Path:
        return root / "train" if (root / "train").is_dir() else root

    def _datasets(self, spec, data_cfg, train_samples, eval_samples, left_out: dict[str, int]):
        """`left_out`: list_image_folder's counts of the entries of the folders that were left out."""
        counts = {}
        for name, samples in (("train", train_samples), ("eval", eval_samples)):
            good, bad = readable_images(samples)
            counts[name] = len(bad)
            if bad:
                print(f"Skipped {len(bad)} unreadable image file(s) in the {name} split, e.g. {bad[0]}.")
            if not good:
                raise DataError(f"No readable images in the {name} split of {data_cfg.data_dir}.")
            if name == "train":
                classes = {label for _, label in good}
                if len(classes) < 2 or len(good) < MIN_TRAIN_IMAGES:
                    raise DataError(
                        f"The training split of {data_cfg.data_dir} has {len(good)} readable image(s) in "
                        f"{len(classes)} class(es); training needs at least {MIN_TRAIN_IMAGES} in at least 2 classes."
                    )
                train_samples = good
            else:
                eval_samples = good
        train = ImageFolderSplit(train_samples, image_transform(spec, True, self.recipe))
        test = ImageFolderSplit(eval_samples, image_transform(spec, False))
        train_for_eval = ImageFolderSplit(train_samples, image_transform(spec, False))
        data = _finish(spec, train, test, data_cfg, train_for_eval)
        if data_cfg.eval_split == "validation":  # scored on training images: their load-time skips count under train
            data.extra = {"skipped_images": SkippedImages({"train": counts["train"], "eval": 0}, train, train_for_eval)}
        else:
            data.extra = {"skipped_images": SkippedImages(counts, train, test)}
        data.extra["skipped_entries"] = left_out
        return data


SIDE_PROBE_IMAGES = 64  # images whose headers decide a folder's default side
MIN_TRAIN_IMAGES = 4  # readable training images a folder needs: some for training, one or more for validation


@functools.lru_cache(maxsize=8)
def typical_side(root: str) -> int:
    """The commonest longer side among a spread of a folder's images, capped at the paper side
    (224): small images train at their own size, so a small model size is chosen for them."""
    from PIL import Image

    _, samples, _ = list_image_folder(Path(root))
    step = max(1, len(samples) // SIDE_PROBE_IMAGES)
    sides = []
    for path, _ in samples[::step][:SIDE_PROBE_IMAGES]:
        try:
            with Image.open(path) as img:  # reads the header only
                sides.append(max(img.size))
        except image_errors():
            continue
    if not sides:
        return FolderTask.default_side
    return min(FolderTask.default_side, Counter(sides).most_common(1)[0][0])


@register_task
class ImageFolder(FolderTask):
    name = "imagefolder"
    description = (
        "any local folder of class sub-folders (--data-dir), with a held-out split (--val-fraction); "
        "images train at their own size up to 224 px unless --image-size is given"
    )
    offline = True
    data_flags = ("data_dir", "val_fraction", "image_size")

    def _side(self, data_cfg) -> int:
        if data_cfg.image_size:
            return data_cfg.image_size
        self._classes(data_cfg)  # the one-sentence errors of a missing or empty folder first
        return typical_side(str(Path(data_cfg.data_dir).resolve()))

    def spec(self, data_cfg):
        side = self._side(data_cfg)
        return TaskSpec(self.name, "image", self.metric, image_size=(3, side, side), num_classes=len(self._classes(data_cfg)))

    def load(self, data_cfg, seed):
        spec = self.spec(data_cfg)
        _, samples, left_out = list_image_folder(Path(data_cfg.data_dir), report=True)
        train_idx, eval_idx = held_out_split(len(samples), data_cfg.val_fraction)
        return self._datasets(spec, data_cfg, [samples[i] for i in train_idx], [samples[i] for i in eval_idx],
                              left_out)


@register_task
class ImageNet(FolderTask):
    name = "imagenet"
    description = "ImageNet-1k: an ImageFolder copy (--data-dir with train/ and val/), else the hub id"
    default_recipe = "paper"  # what the papers' ImageNet figures were trained with
    hub_id = "ILSVRC/imagenet-1k"
    data_flags = ("data_dir", "hub_id", "image_size")

    def spec(self, data_cfg):
        side = self._side(data_cfg)
        num_classes = len(self._classes(data_cfg)) if data_cfg.data_dir else 1000
        return TaskSpec(self.name, "image", self.metric, image_size=(3, side, side), num_classes=num_classes)

    def load(self, data_cfg, seed):
        spec = self.spec(data_cfg)
        if not data_cfg.data_dir:
            train, val = load_hub_splits(data_cfg.hub_id or self.hub_id, "image", "label",
                                         "pass --data-dir, a folder with train/ and val/ folders of class sub-folders")
            return _finish(
                spec, HubImages(train, spec, "image", "label", True, self.recipe), HubImages(val, spec, "image", "label", False),
                data_cfg, HubImages(train, spec, "image", "label", False),
            )
        root = Path(data_cfg.data_dir)
        val_root = next((root / n for n in ("val", "validation", "test") if (root / n).is_dir()), None)
        if val_root is None:
            raise DataError(f"--data-dir {root} needs a val/ (or validation/, test/) folder beside train/.")
        classes, train_samples, train_left_out = list_image_folder(self._train_root(root), report=True)
        val_classes, val_samples, val_left_out = list_image_folder(val_root, report=True)
        if val_classes != classes:
            raise DataError(f"{val_root} and {self._train_root(root)} have different class folders.")
        return self._datasets(spec, data_cfg, train_samples, val_samples, dict(Counter(train_left_out) + Counter(val_left_out)))


class HubImageTask(ImageClassification):
    """CIFAR-style tasks: a hub id through `datasets`, decoded per sample."""

    hub_id = ""
    data_flags = ("hub_id",)
    image_key = "img"
    label_key = "label"
    side = 32

    def spec(self, data_cfg):
        return TaskSpec(self.name, "image", self.metric, image_size=(3, self.side, self.side), num_classes=self.classes)

    def load(self, data_cfg, seed):
        spec = self.spec(data_cfg)
        train, test = load_hub_splits(data_cfg.hub_id or self.hub_id, self.image_key, self.label_key,
                                      "use --task imagefolder with --data-dir, a folder of class sub-folders")
        return _finish(
            spec,
            HubImages(train, spec, self.image_key, self.label_key, True, self.recipe),
            HubImages(test, spec, self.image_key, self.label_key, False),
            data_cfg,
            HubImages(train, spec, self.image_key, self.label_key, False),
        )


@register_task
class CIFAR10(HubImageTask):
    name = "cifar10"
    description = "CIFAR-10 (60,000 32x32 images, 10 classes) from the datasets hub"
    hub_id = "uoft-cs/cifar10"
    classes = 10


@register_task
class CIFAR100(HubImageTask):
    name = "cifar100"
    description = "CIFAR-100 (60,000 32x32 images, 100 fine classes) from the datasets hub"
    hub_id = "uoft-cs/cifar100"
    label_key = "fine_label"
    classes = 100
