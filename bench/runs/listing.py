"""What `python -m bench.run --list` prints: the tasks, the models with their sizes and parameter counts, the
recipes, and which pairs run. The task registry's create_task and names are the command's to pass in."""

from __future__ import annotations

from bench.core.config import flag_name
from bench.core.errors import PairError, UserError
from bench.core.recipes import get_recipe, list_recipes


def listing(create_task, task_names) -> str:
    """Tasks, models with sizes and parameter counts (on each modality's reference task), and runnable pairs.
    `create_task` and `task_names` (a function returning the names): the task registry's, given by the command."""
    import torch

    from bench.core.config import DataConfig, VariantConfig
    from bench.models import model_entries, list_models, resolve

    data_cfg = DataConfig()
    lines = ["Tasks:"]
    specs = {}
    for name in task_names():
        task = create_task(name)
        try:
            spec = task.spec(data_cfg)
            specs[name] = spec
            shape = spec.describe()
        except UserError:
            shape = "needs --data-dir"
        lines.append(f"  {name:<14} {shape:<44} {task.description}")
    lines.append("")
    lines.append("Models (parameters on each modality's reference task):")
    reference = _reference_specs(specs)
    for family in list_models():
        for entry in model_entries(family):
            ref = reference.get(entry.modalities[0])
            sizes = []
            for size in entry.sizes:
                if ref is None:
                    sizes.append(size)
                    continue
                try:
                    resolve(family, size, ref)
                    with torch.device("meta"):  # shapes only: counting needs no memory and no init
                        model = entry.build(ref, entry.sizes[size], VariantConfig())
                    sizes.append(f"{size} ({sum(p.numel() for p in model.parameters()) / 1e6:.1f}M)")
                except PairError:
                    sizes.append(f"{size} (n/a on {ref.name})")
            tag = " [baseline]" if entry.baseline else ""
            if entry.variants:
                tag += f"; variants: {', '.join(flag_name(name) for name in entry.variants)}"
            lines.append(f"  {family:<12} {'/'.join(entry.modalities):<12} {', '.join(sizes)}{tag}")
    lines.append("")
    lines.append("Recipes (--recipe; the task's default: paper for imagenet, suite for the rest):")
    for name in list_recipes():
        lines.append(f"  {name:<14} {get_recipe(name).description}")
    lines.append("")
    lines.append("Pairs that run (task: model-size for every size that fits):")
    for name, spec in specs.items():
        runnable = []
        for family in list_models():
            for entry in model_entries(family):
                if spec.modality not in entry.modalities:
                    continue
                for size in entry.sizes:
                    try:
                        resolve(family, size, spec)
                        runnable.append(f"{family}-{size}")
                    except PairError:
                        pass
        lines.append(f"  {name:<14} {', '.join(runnable) or '(none)'}")
    return "\n".join(lines)


def _reference_specs(specs):
    """One task per modality to count parameters on: ImageNet-sized images, the default text tasks."""
    from bench.core.spec import TaskSpec

    ref = {"image": TaskSpec("imagenet", "image", "top1", image_size=(3, 224, 224), num_classes=1000)}
    for spec in specs.values():
        ref.setdefault(spec.modality, spec)
    return ref

