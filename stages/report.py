"""Stage report: report/report.md with the results table, which differences exceed noise, and
the study's figures. Every input is read through its schema (convlab.stage_files) and checked
against the others before anything is written."""

from __future__ import annotations

import numpy as np

from convlab.atomic import atomic_directory, write_text
from convlab.cifar import CLASSES
from convlab.data import load_normalization, load_prepared
from convlab.errors import run_stage
from convlab.evaluate import confusion_matrix
from convlab.figures import write_figures
from convlab.params import VARIANTS, load_params
from convlab.reference import reference_for
from convlab.report import VariantResult, markdown
from convlab.stage_files import CONFUSION, EPOCHS, FIGURES, PREPARED, REPORT, RUNS, TESTS, DamagedInputError


def _epochs(name: str, expected: int) -> list[dict]:
    """The rows of epochs.csv: epochs 1 to `expected` (the variant's epochs in params.yaml), in order."""
    rows = EPOCHS.read(name)
    if [row["epoch"] for row in rows] != list(range(1, expected + 1)):
        epochs = f"{rows[0]['epoch']}..{rows[-1]['epoch']}"
        raise DamagedInputError(
            EPOCHS.path(name), f"epochs {epochs}, but params.yaml trains {name} for {expected}"
        )
    return rows


def _runs(name: str, seeds: list[int]) -> list[dict]:
    """The rows of runs.csv: one per seed params.yaml asks for, in that order. So every variant has
    the same runs, and the report compares like with like."""
    rows = RUNS.read(name)
    if (ran := [row["seed"] for row in rows]) != seeds:
        raise DamagedInputError(
            RUNS.path(name), f"runs of seeds {ran}, but params.yaml asks for seeds {seeds}"
        )
    return rows


def _predictions(name: str, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Actual and predicted class of every test image, in test order; the actual classes must be
    the prepared test labels."""
    rows = CONFUSION.read(name)
    index = {cls: i for i, cls in enumerate(CLASSES)}
    actual = np.array([index[row["actual"]] for row in rows])
    predicted = np.array([index[row["predicted"]] for row in rows])
    if len(rows) != len(labels):
        raise DamagedInputError(
            CONFUSION.path(name), f"{len(rows)} predictions for {len(labels)} test images"
        )
    if not np.array_equal(actual, labels):
        raise DamagedInputError(CONFUSION.path(name), f"its actual classes are not the labels of {PREPARED}")
    return actual, predicted


def _test_runs(name: str, seeds: list[int]) -> list[float]:
    """Each run's test accuracy, in the order of seeds."""
    rows = TESTS.read(name)
    if (tested := [row["seed"] for row in rows]) != seeds:
        raise DamagedInputError(
            TESTS.path(name), f"test results of seeds {tested}, but training ran seeds {seeds}"
        )
    return [row["test_acc"] for row in rows]


def main(argv: list[str]) -> None:
    params = load_params()
    splits = load_prepared(PREPARED, ("train", "val", "test"))
    normalize = load_normalization(PREPARED).mode
    results = []
    for name in VARIANTS:
        variant = params.variant(name)
        actual, predicted = _predictions(name, splits["test"].y)
        results.append(
            VariantResult(
                name=name,
                dropout=(variant.pool1, variant.pool2, variant.fc),
                augmentation=variant.augmentation,
                epochs=_epochs(name, variant.epochs),
                runs=_runs(name, params.run_seeds),
                test_runs=_test_runs(name, params.run_seeds),
                confusion=confusion_matrix(actual, predicted),
                correct=actual == predicted,
                reference=reference_for(name, variant, params.train),
            )
        )
    # report.md is DVC's (cached) and the figures git's: written apart, each atomically, so
    # the report folder itself (and the .gitignore DVC keeps in it) stays.
    with atomic_directory(FIGURES) as figures:
        write_figures(figures, results, splits["train"].x[:100], splits["train"].y[:100])
    write_text(REPORT, markdown(results, len(splits["val"]), len(splits["test"]), normalize))
    print(f"report: wrote {REPORT} and {FIGURES}/")


if __name__ == "__main__":
    run_stage("report", main)
