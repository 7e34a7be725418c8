"""tools/sweep.py turns `dvc exp show --json` into a table and plot of one sweep: the experiments
that changed nothing but the swept params, or those named with --exp."""

from __future__ import annotations

import importlib.util
import json
import math
import sys
from pathlib import Path

import matplotlib.pyplot as plt
import pytest

SPEC = importlib.util.spec_from_file_location("sweep", Path(__file__).parents[1] / "tools" / "sweep.py")
sweep = importlib.util.module_from_spec(SPEC)  # type: ignore[arg-type]
SPEC.loader.exec_module(sweep)  # type: ignore[union-attr]


def data(fc: float, lr: float, val: float, test: float, **dropout: object) -> dict:
    return {
        "params": {"params.yaml": {"data": {"dropout": {"fc": fc, **dropout}, "train": {"lr": lr}}}},
        "metrics": {
            "metrics/train_dropout.json": {"data": {"best_val_acc": val}},
            "metrics/test.json": {"data": {"dropout": {"test_acc": test}}},
        },
    }


def experiment(name: str, data: dict, state: str | None = None) -> dict:
    return {
        "executor": state and {"state": state},
        "revs": [{"rev": f"{name}-rev", "name": name, "data": data}],
    }


SHOWN = [
    {"rev": "workspace", "data": data(0.1, 0.001, 0.77, 0.74), "experiments": None},
    {
        "rev": "ad79c34aaaa",
        "name": "main",
        "data": data(0.1, 0.001, 0.77, 0.74),
        "experiments": [
            experiment("big", data(0.5, 0.001, 0.78, 0.75)),
            experiment("mid", data(0.3, 0.001, 0.79, 0.76)),
            experiment("broken", {}),  # a failed experiment
            # still running: its metrics are a temporary copy's, half written
            experiment("busy", data(0.4, 0.001, 0.1, 0.74), "running"),
            experiment("done", data(0.2, 0.001, 0.8, 0.7), "success"),
            experiment("again", data(0.1, 0.001, 0.76, 0.73)),  # the committed value, run again
            experiment("both", data(0.5, 0.01, 0.6, 0.6)),  # changed train.lr too
            experiment("faster", data(0.1, 0.01, 0.7, 0.7)),  # changed train.lr only
            experiment("flipped", data(0.4, 0.001, 0.7, 0.7, flip=True)),  # added a param
        ],
    },
]


def cells(table: str) -> list[list[str]]:
    """The Markdown table's header and rows (the separator line left out), cell by cell."""
    lines = table.splitlines()
    return [[cell.strip() for cell in line.strip("|").split("|")] for line in lines[:1] + lines[2:]]


def listed(table, *columns: str) -> list[tuple]:
    return list(table[list(columns)].itertuples(index=False, name=None))


def test_rows_are_the_experiments_that_changed_only_the_swept_param() -> None:
    """Neither the commit's own result nor an experiment that changed another param (or added one)
    is part of the sweep; one that changed nothing is its point at the committed value."""
    variants, table = sweep.sweep_rows(SHOWN, "dropout.fc")
    assert variants == ["dropout"]
    assert listed(table, "dropout.fc", "experiment") == [
        (0.1, "again"),
        (0.2, "done"),
        (0.3, "mid"),
        (0.5, "big"),
    ]
    assert listed(table, "dropout val", "dropout test")[2] == (0.79, 0.76)


def test_named_experiments_are_the_rows_whatever_they_changed() -> None:
    _, table = sweep.sweep_rows(SHOWN, "dropout.fc", named=("main", "both", "busy"))
    assert listed(table, "dropout.fc", "experiment") == [(0.1, "main"), (0.5, "both")]  # busy: running


def test_by_params_may_change_too_and_a_shared_param_shows_every_variant() -> None:
    variants, table = sweep.sweep_rows(SHOWN, "train.lr")
    assert variants == ["baseline", "dropout", "staged_dropout"]
    assert listed(table, "train.lr", "experiment") == [(0.001, "again"), (0.01, "faster")]
    assert math.isnan(table["baseline val"][0]) and table["dropout val"][0] == 0.76

    _, grid = sweep.sweep_rows(SHOWN, "train.lr", ("dropout.fc",))
    assert listed(grid, "dropout.fc", "train.lr", "experiment") == [
        (0.1, 0.001, "again"),
        (0.1, 0.01, "faster"),
        (0.2, 0.001, "done"),
        (0.3, 0.001, "mid"),
        (0.5, 0.001, "big"),
        (0.5, 0.01, "both"),
    ]


