"""The real `dvc repro` on a small archive served over loopback HTTP, then `dvc exp run` variations."""

from __future__ import annotations

import csv
import json
import re
import shutil
from pathlib import Path
from typing import Any

import pytest
from loopback import LoopbackServer
from project import copy_project, dvc, git, ran_stages, run

from convlab.cifar import file_md5
from convlab.params import VARIANTS
from convlab.stage_files import RUNS, TEST_METRIC, TESTS, VAL_METRIC, Metric
from convlab.synthetic import write_archive

pytestmark = pytest.mark.slow

TRAIN = [f"train_{v}" for v in VARIANTS]
EVALUATE = [f"evaluate_test@{v}" for v in VARIANTS]
STAGES = ["download", "split", *TRAIN, *EVALUATE, "report"]


def shown_metric(data: dict[str, Any], metric: Metric, variant: str) -> Any:
    """A metric in `dvc exp show --json` data, found by the name Metric.column() gives it (the name
    tools/sweep.py reads): file, then the key path."""
    file, _, keys = metric.column(variant).partition(":")
    value = data["metrics"][file]["data"]
    for key in keys.split("."):
        value = value[key]
    return value


def column(repo: Path, path: Path, name: str) -> list[float]:
    return [float(row[name]) for row in csv.DictReader((repo / path).open())]


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
        # Narrow metrics: one number per file, the mean over the seeds, named <variant>.<key> so that
        # `dvc exp show` has one column each; every run is in the plots.
        val = json.loads((repo / VAL_METRIC.path(variant)).read_text())
        assert list(val) == [variant] and list(val[variant]) == ["val"]
        assert val[variant]["val"] == pytest.approx(column(repo, RUNS.path(variant), "best_val_acc")[0])
        assert val[variant]["val"] > 0.3, f"{variant} did not learn: {val}"
        test = json.loads((repo / TEST_METRIC.path(variant)).read_text())
        assert test == {variant: {"test": column(repo, TESTS.path(variant), "test_acc")[0]}}
        assert test[variant]["test"] > 0.3
        (run_row,) = csv.DictReader((repo / RUNS.path(variant)).open())
        assert 1 <= int(run_row["best_epoch"]) <= 3
        assert float(run_row["images_per_second"]) > 0 and float(run_row["wall_seconds"]) > 0
        assert run_row["runtime"].startswith("cpu ") and run_row["precision_reason"] and run_row["hardware"]
        epochs = (repo / f"plots/train_{variant}/epochs.csv").read_text().splitlines()
        assert epochs[0] == "epoch,train_loss,train_acc,val_loss,val_acc,seconds" and len(epochs) == 4
        (tested,) = csv.DictReader((repo / TESTS.path(variant)).open())
        assert tested["seed"] == "0"
        confusion = (repo / f"plots/confusion/{variant}.csv").read_text().splitlines()
        assert confusion[0] == "actual,predicted" and len(confusion) == 501
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
    # The archive source is gone: a variation must not need the download again. One variant's
    # param re-runs that variant's training and test, and the report, nothing else.
    shutil.rmtree(tmp_path / "served")
    result = dvc(repo, "exp", "run", "-S", "dropout.fc=0.3")
    assert ran_stages(result.stdout) == ["train_dropout", "evaluate_test@dropout", "report"]

    shown = json.loads(dvc(repo, "exp", "show", "--json").stdout)
    experiments = [
        exp for row in shown for exp in (row.get("experiments") or []) for exp in exp.get("revs", [])
    ]
    changed = [e for e in experiments if e["data"]["params"]["params.yaml"]["data"]["dropout"]["fc"] == 0.3]
    assert len(changed) == 1, json.dumps(shown)[:3000]
    data = changed[0]["data"]
    assert shown_metric(data, VAL_METRIC, "dropout") > 0.3
    assert 0 < shown_metric(data, TEST_METRIC, "dropout") <= 1
    # The variants that did not re-run keep the committed numbers.
    committed = json.loads((repo / VAL_METRIC.path("baseline")).read_text())["baseline"]["val"]
    assert shown_metric(data, VAL_METRIC, "baseline") == committed

    # Several seeds and an augmented variant: every variant retrains; each metric is the mean of
    # the seeds, whose runs the plots and the report carry. One epoch each: learning was shown above.
    one_epoch = [f"{variant}.epochs=1" for variant in VARIANTS]
    augmented = ["staged_dropout.crop_padding=2", "staged_dropout.flip=true"]
    settings = [arg for value in ["train.seeds=2", *augmented, *one_epoch] for arg in ("-S", value)]
    result = dvc(repo, "exp", "run", *settings)
    assert sorted(ran_stages(result.stdout)) == sorted(TRAIN + EVALUATE + ["report"])
    for variant in VARIANTS:
        runs = column(repo, RUNS.path(variant), "best_val_acc")
        tests = column(repo, TESTS.path(variant), "test_acc")
        assert len(runs) == len(tests) == 2
        assert [row["seed"] for row in csv.DictReader((repo / TESTS.path(variant)).open())] == ["0", "1"]
        val = json.loads((repo / VAL_METRIC.path(variant)).read_text())[variant]["val"]
        test = json.loads((repo / TEST_METRIC.path(variant)).read_text())[variant]["test"]
        assert val == pytest.approx(sum(runs) / 2) and test == pytest.approx(sum(tests) / 2)
    report = (repo / "report/report.md").read_text()
    assert "Welch" in report and "| staged_dropout | 0.1/0.2/0.5 | crop (pad 2) + flip | 1 | 2 |" in report
    assert (repo / "report/figures/seeds.png").stat().st_size > 1000
