"""Validated readers for the small text files stages read back: metrics JSON and plots CSV.

They are earlier stages' outputs, versioned in git, and can be cut short, emptied or altered (a
full disk, a bad merge, a hand edit). A reader checks everything its caller says it will use:
JSON objects with the keys and kinds of values asked for, CSV files with the columns asked for,
every row complete, every value of its kind and finite. Anything else raises DamagedInputError,
whose message names the file, what is wrong and the fix, in one line. A digit changed into another
digit still reads as a number: only the writer's checksums (checkpoints, prepared data) catch that.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from convlab.errors import ConvlabError


class DamagedInputError(ConvlabError, ValueError):
    """An input file that is not what the stage that writes it makes."""

    def __init__(self, path: str | Path, what: str) -> None:
        super().__init__(f"{path} is damaged ({what}); run dvc repro")
        self.path = Path(path)


# --- kinds of values: each checks a JSON value or parses a CSV cell, raising ValueError(what) ------


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
        try:
            value = int(cell) if self.integer else float(cell)
        except ValueError:
            raise ValueError(f"{cell!r} is not {'an integer' if self.integer else 'a number'}") from None
        return self.check(value)


@dataclass(frozen=True)
class Text:
    """A string; one of `choices` when they are given."""

    choices: tuple[str, ...] | None = None

    def check(self, value: Any) -> Any:
        if not isinstance(value, str):
            raise ValueError(f"{value!r} is not a string")
        if self.choices is not None and value not in self.choices:
            raise ValueError(f"{value!r} is not one of {', '.join(self.choices)}")
        return value

    def parse(self, cell: str) -> Any:
        return self.check(cell)


@dataclass(frozen=True)
class MappingOf:
    """A JSON object whose every value is of one kind (e.g. per-seed accuracies)."""

    value: Number | Text

    def check(self, value: Any) -> Any:
        if not isinstance(value, dict):
            raise ValueError(f"{type(value).__name__} is not an object")
        for key, item in value.items():
            try:
                self.value.check(item)
            except ValueError as err:
                raise ValueError(f"[{key!r}]: {err}") from None
        return value


Kind = Number | Text | MappingOf


# --- readers --------------------------------------------------------------------------------------


def _text(path: str | Path) -> str:
    """The file's text: UTF-8, not empty, ending with the newline every writer here ends with."""
    try:
        text = Path(path).read_bytes().decode("utf-8")
    except UnicodeDecodeError as err:
        raise DamagedInputError(path, f"not UTF-8 text at byte {err.start}") from None
    if not text:
        raise DamagedInputError(path, "empty")
    if not text.endswith("\n"):
        raise DamagedInputError(path, "cut short: no newline at its end")
    return text


def _refuse_constant(name: str) -> Any:
    # The writers refuse NaN and infinities (allow_nan=False), so one in the file is damage.
    raise ValueError(f"{name} is not a finite number")


def read_json(path: str | Path) -> dict[str, Any]:
    """A JSON object (metrics files are one object each)."""
    text = _text(path)
    try:
        value = json.loads(text, parse_constant=_refuse_constant)
    except ValueError as err:
        raise DamagedInputError(path, f"not valid JSON: {err}") from None
    if not isinstance(value, dict):
        raise DamagedInputError(path, f"a JSON {type(value).__name__}, not an object")
    return value


def check_fields(
    path: str | Path,
    obj: Mapping[str, Any],
    required: Mapping[str, Kind],
    optional: Mapping[str, Kind] | None = None,
    where: str = "",
) -> None:
    """Check that obj (read from path) has every required key and that these and any optional keys
    present hold values of their kind. `where` prefixes key names in the message (`baseline.`)."""
    for key, kind in {**required, **(optional or {})}.items():
        if key not in obj:
            if key in required:
                raise DamagedInputError(path, f"no {where}{key}")
            continue
        try:
            kind.check(obj[key])
        except ValueError as err:
            raise DamagedInputError(path, f"{where}{key}: {err}") from None


def section(path: str | Path, obj: Mapping[str, Any], key: str) -> dict[str, Any]:
    """obj[key], which must be a JSON object (e.g. one variant's part of metrics/test.json)."""
    value = obj.get(key)
    if not isinstance(value, dict):
        raise DamagedInputError(path, f"no object {key}" if value is None else f"{key} is not an object")
    return value


def read_csv(path: str | Path, columns: Mapping[str, Number | Text]) -> list[dict[str, Any]]:
    """The rows of a CSV with a header, as dicts of the asked-for columns parsed to their kind.

    Other columns may be there and are not returned. Every row must have as many fields as the
    header, and there must be at least one row."""
    try:
        lines = list(csv.reader(io.StringIO(_text(path), newline=""), strict=True))
    except csv.Error as err:
        raise DamagedInputError(path, f"not valid CSV: {err}") from None
    header, rows = lines[0], lines[1:]
    if len(set(header)) != len(header):
        raise DamagedInputError(path, "a column name appears twice in the header")
    if missing := [name for name in columns if name not in header]:
        raise DamagedInputError(path, f"no column {missing[0]} in the header")
    if not rows:
        raise DamagedInputError(path, "no rows under the header")
    index = {name: header.index(name) for name in columns}
    parsed = []
    for number, row in enumerate(rows, start=2):
        if len(row) != len(header):
            raise DamagedInputError(path, f"line {number} has {len(row)} fields, the header {len(header)}")
        values = {}
        for name, kind in columns.items():
            try:
                values[name] = kind.parse(row[index[name]])
            except ValueError as err:
                raise DamagedInputError(path, f"line {number}, {name}: {err}") from None
        parsed.append(values)
    return parsed
