"""Stage report: every variant params.yaml holds, side by side. report/report.md (the results,
which differences exceed seed noise, per-class accuracy) and its figures, and the tables
`dvc plots` draws (plots/: each kind of table once, every variant in it)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from convlab.cifar import CLASSES
from convlab.data import load_split, load_stats
from convlab.errors import run_main
from convlab.figures import write_figures
from convlab.outputs import (
    CONFUSION,
    EPOCHS,
    FIGURES,
    PREPARED,
    REPORT,
    RUNS,
    STEPS,
    atomic,
    read_csv,
    test_results,
    train_results,
    write_csv,
    write_text,
)
from convlab.params import load_params
from convlab.report import VariantResult, confusion_matrix, markdown

RUN_COLUMNS = [
    "variant", "seed", "best_val_acc", "best_epoch", "train_seconds", "runtime", "hardware", "threads",
    "status", "epochs", "pool1", "pool2", "fc", "crop_padding", "flip", "lr", "momentum", "batch_size",
]  # fmt: skip


def tables(name: str) -> dict[str, pd.DataFrame]:
    trained, tested = train_results(name), test_results(name)
    tests = read_csv(tested / "tests.csv", ["seed", "test_acc", "test_loss", "checkpoint_epoch"])
    return {
        "runs": read_csv(trained / "runs.csv", RUN_COLUMNS).merge(tests.drop(columns="variant"), on="seed"),
        "epochs": read_csv(trained / "epochs.csv", ["variant", "epoch", "train_loss", "val_loss", "val_acc"]),
        "steps": read_csv(trained / "steps.csv", ["variant", "step", "train_loss"]),
        "confusion": read_csv(tested / "confusion.csv", ["variant", "actual", "predicted"]),
    }


def variant_result(name: str, table: dict[str, pd.DataFrame]) -> VariantResult:
    index = {cls: i for i, cls in enumerate(CLASSES)}
    actual, predicted = (
        table["confusion"][column].map(index).to_numpy() for column in ("actual", "predicted")
    )
    return VariantResult(
        name=name,
        runs=table["runs"],
        epochs=table["epochs"],
        test_acc=table["runs"]["test_acc"].tolist(),
        confusion=confusion_matrix(actual, predicted),
        correct=np.asarray(actual == predicted),
    )


def main(argv: list[str]) -> None:
    names = list(load_params().variants)
    each = {name: tables(name) for name in names}
    for path, kind in ((RUNS, "runs"), (EPOCHS, "epochs"), (STEPS, "steps"), (CONFUSION, "confusion")):
        write_csv(path, pd.concat([each[name][kind] for name in names]).to_dict("records"))
    results = [variant_result(name, each[name]) for name in names]
    stats = load_stats(PREPARED)
    train = load_split(PREPARED, "train")
    # report.md and the figures are git's: each is written whole, apart.
    with atomic(FIGURES) as figures:
        figures.mkdir()
        write_figures(figures, results, train.x[:100], train.y[:100])
    write_text(REPORT, markdown(results, stats["sizes"], stats["normalize"]))
    print(f"report: wrote {REPORT}, {FIGURES}/ and the tables of plots/")


if __name__ == "__main__":
    run_main("report", main)
