"""Training: the same seed gives the same run, a killed run resumes to the same end, a run whose loss
stops being finite is a result (recorded as diverged), and dropout keeps 1 - p of the units."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import torch
from helpers import copy_project, environment, python, set_params

from convlab.batches import DeviceImages
from convlab.cifar import read_archive
from convlab.data import normalization_stats, save_prepared, split_dataset
from convlab.dropout import dropout
from convlab.params import TrainParams, VariantParams, load_params
from convlab.runtime import resolve_runtime
from convlab.train import train

TIMING = ["seconds", "train_seconds", "wall_seconds", "images_per_second"]


def tiny_training(archive: Path, **train: object) -> tuple[DeviceImages, DeviceImages, TrainParams]:
    params = load_params().train.model_copy(update={"log_every": 4, "channels_last": True, **train})
    runtime = resolve_runtime(params)
    splits = split_dataset(read_archive(archive), 64)
    norm = normalization_stats(splits["train"].x, "standardize")
    return DeviceImages(splits["train"], norm, runtime), DeviceImages(splits["val"], norm, runtime), params


def test_the_same_seed_gives_the_same_run(tiny_archive: Path) -> None:
    train_data, val_data, params = tiny_training(tiny_archive)
    variant = VariantParams(epochs=2, pool1=0.1, pool2=0.2, fc=0.5, crop_padding=2, flip=True)
    runs = [
        train(train_data, val_data, variant, params, resolve_runtime(params), 7, progress=False) for _ in "ab"
    ]
    first, second = ([(e.train_loss, e.val_loss, e.val_acc) for e in r.history.epochs] for r in runs)
    assert first == second and runs[0].history.steps == runs[1].history.steps
    assert all(torch.equal(runs[0].best_state[k], runs[1].best_state[k]) for k in runs[0].best_state)


def test_a_diverged_run_is_a_result_and_is_never_resumed(tiny_archive: Path, tmp_path: Path) -> None:
    train_data, val_data, params = tiny_training(tiny_archive, lr=1e6)
    variant = VariantParams(epochs=3, pool1=0.0, pool2=0.0, fc=0.0)
    resume = tmp_path / "run.pt"
    result = train(train_data, val_data, variant, params, resolve_runtime(params), 0, resume, progress=False)
    assert result.status.startswith("diverged: loss nan at step") or result.status.startswith(
        "diverged: loss inf"
    )
    assert result.best_epoch == 0 and 0 <= result.best_val_acc <= 1 and not resume.exists()
    record = result.record(resolve_runtime(params), variant, params)
    assert record["status"] == result.status and record["lr"] == 1e6 and record["epochs"] == 3


def test_dropout_keeps_one_minus_p_of_the_units_and_scales_them() -> None:
    torch.manual_seed(0)
    x = torch.ones(64, 32, 14, 14).to(memory_format=torch.channels_last)
    out = dropout(x, 0.2, training=True)
    kept = (out != 0).float().mean().item()
    assert abs(kept - 0.8) < 0.005 and torch.allclose(out[out != 0], torch.tensor(1 / 0.8))
    assert out.is_contiguous(memory_format=torch.channels_last) and torch.equal(dropout(x, 0.2, False), x)


def prepared(repo: Path, archive: Path) -> Path:
    """A project copy with the archive split as the split stage would (validation: 64 images)."""
    copy_project(repo, {"baseline": {"epochs": 3}, "data": {"val_size": 64}})
    splits = split_dataset(read_archive(archive), 64)
    norm = normalization_stats(splits["train"].x, "standardize")
    save_prepared(repo / "data/prepared", splits, norm, "0" * 64)
    return repo


@pytest.mark.slow
def test_a_killed_stage_resumes_to_the_same_numbers(tiny_archive: Path, tmp_path: Path) -> None:
    repo = prepared(tmp_path / "repo", tiny_archive)
    python(repo, "stages/train.py", "baseline")
    whole = pd.read_csv(repo / "results/train_baseline/runs.csv").drop(columns=TIMING, errors="ignore")
    cache = Path(environment()["XDG_CACHE_HOME"]) / "convlab/resume"
    stage = subprocess.Popen([sys.executable, "stages/train.py", "baseline"], cwd=repo, env=environment(),
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    while not list(cache.glob("train_baseline-seed0-*.pt")) and stage.poll() is None:  # epoch 1 saved
        time.sleep(0.05)
    stage.send_signal(signal.SIGKILL)
    stage.wait()
    resumed = python(repo, "stages/train.py", "baseline").stdout
    assert "train_baseline: seed 0 resumed after epoch" in resumed
    assert (
        pd.read_csv(repo / "results/train_baseline/runs.csv")
        .drop(columns=TIMING, errors="ignore")
        .equals(whole)
    )
    assert not list(cache.glob("*.pt"))
    assert pd.read_csv(repo / "results/train_baseline/runs.csv")["cpu_kernels_used"].tolist() == ["AVX2"]


@pytest.mark.slow
def test_the_kernel_caps_are_part_of_every_runs_key(
    tiny_archive: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A run with other kernels is another run: DVC's run cache (and dvc.lock) keys it apart."""
    from dvc.repo import Repo
    from dvc.stage.cache import _get_stage_hash

    repo = prepared(tmp_path / "repo", tiny_archive)
    monkeypatch.chdir(repo)
    keys = []
    for caps in ("avx2", "native", "avx2"):
        set_params(repo, {"train": {"cpu_kernels": caps}})
        with Repo(str(repo)) as project:
            (stage,) = project.stage.collect("train_baseline")
            stage.save_deps()  # the params' values, as `dvc repro` reads them
            keys.append(_get_stage_hash(stage))
    assert keys[0] != keys[1] and keys[0] == keys[2]
