"""Each file stages pass to each other has one schema: what the writer writes reads back as it was,
and the reader refuses anything else (cut short, emptied, altered, of the wrong kind, too large,
nested without bound) with one DamagedInputError naming the file."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from convlab import stage_files
from convlab.stage_files import DamagedInputError, Metric, Number, Table, Text, read_json

TABLE = Table(
    "{variant}/t.csv", {"epoch": Number(1, integer=True), "val_acc": Number(0, 1), "kind": Text(("a", "b"))}
)


def refused(call: Callable[[], object], path: Path) -> str:
    with pytest.raises(DamagedInputError) as err:
        call()
    message = str(err.value)
    assert message.startswith(f"{path} is damaged (") and message.endswith("); run dvc repro")
    assert "\n" not in message
    return message


@pytest.fixture(autouse=True)
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # tables name paths relative to the project root


def test_what_the_writers_write_reads_back() -> None:
    rows = [{"epoch": 1, "val_acc": 0.25, "kind": "a"}, {"epoch": 2, "val_acc": 1e-05, "kind": "b"}]
    TABLE.write("v", rows)
    assert Path("v/t.csv").read_text() == "epoch,val_acc,kind\n1,0.25,a\n2,1e-05,b\n"
    assert TABLE.read("v") == rows
    Metric("m/{variant}.json", "val").write("dropout", 0.75)
    assert read_json("m/dropout.json") == {"dropout": {"val": 0.75}}


def test_writers_refuse_what_the_reader_would_refuse() -> None:
    with pytest.raises(ValueError, match="must be finite"):
        TABLE.write("v", [{"epoch": 1, "val_acc": float("nan"), "kind": "a"}])
    with pytest.raises(ValueError, match="must be finite"):
        Metric("m/{variant}.json", "val").write("v", float("inf"))
    with pytest.raises(ValueError, match="a row has columns"):
        TABLE.write("v", [{"epoch": 1, "kind": "a", "val_acc": 0.5}])  # columns out of the schema's order
    with pytest.raises(ValueError, match="no rows"):
        TABLE.write("v", [])
    assert not Path("v").exists() and not Path("m").exists()


def test_every_stage_file_is_one_schema_whose_path_names_its_variant() -> None:
    tables = [v for v in vars(stage_files).values() if isinstance(v, (Table, Metric))]
    assert len(tables) == 7
    assert all("{variant}" in t.pattern for t in tables)


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
        (b'{"a": ' + b"[" * 100_000 + b"]" * 100_000 + b"}\n", "nested deeper than 8 levels"),
        (b'{"a": ' + b"[" * 20 + b"]" * 20 + b"}\n", "nested deeper than 8 levels"),
    ],
    ids=["empty", "cut", "invalid", "nan", "inf", "list", "not-utf8", "deep", "deeper-than-a-metric"],
)
def test_damaged_json_is_refused(text: bytes, what: str) -> None:
    path = Path("m.json")
    path.write_bytes(text)
    assert what in refused(lambda: read_json(path), path)


def test_a_file_larger_than_any_stage_writes_is_refused_unread() -> None:
    path = Path("v/t.csv")
    path.parent.mkdir()
    with path.open("wb") as handle:  # sparse: large, without filling the disk
        handle.truncate(stage_files.MAX_READ_BYTES + 1)
    assert "larger than 16 MiB" in refused(lambda: TABLE.read("v"), path)


@pytest.mark.parametrize(
    ("text", "what"),
    [
        ("epoch,val_acc,kind\n", "no rows under the header"),
        ("epoch,kind\n1,a\n", "no column val_acc in the header"),
        ("epoch,val_acc,kind,kind\n1,0.5,a,a\n", "a column name appears twice"),
        ("epoch,val_acc,kind\n1,0.5\n", "line 2 has 2 fields, the header 3"),
        ("epoch,val_acc,kind\n1,0.5,a\n\n", "line 3 has 0 fields, the header 3"),
        ("epoch,val_acc,kind\n1.0,0.5,a\n", "line 2, epoch: '1.0' is not an integer"),
        ("epoch,val_acc,kind\n0,0.5,a\n", "line 2, epoch: 0 is not in [1, inf]"),
        ("epoch,val_acc,kind\n1,inf,a\n", "line 2, val_acc: 'inf' is not a number"),
        ("epoch,val_acc,kind\n1,nan,a\n", "line 2, val_acc: 'nan' is not a number"),
        ("epoch,val_acc,kind\n1,1_0e-1,a\n", "line 2, val_acc: '1_0e-1' is not a number"),
        ("epoch,val_acc,kind\n1, 0.5,a\n", "line 2, val_acc: ' 0.5' is not a number"),
        ("epoch,val_acc,kind\n1_0,0.5,a\n", "line 2, epoch: '1_0' is not an integer"),
        ("epoch,val_acc,kind\n1,1.5,a\n", "line 2, val_acc: 1.5 is not in [0, 1]"),
        ("epoch,val_acc,kind\n1,x,a\n", "line 2, val_acc: 'x' is not a number"),
        ("epoch,val_acc,kind\n1,0.5,c\n", "line 2, kind: 'c' is not one of a, b"),
        ('epoch,val_acc,kind\n1,0.5,"a\n', "not valid CSV: unexpected end of data"),
    ],
)
def test_damaged_csv_is_refused(text: str, what: str) -> None:
    path = Path("v/t.csv")
    path.parent.mkdir()
    path.write_text(text)
    assert what in refused(lambda: TABLE.read("v"), path)
