"""The one writer for metrics (JSON) and curves/tables (CSV), used by every stage.

Plain files rather than DVCLive: DVC reads them directly, `dvc.yaml` names each one once and
never changes, and curves keep their natural x axis (training curves by step, validation by
epoch). Every write is atomic, so DVC never caches a half-written metric.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from convlab.atomic import write_json, write_text


def _finite(value: Any, where: str) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"refusing to write {where} = {value}: metrics must be finite numbers")
    if isinstance(value, Mapping):
        return {k: _finite(v, f"{where}.{k}") for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v, f"{where}[{i}]") for i, v in enumerate(value)]
    return value


def write_metrics(path: str | Path, metrics: Mapping[str, Any]) -> None:
    """Write a metrics JSON; NaN or inf anywhere is refused rather than written as a result."""
    write_json(path, _finite(dict(metrics), Path(path).stem))


def write_table(path: str | Path, rows: Iterable[Mapping[str, Any]]) -> None:
    """Write rows (dicts with the same keys) as a CSV with a header."""
    rows = list(rows)
    if not rows:
        raise ValueError(f"no rows to write to {path}")
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    write_text(path, buffer.getvalue())
