"""The files stages pass to each other: where each one lives, what it holds, and the one way it is
written and read.

Each small file (metrics JSON, plots CSV) has one schema here, a `Table` or a `Metrics`, used by
the stage that writes it and by the stage that reads it back, so the two cannot drift apart. Paths
are the ones `dvc.yaml` names (tests/test_dvc_yaml.py holds the two together).

Plain files rather than DVCLive: DVC reads them directly, `dvc.yaml` names each one once and never
changes, and curves keep their natural x axis (training curves by step, validation by epoch).
Writes are atomic, and NaN or infinity is refused rather than written as a result.

Reading is strict and bounded. These files are earlier stages' outputs, versioned in git, and can
be cut short, emptied or altered (a full disk, a bad merge, a hand edit): a reader checks every
key and column the schema names, every value of its kind, finite and in range, in a file no larger
than such a file can be. Anything else raises DamagedInputError, whose message names the file,
what is wrong and the fix, in one line. A digit changed into another digit still reads as a
number: only the writer's checksums (checkpoints, prepared data) catch that.
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
import subprocess
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from convlab.atomic import write_json, write_text
from convlab.cifar import CLASSES
from convlab.errors import ConvlabError
from convlab.params import MAX_SEED

# Where the pipeline keeps what it makes (the paths dvc.yaml names).
ARCHIVE = Path("data/raw/cifar-10-python.tar.gz")
PREPARED = Path("data/prepared")
MODELS = Path("models")
REPORT = Path("report/report.md")
FIGURES = Path("report/figures")
PLOTS_PAGE = Path("plots_page/template.html")  # the page `dvc plots show/diff` fill (.dvc/config)
RESUME = Path(".convlab/resume")  # outside DVC's outputs, which DVC deletes before a stage runs

# The largest file a stage reads back is a confusion CSV: one row per test image, about 0.2 MB for
# CIFAR-10's 10,000. Metrics JSON nest two levels.
MAX_READ_BYTES = 16 * 1024 * 1024
MAX_JSON_DEPTH = 8


def model_path(variant: str) -> Path:
    return MODELS / f"{variant}.pt"


class DamagedInputError(ConvlabError, ValueError):
    """An input file that is not what the stage that writes it makes."""

    def __init__(self, path: str | Path, what: str) -> None:
        super().__init__(f"{path} is damaged ({what}); run dvc repro")
        self.path = Path(path)


# --- kinds of values: each checks a JSON value or parses a CSV cell, raising ValueError(what) ------

# What Python writes for an int or a float (str() of a finite number), and nothing else: float()
# alone would also take '1_0e-1', ' 1', 'nan' and 'infinity'.
_INTEGER = re.compile(r"-?[0-9]+")
_DECIMAL = re.compile(r"-?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][-+]?[0-9]+)?")


@dataclass(frozen=True)
class Number:
    """A finite number in [low, high]; integer=True also refuses fractions."""

    low: float = -math.inf
    high: float = math.inf
    integer: bool = False

    def check(self, value: Any) -> Any:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"{value!r} is not a number")
        if self.integer and not isinstance(value, int):
            raise ValueError(f"{value!r} is not an integer")
        if not math.isfinite(value) or not self.low <= value <= self.high:
            raise ValueError(f"{value!r} is not in [{self.low:g}, {self.high:g}]")
        return value

    def parse(self, cell: str) -> Any:
        grammar = _INTEGER if self.integer else _DECIMAL
        if not grammar.fullmatch(cell):
            raise ValueError(f"{cell[:40]!r} is not {'an integer' if self.integer else 'a number'}")
        return self.check(int(cell) if self.integer else float(cell))


@dataclass(frozen=True)
class Text:
    """A string; one of `choices` when they are given."""

    choices: tuple[str, ...] | None = None

    def check(self, value: Any) -> Any:
        if not isinstance(value, str):
            raise ValueError(f"{value!r} is not a string")
        if self.choices is not None and value not in self.choices:
            raise ValueError(f"{value[:40]!r} is not one of {', '.join(self.choices)}")
        return value

    def parse(self, cell: str) -> Any:
        return self.check(cell)


Kind = Number | Text
ACCURACY = Number(0, 1)
LOSS = Number(0)
COUNT = Number(1, integer=True)
SEED = Number(0, MAX_SEED, integer=True)
SECONDS = Number(0)


# --- bounded reading -------------------------------------------------------------------------------


def _text(path: Path) -> str:
    """The file's text: bounded, UTF-8, not empty, ending with the newline every writer here ends
    with."""
    if path.stat().st_size > MAX_READ_BYTES:
        raise DamagedInputError(path, f"larger than {MAX_READ_BYTES // 2**20} MiB, which no stage writes")
    return _checked_text(path.read_bytes(), path)


def _checked_text(data: bytes, where: str | Path) -> str:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise DamagedInputError(where, f"not UTF-8 text at byte {err.start}") from None
    if not text:
        raise DamagedInputError(where, "empty")
    if not text.endswith("\n"):
        raise DamagedInputError(where, "cut short: no newline at its end")
    return text


def _refuse_constant(name: str) -> Any:
    # The writers refuse NaN and infinities (allow_nan=False), so one in the file is damage.
    raise ValueError(f"{name} is not a finite number")


def _depth(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + max(map(_depth, value.values()), default=0)
    if isinstance(value, list):
        return 1 + max(map(_depth, value), default=0)
    return 0


def read_json(path: str | Path) -> dict[str, Any]:
    """A JSON object, bounded in size and nesting (metrics and statistics are one object each)."""
    path = Path(path)
    text = _text(path)
    try:
        value = json.loads(text, parse_constant=_refuse_constant)
    except RecursionError:
        raise DamagedInputError(path, f"nested deeper than {MAX_JSON_DEPTH} levels") from None
    except ValueError as err:
        raise DamagedInputError(path, f"not valid JSON: {err}") from None
    if not isinstance(value, dict):
        raise DamagedInputError(path, f"a JSON {type(value).__name__}, not an object")
    if _depth(value) > MAX_JSON_DEPTH:
        raise DamagedInputError(path, f"nested deeper than {MAX_JSON_DEPTH} levels")
    return value


def _finite(value: Any, where: str) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"refusing to write {where} = {value}: results must be finite numbers")
    if isinstance(value, Mapping):
        return {k: _finite(v, f"{where}.{k}") for k, v in value.items()}
    return value


# --- the files -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Table:
    """A variant's CSV file with a header: `columns` are every column, in order, each of its kind."""

    pattern: str  # the path, with {variant}
    columns: Mapping[str, Kind]

    def path(self, variant: str) -> Path:
        return Path(self.pattern.format(variant=variant))

    def write(self, variant: str, rows: Iterable[Mapping[str, Any]]) -> None:
        """Write rows (dicts with exactly this table's columns) atomically; NaN and inf refused."""
        path = self.path(variant)
        rows = [_finite(dict(row), path.name) for row in rows]
        if not rows:
            raise ValueError(f"no rows to write to {path}")
        for row in rows:
            if list(row) != list(self.columns):
                raise ValueError(f"{path}: a row has columns {list(row)}, the schema {list(self.columns)}")
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=list(self.columns), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        write_text(path, buffer.getvalue())

    def read(self, variant: str) -> list[dict[str, Any]]:
        """Every row, each value parsed to its kind. Refused when a column is missing or doubled,
        a row has another number of fields than the header, a value is not of its kind, or there is
        no row."""
        path = self.path(variant)
        return self.parse(_text(path), path)

    def parse(self, text: str, where: str | Path) -> list[dict[str, Any]]:
        """The rows of this table's text (read from `where`, which messages name)."""
        try:
            lines = list(csv.reader(io.StringIO(text, newline=""), strict=True))
        except csv.Error as err:
            raise DamagedInputError(where, f"not valid CSV: {err}") from None
        header, rows = lines[0], lines[1:]
        if len(set(header)) != len(header):
            raise DamagedInputError(where, "a column name appears twice in the header")
        if missing := [name for name in self.columns if name not in header]:
            raise DamagedInputError(where, f"no column {missing[0]} in the header")
        if not rows:
            raise DamagedInputError(where, "no rows under the header")
        index = {name: header.index(name) for name in self.columns}
        parsed = []
        for number, row in enumerate(rows, start=2):
            if len(row) != len(header):
                what = f"line {number} has {len(row)} fields, the header {len(header)}"
                raise DamagedInputError(where, what)
            values = {}
            for name, kind in self.columns.items():
                try:
                    values[name] = kind.parse(row[index[name]])
                except ValueError as err:
                    raise DamagedInputError(where, f"line {number}, {name}: {err}") from None
            parsed.append(values)
        return parsed