def test_each_experiment_is_compared_with_its_own_baseline_commit() -> None:
    """Over several commits (--rev, -A): an experiment of a commit with train.lr 0.01 that kept it
    changed only dropout.fc, though the other commit has train.lr 0.001."""
    shown = [
        {
            "rev": "old",
            "data": data(0.1, 0.001, 0.7, 0.7),
            "experiments": [experiment("a", data(0.3, 0.001, 0.7, 0.7))],
        },
        {
            "rev": "new",
            "data": data(0.1, 0.01, 0.7, 0.7),
            "experiments": [experiment("b", data(0.3, 0.01, 0.7, 0.7))],
        },
    ]
    assert listed(sweep.sweep_rows(shown, "dropout.fc")[1], "experiment") == [("a",), ("b",)]


def test_markdown_table_and_plot(tmp_path: Path) -> None:
    variants, table = sweep.sweep_rows(SHOWN, "dropout.fc")
    text = sweep.markdown(table)
    assert cells(text)[0] == ["dropout.fc", "experiment", "dropout val", "dropout test"]
    assert ["0.3", "mid", "79.0%", "76.0%"] in cells(text)
    sweep.plot("dropout.fc", variants, table, tmp_path / "p.png")
    assert (tmp_path / "p.png").stat().st_size > 1000


def test_several_seeds_show_their_spread(tmp_path: Path) -> None:
    seeded = data(0.2, 0.001, 0.78, 0.75)
    seeded["metrics"]["metrics/train_dropout.json"]["data"]["best_val_acc_std"] = 0.012
    seeded["metrics"]["metrics/test.json"]["data"]["dropout"]["test_acc_std"] = 0.004
    shown = [
        {
            "rev": "abc",
            "name": "main",
            "data": data(0.1, 0.001, 0.7, 0.7),
            "experiments": [experiment("s", seeded)],
        }
    ]
    variants, table = sweep.sweep_rows(shown, "dropout.fc")
    assert cells(sweep.markdown(table))[1] == ["0.2", "s", "78.0% ± 1.2", "75.0% ± 0.4"]
    sweep.plot("dropout.fc", variants, table, tmp_path / "p.png")
    assert (tmp_path / "p.png").stat().st_size > 1000


def test_a_missing_accuracy_is_a_blank_cell() -> None:
    _, table = sweep.sweep_rows(SHOWN, "train.lr")
    assert cells(sweep.markdown(table))[1][2:4] == ["", ""]  # baseline val and test: not in the metrics


def test_a_repeated_value_is_two_markers_and_one_mean_on_the_line() -> None:
    """Two runs of fc=0.5 are both drawn; the line goes through their mean, not from one to the
    other (a vertical stroke that read as a jump in accuracy)."""
    shown = [
        {
            "rev": "abc",
            "data": data(0.1, 0.001, 0.7, 0.7),
            "experiments": [
                experiment("a", data(0.1, 0.001, 0.70, 0.6)),
                experiment("b", data(0.5, 0.001, 0.80, 0.6)),
                experiment("c", data(0.5, 0.001, 0.76, 0.6)),
            ],
        }
    ]
    variants, table = sweep.sweep_rows(shown, "dropout.fc")
    fig, ax = plt.subplots()
    sweep.draw(ax, "dropout.fc", variants, table)
    markers = [line for line in ax.lines if line.get_marker() == "o"]
    assert [list(line.get_xdata()) for line in markers] == [[0.1, 0.5, 0.5]]
    joined = [line for line in ax.lines if line.get_linestyle() == "-"]
    assert len(joined) == 2  # validation and test
    assert list(joined[0].get_xdata()) == [0.1, 0.5]
    assert list(joined[0].get_ydata()) == pytest.approx([0.70, 0.78])
    plt.close(fig)


