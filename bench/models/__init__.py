"""Architecture registry: `create_model(name, size, spec)`, `list_models()`, `model_entries(name)`.

Every module of this package is imported when the registry is first read (`discover`), so a family
is its file: one module holding its blocks, sizes and registrations for every modality it supports
("image", "mlm", "seq2seq"). Each registration gives a builder with its named sizes, the variant
flags it takes (bench.core.config.VariantConfig), its forward FLOPs as a formula of the input's shape
(`flops`) and the family's facts: whether it is its modality's Transformer baseline (`baseline`),
which family it changes one part of (`relative_of`) and whether it is a reference of another kind
that pages show apart from the compared families (`reference`: the ConvNet). Runs record those facts in their results, and
the leaderboard, the ablation page and the checks read them from there or from here, never from a
table of their own. A (family, modality, size, variant) that cannot run raises PairError naming the
pair before any data is loaded.
"""

from __future__ import annotations

import dataclasses
import functools
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Optional

import torch.nn as nn

from bench.core.config import VariantConfig, flag_name
from bench.core.errors import PairError, UnknownNameError, UserError, first_line
from bench.models.thread_invariant import make_thread_invariant
from bench.core.process import runtime_defaults
from bench.core.registry import Registry, import_modules
from bench.core.spec import TaskSpec


@dataclass(frozen=True)
class ModelEntry:
    family: str
    modalities: tuple[str, ...]
    sizes: Mapping[str, Any]  # size name -> frozen size config
    build: Callable[[TaskSpec, Any, VariantConfig], nn.Module]  # (spec, size config, variant) -> module
    default_size: Callable[[TaskSpec], str]
    check: Optional[Callable[[TaskSpec, str, Any], Optional[str]]] = None  # returns why a pair cannot run
    baseline: bool = False  # the Transformer baseline of its modality
    relative_of: Optional[str] = None  # the family this one changes one part of (aMLP: gMLP + attention)
    description: str = ""
    # VariantConfig field -> the values this entry takes (None: any valid value); unlisted fields are refused
    variants: Mapping[str, Optional[tuple[str, ...]]] = field(default_factory=dict)
    # (spec, size config, scored) -> forward FLOPs per sample of the default variant on inputs of the
    # spec's full shape, counted as torch's FLOP counter counts them (matmuls, convolutions and
    # attention, 2 per multiply-add); `scored`: masked LM, the positions per sample the output head
    # runs on (None: all of them).
    flops: Optional[Callable[[TaskSpec, Any, Optional[float]], float]] = None
    # the builder takes drop_path_rate: stochastic depth over its blocks, rising linearly from 0 to the
    # rate at the last block (bench.core.recipes' drop_path)
    stochastic_depth: bool = False
    # a reference, neither the baseline nor a relative: an architecture of another kind (the ConvNet) or
    # the baseline built again from independent code (torch-transformer); pages show it in a row of its
    # own, apart from the families they compare and rank, and studies of the architectures leave it out
    reference: bool = False


def _one_entry_per_modality(family: str, registered: tuple[ModelEntry, ...], new: tuple[ModelEntry, ...]):
    """A family's entries, one registration at a time (its image entry, its text entry)."""
    taken = {m for e in registered for m in e.modalities}
    for modality in (m for e in new for m in e.modalities if m in taken):
        raise ValueError(f"model {family!r} is registered twice for {modality}.")
    return registered + new


# family -> its entries, one per registration (each covering one or more modalities)
MODELS: Registry[tuple[ModelEntry, ...]] = Registry("model", merge=_one_entry_per_modality)
_A_MODALITY = {"image": "an image", "mlm": "an mlm", "seq2seq": "a seq2seq"}  # for error sentences


def register_model(
    family: str,
    modalities: tuple[str, ...],
    sizes: Mapping[str, Any],
    default_size: Callable[[TaskSpec], str],
    check: Optional[Callable] = None,
    baseline: bool = False,
    relative_of: Optional[str] = None,
    description: str = "",
    variants: Optional[Mapping[str, Optional[tuple[str, ...]]]] = None,
    flops: Optional[Callable[[TaskSpec, Any, Optional[float]], float]] = None,
    stochastic_depth: bool = False,
    reference: bool = False,
):
    """Decorator for a builder `(spec, size_cfg, variant) -> nn.Module`; `variants` names the
    VariantConfig fields the builder takes (resolve refuses every other one before it is called);
    `flops(spec, size_cfg, scored)` gives its forward FLOPs per sample (ModelEntry.flops);
    `stochastic_depth`: the builder takes a keyword drop_path_rate (ModelEntry.stochastic_depth);
    `reference`: ModelEntry.reference."""

    def wrap(build):
        @functools.wraps(build)
        def build_thread_invariant(*args, **kwargs) -> nn.Module:
            model = build(*args, **kwargs)
            return model if runtime_defaults() else make_thread_invariant(model)

        entry = ModelEntry(
            family, modalities, dict(sizes), build_thread_invariant, default_size, check, baseline, relative_of,
            description, dict(variants or {}), flops, stochastic_depth, reference,
        )
        MODELS.add(family, (entry,))
        return build

    return wrap


def discover() -> None:
    """Import every module of this package, each family registering itself. Lazy, so that
    `bench.models` imports nothing heavy until the registry is read."""
    import_modules(__name__, __path__)


def list_models() -> list[str]:
    discover()
    return MODELS.names()