def read_at(table: Table, rev: str, variant: str) -> list[dict[str, Any]]:
    """The table as git commit `rev` holds it (plots are git-tracked, so every commit and every
    experiment's commit has its own), read as strictly and as bounded as the file itself;
    DamagedInputError names `rev:path` when it is absent or damaged."""
    where = f"{rev}:{table.path(variant).as_posix()}"
    with subprocess.Popen(
        ["git", "cat-file", "blob", where], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL
    ) as shown:
        assert shown.stdout is not None
        blob = shown.stdout.read(MAX_READ_BYTES + 1)
        if len(blob) > MAX_READ_BYTES:
            shown.kill()
    if len(blob) > MAX_READ_BYTES:
        raise DamagedInputError(where, f"larger than {MAX_READ_BYTES // 2**20} MiB, which no stage writes")
    if shown.returncode != 0:
        raise DamagedInputError(where, "not in that commit")
    return table.parse(_checked_text(blob, where), where)


@dataclass(frozen=True)
class Metric:
    """A variant's metrics JSON: one number, the mean over the variant's runs, as {variant: {key:
    value}}, so `dvc exp show` names its column `<variant>.<key>` (dropout.val beside the param
    dropout.fc) with no file name in front. Everything else about the runs (each run, spreads,
    intervals, timings) is in the plots CSVs and the report, which keeps `dvc exp show` narrow."""

    pattern: str
    key: str

    def path(self, variant: str) -> Path:
        return Path(self.pattern.format(variant=variant))

    def column(self, variant: str) -> str:
        """The metric's name in `dvc exp show --json` data: file, then the key path."""
        return f"{self.path(variant)}:{variant}.{self.key}"

    def write(self, variant: str, value: float) -> None:
        write_json(self.path(variant), _finite({variant: {self.key: value}}, self.path(variant).stem))


