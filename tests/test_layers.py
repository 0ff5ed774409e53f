"""The import structure, bottom to top: the shared types; then models and tasks, which never import
each other; then the loop and measurement; then the entry points, which alone import the task
package. The leaderboard reads results with the shared types only. Every import counts, those inside
functions too, read from the source (nothing is imported to check)."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("bench", "tasks", "leaderboard")

SHARED = {
    "bench", "bench.process", "bench.spec", "bench.errors", "bench.registry", "bench.config", "bench.results",
    "bench.recipes",  # the recipe registry: values and their sources, no torch
}
LOOP = {
    "bench.loop", "bench.measure", "bench.checkpoint", "bench.history", "bench.progress", "bench.machine", "bench.launch",
}
ENTRY_POINTS = {
    "bench.run", "bench.sweep", "bench.cost", "bench.scaling", "bench.regress", "bench.regress_worker",
    "bench.regress_calibration", "bench.harness_check", "bench.timm_compare", "bench.defaults_check", "bench.install_data",
    "bench.sanity",
}
# layer -> the layers its modules may import
MAY_IMPORT = {
    "shared": {"shared"},
    "models": {"shared", "models"},
    "tasks": {"shared", "tasks"},
    "loop": {"shared", "loop"},
    "entry": {"shared", "models", "tasks", "loop", "entry"},
    "leaderboard": {"shared", "leaderboard"},
}


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for package in PACKAGES for p in sorted((ROOT / package).rglob("*.py"))}


def layer(module: str) -> str:
    if module in SHARED:
        return "shared"
    if module in LOOP:
        return "loop"
    if module in ENTRY_POINTS:
        return "entry"
    for prefix, name in (("bench.models", "models"), ("tasks", "tasks"), ("leaderboard", "leaderboard")):
        if module == prefix or module.startswith(prefix + "."):
            return name
    raise AssertionError(f"{module} belongs to no layer: add it to one in tests/test_layers.py")


def imports(module: str) -> set[str]:
    """The suite's modules `module` imports (`from bench import loop` imports bench.loop)."""
    found = set()
    for node in ast.walk(ast.parse(MODULES[module].read_text())):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        else:
            continue
        found |= {name for name in names if name in MODULES and name != module}
    return found


@pytest.mark.parametrize("module", sorted(MODULES))
def test_every_import_goes_down_or_across_its_layer(module):
    mine = layer(module)
    wrong = sorted(name for name in imports(module) if layer(name) not in MAY_IMPORT[mine])
    assert not wrong, f"{module} ({mine}) imports {', '.join(f'{n} ({layer(n)})' for n in wrong)}"


def test_only_entry_points_import_the_task_package():
    importers = {module for module in MODULES if "tasks" in imports(module) and layer(module) != "tasks"}
    assert importers <= ENTRY_POINTS, sorted(importers - ENTRY_POINTS)


def package_graph() -> dict[str, set[str]]:
    """Which of bench (shared, loop, entry points), bench.models, tasks and leaderboard imports which."""
    def group(module: str) -> str:
        return {"shared": "bench (shared)", "loop": "bench (loop, measure)", "entry": "bench (entry points)",
                "models": "bench.models", "tasks": "tasks", "leaderboard": "leaderboard"}[layer(module)]

    graph: dict[str, set[str]] = {}
    for module in MODULES:
        graph.setdefault(group(module), set()).update(group(name) for name in imports(module))
    return {name: targets - {name} for name, targets in graph.items()}


def test_models_and_tasks_never_import_each_other():
    graph = package_graph()
    assert "tasks" not in graph["bench.models"] and "bench.models" not in graph["tasks"]


if __name__ == "__main__":  # python tests/test_layers.py prints the structure
    for name, targets in sorted(package_graph().items()):
        print(f"{name} -> {', '.join(sorted(targets)) or 'nothing of the suite'}")
