"""Make a throwaway copy of the project (a fresh git repo) with small params, for stage tests."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from convlab.cifar import read_archive
from convlab.data import Prepared, normalization_stats, save_prepared, split_dataset

PROJECT = Path(__file__).resolve().parents[1]


def project_files() -> list[str]:
    """Tracked and untracked-but-not-ignored files: the working tree as a fresh clone would have it."""
    out = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=PROJECT,
        check=True,
        capture_output=True,
    ).stdout.decode()
    return [f for f in out.split("\0") if f and (PROJECT / f).is_file()]


# The committed study trains five seeds per variant; a test trains one unless it says otherwise.
TEST_DEFAULTS: dict[str, dict[str, Any]] = {"train": {"seeds": 1}}


def copy_project(target: Path, params: dict[str, dict[str, Any]] | None = None) -> Path:
    """Copy the project into target, apply params overrides (over TEST_DEFAULTS), and commit it
    in a new git repo."""
    for name in project_files():
        (target / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(PROJECT / name, target / name)
    params = {**(params or {})}
    params["train"] = {**TEST_DEFAULTS["train"], **params.get("train", {})}
    if params:
        raw = yaml.safe_load((target / "params.yaml").read_text())
        for section, values in params.items():
            if isinstance(values, dict):
                raw[section].update(values)
            else:
                raw[section] = values
        (target / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    git(target, "init", "-q")
    git(target, "add", "-A")
    git(target, "commit", "-q", "-m", "test copy")
    return target


def git(cwd: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-c", "user.name=test", "-c", "user.email=test@example.org", *args],
        cwd=cwd,
        check=True,
        capture_output=True,
    )


def environment(**extra: str) -> dict[str, str]:
    """The environment stages run in: this interpreter first on PATH, the copy's src importable."""
    env = {k: v for k, v in os.environ.items() if k != "CIFAR10_URL"}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONPATH"] = "src"
    env["DVC_NO_ANALYTICS"] = "1"
    env.update(extra)
    return env


def run(cwd: Path, *args: str, check: bool = True, **env: str) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        list(args), cwd=cwd, env=environment(**env), capture_output=True, text=True, timeout=900
    )
    if check and result.returncode != 0:
        raise AssertionError(
            f"{' '.join(args)} exited {result.returncode}\n--- stdout\n{result.stdout[-4000:]}"
            f"\n--- stderr\n{result.stderr[-4000:]}"
        )
    return result


def dvc(cwd: Path, *args: str, check: bool = True, **env: str) -> subprocess.CompletedProcess[str]:
    return run(cwd, sys.executable, "-m", "dvc", *args, check=check, **env)


def ran_stages(output: str) -> list[str]:
    """The stages a `dvc repro` or `dvc exp run` output says it ran, in order."""
    return re.findall(r"Running stage '([^']+)'", output)


def prepared_project(tmp_path: Path, archive: Path, **params: dict) -> Path:
    """A project copy with the archive's data split and prepared (validation: its last fifth), so
    a test can run a stage after split at once."""
    data = {"val_size": len(read_archive(archive).y_train) // 5}
    repo = copy_project(tmp_path, {"train": {"lr": 0.01, "log_every": 10}, "data": data, **params})
    # The committed results of the real run are outputs: DVC deletes them before a stage runs.
    for outputs in ("metrics", "plots", "report"):
        shutil.rmtree(repo / outputs, ignore_errors=True)
    data = read_archive(archive)
    train, val, test = split_dataset(data, len(data.y_train) // 5)  # as the params' val_size below
    save_prepared(
        repo / "data/prepared", Prepared(train, val, test, normalization_stats(train.x, "standardize"))
    )
    return repo
