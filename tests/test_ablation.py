"""The ablation's paired analysis on known numbers: paired intervals and tests, Holm's adjustment,
the three steps that add up to staged dropout's gain, and the tables made from the runs."""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import importlib.util
import json
import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest
import torch
from project import PROJECT, copy_project, dvc, environment, git, run

from convlab.ablation import (
    COLUMNS,
    COMPARISONS,
    SETTINGS,
    STEPS,
    TOTAL,
    Setting,
    compare,
    described_precision,
    markdown,
)
from convlab.cifar import file_md5
from convlab.runtime import Runtime
from convlab.stage_files import RUNS, DamagedInputError, read_at
from convlab.stats import holm, paired_difference
from convlab.synthetic import write_archive


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


@pytest.mark.parametrize("dtype", [None, torch.bfloat16])
@pytest.mark.parametrize("device", ["cpu", "cuda:1"])
def test_the_precision_a_run_records_reads_back(dtype: torch.dtype | None, device: str) -> None:
    runtime = Runtime(torch.device(device), dtype, channels_last=False, compile=True)
    assert described_precision(runtime.describe()) == runtime.precision


@pytest.mark.parametrize("text", ["", "cpu", "cpu fp16 NCHW", "fp32 cpu channels-last"])
def test_a_record_without_a_precision_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="names no precision"):
        described_precision(text)


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


def test_only_finished_experiments_count_as_done(monkeypatch: pytest.MonkeyPatch) -> None:
    tool = load_tool()

    def group(name: str, rev: str, executor: dict | None) -> dict:
        return {"revs": [{"rev": rev, "name": name}], "executor": executor, "name": name}

    shown = [
        {"rev": "workspace", "name": None, "experiments": None},
        {
            "rev": "abc",
            "name": "main",
            "experiments": [
                group("ablation-dropout_40-seed0", "e1", None),  # committed
                group("ablation-staged_aug-seed0", "e2", {"state": "success", "name": "dvc-task"}),
                # killed, and DVC found a live process under its recorded pid
                group("ablation-dropout_40_fc05-seed0", "workspace", {"state": "running"}),
            ],
        },
    ]
    asked = []

    def fake_dvc(*args: str, **kw: object) -> subprocess.CompletedProcess[str]:
        asked.append(args)
        return subprocess.CompletedProcess(args, 0, json.dumps(shown))

    monkeypatch.setattr(tool, "_dvc", fake_dvc)
    monkeypatch.setattr(tool, "study_commits", lambda: 3)
    assert tool.experiments() == {"ablation-dropout_40-seed0": "e1", "ablation-staged_aug-seed0": "e2"}
    assert asked[0][asked[0].index("-n") + 1] == "3"  # the experiments of every commit of the study


def commit(repo: Path, path: str, text: str) -> None:
    (repo / path).write_text(text)
    git(repo, "add", path)
    git(repo, "commit", "-qm", path)


def test_heads_results_come_back_where_git_takes_a_rewritten_file_for_heads(tmp_path: Path) -> None:
    """An index entry whose size, inode and times match a file rewritten after it (as `dvc exp run`
    can leave one) hides the change from git; HEAD's content comes back all the same."""
    tool = load_tool()
    git(tmp_path, "init", "-q", "-b", "main")
    git(tmp_path, "config", "core.trustctime", "false")  # the rewrite below changes ctime
    for path in ["params.yaml", "dvc.lock", "metrics/train_dropout.json", "report/report.md"]:
        (tmp_path / path).parent.mkdir(exist_ok=True)
        commit(tmp_path, path, f"{path}\n")
    plot = tmp_path / "plots/test/dropout.csv"
    plot.parent.mkdir(parents=True)
    past = time.time_ns() - 100 * 10**9  # before the index is written: not "racily clean"
    plot.write_text("seed,test_acc\n0,0.28\n")
    os.utime(plot, ns=(past, past))
    commit(tmp_path, "plots/test/dropout.csv", plot.read_text())
    os.utime(plot, ns=(past, past))
    git(tmp_path, "add", "plots")  # the index records the past time
    with plot.open("r+") as rewrite:  # in place: the same inode and size
        rewrite.write("seed,test_acc\n0,0.31\n")
    os.utime(plot, ns=(past, past))
    assert run(tmp_path, "git", "status", "--porcelain").stdout == ""  # git is blind to it
    with contextlib.chdir(tmp_path):
        tool._head_results()
    assert plot.read_text() == "seed,test_acc\n0,0.28\n"
    assert run(tmp_path, "git", "status", "--porcelain").stdout == ""


