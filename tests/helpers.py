"""A throwaway copy of the project (a fresh git repo) with small params, and running commands in it."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML

PROJECT = Path(__file__).resolve().parents[1]
# Small and quick: one seed, a higher rate for synthetic patterns, a log point every 10 steps.
SMALL = {"train": {"seeds": 1, "lr": 0.01, "log_every": 10, "eval_batch_size": 250}}


def set_params(repo: Path, changes: dict[str, dict[str, Any]]) -> None:
    """Merge sections of changes into repo/params.yaml, keeping its comments (as -S does)."""
    yaml = YAML()
    params = yaml.load(repo / "params.yaml")
    for section, values in changes.items():
        if isinstance(values, dict) and section in params:
            params[section].update(values)
        else:
            params[section] = values
    yaml.dump(params, repo / "params.yaml")


def copy_project(target: Path, params: dict[str, dict[str, Any]] | None = None) -> Path:
    """The working tree as a fresh clone has it (tracked and unignored files), params merged over
    SMALL, committed in a new git repo, without the committed study's results (its metrics, plots
    and figures are the pipeline's to make; dvc.lock stays: a stage whose inputs are the committed
    ones, the plots page, need not run)."""
    listed = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=PROJECT, capture_output=True, check=True
    ).stdout.decode()
    for name in filter(None, listed.split("\0")):
        if (PROJECT / name).is_file() and not name.startswith(("metrics/", "plots/", "report/figures/")):
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(PROJECT / name, target / name)
    params = params or {}
    set_params(target, {**SMALL, **params, "train": {**SMALL["train"], **params.get("train", {})}})
    git(target, "init", "-q")
    git(target, "add", "-A")
    git(target, "commit", "-q", "-m", "test copy")
    return target


def environment(**extra: str) -> dict[str, str]:
    """What stages run with: this interpreter first on PATH, the copy's src importable, resume
    state in the test's cache."""
    env = {k: v for k, v in os.environ.items() if k not in ("CIFAR10_URL", "PYTHONPATH")}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env.update(PYTHONPATH="src", DVC_NO_ANALYTICS="1", GIT_AUTHOR_NAME="test", GIT_COMMITTER_NAME="test")
    env.update(GIT_AUTHOR_EMAIL="test@example.org", GIT_COMMITTER_EMAIL="test@example.org", **extra)
    return env


def run(cwd: Path, *args: str, check: bool = True, **env: str) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        list(args), cwd=cwd, env=environment(**env), capture_output=True, text=True, timeout=600
    )
    if check and result.returncode != 0:
        raise AssertionError(
            f"{' '.join(args)} exited {result.returncode}\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
        )
    return result


def dvc(cwd: Path, *args: str, check: bool = True, **env: str) -> subprocess.CompletedProcess[str]:
    return run(cwd, sys.executable, "-m", "dvc", *args, check=check, **env)


def python(cwd: Path, *args: str, check: bool = True, **env: str) -> subprocess.CompletedProcess[str]:
    return run(cwd, sys.executable, *args, check=check, **env)


def git(cwd: Path, *args: str) -> str:
    return run(cwd, "git", *args).stdout


def ran_stages(output: str) -> list[str]:
    """The stages a `dvc repro` or `dvc exp run` says it ran, in order."""
    return re.findall(r"Running stage '([^']+)'", output)


def one_line_error(result: subprocess.CompletedProcess[str], name: str) -> str:
    """The refusal a command printed: exactly one line, `name: error: ...`, and exit 1."""
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 1 and len(lines) == 1 and lines[0].startswith(f"{name}: error: "), (
        result.stderr
    )
    return lines[0]