def model_entries(family: str) -> list[ModelEntry]:
    """Every entry of a family (one per modality group), or UnknownNameError listing the families."""
    discover()
    return list(MODELS.get(family))


def compared_families(modality: str) -> list[str]:
    """The families of a modality that the suite compares with each other: each one registered for it
    that is no relative of another (a relative changes one part of a compared family) and no reference."""
    return [f for f in list_models() for e in model_entries(f)
            if modality in e.modalities and e.relative_of is None and not e.reference]


def _entry(family: str, modality: str) -> Optional[ModelEntry]:
    return next((e for e in model_entries(family) if modality in e.modalities), None)


def resolve(
    family: str, size: Optional[str], spec: TaskSpec, variant: VariantConfig = VariantConfig()
) -> tuple[ModelEntry, str]:
    """The entry and size name for this pair; PairError or UnknownNameError with one sentence if none."""
    entry = _entry(family, spec.modality)
    if entry is None:
        modalities = sorted({m for e in model_entries(family) for m in e.modalities})
        raise PairError(
            f"Model {family!r} cannot run task {spec.name!r}: it is built for {' and '.join(modalities)} tasks, "
            f"and {spec.name!r} is {_A_MODALITY[spec.modality]} task."
        )
    size = size or entry.default_size(spec)
    if size not in entry.sizes:
        raise UnknownNameError(
            f"Unknown size {size!r} for model {family!r} on {spec.modality} tasks; "
            f"valid sizes are: {', '.join(entry.sizes)}."
        )
    if entry.check is not None:
        why = entry.check(spec, size, entry.sizes[size])
        if why:
            raise PairError(f"{family}-{size} cannot run task {spec.name!r}: {why}")
    check_variant(entry, spec, variant)
    return entry, size


def check_variant(entry: ModelEntry, spec: TaskSpec, variant: VariantConfig) -> None:
    """PairError naming the first variant flag (or value) that this family does not take on this modality."""
    for name, value in variant.given().items():
        if name not in entry.variants:
            takes = (f"it takes {', '.join(flag_name(n) for n in entry.variants)}" if entry.variants
                     else "it takes no variant flags")
            raise PairError(f"{flag_name(name)} does not apply to model {entry.family!r}; {takes}.")
        allowed = entry.variants[name]
        if allowed is not None and value not in allowed:
            raise PairError(
                f"{flag_name(name)} {value} does not apply to model {entry.family!r} on {spec.modality} tasks; "
                f"valid values there are: {', '.join(allowed)}."
            )


def create_model(
    family: str, size: Optional[str], spec: TaskSpec, variant: VariantConfig = VariantConfig()
) -> nn.Module:
    entry, size = resolve(family, size, spec, variant)
    return entry.build(spec, entry.sizes[size], variant)


def save_model(model: nn.Module, family: str, size: str, spec: TaskSpec, variant: VariantConfig,
               weights: Path, description: Path) -> None:
    """Keep trained weights as safetensors, with what rebuilds the model beside them."""
    from safetensors.torch import save_model as save_weights

    from bench.core.results import atomic_path, write_json_atomic

    with atomic_path(weights) as tmp:
        save_weights(model, str(tmp))  # handles tied weights (an MLM head sharing the embedding)
    spec_fields = {key: list(value) if isinstance(value, tuple) else value for key, value in asdict(spec).items()}
    write_json_atomic(description, {
        "family": family, "size": size, "variant": variant.given(), "spec": spec_fields, "weights": weights.name,
    })


def load_saved(description: Path | str) -> nn.Module:
    """The model a run saved with --save-model, rebuilt from its description (the .model.json file)
    and loaded with its weights, in eval mode."""
    from safetensors.torch import load_model as load_weights

    description = Path(description)
    try:
        saved = json.loads(description.read_text(encoding="utf-8"))
        spec = TaskSpec(**{key: tuple(value) if isinstance(value, list) else value for key, value in saved["spec"].items()})
        model = create_model(saved["family"], saved["size"], spec, VariantConfig(**saved["variant"]))
        load_weights(model, str(description.with_name(saved["weights"])))
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise UserError(f"Cannot rebuild the model saved in {description} ({first_line(e)}).") from None
    return model.eval()


def entry_for(family: str, modality: str) -> ModelEntry:
    """The family's entry for a modality; PairError naming the modalities it has if none."""
    entry = _entry(family, modality)
    if entry is None:
        modalities = sorted({m for e in model_entries(family) for m in e.modalities})
        raise PairError(f"Model {family!r} is built for {' and '.join(modalities)} tasks, not {modality} ones.")
    return entry


def resized(family: str, size: str, spec: TaskSpec, **fields: Any) -> tuple[ModelEntry, Any]:
    """(entry, size config): the family's named size with some fields replaced, for the task's
    shape. A study of cost against input size keeps a size's width and depth while it varies what
    sets the number of tokens: the patch of an image size (patch_size), the longest input of a text
    size (max_len). PairError if the replaced size cannot take the task (checked as `resolve` does)."""
    entry = entry_for(family, spec.modality)
    if size not in entry.sizes:
        raise UnknownNameError(
            f"Unknown size {size!r} for model {family!r} on {spec.modality} tasks; "
            f"valid sizes are: {', '.join(entry.sizes)}."
        )
    size_cfg = dataclasses.replace(entry.sizes[size], **fields)
    if entry.check is not None:
        why = entry.check(spec, size, size_cfg)
        if why:
            raise PairError(f"{family}-{size} cannot run task {spec.name!r}: {why}")
    return entry, size_cfg
