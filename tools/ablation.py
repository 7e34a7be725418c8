"""The epoch-matched ablation (convlab.ablation): run its experiments, table every run, analyse.

    python tools/ablation.py run        # each setting not yet run: dvc exp run -n ablation-<setting>
    python tools/ablation.py table      # report/ablation.csv: one row per setting and seed
    python tools/ablation.py analyze    # report/ablation.md: the paired comparisons, from the CSV

`run` needs the committed study at HEAD (`dvc status` clean, its results committed): each
experiment then re-trains its one variant, with the study's seeds, and nothing else. Experiments
run one at a time in this workspace; before each, the workspace is put back to HEAD's results
(params, lock, metrics, plots and DVC outputs), so no setting starts from another's params. So
`run` refuses to start over results that differ from HEAD's, unless they are its own: an
experiment it started and did not see end (stopped, killed, failed) is named in RUNNING, and
`run` started again puts HEAD's results back and resumes it per seed and epoch.
`dvc exp run` detaches HEAD while it runs and puts the branch back when it ends or is stopped;
killed, it leaves HEAD detached, where a commit would land on no branch. RUNNING also names the
branch, and `run` started again puts HEAD back on it (if the branch is still where HEAD is).
`table` reads the study's runs from HEAD and each setting's from its experiment's commit (plots
are git-tracked, so every experiment commit holds its own).
An experiment belongs to the study of the commit it was run on; a later commit that leaves
dvc.lock as it is (docs, tools, a note) holds the same study, so the experiments of those commits
still count: the ablation outlives any number of such commits. Commit only while it is stopped
(SIGINT to the train stage; `run` resumes it): while it runs HEAD is detached.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from convlab.ablation import COLUMNS, SETTINGS, Setting, markdown
from convlab.atomic import write_text
from convlab.errors import ConvlabError, run_stage
from convlab.params import parse_params
from convlab.stage_files import RUNS, TESTS, read_at

CSV = Path("report/ablation.csv")
ANALYSIS = Path("report/ablation.md")
PREFIX = "ablation-"
HEAD_RESULTS = ["params.yaml", "dvc.lock", "metrics", "plots", "report"]
# The setting whose experiment run started, until it ends, and the branch HEAD was on (or its commit).
RUNNING = Path(".convlab/ablation-running")


class AblationError(ConvlabError):
    """The ablation cannot run or be tabled as asked."""


def _run(*command: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if check and result.returncode != 0:
        last = (result.stderr or result.stdout).strip().splitlines()[-1:] or ["no output"]
        raise AblationError(f"`{' '.join(command)}` failed: {last[0]}")
    return result


def _dvc(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return _run(sys.executable, "-m", "dvc", *args, check=check)


def study_commits() -> int:
    """How many commits, from HEAD back along first parents, hold HEAD's study: since the last
    change to dvc.lock, which names every input and output of every stage."""
    last = _run("git", "log", "--first-parent", "--format=%H", "-1", "HEAD", "--", "dvc.lock").stdout.strip()
    if not last:
        return 1
    return int(_run("git", "rev-list", "--count", "--first-parent", f"{last}..HEAD").stdout) + 1


def experiments() -> dict[str, str]:
    """{experiment name: its commit} of the finished experiments of the commits that hold HEAD's
    study. One DVC lists as running is not done: after a kill, DVC takes it for running while
    its recorded pid is alive, even when that pid is now another process's."""
    shown = json.loads(
        _dvc(
            "exp", "show", "--json", "--rev", "HEAD", "-n", str(study_commits()),
            "--hide-queued", "--hide-failed",
        ).stdout
    )  # fmt: skip
    found = {}
    for row in shown:
        for group in row.get("experiments") or []:
            if (group.get("executor") or {}).get("state", "success") != "success":
                continue
            for rev in group.get("revs", []):
                if rev.get("name"):
                    found[rev["name"]] = rev["rev"]
    return found


def _head_results() -> None:
    """Put HEAD's params and results back in the workspace, DVC's outputs too (what the cache
    lacks, the next experiment makes)."""
    _run("git", "checkout", "HEAD", "--", *HEAD_RESULTS)
    _dvc("checkout", "--quiet", check=False)


def _head_ref() -> str:
    """The branch HEAD is on (refs/heads/...), or its commit where HEAD is detached."""
    branch = _run("git", "symbolic-ref", "-q", "HEAD", check=False).stdout.strip()
    return branch or _run("git", "rev-parse", "HEAD").stdout.strip()


