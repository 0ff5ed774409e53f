"""Every command's --help works and shows defaults and an example; the data installer's paths."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bench import install_data

ROOT = Path(__file__).resolve().parent.parent
COMMANDS = [
    ["-m", "bench.run"], ["bench/run.py"], ["-m", "bench.sweep"], ["-m", "leaderboard"], ["-m", "bench.regress"],
    ["-m", "bench.regress_calibration"], ["-m", "bench.harness_check"], ["-m", "bench.install_data"],
    ["-m", "bench.scaling"], ["-m", "bench.timm_compare"], ["-m", "bench.defaults_check"],
]


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_help_works_and_shows_defaults_and_an_example(command):
    out = subprocess.run([sys.executable, *command, "--help"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("usage: ") and "examples:" in out.stdout
    assert "sweep.py" not in out.stdout.splitlines()[0], "named as it is run, not by its file"
    if command[-1] not in ("bench.install_data", "leaderboard"):  # whose flags have no default to show
        assert "(default: " in out.stdout


def test_sweep_help_describes_the_sweep_file():
    out = subprocess.run([sys.executable, "-m", "bench.sweep", "--help"], cwd=ROOT, capture_output=True, text=True)
    for key in ("output_dir", "tasks", "models", "seeds", "[args]", "[tune]"):
        assert key in out.stdout


def test_install_data_says_what_is_missing_and_never_fails_without_apt(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(install_data, "PACKAGES", {"wordnet-base": (str(tmp_path / "absent"), "wordnet")})
    assert install_data.main(["--check"]) == 1
    assert "Missing Debian data packages: wordnet-base (for wordnet)." in capsys.readouterr().out
    monkeypatch.setattr(install_data.shutil, "which", lambda name: None)
    assert install_data.main([]) == 0
    err = capsys.readouterr().err
    assert "apt-get is not available" in err and "--data-dir / --data-files" in err


@pytest.mark.slow
def test_accelerates_mixed_precision_reaches_the_run_and_a_contradiction_is_refused(tmp_path, monkeypatch, capsys):
    """`accelerate launch --mixed_precision bf16` (or its config file) sets ACCELERATE_MIXED_PRECISION."""
    from bench import run as runner

    quick = ["--task", "digits", "--model", "gmlp", "--mode", "bench", "--batch-size", "4", "--bench-steps", "1",
             "--bench-repeats", "1", "--latency-samples", "1", "--peak-gemm-size", "64"]
    monkeypatch.setenv("ACCELERATE_MIXED_PRECISION", "bf16")
    assert runner.main([*quick, "--output-dir", str(tmp_path / "a")]) == 0
    result = json.loads((tmp_path / "a" / "digits__gmlp-mini__bf16__seed0.json").read_text())
    assert result["environment"]["precision"] == result["config"]["run"]["precision"] == "bf16"
    assert runner.main([*quick, "--precision", "fp32", "--output-dir", str(tmp_path / "b")]) == 2
    assert "--precision fp32 contradicts accelerate launch's mixed precision bf16" in capsys.readouterr().err
    assert not (tmp_path / "b").exists()


@pytest.mark.slow
def test_run_as_a_script_lists_what_python_m_lists():
    """`accelerate launch bench/run.py ...` runs the file as a script, its folder first on sys.path:
    with the suite installed (here: this checkout on PYTHONPATH, conftest.py) it needs no path fix."""
    script = subprocess.run([sys.executable, "bench/run.py", "--list"], cwd=ROOT, capture_output=True, text=True,
                            timeout=300)
    module = subprocess.run([sys.executable, "-m", "bench.run", "--list"], cwd=ROOT, capture_output=True, text=True,
                            timeout=300)
    assert script.returncode == module.returncode == 0, script.stderr + module.stderr
    assert script.stdout.startswith("Tasks:") and script.stdout == module.stdout


def test_no_module_of_bench_shadows_another_when_a_script_runs():
    """A script's folder comes first on sys.path, so a module bench/x.py would be what `import x` finds
    there, in place of the standard library's or a dependency's x."""
    from importlib.machinery import PathFinder

    names = {p.stem for p in (ROOT / "bench").glob("*.py")} | {p.name for p in (ROOT / "bench").iterdir()
                                                               if (p / "__init__.py").exists()}
    names.discard("__init__")
    elsewhere = [p for p in sys.path if Path(p or ".").resolve() not in (ROOT, ROOT / "bench")]  # not the checkout
    shadowing = sorted(n for n in names if n in sys.stdlib_module_names or PathFinder.find_spec(n, elsewhere))
    assert not shadowing
