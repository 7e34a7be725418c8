"""The readers of metrics JSON and plots CSV return what the writers wrote, and refuse anything else
with one DamagedInputError naming the file."""

from __future__ import annotations

from pathlib import Path

import pytest

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
from convlab.logs import write_metrics, write_table

COLUMNS = {"epoch": Number(1, integer=True), "val_acc": Number(0, 1), "kind": Text(("a", "b"))}


def refused(call, path: Path) -> str:
    with pytest.raises(DamagedInputError) as err:
        call()
    message = str(err.value)
    assert message.startswith(f"{path} is damaged (") and message.endswith("); run dvc repro")
    assert "\n" not in message
    return message


def test_what_the_writers_write_reads_back(tmp_path: Path) -> None:
    write_metrics(tmp_path / "m.json", {"baseline": {"test_acc": 0.5, "per_seed_test_acc": {"0": 0.5}}})
    metrics = read_json(tmp_path / "m.json")
    baseline = section(tmp_path / "m.json", metrics, "baseline")
    check_fields(
        tmp_path / "m.json",
        baseline,
        {"test_acc": Number(0, 1)},
        {"per_seed_test_acc": MappingOf(Number(0, 1))},
    )
    write_table(tmp_path / "t.csv", [{"epoch": 1, "val_acc": 0.25, "kind": "a", "seconds": 3.5}])
    assert read_csv(tmp_path / "t.csv", COLUMNS) == [{"epoch": 1, "val_acc": 0.25, "kind": "a"}]


@pytest.mark.parametrize(
    ("text", "what"),
    [
        (b"", "empty"),
        (b'{"a": 1}', "cut short: no newline at its end"),
        (b'{"a": \n', "not valid JSON"),
        (b'{"a": NaN}\n', "NaN is not a finite number"),
        (b'{"a": Infinity}\n', "Infinity is not a finite number"),
        (b"[1]\n", "a JSON list, not an object"),
        (b'{"a": "\xe9"}\n', "not UTF-8 text at byte 7"),
    ],
)
def test_damaged_json_is_refused(tmp_path: Path, text: bytes, what: str) -> None:
    path = tmp_path / "m.json"
    path.write_bytes(text)
    assert what in refused(lambda: read_json(path), path)


@pytest.mark.parametrize(
    ("obj", "what"),
    [
        ({}, "no baseline.test_acc"),
        ({"test_acc": True}, "baseline.test_acc: True is not a number"),
        ({"test_acc": "0.5"}, "baseline.test_acc: '0.5' is not a number"),
        ({"test_acc": -0.1}, "baseline.test_acc: -0.1 is not in [0, 1]"),
        ({"test_acc": 0.5, "per_seed_test_acc": [0.5]}, "per_seed_test_acc: list is not an object"),
        ({"test_acc": 0.5, "per_seed_test_acc": {"1": 2}}, "per_seed_test_acc: ['1']: 2 is not in [0, 1]"),
    ],
)
def test_missing_or_wrong_values_are_refused(tmp_path: Path, obj: dict, what: str) -> None:
    path = tmp_path / "test.json"
    kinds = ({"test_acc": Number(0, 1)}, {"per_seed_test_acc": MappingOf(Number(0, 1))})
    assert what in refused(lambda: check_fields(path, obj, *kinds, where="baseline."), path)


@pytest.mark.parametrize(
    ("text", "what"),
    [
        ("epoch,val_acc,kind\n", "no rows under the header"),
        ("epoch,kind\n1,a\n", "no column val_acc in the header"),
        ("epoch,val_acc,kind,kind\n1,0.5,a,a\n", "a column name appears twice"),
        ("epoch,val_acc,kind\n1,0.5\n", "line 2 has 2 fields, the header 3"),
        ("epoch,val_acc,kind\n1,0.5,a\n\n", "line 3 has 0 fields, the header 3"),
        ("epoch,val_acc,kind\n1,0.5,a,x\n", "line 2 has 4 fields, the header 3"),
        ("epoch,val_acc,kind\n1.0,0.5,a\n", "line 2, epoch: '1.0' is not an integer"),
        ("epoch,val_acc,kind\n0,0.5,a\n", "line 2, epoch: 0 is not in [1, inf]"),
        ("epoch,val_acc,kind\n1,inf,a\n", "line 2, val_acc: inf is not in [0, 1]"),
        ("epoch,val_acc,kind\n1,x,a\n", "line 2, val_acc: 'x' is not a number"),
        ("epoch,val_acc,kind\n1,0.5,c\n", "line 2, kind: 'c' is not one of a, b"),
        ('epoch,val_acc,kind\n1,0.5,"a\n', "not valid CSV: unexpected end of data"),
    ],
)
def test_damaged_csv_is_refused(tmp_path: Path, text: str, what: str) -> None:
    path = tmp_path / "t.csv"
    path.write_text(text)
    assert what in refused(lambda: read_csv(path, COLUMNS), path)
