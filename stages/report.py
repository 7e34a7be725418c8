"""Stage report: report/report.md with the results table, which differences exceed noise, and
the study's figures."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from convlab.atomic import atomic_directory
from convlab.cifar import CLASSES
from convlab.cli import run_stage
from convlab.data import load_normalization, load_prepared
from convlab.evaluate import confusion_matrix
from convlab.inputs import (
    DamagedInputError,
    MappingOf,
    Number,
    Text,
    check_fields,
    read_csv,
    read_json,
    section,
)
from convlab.params import MAX_SEED, VARIANTS, load_params
from convlab.report import VariantResult, write_report

PREPARED = Path("data/prepared")
TEST_METRICS_FILE = Path("metrics/test.json")

# What this stage uses of each input: every key and column below is checked before any of it is
# used, and a damaged file is refused naming it (convlab.inputs). When a stage changes what it
# writes, or this one what it reads, adjust these to match.
ACCURACY = Number(0, 1)
COUNT = Number(1, integer=True)
TEST_METRICS = {"test_acc": ACCURACY}  # per variant in metrics/test.json
TEST_METRICS_OPTIONAL = {"per_seed_test_acc": MappingOf(ACCURACY)}  # from two seeds on
TRAIN_METRICS = {  # metrics/train_<variant>.json: the results table, and seeds / epochs to count rows
    "seeds": COUNT,
    "epochs": COUNT,
    "best_epoch": COUNT,
    "final_val_acc": ACCURACY,
    "train_seconds": Number(0),
    "images_per_second": Number(0),
    "runtime": Text(),
}
EPOCH_COLUMNS = {  # plots/train_<variant>/epochs.csv: the curves
    "epoch": COUNT,
    "train_loss": Number(0),
    "train_acc": ACCURACY,
    "val_loss": Number(0),
    "val_acc": ACCURACY,
}
RUN_COLUMNS = {"seed": Number(0, MAX_SEED, integer=True), "best_val_acc": ACCURACY}  # .../runs.csv
CONFUSION_COLUMNS = {"actual": Text(CLASSES), "predicted": Text(CLASSES)}  # plots/confusion/<variant>.csv


def _train_metrics(name: str) -> dict:
    path = Path(f"metrics/train_{name}.json")
    metrics = read_json(path)
    check_fields(path, metrics, TRAIN_METRICS)
    return metrics


def _epochs(name: str, expected: int) -> list[dict]:
    """The rows of epochs.csv: epochs 1 to `expected` (the train metrics' count), in order."""
    path = Path(f"plots/train_{name}/epochs.csv")
    rows = read_csv(path, EPOCH_COLUMNS)
    if [row["epoch"] for row in rows] != list(range(1, expected + 1)):
        epochs = f"{rows[0]['epoch']}..{rows[-1]['epoch']}"
        raise DamagedInputError(path, f"epochs {epochs}, but metrics/train_{name}.json says 1..{expected}")
    return rows


def _runs(name: str, expected: int) -> list[dict]:
    """The rows of runs.csv: one per seed, `expected` of them (the train metrics' count)."""
    path = Path(f"plots/train_{name}/runs.csv")
    rows = read_csv(path, RUN_COLUMNS)
    seeds = [row["seed"] for row in rows]
    if len(rows) != expected:
        raise DamagedInputError(path, f"{len(rows)} runs, but metrics/train_{name}.json says {expected}")
    if len(set(seeds)) != len(seeds):
        raise DamagedInputError(path, f"a seed appears twice in {seeds}")
    return rows


def _predictions(name: str, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Actual and predicted class of every test image, in test order; the actual classes must be
    the prepared test labels."""
    path = Path(f"plots/confusion/{name}.csv")
    rows = read_csv(path, CONFUSION_COLUMNS)
    index = {cls: i for i, cls in enumerate(CLASSES)}
    actual = np.array([index[row["actual"]] for row in rows])
    predicted = np.array([index[row["predicted"]] for row in rows])
    if len(rows) != len(labels):
        raise DamagedInputError(path, f"{len(rows)} predictions for {len(labels)} test images")
    if not np.array_equal(actual, labels):
        raise DamagedInputError(path, f"its actual classes are not the labels of {PREPARED / 'test.npz'}")
    return actual, predicted


def _test_runs(name: str, test_metrics: dict, seeds: list[int]) -> list[float]:
    """Each run's test accuracy, in the order of seeds."""
    test = section(TEST_METRICS_FILE, test_metrics, name)
    check_fields(TEST_METRICS_FILE, test, TEST_METRICS, TEST_METRICS_OPTIONAL, where=f"{name}.")
    per_seed = test.get("per_seed_test_acc", {str(seeds[0]): test["test_acc"]})
    missing = [seed for seed in seeds if str(seed) not in per_seed]
    if missing:
        raise DamagedInputError(TEST_METRICS_FILE, f"no test accuracy of {name}'s seed(s) {missing}")
    return [per_seed[str(seed)] for seed in seeds]


def main(argv: list[str]) -> None:
    params = load_params()
    splits = load_prepared(PREPARED, ("train", "val", "test"))
    normalize = load_normalization(PREPARED).mode
    test_metrics = read_json(TEST_METRICS_FILE)
    results = []
    for name in VARIANTS:
        variant = params.variant(name)
        train = _train_metrics(name)
        runs = _runs(name, train["seeds"])
        if results and len(runs) != len(results[0].seeds):  # the report compares like with like
            raise DamagedInputError(
                f"plots/train_{name}/runs.csv", f"{len(runs)} runs, {VARIANTS[0]} has {len(results[0].seeds)}"
            )
        seeds = [run["seed"] for run in runs]
        actual, predicted = _predictions(name, splits["test"].y)
        results.append(
            VariantResult(
                name=name,
                dropout=(variant.pool1, variant.pool2, variant.fc),
                augmentation=variant.augmentation,
                epochs=_epochs(name, train["epochs"]),
                train=train,
                seeds=seeds,
                val_runs=[run["best_val_acc"] for run in runs],
                test_runs=_test_runs(name, test_metrics, seeds),
                confusion=confusion_matrix(actual, predicted),
                correct=actual == predicted,
            )
        )
    with atomic_directory("report") as tmp:
        write_report(
            tmp,
            results,
            splits["train"].x[:100],
            splits["train"].y[:100],
            len(splits["val"]),
            len(splits["test"]),
            normalize,
        )
    print("report: wrote report/report.md")


if __name__ == "__main__":
    run_stage("report", main)
