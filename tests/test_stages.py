"""Stage entry points: clear errors, no outputs on failure, and a SIGKILLed training resumes exactly."""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from project import copy_project, environment, prepared_project, run

from convlab.checkpoint import load_models
from convlab.cifar import file_md5

pytestmark = pytest.mark.slow  # stages as real subprocesses

# runs.csv's columns that say how a run ran (seconds, speed), which a resumed run cannot repeat.
TIMINGS = ("train_seconds", "wall_seconds", "images_per_second")


def test_download_stage_prefers_cifar10_url(tmp_path: Path, tiny_archive: Path) -> None:
    repo = copy_project(
        tmp_path, {"data": {"url": "http://127.0.0.1:9/unreachable.tar.gz", "md5": file_md5(tiny_archive)}}
    )
    result = run(repo, sys.executable, "stages/download.py", CIFAR10_URL=tiny_archive.as_uri())
    assert "accepted by its md5" in result.stdout
    assert file_md5(repo / "data/raw/cifar-10-python.tar.gz") == file_md5(tiny_archive)


def test_download_stage_with_wrong_checksum_fails_cleanly(tmp_path: Path, tiny_archive: Path) -> None:
    repo = copy_project(tmp_path, {"data": {"url": tiny_archive.as_uri()}})  # the official md5
    result = run(repo, sys.executable, "stages/download.py", check=False)
    assert result.returncode == 1
    assert "download: error: not the expected CIFAR-10 archive" in result.stderr
    assert "Traceback" not in result.stderr
    assert [p.name for p in (repo / "data/raw").iterdir()] == [".gitignore"]  # DVC's, committed


def test_bad_params_fail_before_any_work(tmp_path: Path, tiny_archive: Path) -> None:
    repo = prepared_project(tmp_path, tiny_archive, dropout={"fc": 1.5})
    result = run(repo, sys.executable, "stages/train.py", "baseline", check=False)
    assert result.returncode == 1
    assert "dropout.fc = 1.5 is not allowed: expected a dropout rate in [0, 1)" in result.stderr
    assert not (repo / "metrics").exists() and not list((repo / "models").glob("*.pt"))


def test_outputs_that_cannot_be_written_are_refused_before_training(
    tmp_path: Path, tiny_archive: Path
) -> None:
    repo = prepared_project(tmp_path, tiny_archive)
    shutil.rmtree(repo / "models")
    (repo / "models").write_text("a file where the models folder goes")
    result = run(repo, sys.executable, "stages/train.py", "baseline", check=False)
    assert result.returncode == 1
    assert result.stderr == (
        "train: error: a file stands where a folder of its path should be while writing models/baseline.pt\n"
    )
    assert "epoch" not in result.stdout  # refused before the first epoch, not after it


def test_diverging_training_writes_no_metrics(tmp_path: Path, tiny_archive: Path) -> None:
    repo = prepared_project(tmp_path, tiny_archive, train={"lr": 1e6, "log_every": 10})
    result = run(repo, sys.executable, "stages/train.py", "baseline", check=False)
    assert result.returncode == 1
    assert "train: error: training loss became" in result.stderr and "at step" in result.stderr
    assert not (repo / "metrics/train_baseline.json").exists()
    assert not (repo / "models/baseline.pt").exists()