@pytest.mark.slow
def test_the_committed_study_is_the_codes() -> None:
    """dvc.lock names the code, params and commands this project's committed results were made
    with. A change to any stage's dependency leaves every published figure and the ablation's
    pairs behind the code: it lands with the study re-run and committed, or not at all."""
    tool = load_tool()
    with contextlib.chdir(PROJECT):
        assert tool._study_changes() == []


def test_the_committed_analysis_is_the_committed_tables() -> None:
    """report/ablation.md is published: it is the analysis of report/ablation.csv as committed, so
    a run's row never lands without the figures it changes."""
    tool = load_tool()
    with contextlib.chdir(PROJECT):
        assert tool.analysis() == tool.ANALYSIS.read_text()


# Where README.md and docs/results.md read the ablation: each paragraph starts with its marker and
# runs to the next blank line.
READINGS = {"README.md": "**Why staged dropout wins**", "docs/results.md": "**What it shows**"}


def reading(path: str) -> str:
    text = (PROJECT / path).read_text()
    marker = READINGS[path]
    assert marker in text, f"{path} has no paragraph starting {marker}"
    return " ".join(text[text.index(marker) :].split("\n\n")[0].split())


@pytest.mark.parametrize("path", sorted(READINGS))
def test_the_published_reading_quotes_the_committed_analysis(path: str) -> None:
    """Every difference, interval, p-value and percentage the README and docs quote of the ablation
    is in report/ablation.md, a p quoted as "Holm p" in its Holm column: a run that moves a figure
    (or adds a comparison, so moves every Holm p) cannot land with the old figure published."""
    quoted = reading(path)
    analysis = (PROJECT / load_tool().ANALYSIS).read_text()
    lines = analysis.splitlines()
    header = next(i for i, line in enumerate(lines) if "| p (Holm) |" in line)
    table = [line for line in lines[header:] if line.startswith("|")]
    cells = [[cell.strip() for cell in line.split("|")[1:-1]] for line in table]
    names, rows = cells[0], cells[2:]  # cells[1] is the |---| line
    p_column = {row[names.index("p")] for row in rows}
    holm_column = {row[names.index("p (Holm)")] for row in rows}
    intervals = re.findall(r"[+-]\d+\.\d \[[+-]\d+\.\d, [+-]\d+\.\d\]", quoted)
    differences = re.findall(r"(?<![\d.])[+-]\d+\.\d\b", quoted)
    p_values = re.findall(r"(Holm )?\bp (\d(?:[\d.e-]*\d)?)", quoted)
    percents = re.findall(r"(?<![\d.])\d+(?:\.\d)?%", quoted)
    assert intervals and p_values and percents, f"{path}: no figures found in its reading"
    assert [i for i in intervals if i not in analysis] == []
    assert [d for d in differences if not re.search(rf"(?<![\d.]){re.escape(d)}\b", analysis)] == []
    assert [p for holm, p in p_values if p not in (holm_column if holm else p_column)] == []
    assert [n for n in percents if not re.search(rf"(?<![\d.]){re.escape(n)}", analysis)] == []


def test_the_commits_since_dvc_lock_last_changed_hold_the_study(tmp_path: Path) -> None:
    tool = load_tool()
    git(tmp_path, "init", "-q")
    commit(tmp_path, "README.md", "no study yet\n")
    with contextlib.chdir(tmp_path):
        assert tool.study_commits() == 1  # no dvc.lock: HEAD's experiments only
        commit(tmp_path, "dvc.lock", "study 1\n")
        commit(tmp_path, "dvc.lock", "study 2\n")
        assert tool.study_commits() == 1
        commit(tmp_path, "README.md", "the study's figures\n")
        commit(tmp_path, "NOTES.md", "a note\n")
        assert tool.study_commits() == 3


def test_run_puts_head_back_on_the_branch_a_killed_experiment_left(tmp_path: Path) -> None:
    tool = load_tool()
    git(tmp_path, "init", "-q", "-b", "main")
    commit(tmp_path, "dvc.lock", "the study\n")
    running = tmp_path / tool.RUNNING
    running.parent.mkdir()
    with contextlib.chdir(tmp_path):
        running.write_text(f"dropout_40\n{tool._head_ref()}\n")
        assert running.read_text() == "dropout_40\nrefs/heads/main\n"
        git(tmp_path, "checkout", "-q", "--detach")  # as `dvc exp run` leaves HEAD when killed
        tool._reattach_head()
        assert tool._head_ref() == "refs/heads/main"

        git(tmp_path, "checkout", "-q", "--detach")
        commit(tmp_path, "dvc.lock", "another study, on no branch\n")
        with pytest.raises(tool.AblationError, match="not on refs/heads/main .* check out main"):
            tool._reattach_head()
        assert tool._head_ref() != "refs/heads/main"  # refused: HEAD left where it was


