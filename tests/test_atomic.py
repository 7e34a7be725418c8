"""Outputs appear whole or not at all: a failure mid-write keeps the old file and leaves no temp."""

from __future__ import annotations

from pathlib import Path

import pytest

from convlab.atomic import atomic_directory, atomic_open, write_json
from convlab.logs import write_metrics, write_table


class Interrupted(Exception):
    pass


def test_failed_write_keeps_the_old_file(tmp_path: Path) -> None:
    target = tmp_path / "metrics.json"
    write_json(target, {"acc": 0.5})
    with pytest.raises(Interrupted), atomic_open(target) as handle:
        handle.write(b'{"acc": 0.')
        raise Interrupted
    assert target.read_text() == '{\n  "acc": 0.5\n}\n'
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.json"]


def test_failed_first_write_leaves_nothing(tmp_path: Path) -> None:
    with pytest.raises(Interrupted), atomic_open(tmp_path / "model.pt") as handle:
        handle.write(b"partial")
        raise Interrupted
    assert list(tmp_path.iterdir()) == []


def test_failed_directory_keeps_the_old_one(tmp_path: Path) -> None:
    target = tmp_path / "report"
    with atomic_directory(target) as tmp:
        (tmp / "report.md").write_text("old")
    with pytest.raises(Interrupted), atomic_directory(target) as tmp:
        (tmp / "report.md").write_text("new, half")
        raise Interrupted
    assert [p.name for p in target.iterdir()] == ["report.md"]
    assert (target / "report.md").read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["report"]


def test_metrics_refuse_nan_and_inf(tmp_path: Path) -> None:
    for bad in (float("nan"), float("inf")):
        with pytest.raises(ValueError, match="metrics must be finite"):
            write_metrics(tmp_path / "m.json", {"variant": {"acc": bad}})
    assert list(tmp_path.iterdir()) == []


def test_table_round_trip(tmp_path: Path) -> None:
    write_table(tmp_path / "t.csv", [{"epoch": 1, "acc": 0.5}, {"epoch": 2, "acc": 0.75}])
    assert (tmp_path / "t.csv").read_text() == "epoch,acc\n1,0.5\n2,0.75\n"
    with pytest.raises(ValueError, match="no rows"):
        write_table(tmp_path / "empty.csv", [])
