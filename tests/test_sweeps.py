"""Sweeps on any engine: one experiment as a command (tools/run_experiment.py) and a sweep of them
on Ray (tools/ray_sweep.py), against a bare git repository as origin and a folder as the DVC
remote. The project is a copy of the study with two quick stages in place of its pipeline, so that
the tools take the time, not training; docs/ray.md times them on the study's own pipeline."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import PROJECT, copy_project, dvc, environment, git, one_line_error, python

STAGE = '''"""prepare writes the data; train reads it and dropout.fc, and refuses a rate outside [0, 1)."""
import json
import sys
from pathlib import Path

import yaml

if sys.argv[1] == "prepare":
    Path("data/prepared").mkdir(parents=True, exist_ok=True)
    Path("data/prepared/images.bin").write_bytes(bytes(range(256)) * 4096)
else:
    fc = yaml.safe_load(Path("params.yaml").read_text())["dropout"]["fc"]
    if not 0 <= fc < 1:
        sys.exit(f"train: error: dropout.fc: {fc} is not in [0, 1)")
    data = Path("data/prepared/images.bin").read_bytes()
    Path("models").mkdir(exist_ok=True)
    Path("models/dropout.pt").write_bytes(data[:1000] + str(fc).encode())
    Path("metrics").mkdir(exist_ok=True)
    Path("metrics/train_dropout.json").write_text(json.dumps({"dropout": {"val": round(1 - fc, 3)}}))
'''
PIPELINE = """stages:
  prepare:
    cmd: python stage.py prepare
    deps: [stage.py]
    outs: [data/prepared]
  train:
    cmd: python stage.py train
    deps: [stage.py, data/prepared]
    params: [dropout.fc]
    outs: [models/dropout.pt]
    metrics:
      - metrics/train_dropout.json:
          cache: false
metrics: [metrics/train_dropout.json]
"""


@pytest.fixture
def team(tmp_path: Path) -> Path:
    """The project reproduced and committed with a folder as its default DVC remote, which holds the
    commit's outputs, and pushed to a bare origin. Returns the clone."""
    repo = copy_project(tmp_path / "repo")
    (repo / "stage.py").write_text(STAGE)
    (repo / "dvc.yaml").write_text(PIPELINE)
    dvc(repo, "remote", "add", "-d", "team", str(tmp_path / "storage"))
    dvc(repo, "repro")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "results and the team's remote")
    dvc(repo, "push")
    git(tmp_path, "clone", "-q", "--bare", str(repo), str(tmp_path / "origin.git"))
    git(repo, "remote", "add", "origin", str(tmp_path / "origin.git"))
    git(repo, "fetch", "-q", "origin")
    return repo


def clones() -> Path:
    """Where run_experiment keeps its clones on this node (the test's XDG_CACHE_HOME)."""
    return Path(os.environ["XDG_CACHE_HOME"]) / "convlab/experiments/clones"


def result(run: subprocess.CompletedProcess[str]) -> dict:
    return json.loads(run.stdout.strip().splitlines()[-1])


def on_origin(repo: Path) -> dict[str, str]:
    """{experiment name: its commit} on origin."""
    listed = git(repo, "ls-remote", "origin", "refs/exps/*").splitlines()
    return {ref.rsplit("/", 1)[1]: commit for commit, ref in (line.split("\t") for line in listed)}


@pytest.mark.parametrize(
    ("tool", "args", "expected"),
    [
        ("ray_sweep", ["-S", "dropout.fc=range(0,1000000)", "-S", "seed=range(0,1000000)"],
         "ray_sweep: error: the grid has more than 1000 experiments"),
        ("ray_sweep", ["-S", "dropout.fc=0.1,0.2", "--name=-x"],
         "ray_sweep: error: experiment name '-x-"),
        ("run_experiment", ["-n", "fc", "-S", "dropout.fc=0.1,0.2"],
         "run_experiment: error: -S dropout.fc=0.1,0.2 is a sweep"),
    ],
)  # fmt: skip
def test_what_cannot_run_is_refused_in_one_line(
    tmp_path: Path, tool: str, args: list[str], expected: str
) -> None:
    git(tmp_path, "init", "-q")
    dvc(tmp_path, "init", "-q")
    refused = python(tmp_path, str(PROJECT / "tools" / f"{tool}.py"), *args, check=False)
    assert one_line_error(refused, tool).startswith(expected)


@pytest.mark.slow
def test_an_experiment_lands_once_and_the_next_on_the_node_reuses_its_data(team: Path) -> None:
    first = python(team, "tools/run_experiment.py", "-n", "fc-0.3", "-S", "dropout.fc=0.3")
    landed = result(first)
    assert (landed["state"], landed["metrics"]) == ("landed", {"dropout.val": 0.7}), first.stdout
    commit = on_origin(team)["fc-0.3"]
    assert "fc: 0.3" in git(team.parent / "origin.git", "show", f"{commit}:params.yaml")
    assert list(clones().iterdir()) == []

    again = python(team, "tools/run_experiment.py", "-n", "fc-0.3", "-S", "dropout.fc=0.3")
    assert result(again)["state"] == "there" and on_origin(team)["fc-0.3"] == commit

    # The prepared data are in this node's cache now: with the DVC remote emptied, the next
    # experiment has nothing to pull them from, and lands all the same.
    shutil.rmtree(team.parent / "storage")
    (team.parent / "storage").mkdir()
    second = python(team, "tools/run_experiment.py", "-n", "fc-0.4", "-S", "dropout.fc=0.4", check=False)
    assert result(second)["state"] == "landed", second.stdout + second.stderr


def start_and_kill_a_run(repo: Path) -> list[Path]:
    """run_experiment killed (SIGKILL, it and all it started) once its clone is made: the folders it
    leaves behind."""
    run = subprocess.Popen(
        [sys.executable, "tools/run_experiment.py", "-n", "fc-killed", "-S", "dropout.fc=0.5"],
        cwd=repo, env=environment(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True,
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while not list(clones().glob("*/repo/.git")) and time.monotonic() < deadline:
        time.sleep(0.1)
    os.killpg(run.pid, signal.SIGKILL)
    run.wait()
    return list(clones().iterdir())


@pytest.mark.slow
def test_a_ray_sweep_clears_a_killed_runs_clone_and_lands_all_but_a_refused_param(team: Path) -> None:
    stale = start_and_kill_a_run(team)
    assert stale

    # Ray writes its token to ~/.ray; its workers, at nice 15 by default, would yield to other tests.
    ray = dict(HOME=str(team.parent / "home"), RAY_worker_niceness="0")
    swept = python(team, "tools/ray_sweep.py", "-S", "dropout.fc=0.5,1.5", "-n", "fc", check=False, **ray)
    assert not any(folder.exists() for folder in stale)
    names = {line.split()[1]: line for line in swept.stdout.splitlines() if line.startswith("[")}
    refused = next(name for name, line in names.items() if line.endswith("dropout.fc=1.5"))
    error = one_line_error(swept, "ray_sweep")
    assert error == f"ray_sweep: error: 1 of 2 experiments failed ({refused}); the rest are on origin"
    assert "train: error: dropout.fc: 1.5 is not in [0, 1)" in swept.stdout  # the failed step's last lines
    assert set(on_origin(team)) == set(names) - {refused}
    rows = [line for line in swept.stdout.splitlines() if line.startswith("| fc-")]
    assert sorted(row.split(" | ", 1)[1] for row in rows) == ["0.5 | 0.5 |"], swept.stdout
    assert list(clones().iterdir()) == []