def two_epochs(setting: Setting) -> Setting:
    """The setting with two epochs where it asks for forty: the tool is under test, not the length."""
    return dataclasses.replace(
        setting, overrides={k: 2 if k.endswith(".epochs") else v for k, v in setting.overrides.items()}
    )


@pytest.mark.slow
def test_run_makes_one_experiment_per_setting_and_seed_and_goes_on_from_the_committed_table(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    tool = load_tool()
    monkeypatch.setattr(tool, "SETTINGS", tuple(two_epochs(s) for s in SETTINGS))
    archive = write_archive(tmp_path / "cifar-10-python.tar.gz", per_batch=100, test_size=100)
    one_epoch = {"epochs": 1}
    repo = copy_project(
        tmp_path / "repo",
        {
            "data": {"url": archive.as_uri(), "md5": file_md5(archive), "val_size": 100},
            "train": {"seeds": 2, "lr": 0.01, "log_every": 10, "eval_batch_size": 100},
            "baseline": one_epoch,
            "dropout": one_epoch,
            "staged_dropout": one_epoch,
        },
    )
    monkeypatch.delenv("CIFAR10_URL", raising=False)
    for name, value in environment().items():
        monkeypatch.setenv(name, value)
    monkeypatch.chdir(repo)
    for own in (tool.CSV, tool.ANALYSIS):  # the project's own runs: not this small study's
        (repo / own).unlink(missing_ok=True)
    dvc(repo, "repro")

    # The study's results are not committed: run would lose them, so it changes nothing.
    lock = (repo / "dvc.lock").read_text()
    refusal = "dvc.lock differs from HEAD: commit the study's results first"
    with pytest.raises(tool.AblationError, match=refusal):
        tool.main(["run"])
    assert (repo / "dvc.lock").read_text() == lock
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "the study")

    # Another machine's clone: no DVC cache, no outputs. The study is still whole (each experiment
    # re-makes what it needs), but changed code is another study's.
    git(repo, "clean", "-qfdX")  # every ignored file: DVC's cache and outputs among them
    assert not (repo / ".dvc/cache").exists() and not (repo / "models/dropout.pt").exists()
    model = repo / "src/convlab/model.py"
    code = model.read_text()
    model.write_text(code + "# changed\n")
    with pytest.raises(tool.AblationError, match="not committed whole .*src/convlab/model.py modified"):
        tool.main(["run"])
    model.write_text(code)

    # An experiment the tool started and did not see end (its params are still in the workspace,
    # its outputs gone, as DVC leaves them): run puts HEAD's results back and runs it.
    params = (repo / "params.yaml").read_text()
    (repo / "params.yaml").write_text(params.replace("epochs: 1", "epochs: 2", 1))
    shutil.rmtree(repo / "plots/train_dropout")
    with pytest.raises(tool.AblationError, match="params.yaml differs from HEAD"):
        tool.main(["run"])  # not the tool's own: refused
    branch = run(repo, "git", "symbolic-ref", "HEAD").stdout.strip()
    (repo / tool.RUNNING).parent.mkdir(exist_ok=True)
    (repo / tool.RUNNING).write_text(f"ablation-dropout_40-seed0\n{branch}\n")
    git(repo, "checkout", "-q", "--detach")  # as a killed `dvc exp run` leaves it
    tool.main(["run", "--max", "1"])
    ran = re.findall(r"ablation: ablation-(\S+): dvc exp run .*-S (\S+) (\S+)\n", capsys.readouterr().out)
    study_precision = described_precision(read_at(RUNS, "HEAD", "dropout")[0]["runtime"])
    assert ran == [("dropout_40-seed0", f"train.precision={study_precision}", "evaluate_test@dropout")]
    assert not (repo / tool.RUNNING).exists() and (repo / "params.yaml").read_text() == params
    assert run(repo, "git", "status", "--porcelain", "--untracked-files=no").stdout == ""
    assert tool._study_changes() == []
    assert run(repo, "git", "symbolic-ref", "HEAD").stdout.strip() == branch
    tool.main(["table"])
    first = list(csv.DictReader((repo / tool.CSV).open()))
    assert [(r["setting"], r["seed"]) for r in first] == [
        *((s.name, seed) for s in SETTINGS if not s.overrides for seed in "01"),
        ("dropout_40", "0"),
    ]
    git(repo, "add", str(tool.CSV), str(tool.ANALYSIS))  # table wrote both
    git(repo, "commit", "-qm", "the ablation's first run")  # dvc.lock unchanged: the same study

    # A fresh clone again: the committed table holds dropout_40's seed 0, no experiment does.
    refs = run(repo, "git", "for-each-ref", "--format=%(refname)", "refs/exps").stdout.split()
    assert refs
    for ref in refs:
        git(repo, "update-ref", "-d", ref)
    tool.main(["run"])
    ran = re.findall(r"ablation: ablation-(\S+): dvc exp run", capsys.readouterr().out)
    assert ran == [
        "dropout_40_fc05-seed0", "staged_aug-seed0",
        "dropout_40-seed1", "dropout_40_fc05-seed1", "staged_aug-seed1",
        "baseline_40-seed0", "baseline_40-seed1",
    ]  # fmt: skip
    tool.main(["run"])  # every setting and seed has its run: nothing runs
    assert "dvc exp run" not in capsys.readouterr().out

    tool.main(["table"])
    table = list(csv.DictReader((repo / tool.CSV).open()))
    assert list(table[0]) == list(COLUMNS)
    assert [(r["setting"], r["seed"]) for r in table] == [(s.name, seed) for s in SETTINGS for seed in "01"]
    by_setting = {(r["setting"], r["seed"]): r for r in table}
    assert by_setting[("dropout_40", "0")] == first[-1]  # from the committed table
    head = {r["seed"]: r for r in read_at(RUNS, "HEAD", "dropout")}
    assert [float(by_setting[("dropout", seed)]["best_val_acc"]) for seed in "01"] == [
        head[seed]["best_val_acc"] for seed in (0, 1)
    ]
    assert {k: by_setting[("dropout_40_fc05", "1")][k] for k in ("variant", "epochs", "pool2", "fc")} == {
        "variant": "dropout", "epochs": "2", "pool2": "0.1", "fc": "0.5"
    }  # fmt: skip
    staged_aug = by_setting[("staged_aug", "0")]
    assert (staged_aug["epochs"], staged_aug["crop_padding"], staged_aug["flip"]) == ("1", "4", "True")

    # A committed row that its experiment contradicts is refused, not overwritten.
    edited = (repo / tool.CSV).read_text().replace(",".join(staged_aug.values()), ",".join(
        [*list(staged_aug.values())[:-1], "0.999"]
    ))  # fmt: skip
    (repo / tool.CSV).write_text(edited)
    git(repo, "commit", "-qam", "an edited row")
    with pytest.raises(tool.AblationError, match="ablation-staged_aug-seed0 at .* differs from its row"):
        tool.main(["table"])
    git(repo, "reset", "-q", "--hard", "HEAD~1")

    # A run in other arithmetic than the study's run of its seed is no pair: refused, as is a
    # study whose runs trained in two precisions (no setting could pair with both).
    other = {"fp32": "bf16", "bf16": "fp32"}[study_precision]
    with monkeypatch.context() as patched:
        patched.setattr(tool, "study_precision", lambda variant: other)
        refusal = f"trained in {study_precision}, the study's dropout runs in {other}: not a pair"
        with pytest.raises(tool.AblationError, match=refusal):
            tool.main(["table"])
    runs = repo / RUNS.path("dropout")
    lines = runs.read_text().splitlines(keepends=True)
    runs.write_text("".join([*lines[:-1], lines[-1].replace(f" {study_precision} ", f" {other} ")]))
    git(repo, "commit", "-qam", "a study in two precisions")
    with pytest.raises(tool.AblationError, match="dropout runs trained in bf16 and fp32, not one precision"):
        tool.main(["table"])
    git(repo, "reset", "-q", "--hard", "HEAD~1")

    tool.main(["table"])  # writes the analysis with the table
    analysis = (repo / tool.ANALYSIS).read_text()
    assert all(c.label in analysis for c in COMPARISONS)
    # Shares of a gain exist where there is one: this tiny study may train both variants to the
    # same test accuracy on some CPUs (bf16 on one, fp32 on another).
    gain = sum(
        float(by_setting[("staged_dropout", s)]["test_acc"]) - float(by_setting[("dropout", s)]["test_acc"])
        for s in "01"
    )
    assert ("Shares of staged dropout's gain over uniform dropout" in analysis) == (gain != 0)


def test_run_refuses_a_setting_it_does_not_know() -> None:
    tool = load_tool()
    with pytest.raises(tool.AblationError, match="dropout_80 is not an ablation setting: the settings are"):
        tool._plan([0, 1], ["dropout_80"])
    order = [(setting.name, seed) for setting, seed in tool._plan([0, 1], [])]
    assert order[:3] == [("dropout_40", 0), ("dropout_40_fc05", 0), ("staged_aug", 0)]
    assert order[-2:] == [("baseline_40", 0), ("baseline_40", 1)]  # optional: after every other
