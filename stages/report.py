"""Stage report: report/report.md (the results, which differences exceed seed noise, per-class
accuracy) and its figures, for every variant params.yaml holds, from what the train and evaluate
stages wrote."""

from __future__ import annotations

import numpy as np

from convlab.cifar import CLASSES
from convlab.data import load_split, load_stats
from convlab.errors import run_main
from convlab.figures import write_figures
from convlab.outputs import (
    FIGURES,
    PREPARED,
    REPORT,
    atomic,
    confusion_path,
    read_csv,
    tests_path,
    train_plots,
    write_text,
)
from convlab.params import load_params
from convlab.report import VariantResult, confusion_matrix, markdown

RUN_COLUMNS = [
    "seed", "best_val_acc", "best_epoch", "train_seconds", "runtime", "hardware", "threads", "status",
    "epochs", "pool1", "pool2", "fc", "crop_padding", "flip", "lr", "momentum", "batch_size",
]  # fmt: skip


def variant_result(name: str) -> VariantResult:
    plots = train_plots(name)
    tests = read_csv(tests_path(name), ["seed", "test_acc"])
    confusion = read_csv(confusion_path(name), ["actual", "predicted"])
    index = {cls: i for i, cls in enumerate(CLASSES)}
    actual, predicted = (confusion[column].map(index).to_numpy() for column in ("actual", "predicted"))
    return VariantResult(
        name=name,
        runs=read_csv(plots / "runs.csv", RUN_COLUMNS),
        epochs=read_csv(plots / "epochs.csv", ["epoch", "train_loss", "train_acc", "val_loss", "val_acc"]),
        test_acc=tests["test_acc"].tolist(),
        confusion=confusion_matrix(actual, predicted),
        correct=np.asarray(actual == predicted),
    )


def main(argv: list[str]) -> None:
    results = [variant_result(name) for name in load_params().variants]
    stats = load_stats(PREPARED)
    train = load_split(PREPARED, "train")
    # report.md is DVC's and the figures git's: each is written whole, apart.
    with atomic(FIGURES) as figures:
        figures.mkdir()
        write_figures(figures, results, train.x[:100], train.y[:100])
    write_text(REPORT, markdown(results, stats["sizes"], stats["normalize"]))
    print(f"report: wrote {REPORT} and {FIGURES}/")


if __name__ == "__main__":
    run_main("report", main)
