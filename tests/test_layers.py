"""The import structure, bottom to top: the shared types (bench/core/); then models and tasks, which never
import each other; then the loop and measurement (bench/training/, bench/measure/, bench/scale_out/); then the
commands' libraries (bench/runs/, bench/sweeps/, bench/regression/, bench/studies/), which compose models and the loop and are given the task registry; then the
commands (bench/NAME.py), which alone import the task package. No module imports itself through others. The leaderboard reads results with the shared types only. Every import counts, those inside
functions too, read from the source (nothing is imported to check)."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("bench", "tasks", "leaderboard")

# The layers follow the folders: a module's layer is that of the longest package prefix it has here.
FOLDERS = {
    "bench.core": "shared",  # errors, spec, registries, configs, results, recipes, process settings, the machine lock
    "bench.models": "models",
    "tasks": "tasks",
    "bench.training": "loop",  # the training loop, checkpoints, history, progress
    "bench.measure": "loop",  # timing and FLOP counts, the cost pass's timing and summary
    "bench.scale_out": "loop",  # the launcher and its executors
    # the commands' libraries, which compose models and the loop; the task registry they need, the command passes in
    "bench.runs": "compose",  # one run's phases (configure ... write_result), its output's checks and lock, --list
    "bench.sweeps": "compose",  # the sweep's grid, plan and execution
    "bench.regression": "compose",  # the regression check's cases, decision, sides, reports, check and calibration
    "bench.studies": "compose",  # the measurement studies: the cost pass, cost scaling, the harness checks, timm
    "leaderboard": "leaderboard",
}
# The commands: each is python -m bench.NAME (bench.regress_worker is started by bench.regress in each checkout it times)
COMMANDS = {
    "run", "sweep", "cost", "scaling", "regress", "regress_worker", "regress_calibration", "harness_check",
    "timm_compare", "defaults_check", "install_data", "sanity",
}
ENTRY_POINTS = {f"bench.{name}" for name in COMMANDS}
# layer -> the layers its modules may import
MAY_IMPORT = {
    "shared": {"shared"},
    "models": {"shared", "models"},
    "tasks": {"shared", "tasks"},
    "loop": {"shared", "loop"},
    "compose": {"shared", "models", "loop", "compose"},
    "entry": {"shared", "models", "tasks", "loop", "compose", "entry"},
    "leaderboard": {"shared", "leaderboard"},
}


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for package in PACKAGES for p in sorted((ROOT / package).rglob("*.py"))}


def layer(module: str) -> str:
    if module == "bench":  # its __init__ applies the process settings (bench.core.process)
        return "shared"
    if module in ENTRY_POINTS:
        return "entry"
    prefixes = [prefix for prefix in FOLDERS if module == prefix or module.startswith(prefix + ".")]
    if prefixes:
        return FOLDERS[max(prefixes, key=len)]
    raise AssertionError(f"{module} belongs to no layer: put it in a folder of FOLDERS, or add a command to COMMANDS "
                         f"in tests/test_layers.py")


def imports(module: str) -> set[str]:
    """The suite's modules `module` imports (`from bench import loop` imports bench.training.loop)."""
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
        return {"shared": "bench.core", "loop": "bench.training, bench.measure, bench.scale_out",
                "compose": "bench.runs, bench.sweeps, bench.regression, bench.studies", "entry": "bench (commands)",
                "models": "bench.models", "tasks": "tasks", "leaderboard": "leaderboard"}[layer(module)]

    graph: dict[str, set[str]] = {}
    for module in MODULES:
        graph.setdefault(group(module), set()).update(group(name) for name in imports(module))
    return {name: targets - {name} for name, targets in graph.items()}


def test_commands_are_the_only_modules_beside_the_packages():
    """bench/ holds the command modules and the packages: a library module belongs in a folder."""
    loose = {path.stem for path in (ROOT / "bench").glob("*.py")} - COMMANDS - {"__init__"}
    assert not loose, f"bench/{sorted(loose)[0]}.py is no command: move it into a package of bench/"


def test_no_import_cycles():
    """No module imports itself through others, whether at the top or inside a function: a depth-first
    search over the imports, which reports the first cycle it finds."""
    graph = {module: imports(module) for module in MODULES}
    done: set[str] = set()

    def visit(module: str, path: list[str]) -> None:
        if module in path:
            cycle = path[path.index(module):] + [module]
            raise AssertionError("import cycle: " + " -> ".join(cycle))
        if module in done:
            return
        for name in sorted(graph[module]):
            visit(name, path + [module])
        done.add(module)

    for module in sorted(graph):
        visit(module, [])


# A thin command parses its arguments, calls the library and returns an exit code. The rule: a main(), and at
# most THIN_LINES lines. The commands still holding their library are listed with what keeps them so.
THIN_LINES = 210
NOT_YET_THIN = {
    "regress_worker": "the worker each checkout runs, whose path every checkout keeps (bench.regress starts "
                      "bench/regress_worker.py in every checkout it times, older commits included)",
}


@pytest.mark.parametrize("name", sorted(COMMANDS - set(NOT_YET_THIN)), ids=lambda name: f"bench.{name}")
def test_commands_are_thin(name):
    tree = ast.parse(MODULES[f"bench.{name}"].read_text())
    lines = len(MODULES[f"bench.{name}"].read_text().splitlines())
    assert lines <= THIN_LINES, f"bench/{name}.py has {lines} lines: move its library into a package of bench/"
    assert any(isinstance(node, ast.FunctionDef) and node.name == "main" for node in tree.body), f"bench/{name}.py has no main()"


def test_models_and_tasks_never_import_each_other():
    graph = package_graph()
    assert "tasks" not in graph["bench.models"] and "bench.models" not in graph["tasks"]


if __name__ == "__main__":  # python tests/test_layers.py prints the structure
    for name, targets in sorted(package_graph().items()):
        print(f"{name} -> {', '.join(sorted(targets)) or 'nothing of the suite'}")
