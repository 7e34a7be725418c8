"""tools/share_runs.py refuses in one line what cannot take the runs, and never creates a remote
folder: a remote named for another machine's disk is refused, not filled beside the clone."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from project import PROJECT, copy_project, run


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return copy_project(tmp_path_factory.mktemp("share") / "repo")


def refused(cwd: Path, *args: str) -> str:
    result = run(cwd, sys.executable, str(PROJECT / "tools/share_runs.py"), *args, check=False)
    assert result.returncode == 1 and result.stderr.count("\n") == 1, result.stderr
    assert result.stderr.startswith("share_runs: error: ")
    return result.stderr


def test_no_default_remote(repo: Path) -> None:
    assert "no default DVC remote: name one with -r (configured: study-machine)" in refused(repo)


def test_an_unknown_remote(repo: Path) -> None:
    assert "no DVC remote 'team' (configured: study-machine)" in refused(repo, "-r", "team")


def test_a_folder_remote_of_another_machine_is_not_created(repo: Path) -> None:
    stderr = refused(repo, "-r", "study-machine")
    assert "is the folder" in stderr and "which does not exist on this machine" in stderr
    assert not (repo.parent.parent / "convlab-dvc-storage").exists()
    assert sorted(p.name for p in repo.parent.iterdir()) == ["repo"]


def test_outside_a_dvc_repository(tmp_path: Path) -> None:
    assert "is not in a DVC repository" in refused(tmp_path)
