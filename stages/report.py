"""Stage report: report/report.md with the results table, which differences exceed noise, and
the study's figures."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from convlab.atomic import atomic_directory, write_text
from convlab.cifar import CLASSES
from convlab.data import load_normalization, load_prepared
from convlab.errors import run_stage
from convlab.evaluate import confusion_matrix
from convlab.inputs import (
    DamagedInputError,
    Number,
    Text,
    check_fields,
    read_csv,
    read_json,
)
from convlab.params import MAX_SEED, VARIANTS, load_params
from convlab.report import FIGURES, VariantResult, markdown, reference_for, write_figures

PREPARED = Path("data/prepared")
REPORT = Path("report")

# What this stage uses of each input: every key and column below is checked before any of it is
# used, and a damaged file is refused naming it (convlab.inputs). When a stage changes what it
# writes, or this one what it reads, adjust these to match.
ACCURACY = Number(0, 1)
COUNT = Number(1, integer=True)
SEED = Number(0, MAX_SEED, integer=True)
TRAIN_METRICS = {"seeds": COUNT}  # metrics/train_<variant>.json: how many runs to expect
EPOCH_COLUMNS = {  # plots/train_<variant>/epochs.csv: the curves
    "epoch": COUNT,
    "train_loss": Number(0),
    "train_acc": ACCURACY,
    "val_loss": Number(0),
    "val_acc": ACCURACY,
}
RUN_COLUMNS = {  # plots/train_<variant>/runs.csv: each run's results and how it ran
    "seed": SEED,
    "best_val_acc": ACCURACY,
    "best_epoch": COUNT,
    "final_val_acc": ACCURACY,
    "train_seconds": Number(0),
    "images_per_second": Number(0),
    "runtime": Text(),
    "hardware": Text(),
}
TEST_COLUMNS = {"seed": SEED, "test_acc": ACCURACY}  # plots/test/<variant>.csv
CONFUSION_COLUMNS = {"actual": Text(CLASSES), "predicted": Text(CLASSES)}  # plots/confusion/<variant>.csv


def _train_metrics(name: str) -> dict:
    path = Path(f"metrics/train_{name}.json")
    metrics = read_json(path)
    check_fields(path, metrics, TRAIN_METRICS)
    return metrics


def _epochs(name: str, expected: int) -> list[dict]:
    """The rows of epochs.csv: epochs 1 to `expected` (the variant's epochs in params.yaml), in order."""
    path = Path(f"plots/train_{name}/epochs.csv")
    rows = read_csv(path, EPOCH_COLUMNS)
    if [row["epoch"] for row in rows] != list(range(1, expected + 1)):
        epochs = f"{rows[0]['epoch']}..{rows[-1]['epoch']}"
        raise DamagedInputError(path, f"epochs {epochs}, but params.yaml trains {name} for {expected}")
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


def _test_runs(name: str, seeds: list[int]) -> list[float]:
    """Each run's test accuracy, in the order of seeds (those of runs.csv)."""
    path = Path(f"plots/test/{name}.csv")
    rows = read_csv(path, TEST_COLUMNS)
    tested = [row["seed"] for row in rows]
    if tested != seeds:
        raise DamagedInputError(path, f"test results of seeds {tested}, but training ran seeds {seeds}")
    return [row["test_acc"] for row in rows]


def main(argv: list[str]) -> None:
    params = load_params()
    splits = load_prepared(PREPARED, ("train", "val", "test"))
    normalize = load_normalization(PREPARED).mode
    results = []
    for name in VARIANTS:
        variant = params.variant(name)
        runs = _runs(name, _train_metrics(name)["seeds"])
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
                epochs=_epochs(name, variant.epochs),
                runs=runs,
                test_runs=_test_runs(name, seeds),
                confusion=confusion_matrix(actual, predicted),
                correct=actual == predicted,
                reference=reference_for(name, variant, params.train),
            )
        )
    # report.md is DVC's (cached) and the figures git's: written apart, each atomically, so
    # the report folder itself (and the .gitignore DVC keeps in it) stays.
    with atomic_directory(REPORT / FIGURES) as figures:
        write_figures(figures, results, splits["train"].x[:100], splits["train"].y[:100])
    write_text(REPORT / "report.md", markdown(results, len(splits["val"]), len(splits["test"]), normalize))
    print(f"report: wrote {REPORT / 'report.md'} and {REPORT / FIGURES}/")


if __name__ == "__main__":
    run_stage("report", main)
