"""tools/sweep.py turns `dvc exp show --json` into a table and plot of one sweep: the largest group
of experiments that differ from each other only in the swept params, or those named with --exp."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import pytest
from project import PROJECT, git

from convlab.stage_files import RUNS, TESTS

SPEC = importlib.util.spec_from_file_location("sweep", PROJECT / "tools" / "sweep.py")
sweep = importlib.util.module_from_spec(SPEC)  # type: ignore[arg-type]
sys.modules["sweep"] = sweep  # its dataclasses look their module up while it loads
SPEC.loader.exec_module(sweep)  # type: ignore[union-attr]


def data(
    fc: Any,
    lr: float,
    val: float,
    test: float,
    seeds: int = 1,
    when: str = "2026-01-01T00:00:00",
    code: str = "c0de",
    **dropout: object,
) -> dict:
    """An experiment's data as `dvc exp show --json` gives it (DVC 3.67): params by file, each
    metrics file's content, dependencies with their hashes."""
    return {
        "timestamp": when,
        "params": {
            "params.yaml": {"data": {"dropout": {"fc": fc, **dropout}, "train": {"lr": lr, "seeds": seeds}}}
        },
        "metrics": {
            "metrics/train_dropout.json": {"data": {"dropout": {"val": val}}},
            "metrics/test_dropout.json": {"data": {"dropout": {"test": test}}},
        },
        "deps": {
            "src/convlab/train.py": {"hash": code, "size": 1, "nfiles": None},
            "data/prepared": {"hash": "da7a.dir", "size": 2, "nfiles": 4},
        },
    }


def experiment(name: str, data: dict, state: str | None = None) -> dict:
    return {
        "executor": state and {"state": state},
        "revs": [{"rev": f"{name}-rev", "name": name, "data": data}],
    }


def commit(experiments: list[dict], rev: str = "ad79c34aaaa", **params: Any) -> dict:
    """A commit (dropout.fc 0.1, train.lr 0.001 unless given) with its experiments."""
    values = {"fc": 0.1, "lr": 0.001, "val": 0.77, "test": 0.74} | params
    return {"rev": rev, "name": "main", "data": data(**values), "experiments": experiments}


SHOWN = [
    {"rev": "workspace", "data": data(0.1, 0.001, 0.77, 0.74), "experiments": None},
    commit(
        [
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
        ]
    ),
]


def no_runs(rev: str, variant: str, accuracy: Any) -> list[float] | None:
    raise AssertionError(f"read the runs of {rev}, which ran one seed")


def table(shown: list[dict], param: str, by: tuple[str, ...] = (), named: tuple[str, ...] = (), **kw: Any):
    return sweep.sweep_table(shown, param, by, named, kw.get("read_runs", no_runs))


def cells(text: str) -> list[list[str]]:
    """The Markdown table's header and rows (the separator line and the caption left out)."""
    lines = text.split("\n\n")[0].splitlines()
    return [[cell.strip() for cell in line.strip("|").split("|")] for line in lines[:1] + lines[2:]]


def listed(frame, *columns: str) -> list[tuple]:
    return list(frame[list(columns)].itertuples(index=False, name=None))


def test_rows_are_the_largest_group_that_differs_only_in_the_swept_param() -> None:
    """The commit's own result is no row, nor are running and failed experiments; the experiments
    that also changed train.lr, or added a param, are other groups: left out, and said so."""
    result = table(SHOWN, "dropout.fc")
    assert result.variants == ["dropout"]
    assert listed(result.frame, "dropout.fc", "experiment") == [
        (0.1, "again"),
        (0.2, "done"),
        (0.3, "mid"),
        (0.5, "big"),
    ]
    assert listed(result.frame, "dropout val", "dropout test")[2] == (0.79, 0.76)
    assert result.notes == [
        "Held fixed: dropout.flip=(absent), train.lr=0.001.",
        "Left out, differing in more than dropout.fc: train.lr=0.01 (both, faster); "
        "dropout.flip=True (flipped). Name rows with --exp, or add a param to --by.",
    ]


