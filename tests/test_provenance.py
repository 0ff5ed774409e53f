"""bench.core.results: the provenance a result records (git_state) and reads back (git_provenance), old files included."""

import re
import subprocess
from pathlib import Path

import pytest

from bench.core.results import git_provenance, git_state

ROOT = Path(__file__).resolve().parents[1]


def test_git_state_is_the_checkouts_commit_and_whether_tracked_files_changed():
    state = git_state()
    assert set(state) == {"git_commit", "git_dirty"}
    if state["git_commit"] is None:
        pytest.skip("not a git checkout")
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    assert state["git_commit"] == head and re.fullmatch(r"[0-9a-f]{40}", head)
    status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT,
                            capture_output=True, text=True).stdout
    assert state["git_dirty"] is bool(status.strip())


def test_git_state_outside_git_is_unknown(monkeypatch):
    def no_git(*args, **kwargs):
        raise FileNotFoundError("git")

    monkeypatch.setattr(subprocess, "run", no_git)
    assert git_state() == {"git_commit": None, "git_dirty": None}


@pytest.mark.parametrize("environment, expected", [
    ({"git_commit": "abc123", "git_dirty": False}, ("abc123", False)),
    ({"git_commit": "abc123", "git_dirty": True}, ("abc123", True)),
    ({"git_commit": "abc123-dirty"}, ("abc123", True)),  # written before git_dirty existed
    ({"git_commit": "abc123"}, ("abc123", False)),  # likewise: no suffix was a clean tree
    ({"git_commit": "abc123", "git_dirty": None}, ("abc123", None)),
    ({"git_commit": None, "git_dirty": None}, (None, None)),
    ({}, (None, None)),
])
def test_git_provenance_reads_both_forms(environment, expected):
    assert git_provenance(environment) == expected
