"""The results folder's run.json names the commit that ran and whether the checkout was dirty
(tracked files changed since that commit), in a temporary git repository."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pandas as pd
import pytest

from llmbt.engine.config import RunConfig
from llmbt.experiments import results
from llmbt.reports.page_parts import commit_note

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="needs the git command")


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True,
                          text=True).stdout.strip()


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A git repository with one commit, used as the package's checkout."""
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q")
    (repo / "code.py").write_text("x = 1\n")
    git(repo, "add", "code.py")
    git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "first")
    monkeypatch.setattr(results, "SOURCE", repo)
    return repo


def run_json(out: Path) -> dict:
    index = pd.date_range("2020-01-01", periods=3)
    res = {"info": {"a": {}}, "returns": {"a": pd.Series(0.0, index)},
           "scores": {"a": pd.DataFrame({"score": 0.0}, index)}, "folds": pd.DataFrame({"fold": [0]}),
           "close": pd.Series(1.0, index)}
    results.write_arms_results(res, RunConfig(strategy="sma_cross"), [], out, horizon=1)
    return json.loads((out / "run.json").read_text())


def test_clean_checkout_records_its_commit(repo: Path, tmp_path: Path) -> None:
    (repo / "notes.txt").write_text("untracked files do not count")
    run = run_json(tmp_path / "out")
    assert (run["git_commit"], run["dirty"]) == (git(repo, "rev-parse", "HEAD"), False)
    assert commit_note(run) == run["git_commit"]


@pytest.mark.parametrize("stage", [False, True])
def test_changed_tracked_file_records_dirty(repo: Path, tmp_path: Path, stage: bool) -> None:
    (repo / "code.py").write_text("x = 2\n")
    if stage:
        git(repo, "add", "code.py")
    run = run_json(tmp_path / "out")
    assert (run["git_commit"], run["dirty"]) == (git(repo, "rev-parse", "HEAD"), True)
    assert commit_note(run) == f"{run['git_commit']} + uncommitted changes (dirty)"


def test_outside_git_records_neither(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(results, "SOURCE", tmp_path)
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path.parent))
    assert results.git_state() == {"git_commit": None, "dirty": None}