# By each train stage: one row per logged step, per epoch (the first run's curves) and per run.
STEPS = Table(
    "plots/train_{variant}/steps.csv",
    {"step": COUNT, "epoch": COUNT, "train_loss": LOSS, "train_acc": ACCURACY},
)
EPOCHS = Table(
    "plots/train_{variant}/epochs.csv",
    {
        "epoch": COUNT,
        "train_loss": LOSS,
        "train_acc": ACCURACY,
        "val_loss": LOSS,
        "val_acc": ACCURACY,
        "seconds": SECONDS,
    },
)
RUNS = Table(
    "plots/train_{variant}/runs.csv",
    {
        "seed": SEED,
        "best_val_acc": ACCURACY,
        "best_epoch": COUNT,
        "final_val_acc": ACCURACY,
        "final_val_loss": LOSS,
        "final_train_acc": ACCURACY,
        "final_train_loss": LOSS,
        "train_seconds": SECONDS,
        "wall_seconds": SECONDS,
        "images_per_second": Number(0),
        "runtime": Text(),
        "precision_reason": Text(),
        "hardware": Text(),
        "threads": COUNT,
    },
)
VAL_METRIC = Metric("metrics/train_{variant}.json", "val")  # mean best validation accuracy
# By each evaluate_test stage: each run's best checkpoint on the test images, the first run's
# predictions (actual and predicted class of every test image), and the mean test accuracy.
TESTS = Table(
    "plots/test/{variant}.csv",
    {"seed": SEED, "test_acc": ACCURACY, "test_loss": LOSS, "checkpoint_epoch": COUNT},
)
CONFUSION = Table("plots/confusion/{variant}.csv", {"actual": Text(CLASSES), "predicted": Text(CLASSES)})
TEST_METRIC = Metric("metrics/test_{variant}.json", "test")


def resume_path(stage: str, seed: int) -> Path:
    return RESUME / f"{stage}-seed{seed}.pt"


def resume_files(stage: str) -> list[Path]:
    """Every resume file of a stage, whatever its seed."""
    return sorted(RESUME.glob(f"{stage}-seed*.pt"))
