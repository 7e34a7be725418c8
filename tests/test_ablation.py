"""The ablation's paired analysis on known numbers: paired intervals and tests, Holm's adjustment,
the three steps that add up to staged dropout's gain, and the tables made from the runs."""

from __future__ import annotations

import contextlib
import csv
import importlib.util
import subprocess
from pathlib import Path

import pytest
from project import PROJECT, git

from convlab.ablation import COLUMNS, SETTINGS, STEPS, TOTAL, compare, markdown
from convlab.stage_files import RUNS, DamagedInputError, read_at
from convlab.stats import holm, paired_difference


def test_holm_adjusts_in_the_given_order() -> None:
    # Sorted: 0.005 x 4 = 0.02, 0.01 x 3 = 0.03, 0.03 x 2 = 0.06, 0.04 x 1 = 0.04 -> kept at 0.06.
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert holm([0.5, 0.9]) == [1.0, 1.0]  # never above 1
    assert holm([]) == []


def test_paired_difference_against_the_t_table() -> None:
    # Differences 1, 2, 3, 4: mean 2.5, sd 1.291, se 0.6455, t(0.975; 3) = 3.182 -> [0.446, 4.554];
    # t = 3.873 on 3 degrees of freedom: p = 0.0305.
    d = paired_difference([1, 2, 3, 4], [0, 0, 0, 0])
    assert d.diff == 2.5 and d.ci95 == pytest.approx((0.446, 4.554), abs=1e-3)
    assert d.p_value == pytest.approx(0.0305, abs=1e-4)
    exact = paired_difference([0.75, 0.5], [0.5, 0.25])  # every pair 0.25 apart, no spread
    assert exact.diff == 0.25 and exact.ci95 == (0.25, 0.25) and exact.p_value == 0.0
    with pytest.raises(ValueError, match="two or more pairs"):
        paired_difference([0.8], [0.7])


def rows(test: dict[str, list[float]]) -> list[dict]:
    """Runs of each setting named in `test`, seeds 0.., val = test + 0.02."""
    by_name = {s.name: s for s in SETTINGS}
    return [
        {
            "setting": name,
            "variant": by_name[name].variant,
            "seed": seed,
            "test_acc": acc,
            "best_val_acc": acc + 0.02,
        }
        for name, values in test.items()
        for seed, acc in enumerate(values)
    ]


STUDY = {
    "dropout": [0.74, 0.73, 0.75, 0.74, 0.72],
    "dropout_40": [0.76, 0.75, 0.76, 0.77, 0.74],
    "dropout_40_fc05": [0.78, 0.78, 0.77, 0.79, 0.77],
    "staged_dropout": [0.79, 0.79, 0.78, 0.80, 0.78],
}


def test_the_three_steps_add_up_to_the_whole_gain_seed_by_seed() -> None:
    results = {(r.comparison, r.metric): r for r in compare(rows(STUDY))}
    total = results[(TOTAL, "test_acc")]
    steps = [results[(step, "test_acc")] for step in STEPS]
    assert total.diff == pytest.approx(sum(s.diff for s in steps))
    assert all(r.p_holm >= r.p_value for r in results.values())
    assert len(results) == 8  # four comparisons with both sides run, on test and on validation
    text = markdown(rows(STUDY))
    # Means 73.6, 75.6, 77.8, 78.8%: steps of +2.0, +2.2 and +1.0 points of a +5.2 gain.
    assert "- epochs alone (20 -> 40): +2.0 points, 38%" in text
    assert "- the fc rate alone (0.1 -> 0.5): +2.2 points, 42%" in text
    assert "- the conv profile alone (pool2 0.1 -> 0.2): +1.0 points, 19%" in text
    assert "| staged dropout's gain over uniform dropout | staged_dropout - dropout | test | 5 |" in text


def test_settings_with_one_seed_in_common_are_not_compared() -> None:
    assert compare(rows({"dropout": [0.7], "dropout_40": [0.8]})) == []
    assert "No comparison has two seeds yet." in markdown(rows({"dropout": [0.7], "dropout_40": [0.8]}))


def load_tool():
    spec = importlib.util.spec_from_file_location("ablation_tool", PROJECT / "tools/ablation.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_analyze_writes_the_analysis_of_the_csv(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    tool = load_tool()
    (tmp_path / "report").mkdir()
    with (tmp_path / "report/ablation.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(COLUMNS))
        writer.writeheader()
        for row in rows(STUDY):
            writer.writerow({**dict.fromkeys(COLUMNS, 0), **row})
    with contextlib.chdir(tmp_path):
        tool.main(["analyze"])
    assert (tmp_path / "report/ablation.md").read_text() == capsys.readouterr().out
    with contextlib.chdir(tmp_path / "report"), pytest.raises(tool.AblationError, match="not found"):
        tool.main(["analyze"])


def test_a_table_is_read_as_a_commit_holds_it(tmp_path: Path) -> None:
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    path = tmp_path / RUNS.path("dropout")
    path.parent.mkdir(parents=True)
    header = ",".join(RUNS.columns)
    row = "3,0.75,12,0.74,0.8,0.9,0.3,10.0,11.0,100.0,cpu fp32 NCHW,why,CPU,2"
    path.write_text(f"{header}\n{row}\n")
    git(tmp_path, "add", "-A")
    git(tmp_path, "commit", "-qm", "runs")
    path.write_text("changed in the working tree\n")
    with contextlib.chdir(tmp_path):
        assert [r["seed"] for r in read_at(RUNS, "HEAD", "dropout")] == [3]
        with pytest.raises(
            DamagedInputError, match="HEAD:plots/train_baseline/runs.csv is damaged \\(not in that commit\\)"
        ):
            read_at(RUNS, "HEAD", "baseline")