def _reattach_head() -> None:
    """Put HEAD back on the branch RUNNING names, where a killed `dvc exp run` left it detached
    at that branch's commit; refuse if the branch has moved since (the two are not one study)."""
    lines = RUNNING.read_text().splitlines()
    branch = lines[1] if len(lines) > 1 else ""
    if not branch.startswith("refs/heads/") or _head_ref() == branch:
        return
    head = _run("git", "rev-parse", "HEAD").stdout.strip()
    tip = _run("git", "rev-parse", "--verify", "-q", branch, check=False).stdout.strip()
    if tip != head:
        raise AblationError(
            f"HEAD is at {head[:7]}, not on {branch} (at {tip[:7] or 'nothing'}) where the "
            f"stopped experiment of {lines[0]} started: check out {branch.removeprefix('refs/heads/')} "
            "and run again"
        )
    _run("git", "symbolic-ref", "HEAD", branch)


def _check_study() -> None:
    """Refuse before any change: results that differ from HEAD's and are not run's own would be
    lost to _head_results; a HEAD whose study is not whole has nothing to compare against."""
    if RUNNING.exists():
        _reattach_head()
    else:
        changed = _run("git", "status", "--porcelain", "--untracked-files=no", "--", *HEAD_RESULTS).stdout
        if changed.strip():
            raise AblationError(
                f"{changed.splitlines()[0][3:]} differs from HEAD: commit the study's results first "
                "(run puts HEAD's results back before each experiment, and would lose these)"
            )
    _head_results()
    if _dvc("status", "--quiet", check=False).returncode != 0:
        raise AblationError(
            "the study at HEAD is not committed whole (dvc status is not clean): "
            "run dvc repro and commit its results first"
        )


def run(only: list[str]) -> None:
    _check_study()
    done = experiments()
    for setting in SETTINGS:
        if not setting.overrides or (only and setting.name not in only) or PREFIX + setting.name in done:
            continue
        # The workspace holds HEAD's results here (_check_study, or the last setting's end), so
        # this setting starts from the committed params alone.
        overrides = [arg for key, value in setting.overrides.items() for arg in ("-S", f"{key}={value}")]
        print(
            f"ablation: {setting.name}: dvc exp run -n {PREFIX}{setting.name} {' '.join(overrides)}",
            flush=True,
        )
        write_text(RUNNING, f"{setting.name}\n{_head_ref()}\n")
        command = [sys.executable, "-m", "dvc", "exp", "run", "-n", PREFIX + setting.name, *overrides]
        if subprocess.run(command, check=False).returncode != 0:
            raise AblationError(
                f"the experiment of {setting.name} failed; `python tools/ablation.py run` resumes it"
            )
        _head_results()
        RUNNING.unlink()


def _rows(setting: Setting, rev: str) -> list[dict[str, Any]]:
    """The setting's runs at rev: params from its params.yaml, accuracies from its plots."""
    from ruamel.yaml import YAML

    params = parse_params(YAML(typ="safe", pure=True).load(_run("git", "show", f"{rev}:params.yaml").stdout))
    variant = params.variant(setting.variant)
    runs = read_at(RUNS, rev, setting.variant)
    tests = {row["seed"]: row["test_acc"] for row in read_at(TESTS, rev, setting.variant)}
    if sorted(tests) != sorted(row["seed"] for row in runs):
        raise AblationError(f"{setting.name} at {rev[:7]}: the tested seeds are not the trained ones")
    return [
        {
            "setting": setting.name,
            "variant": setting.variant,
            "epochs": variant.epochs,
            "pool1": variant.pool1,
            "pool2": variant.pool2,
            "fc": variant.fc,
            "crop_padding": variant.crop_padding,
            "flip": variant.flip,
            "seed": row["seed"],
            "best_val_acc": row["best_val_acc"],
            "test_acc": tests[row["seed"]],
        }
        for row in runs
    ]


def table() -> None:
    done = experiments()
    head = _run("git", "rev-parse", "HEAD").stdout.strip()
    rows = []
    for setting in SETTINGS:
        rev = head if not setting.overrides else done.get(PREFIX + setting.name)
        if rev is None:
            print(f"ablation: {setting.name} has no experiment yet (python tools/ablation.py run)")
            continue
        rows += _rows(setting, rev)
    if not rows:
        raise AblationError("no runs to table")
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(COLUMNS), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    write_text(CSV, buffer.getvalue())
    print(f"ablation: wrote {CSV}, {len(rows)} runs")


def analyze() -> None:
    try:
        rows = list(csv.DictReader(CSV.open()))
    except FileNotFoundError:
        raise AblationError(f"{CSV} not found: run python tools/ablation.py table first") from None
    for row in rows:
        row["seed"] = int(row["seed"])
        row["best_val_acc"], row["test_acc"] = float(row["best_val_acc"]), float(row["test_acc"])
    text = markdown(rows)
    write_text(ANALYSIS, text)
    print(text, end="")


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("command", choices=["run", "table", "analyze"])
    parser.add_argument("--only", nargs="+", default=[], metavar="SETTING", help="run: only these settings")
    args = parser.parse_args(argv)
    {"run": lambda: run(args.only), "table": table, "analyze": analyze}[args.command]()


if __name__ == "__main__":
    run_stage("ablation", main)