def test_sigkilled_training_resumes_to_the_uninterrupted_metrics_and_never_from_damage(
    tmp_path: Path, tiny_archive: Path
) -> None:
    settings = {"staged_dropout": {"epochs": 4}, "train": {"lr": 0.01, "log_every": 10, "seeds": 2}}
    clean = prepared_project(tmp_path / "clean", tiny_archive, **settings)
    killed = prepared_project(tmp_path / "killed", tiny_archive, **settings)
    run(clean, sys.executable, "stages/train.py", "staged_dropout")

    process = subprocess.Popen(
        [sys.executable, "stages/train.py", "staged_dropout"],
        cwd=killed,
        env=environment(),
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert process.stdout is not None
    second_seed = False
    for line in process.stdout:  # kill during the second seed's epoch 2, after its epoch 1 is saved
        second_seed = second_seed or "run 2 of 2, seed 1" in line
        if second_seed and line.startswith("epoch   1/4"):
            time.sleep(0.1)
            break
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    assert process.returncode == -signal.SIGKILL
    assert not (killed / "metrics/train_staged_dropout.json").exists()
    (killed / ".convlab/resume/train_staged_dropout-seed7.pt").write_bytes(b"an abandoned setting's")
    resume = killed / ".convlab/resume"
    assert {p.name for p in resume.iterdir()} == {
        "train_staged_dropout-seed0.pt",
        "train_staged_dropout-seed1.pt",
        "train_staged_dropout-seed7.pt",
    }

    # Seed 1's state, damaged inside its weights (low mantissa bits: other numbers, not garbage),
    # must not be used: it is said in one line and that seed starts over, to the clean numbers.
    damaged = resume / "train_staged_dropout-seed1.pt"
    data = damaged.read_bytes()
    middle = len(data) // 2
    damaged.write_bytes(
        data[:middle] + bytes(b ^ 0x01 for b in data[middle : middle + 64]) + data[middle + 64 :]
    )

    result = run(killed, sys.executable, "stages/train.py", "staged_dropout")
    assert "seed 0 resumed after epoch 4" in result.stdout  # finished: not trained again
    assert f"resume: {damaged.relative_to(killed)} is damaged (" in result.stdout
    assert "seed 1 resumed" not in result.stdout
    metrics = [(repo / "metrics/train_staged_dropout.json").read_text() for repo in (clean, killed)]
    assert metrics[0] == metrics[1]  # metrics hold no timings: byte for byte the same
    for name in ("steps.csv", "epochs.csv", "runs.csv"):
        tables = [
            list(csv.DictReader((repo / "plots/train_staged_dropout" / name).open()))
            for repo in (clean, killed)
        ]
        for table in tables:
            for row in table:
                for key in ("seconds", *TIMINGS):
                    row.pop(key, None)
        assert tables[0] == tables[1]
    assert not list(resume.iterdir())


def test_several_seeds_give_a_checkpoint_a_row_and_a_spread_each(tmp_path: Path, tiny_archive: Path) -> None:
    repo = prepared_project(
        tmp_path, tiny_archive, baseline={"epochs": 2}, train={"lr": 0.01, "log_every": 10, "seeds": 3}
    )
    run(repo, sys.executable, "stages/train.py", "baseline")
    metrics = json.loads((repo / "metrics/train_baseline.json").read_text())
    rows = list(csv.DictReader((repo / "plots/train_baseline/runs.csv").open()))
    assert [row["seed"] for row in rows] == ["0", "1", "2"]
    assert all(int(row["threads"]) == torch.get_num_threads() for row in rows)
    accs = [float(row["best_val_acc"]) for row in rows]
    assert metrics == {"baseline": {"val": pytest.approx(sum(accs) / 3)}}
    models = load_models(repo / "models/baseline.pt")
    assert [info["seed"] for _, info in models] == [0, 1, 2]
    assert [info["val_acc"] for _, info in models] == accs
    weights = [model.state_dict()["fc2.weight"] for model, _ in models]  # three seeds, three models
    assert not torch.equal(weights[0], weights[1]) and not torch.equal(weights[1], weights[2])


@pytest.mark.parametrize("variant", ["wide", ""])
def test_unknown_variant(tmp_path: Path, tiny_archive: Path, variant: str) -> None:
    repo = copy_project(tmp_path)
    result = run(repo, sys.executable, "stages/train.py", *([variant] if variant else []), check=False)
    assert result.returncode == 1
    assert ("unknown variant 'wide'" if variant else "usage: python stages/train.py VARIANT") in result.stderr


def test_stage_run_before_its_inputs_exist_names_the_missing_file(tmp_path: Path) -> None:
    repo = copy_project(tmp_path)
    result = run(repo, sys.executable, "stages/evaluate.py", "baseline", check=False)
    assert result.returncode == 1
    assert (
        result.stderr
        == "evaluate_test: error: No such file or directory: models/baseline.pt; run dvc repro to make it\n"
    )
    assert "Traceback" not in result.stderr
