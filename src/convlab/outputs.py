"""Where the stages keep what they make, and the one way they write and read it.

The paths are the ones dvc.yaml declares (tests/test_pipeline.py runs the real pipeline, so a path
that differs fails there). Each train and evaluate stage keeps its tables in DVC's cache (results/);
the report stage, where the variants meet, puts them side by side in git (plots/), one file per
kind of table, so each chart `dvc plots` draws is one file with every variant. Every output is
written atomically: to a temp name beside it, renamed into place when whole, so a stage that
fails or is stopped leaves the old output or none. What one
stage writes another reads as it is: it is DVC's output, hashed and re-made when it changes. A
file or column that is missing is one line naming it and the `dvc repro` that makes it.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from convlab.errors import missing

ARCHIVE = Path("data/raw/cifar-10-python.tar.gz")
PREPARED = Path("data/prepared")
REPORT = Path("report/report.md")
FIGURES = Path("report/figures")
PLOTS_PAGE = Path("plots_page/template.html")


def model_path(variant: str) -> Path:
    return Path(f"models/{variant}.pt")


def train_results(variant: str) -> Path:
    """The train stage's tables (DVC's cache): runs.csv (a row per seed), epochs.csv and steps.csv
    (the first seed's curves)."""
    return Path(f"results/train_{variant}")


def test_results(variant: str) -> Path:
    """The evaluate stage's tables (DVC's cache): tests.csv (a row per seed), confusion.csv (the
    first seed's prediction of every test image)."""
    return Path(f"results/evaluate_{variant}")


def val_metric(variant: str) -> Path:
    return Path(f"metrics/train_{variant}.json")


def test_metric(variant: str) -> Path:
    return Path(f"metrics/test_{variant}.json")


# Every variant's tables side by side, with a variant column (the report stage's, in git): what
# `dvc plots show/diff` draws and what tools/review.py, sweep.py and ablation.py read at a commit.
PLOTS = Path("plots")
RUNS = PLOTS / "runs.csv"  # a row per variant and seed: its record, test accuracy and loss
EPOCHS = PLOTS / "epochs.csv"
STEPS = PLOTS / "steps.csv"
CONFUSION = PLOTS / "confusion.csv"


@contextlib.contextmanager
def atomic(path: Path) -> Iterator[Path]:
    """Yield a temp path beside `path` to write (a file, or a folder the caller makes); when the
    block ends it replaces `path` whole, and if the block fails it is removed. One writer per
    path at a time (DVC locks the workspace), so a temp a killed write left is removed here."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp, old = (path.with_name(f".{path.name}.{kind}") for kind in ("tmp", "old"))
    for stale in (tmp, old):
        shutil.rmtree(stale) if stale.is_dir() else stale.unlink(missing_ok=True)
    try:
        yield tmp
        if path.is_dir():
            os.replace(path, old)
        os.replace(tmp, path)
        shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True) if tmp.is_dir() else tmp.unlink(missing_ok=True)
        raise


def write_text(path: Path, text: str) -> None:
    with atomic(path) as tmp:
        tmp.write_text(text)


def write_json(path: Path, value: Any) -> None:
    write_text(path, json.dumps(value, indent=2, allow_nan=False) + "\n")


def write_csv(path: Path, rows: Sequence[dict[str, Any]], columns: Sequence[str] | None = None) -> None:
    """rows as a CSV with a header (`columns`, where there may be no rows)."""
    with atomic(path) as tmp:
        pd.DataFrame(rows, columns=columns).to_csv(tmp, index=False, lineterminator="\n")


def read_csv(path: Path, columns: Sequence[str]) -> pd.DataFrame:
    """The CSV a stage wrote, with at least `columns`."""
    frame = pd.read_csv(path)
    if absent := [column for column in columns if column not in frame.columns]:
        raise missing(path, f"no column {absent[0]}")
    return frame