def test_a_sweep_after_the_quick_path_is_tabled_and_says_what_it_held_fixed() -> None:
    """README: `dvc exp run -S train.seeds=1`, then a queued sweep from that workspace. Every point
    differs from the commit in train.seeds, and together they are the sweep."""
    quick = [
        experiment(name, data(fc, 0.001, 0.7, 0.6, seeds=1))
        for name, fc in (("quick", 0.1), ("q2", 0.2), ("q3", 0.3))
    ]
    result = table([commit(quick, seeds=5)], "dropout.fc")
    assert listed(result.frame, "experiment") == [("quick",), ("q2",), ("q3",)]
    assert result.notes == ["Held fixed: train.seeds=1."]
    fig, ax = plt.subplots()
    sweep.draw(ax, result)
    assert ax.get_title() == "accuracy against dropout.fc\nHeld fixed: train.seeds=1."  # the plot says it too
    plt.close(fig)


def test_the_tuned_grid_is_tabled_as_run() -> None:
    """README Tuned: a grid that also set flip and epochs for every point, and a longer run of one
    setting beside it (another group, of one value)."""

    def tuned(fc: float, pool2: float, epochs: int = 60) -> dict:
        return data(fc, 0.001, 0.85, 0.84, crop_padding=4, flip=True, epochs=epochs, pool2=pool2)

    grid = [experiment(f"g{fc}-{pool2}", tuned(fc, pool2)) for fc in (0.5, 0.3) for pool2 in (0.2, 0.1)] + [
        experiment("tuned-100", tuned(0.3, 0.1, epochs=100))
    ]
    committed = commit(grid)
    committed["data"]["params"]["params.yaml"]["data"]["dropout"] |= {
        "crop_padding": 0,
        "flip": False,
        "epochs": 40,
        "pool2": 0.2,
    }
    result = table([committed], "dropout.fc", ("dropout.pool2", "dropout.crop_padding"))
    assert listed(result.frame, "dropout.pool2", "dropout.fc", "experiment") == [
        (0.1, 0.3, "g0.3-0.1"),
        (0.1, 0.5, "g0.5-0.1"),
        (0.2, 0.3, "g0.3-0.2"),
        (0.2, 0.5, "g0.5-0.2"),
    ]
    assert result.notes[0] == "Held fixed: dropout.epochs=60, dropout.flip=True."
    assert result.notes[1].startswith("Left out, differing in more than dropout.fc, dropout.pool2, ")
    assert "dropout.epochs=100 (tuned-100)" in result.notes[1]


def test_of_two_groups_the_one_with_more_values_is_tabled() -> None:
    """Two sweeps of dropout.fc, at two learning rates: the larger is the table, and the message says
    which learning rate it held and what it left out."""
    runs = [experiment(f"a{fc}", data(fc, 0.001, 0.7, 0.7)) for fc in (0.2, 0.3)] + [
        experiment(f"b{fc}", data(fc, 0.01, 0.7, 0.7)) for fc in (0.2, 0.3, 0.4)
    ]
    result = table([commit(runs)], "dropout.fc")
    assert listed(result.frame, "experiment") == [("b0.2",), ("b0.3",), ("b0.4",)]
    assert result.notes == [
        "Held fixed: train.lr=0.01.",
        "Left out, differing in more than dropout.fc: train.lr=0.001 (a0.2, a0.3). "
        "Name rows with --exp, or add a param to --by.",
    ]


def test_ties_go_to_more_experiments_then_to_the_newest() -> None:
    def runs(lr: float, values: tuple[float, ...], when: str) -> list[dict]:
        return [experiment(f"{lr}-{i}", data(fc, lr, 0.7, 0.7, when=when)) for i, fc in enumerate(values)]

    more = runs(0.001, (0.2, 0.3), "2026-01-01") + runs(0.01, (0.2, 0.3, 0.3), "2025-01-01")
    assert listed(table([commit(more)], "dropout.fc").frame, "experiment") == [
        ("0.01-0",),
        ("0.01-1",),
        ("0.01-2",),
    ]
    newer = runs(0.001, (0.2, 0.3), "2025-01-01") + runs(0.01, (0.2, 0.3), "2026-01-01")
    assert table([commit(newer)], "dropout.fc").notes[0] == "Held fixed: train.lr=0.01."


def test_experiments_with_other_code_are_another_group() -> None:
    """Queued before and after an edit of the training code: not one sweep, whatever the params."""
    runs = [experiment(f"old{fc}", data(fc, 0.001, 0.7, 0.7, code="01d")) for fc in (0.2, 0.3, 0.4)] + [
        experiment(f"new{fc}", data(fc, 0.001, 0.7, 0.7, code="9e3")) for fc in (0.2, 0.3)
    ]
    result = table([commit(runs)], "dropout.fc")
    assert listed(result.frame, "experiment") == [("old0.2",), ("old0.3",), ("old0.4",)]
    assert result.notes[0] == "Held fixed: code src/convlab/train.py 01d."
    assert "code src/convlab/train.py 9e3 (new0.2, new0.3)" in result.notes[1]