def test_values_that_are_not_numbers_get_markers_and_no_line() -> None:
    """Mixed types (YAML reads `-S train.compile=on` as true) sort without comparing them."""
    shown = [{"rev": "abc", "data": data("auto", 0.001, 0.7, 0.7), "experiments": []}]
    for name, fc in (("on", True), ("off", False), ("again", "auto")):
        shown[0]["experiments"].append(experiment(name, data(fc, 0.001, 0.7, 0.7)))
    variants, table = sweep.sweep_rows(shown, "dropout.fc")
    assert listed(table, "experiment") == [("off",), ("on",), ("again",)]  # bool, then str
    fig, ax = plt.subplots()
    sweep.draw(ax, "dropout.fc", variants, table)
    assert not [line for line in ax.lines if line.get_linestyle() == "-"]
    assert [tick.get_text() for tick in ax.get_xticklabels()] == ["False", "True", "auto"]
    plt.close(fig)


def test_a_grid_has_a_column_and_a_line_per_other_param(tmp_path: Path) -> None:
    shown = [
        {
            "rev": "abc",
            "name": "main",
            "data": data(0.1, 0.001, 0.77, 0.75, pool2=0.1),
            "experiments": [
                experiment("a", data(0.5, 0.001, 0.78, 0.76, pool2=0.2)),
                experiment("b", data(0.5, 0.001, 0.79, 0.77, pool2=0.1)),
                experiment("c", data(0.1, 0.001, 0.76, 0.74, pool2=0.2)),
            ],
        }
    ]
    variants, table = sweep.sweep_rows(shown, "dropout.fc", ("dropout.pool2",))
    assert listed(table, "dropout.pool2", "dropout.fc", "experiment") == [
        (0.1, 0.5, "b"),
        (0.2, 0.1, "c"),
        (0.2, 0.5, "a"),
    ]
    text = sweep.markdown(table)
    assert cells(text)[0] == ["dropout.fc", "dropout.pool2", "experiment", "dropout val", "dropout test"]
    assert ["0.5", "0.1", "b", "79.0%", "77.0%"] in cells(text)
    fig, ax = plt.subplots()
    sweep.draw(ax, "dropout.fc", variants, table, ("dropout.pool2",))
    labels = ax.get_legend_handles_labels()[1]
    assert "dropout best validation (pool2=0.1)" in labels and "dropout test (pool2=0.2)" in labels
    plt.close(fig)
    sweep.plot("dropout.fc", variants, table, tmp_path / "grid.png", ("dropout.pool2",))
    assert (tmp_path / "grid.png").stat().st_size > 1000


def test_unknown_param_has_no_rows() -> None:
    assert sweep.sweep_rows(SHOWN, "dropout.rate")[1].empty


@pytest.mark.parametrize("param", ["seed", "data.normalize"])
def test_params_absent_from_every_experiment(param: str) -> None:
    assert sweep.sweep_rows(SHOWN, param)[1].empty


def test_no_finished_experiment_has_no_rows() -> None:
    assert sweep.sweep_rows([{"rev": "workspace", "data": {}, "experiments": None}], "dropout.fc")[1].empty


def run_main(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, *args: str) -> None:
    shown = tmp_path / "shown.json"
    shown.write_text(json.dumps(SHOWN))
    argv = ["sweep.py", *args, "--json", str(shown), "--out", str(tmp_path / "out")]
    monkeypatch.setattr(sys, "argv", argv)
    sweep.main()


def test_command_writes_the_named_rows(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run_main(monkeypatch, tmp_path, "dropout.fc", "--exp", "main", "both")
    table = (tmp_path / "out" / "dropout.fc.md").read_text()
    assert [row[:2] for row in cells(table)[1:]] == [["0.1", "main"], ["0.5", "both"]]
    assert (tmp_path / "out" / "dropout.fc.png").stat().st_size > 1000
    assert table in capsys.readouterr().out


def test_command_refuses_a_name_that_is_not_a_finished_experiment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    with pytest.raises(SystemExit, match="no finished experiment busy, typo with a value for 'dropout.fc'"):
        run_main(monkeypatch, tmp_path, "dropout.fc", "--exp", "big", "busy", "typo")
    assert not (tmp_path / "out").exists()


def test_command_says_when_no_experiment_changed_only_the_param(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    with pytest.raises(SystemExit, match="no finished experiment changed only seed"):
        run_main(monkeypatch, tmp_path, "seed")
