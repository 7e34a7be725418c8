"""The real `dvc repro` on a small archive served over loopback HTTP, then a `dvc exp run` variation."""

from __future__ import annotations

import csv
import json
import math
import re
import shutil
from pathlib import Path

import pytest
from loopback import LoopbackServer
from project import copy_project, dvc, git, ran_stages, run

from convlab.cifar import file_md5
from convlab.synthetic import write_archive

pytestmark = pytest.mark.slow

STAGES = [
    "download", "split", "train_baseline", "train_dropout", "train_staged_dropout",
    "evaluate_test", "report",
]  # fmt: skip
VARIANTS = ["baseline", "dropout", "staged_dropout"]


def git_status(repo: Path) -> str:
    return run(repo, "git", "status", "--porcelain", "--untracked-files=all").stdout


def small_params(url: str, md5: str) -> dict:
    epochs = {"epochs": 3}
    return {
        "data": {"url": url, "md5": md5, "val_size": 200},
        "train": {"lr": 0.01, "log_every": 10, "eval_batch_size": 250},
        "baseline": epochs,
        "dropout": epochs,
        "staged_dropout": epochs,
    }


def test_repro_then_experiment(tmp_path: Path) -> None:
    archive = write_archive(tmp_path / "served" / "cifar-10-python.tar.gz", per_batch=300, test_size=500)
    with LoopbackServer(tmp_path / "served") as server:
        # data.url is a dead link: CIFAR10_URL must take its place.
        repo = copy_project(tmp_path / "repo", small_params(server.url("gone.tar.gz"), file_md5(archive)))
        result = dvc(repo, "repro", CIFAR10_URL=server.url("cifar-10-python.tar.gz"))
    # plots_page (the page template of `dvc plots`, no data) comes last: nothing depends on it.
    assert ran_stages(result.stdout) == [*STAGES, "plots_page"]

    assert (repo / "data/raw/cifar-10-python.tar.gz").read_bytes() == archive.read_bytes()
    stats = json.loads((repo / "data/prepared/stats.json").read_text())
    assert stats["sizes"] == {"train": 1300, "val": 200, "test": 500}
    for variant in VARIANTS:
        assert (repo / f"models/{variant}.pt").stat().st_size > 3_000_000
        metrics = json.loads((repo / f"metrics/train_{variant}.json").read_text())
        # Only what compares runs, all numbers: no timings, no runtime strings (those are in runs.csv).
        assert set(metrics) == {
            "seeds", "best_val_acc", "best_epoch", "final_val_acc", "final_val_loss",
            "final_train_acc", "final_train_loss",
        }  # fmt: skip
        assert all(isinstance(v, (int, float)) and math.isfinite(v) for v in metrics.values())
        assert 1 <= metrics["best_epoch"] <= 3
        assert metrics["best_val_acc"] > 0.3, f"{variant} did not learn: {metrics}"
        (run_row,) = csv.DictReader((repo / f"plots/train_{variant}/runs.csv").open())
        assert float(run_row["images_per_second"]) > 0 and float(run_row["wall_seconds"]) > 0
        assert run_row["runtime"].startswith("cpu ") and run_row["precision_reason"] and run_row["hardware"]
        epochs = (repo / f"plots/train_{variant}/epochs.csv").read_text().splitlines()
        assert epochs[0] == "epoch,train_loss,train_acc,val_loss,val_acc,seconds" and len(epochs) == 4
        confusion = (repo / f"plots/confusion/{variant}.csv").read_text().splitlines()
        assert confusion[0] == "actual,predicted" and len(confusion) == 501
    test = json.loads((repo / "metrics/test.json").read_text())
    assert all(test[v]["test_acc"] > 0.3 for v in VARIANTS)
    assert set(test["baseline"]) == {"seeds", "test_acc", "test_loss"}
    for variant in VARIANTS:
        (tested,) = csv.DictReader((repo / f"plots/test/{variant}.csv").open())
        assert tested["seed"] == "0" and float(tested["test_acc"]) == test[variant]["test_acc"]
    report = (repo / "report/report.md").read_text()
    assert "| staged_dropout |" in report and "| cat |" in report  # results and per-class tables
    figures = re.findall(r"\]\(([^)]+\.png)\)", report)
    assert figures and all(f.startswith("figures/") for f in figures)
    for figure in figures:
        assert (repo / "report" / figure).stat().st_size > 1000
    # report.md is DVC's, the figures git's: nothing of the report is left for git to miss.
    assert "report/report.md" not in git_status(repo)

    # Nothing changed: nothing runs.
    assert ran_stages(dvc(repo, "repro").stdout) == []
    assert "up to date" in dvc(repo, "status").stdout

    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "results")
    # The archive source is gone: a variation must not need the download again.
    shutil.rmtree(tmp_path / "served")
    result = dvc(repo, "exp", "run", "-S", "dropout.fc=0.3")
    assert ran_stages(result.stdout) == ["train_dropout", "evaluate_test", "report"]

    shown = json.loads(dvc(repo, "exp", "show", "--json").stdout)
    experiments = [
        exp for row in shown for exp in (row.get("experiments") or []) for exp in exp.get("revs", [])
    ]
    changed = [e for e in experiments if e["data"]["params"]["params.yaml"]["data"]["dropout"]["fc"] == 0.3]
    assert len(changed) == 1, json.dumps(shown)[:3000]
    metrics = changed[0]["data"]["metrics"]
    assert metrics["metrics/train_dropout.json"]["data"]["best_val_acc"] > 0.3
    assert 0 < metrics["metrics/test.json"]["data"]["dropout"]["test_acc"] <= 1
    assert "metrics/train_baseline.json" in metrics

    # Several seeds and an augmented variant: every variant retrains, and the metrics and the
    # report carry each one's spread instead of a single run.
    result = dvc(
        repo,
        "exp",
        "run",
        "-S",
        "train.seeds=2",
        "-S",
        "staged_dropout.crop_padding=2",
        "-S",
        "staged_dropout.flip=true",
    )
    assert sorted(ran_stages(result.stdout)) == sorted(STAGES[2:])
    test = json.loads((repo / "metrics/test.json").read_text())
    for variant in VARIANTS:
        metrics = json.loads((repo / f"metrics/train_{variant}.json").read_text())
        assert metrics["seeds"] == 2 and {"best_val_acc_std", "best_val_acc_ci95_low"} <= set(metrics)
        assert len((repo / f"plots/train_{variant}/runs.csv").read_text().splitlines()) == 3
        assert [row["seed"] for row in csv.DictReader((repo / f"plots/test/{variant}.csv").open())] == [
            "0",
            "1",
        ]
        assert (
            test[variant]["test_acc_ci95_low"]
            <= test[variant]["test_acc"]
            <= test[variant]["test_acc_ci95_high"]
        )
    report = (repo / "report/report.md").read_text()
    assert "Welch" in report and "| staged_dropout | 0.1/0.2/0.5 | crop (pad 2) + flip | 3 | 2 |" in report
    assert (repo / "report/figures/seeds.png").stat().st_size > 1000