def test_named_experiments_are_the_rows_whatever_they_changed() -> None:
    result = table(SHOWN, "dropout.fc", named=("main", "both", "busy"))
    assert listed(result.frame, "dropout.fc", "experiment") == [(0.1, "main"), (0.5, "both")]  # busy: running
    assert result.notes == ["The named rows also differ in train.lr."]


def test_by_params_are_columns_and_a_shared_param_shows_every_variant() -> None:
    result = table(SHOWN, "train.lr")
    assert result.variants == ["baseline", "dropout", "staged_dropout"]
    # Two groups of two values each (dropout.fc 0.1 and 0.5): the first, the newest in exp show's order.
    assert listed(result.frame, "train.lr", "experiment") == [(0.001, "big"), (0.01, "both")]
    assert pd_isna(result.frame["baseline val"][0]) and result.frame["dropout val"][0] == 0.78

    grid = table(SHOWN, "train.lr", ("dropout.fc",))
    assert listed(grid.frame, "dropout.fc", "train.lr", "experiment") == [
        (0.1, 0.001, "again"),
        (0.1, 0.01, "faster"),
        (0.2, 0.001, "done"),
        (0.3, 0.001, "mid"),
        (0.5, 0.001, "big"),
        (0.5, 0.01, "both"),
    ]


def pd_isna(value: object) -> bool:
    return value != value  # NaN is the one value unequal to itself


def test_markdown_table_caption_and_plot(tmp_path: Path) -> None:
    result = table(SHOWN, "dropout.fc")
    text = sweep.markdown(result)
    assert cells(text)[0] == ["dropout.fc", "experiment", "dropout val", "dropout test"]
    assert ["0.3", "mid", "79.0%", "76.0%"] in cells(text)
    caption = text.split("\n\n")[1]
    assert "mean best validation accuracy" in caption and "Held fixed: dropout.flip=(absent)" in caption
    sweep.plot(result, tmp_path / "p.png")
    assert (tmp_path / "p.png").stat().st_size > 1000


def test_several_seeds_show_their_spread_from_the_experiments_runs(tmp_path: Path) -> None:
    """The metrics hold the mean only; the seeds' values come from the experiment's runs tables."""
    asked = []

    def runs(rev: str, variant: str, accuracy: Any) -> list[float] | None:
        asked.append((rev, variant, accuracy.runs))
        return [0.77, 0.79] if accuracy.kind == "val" else None  # test: not in this repository

    shown = [
        commit(
            [
                experiment("s", data(0.2, 0.001, 0.78, 0.75, seeds=2)),
                experiment("t", data(0.3, 0.001, 0.7, 0.7, seeds=2)),
            ],
            seeds=2,
        )
    ]
    result = table(shown, "dropout.fc", read_runs=runs)
    assert ("s-rev", "dropout", RUNS) in asked and ("s-rev", "dropout", TESTS) in asked
    text = sweep.markdown(result)
    assert cells(text)[1] == ["0.2", "s", "78.0% ± 1.4", "75.0%"]  # sample std of 77% and 79%
    assert "No ± for s, t: no readable runs tables in this git repository." in text
    sweep.plot(result, tmp_path / "p.png")
    assert (tmp_path / "p.png").stat().st_size > 1000


def test_runs_are_read_from_the_experiments_commit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """git_runs reads a commit's runs tables with their schema, whatever the working tree holds."""
    monkeypatch.chdir(tmp_path)
    git(tmp_path, "init", "-q")
    fact = {"runtime": "cpu", "precision_reason": "x", "hardware": "x", "threads": 2}
    seconds = {"train_seconds": 1.0, "wall_seconds": 1.0, "images_per_second": 9.0}
    losses = {"final_val_loss": 1.0, "final_train_acc": 0.5, "final_train_loss": 1.0}
    RUNS.write(
        "dropout",
        [
            {"seed": s, "best_val_acc": a, "best_epoch": 1, "final_val_acc": a} | losses | seconds | fact
            for s, a in ((0, 0.5), (1, 0.7))
        ],
    )
    TESTS.write("dropout", [{"seed": 0, "test_acc": 0.6, "test_loss": 1.0, "checkpoint_epoch": 1}])
    git(tmp_path, "add", "-A")
    git(tmp_path, "commit", "-q", "-m", "runs")
    rev = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    RUNS.path("dropout").write_text("damaged\n")  # the working tree is not what is read
    val, test = sweep.ACCURACIES
    assert sweep.git_runs(rev, "dropout", val) == [0.5, 0.7]
    assert sweep.git_runs(rev, "dropout", test) == [0.6]
    assert sweep.git_runs(rev, "baseline", val) is None  # not in that commit
    assert sweep.git_runs("0" * 40, "dropout", val) is None  # not in this repository
    git(tmp_path, "commit", "-q", "-am", "damaged")
    assert sweep.git_runs("HEAD", "dropout", val) is None


