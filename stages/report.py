"""Stage report: report/report.md with the results table, which differences exceed noise, and
the study's figures."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np

from convlab.atomic import atomic_directory
from convlab.cifar import CLASSES
from convlab.cli import run_stage
from convlab.data import load_normalization, load_prepared
from convlab.evaluate import confusion_matrix
from convlab.params import VARIANTS, load_params
from convlab.report import VariantResult, write_report

PREPARED = Path("data/prepared")


def _rows(path: Path) -> list[dict[str, float]]:
    with path.open() as handle:
        return [{k: float(v) for k, v in row.items()} for row in csv.DictReader(handle)]


def _predictions(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Actual and predicted class of every test image, in test order."""
    index = {name: i for i, name in enumerate(CLASSES)}
    with path.open() as handle:
        pairs = [(index[row["actual"]], index[row["predicted"]]) for row in csv.DictReader(handle)]
    actual, predicted = np.array(pairs).T
    return actual, predicted


def main(argv: list[str]) -> None:
    params = load_params()
    test_metrics = json.loads(Path("metrics/test.json").read_text())
    results = []
    for name in VARIANTS:
        variant = params.variant(name)
        actual, predicted = _predictions(Path(f"plots/confusion/{name}.csv"))
        runs = _rows(Path(f"plots/train_{name}/runs.csv"))
        seeds = [int(run["seed"]) for run in runs]
        test = test_metrics[name]
        per_seed = test.get("per_seed_test_acc", {str(seeds[0]): test["test_acc"]})
        missing = [seed for seed in seeds if str(seed) not in per_seed]
        if missing:
            raise ValueError(
                f"metrics/test.json has no test accuracy of {name}'s seed(s) {missing}: "
                "re-run evaluate_test (dvc repro)"
            )
        results.append(
            VariantResult(
                name=name,
                dropout=(variant.pool1, variant.pool2, variant.fc),
                augmentation=variant.augmentation,
                epochs=_rows(Path(f"plots/train_{name}/epochs.csv")),
                train=json.loads(Path(f"metrics/train_{name}.json").read_text()),
                seeds=seeds,
                val_runs=[run["best_val_acc"] for run in runs],
                test_runs=[per_seed[str(seed)] for seed in seeds],
                confusion=confusion_matrix(actual, predicted),
                correct=actual == predicted,
            )
        )
    splits = load_prepared(PREPARED, ("train", "val", "test"))
    with atomic_directory("report") as tmp:
        write_report(
            tmp,
            results,
            splits["train"].x[:100],
            splits["train"].y[:100],
            len(splits["val"]),
            len(splits["test"]),
            load_normalization(PREPARED).mode,
        )
    print("report: wrote report/report.md")


if __name__ == "__main__":
    run_stage("report", main)
