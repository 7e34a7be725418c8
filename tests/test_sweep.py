"""tools/sweep.py turns `dvc exp show --json` into one row per committed result and experiment."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

SPEC = importlib.util.spec_from_file_location("sweep", Path(__file__).parents[1] / "tools" / "sweep.py")
sweep = importlib.util.module_from_spec(SPEC)  # type: ignore[arg-type]
SPEC.loader.exec_module(sweep)  # type: ignore[union-attr]


def data(fc: float, lr: float, val: float, test: float) -> dict:
    return {
        "params": {"params.yaml": {"data": {"dropout": {"fc": fc}, "train": {"lr": lr}}}},
        "metrics": {
            "metrics/train_dropout.json": {"data": {"best_val_acc": val}},
            "metrics/test.json": {"data": {"dropout": {"test_acc": test}}},
        },
    }


SHOWN = [
    {"rev": "workspace", "data": data(0.1, 0.001, 0.77, 0.74), "experiments": None},
    {
        "rev": "ad79c34aaaa",
        "name": "main",
        "data": data(0.1, 0.001, 0.77, 0.74),
        "experiments": [
            {"revs": [{"rev": "e1", "name": "big", "data": data(0.5, 0.001, 0.78, 0.75)}]},
            {"revs": [{"rev": "e2", "name": "mid", "data": data(0.3, 0.001, 0.79, 0.76)}]},
            {"revs": [{"rev": "e3", "name": "broken", "data": {}}]},  # a failed experiment
            {  # still running: its metrics are a temporary copy's, half written
                "executor": {"state": "running"},
                "revs": [{"rev": "e4", "name": "busy", "data": data(0.4, 0.001, 0.1, 0.74)}],
            },
            {
                "executor": {"state": "success"},
                "revs": [{"rev": "e5", "name": "done", "data": data(0.2, 0.001, 0.8, 0.7)}],
            },
        ],
    },
]


def test_rows_are_sorted_by_value_and_skip_the_workspace_and_failures() -> None:
    variants, rows = sweep.sweep_rows(SHOWN, "dropout.fc")
    assert variants == ["dropout"]
    assert [(r["value"], r["experiment"]) for r in rows] == [
        (0.1, "main"),
        (0.2, "done"),
        (0.3, "mid"),
        (0.5, "big"),
    ]
    assert rows[2]["dropout val"] == 0.79 and rows[2]["dropout test"] == 0.76


def test_a_shared_param_shows_every_variant() -> None:
    variants, rows = sweep.sweep_rows(SHOWN, "train.lr")
    assert variants == ["baseline", "dropout", "staged_dropout"]
    assert [r["experiment"] for r in rows] == ["big", "done", "main", "mid"]  # equal values: by name
    main = rows[2]
    assert main["baseline val"] is None and main["dropout val"] == 0.77


def test_markdown_table_and_plot(tmp_path: Path) -> None:
    variants, rows = sweep.sweep_rows(SHOWN, "dropout.fc")
    table = sweep.markdown("dropout.fc", rows)
    assert table.splitlines()[0] == "| dropout.fc | experiment | dropout val | dropout test |"
    assert "| 0.3 | mid | 79.0% | 76.0% |" in table
    sweep.plot("dropout.fc", variants, rows, tmp_path / "p.png")
    assert (tmp_path / "p.png").stat().st_size > 1000


def test_several_seeds_show_their_spread(tmp_path: Path) -> None:
    seeded = data(0.2, 0.001, 0.78, 0.75)
    seeded["metrics"]["metrics/train_dropout.json"]["data"]["best_val_acc_std"] = 0.012
    seeded["metrics"]["metrics/test.json"]["data"]["dropout"]["test_acc_std"] = 0.004
    shown = [{"rev": "abc", "name": "main", "data": seeded, "experiments": None}]
    variants, rows = sweep.sweep_rows(shown, "dropout.fc")
    assert "| 0.2 | main | 78.0% ± 1.2 | 75.0% ± 0.4 |" in sweep.markdown("dropout.fc", rows)
    sweep.plot("dropout.fc", variants, rows, tmp_path / "p.png")
    assert (tmp_path / "p.png").stat().st_size > 1000


def test_a_grid_has_a_column_and_a_line_per_other_param(tmp_path: Path) -> None:
    def point(fc: float, pool2: float, val: float) -> dict:
        grid = data(fc, 0.001, val, val - 0.02)
        grid["params"]["params.yaml"]["data"]["dropout"]["pool2"] = pool2
        return grid

    shown = [
        {
            "rev": "abc",
            "name": "main",
            "data": point(0.1, 0.1, 0.77),
            "experiments": [
                {"revs": [{"rev": "e1", "name": "a", "data": point(0.5, 0.2, 0.78)}]},
                {"revs": [{"rev": "e2", "name": "b", "data": point(0.5, 0.1, 0.79)}]},
                {"revs": [{"rev": "e3", "name": "c", "data": point(0.1, 0.2, 0.76)}]},
            ],
        }
    ]
    variants, rows = sweep.sweep_rows(shown, "dropout.fc", ("dropout.pool2",))
    assert [(r["dropout.pool2"], r["value"], r["experiment"]) for r in rows] == [
        (0.1, 0.1, "main"),
        (0.1, 0.5, "b"),
        (0.2, 0.1, "c"),
        (0.2, 0.5, "a"),
    ]
    table = sweep.markdown("dropout.fc", rows)
    assert table.splitlines()[0] == "| dropout.fc | dropout.pool2 | experiment | dropout val | dropout test |"
    assert "| 0.5 | 0.1 | b | 79.0% | 77.0% |" in table
    sweep.plot("dropout.fc", variants, rows, tmp_path / "grid.png", ("dropout.pool2",))
    assert (tmp_path / "grid.png").stat().st_size > 1000


def test_unknown_param_has_no_rows() -> None:
    assert sweep.sweep_rows(SHOWN, "dropout.rate")[1] == []


@pytest.mark.parametrize("param", ["seed", "data.normalize"])
def test_params_absent_from_every_experiment(param: str) -> None:
    assert sweep.sweep_rows(SHOWN, param)[1] == []