def test_a_missing_accuracy_is_a_blank_cell() -> None:
    result = table(SHOWN, "train.lr")
    assert cells(sweep.markdown(result))[1][2:4] == ["", ""]  # baseline val and test: not in the metrics


def test_a_repeated_value_is_two_markers_and_one_mean_on_the_line() -> None:
    """Two runs of fc=0.5 are both drawn; the line goes through their mean, not from one to the
    other (a vertical stroke that read as a jump in accuracy)."""
    runs = [
        experiment("a", data(0.1, 0.001, 0.70, 0.6)),
        experiment("b", data(0.5, 0.001, 0.80, 0.6)),
        experiment("c", data(0.5, 0.001, 0.76, 0.6)),
    ]
    result = table([commit(runs)], "dropout.fc")
    fig, ax = plt.subplots()
    sweep.draw(ax, result)
    markers = [line for line in ax.lines if line.get_marker() == "o"]
    assert [list(line.get_xdata()) for line in markers] == [[0.1, 0.5, 0.5]]
    joined = [line for line in ax.lines if line.get_linestyle() == "-"]
    assert len(joined) == 2  # validation and test
    assert list(joined[0].get_xdata()) == [0.1, 0.5]
    assert list(joined[0].get_ydata()) == pytest.approx([0.70, 0.78])
    plt.close(fig)


def test_values_that_are_not_numbers_get_markers_and_no_line() -> None:
    """Mixed types (YAML reads `-S train.compile=on` as true) sort without comparing them."""
    runs = [experiment(name, data(fc, 0.001, 0.7, 0.7)) for name, fc in (("on", True), ("off", False))]
    result = table(
        [commit([*runs, experiment("again", data("auto", 0.001, 0.7, 0.7))], fc="auto")], "dropout.fc"
    )
    assert listed(result.frame, "experiment") == [("off",), ("on",), ("again",)]  # bool, then str
    fig, ax = plt.subplots()
    sweep.draw(ax, result)
    assert not [line for line in ax.lines if line.get_linestyle() == "-"]
    assert [tick.get_text() for tick in ax.get_xticklabels()] == ["False", "True", "auto"]
    plt.close(fig)


def test_a_grid_has_a_column_and_a_line_per_other_param(tmp_path: Path) -> None:
    runs = [
        experiment("a", data(0.5, 0.001, 0.78, 0.76, pool2=0.2)),
        experiment("b", data(0.5, 0.001, 0.79, 0.77, pool2=0.1)),
        experiment("c", data(0.1, 0.001, 0.76, 0.74, pool2=0.2)),
    ]
    result = table([commit(runs)], "dropout.fc", ("dropout.pool2",))
    assert listed(result.frame, "dropout.pool2", "dropout.fc", "experiment") == [
        (0.1, 0.5, "b"),
        (0.2, 0.1, "c"),
        (0.2, 0.5, "a"),
    ]
    text = sweep.markdown(result)
    assert cells(text)[0] == ["dropout.fc", "dropout.pool2", "experiment", "dropout val", "dropout test"]
    assert ["0.5", "0.1", "b", "79.0%", "77.0%"] in cells(text)
    fig, ax = plt.subplots()
    sweep.draw(ax, result)
    labels = ax.get_legend_handles_labels()[1]
    assert "dropout best validation (pool2=0.1)" in labels and "dropout test (pool2=0.2)" in labels
    plt.close(fig)
    sweep.plot(result, tmp_path / "grid.png")
    assert (tmp_path / "grid.png").stat().st_size > 1000


@pytest.mark.parametrize(
    ("shown", "param", "refusal"),
    [
        (SHOWN, "dropout.rate", "no finished experiment has dropout.rate; is the name as in params.yaml?"),
        (SHOWN, "seed", "no finished experiment has seed"),  # absent from every experiment
        ([{"rev": "workspace", "data": {}, "experiments": None}], "dropout.fc", "no finished experiment"),
        (
            [commit([experiment("one", data(0.5, 0.001, 0.7, 0.7))])],
            "dropout.fc",
            "only one finished experiment (one) has dropout.fc: a sweep needs two",
        ),
        (
            [commit([experiment(n, data(0.5, lr, 0.7, 0.7)) for n, lr in (("x", 0.1), ("y", 0.2))])],
            "dropout.fc",
            "no two finished experiments differ in dropout.fc alone: of the 2 that have dropout.fc",
        ),
    ],
)
def test_no_sweep_is_refused_saying_why(shown: list[dict], param: str, refusal: str) -> None:
    with pytest.raises(sweep.SweepError, match=refusal.replace("(", r"\(").replace(")", r"\)")):
        table(shown, param)


def run_main(tmp_path: Path, *args: str) -> None:
    shown = tmp_path / "shown.json"
    shown.write_text(json.dumps(SHOWN))
    sweep.main([*args, "--json", str(shown), "--out", str(tmp_path / "out")])


def test_command_writes_the_named_rows(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run_main(tmp_path, "dropout.fc", "--exp", "main", "both")
    text = (tmp_path / "out" / "dropout.fc.md").read_text()
    assert [row[:2] for row in cells(text)[1:]] == [["0.1", "main"], ["0.5", "both"]]
    assert (tmp_path / "out" / "dropout.fc.png").stat().st_size > 1000
    assert text in capsys.readouterr().out


def test_command_refuses_a_name_that_is_not_a_finished_experiment(tmp_path: Path) -> None:
    with pytest.raises(
        sweep.SweepError, match="no finished experiment busy, typo with a value for 'dropout.fc'"
    ):
        run_main(tmp_path, "dropout.fc", "--exp", "big", "busy", "typo")
    assert not (tmp_path / "out").exists()


def sweep_command(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(PROJECT / "tools" / "sweep.py"), *args, "--out", str(tmp_path / "out")],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(PROJECT / "src")},
        capture_output=True,
        text=True,
    )


@pytest.mark.parametrize(
    ("content", "said"),
    [
        (None, "no such file"),
        ("[1, 2", "not JSON"),
        ('{"rev": "workspace"}', "a JSON dict, not the list `dvc exp show --json` prints"),
        ("[1]", "not `dvc exp show --json` output: [0] is int, not an object"),
        ('[{"rev": "a", "experiments": {}}]', "[0].experiments is dict, not a list"),
        ('[{"rev": "a", "data": {"params": [1]}}]', "[0].data.params is list, not an object"),
        (
            '[{"rev": "a", "experiments": [{"revs": [{"rev": "b", "data": 3}]}]}]',
            "[0].experiments[0].revs[0].data is int, not an object",
        ),
    ],
)
def test_a_bad_json_file_is_refused_saying_what_is_wrong(
    tmp_path: Path, content: str | None, said: str
) -> None:
    """Issue 19: a missing, invalid or non-list --json is a SweepError, which the command prints as
    one line (convlab.errors.run_stage: tests/test_errors.py)."""
    path = tmp_path / "shown.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(sweep.SweepError) as refused:
        sweep.main(["dropout.fc", "--json", str(path), "--out", str(tmp_path / "out")])
    assert str(refused.value).startswith(f"--json {path}: ") and said in str(refused.value)
    assert not (tmp_path / "out").exists()


@pytest.mark.slow  # the tool as a real subprocess
def test_the_command_answers_in_one_line(tmp_path: Path) -> None:
    """End to end: no traceback, one line, exit 1, for a bad --json and for a refused sweep."""
    (tmp_path / "list.json").write_text(json.dumps(SHOWN))
    (tmp_path / "dict.json").write_text("{}")
    for shown, said in (
        ("dict.json", "--json dict.json: a JSON dict, not the list `dvc exp show --json` prints"),
        ("list.json", "no finished experiment has seed; is the name as in params.yaml?"),
    ):
        result = sweep_command(tmp_path, "seed", "--json", shown)
        assert (result.returncode, result.stderr) == (1, f"sweep: error: {said}\n")
