"""The epoch-matched ablation (convlab.ablation): run its experiments, table every run, analyse.

    python tools/ablation.py run        # each setting and seed not yet run, one experiment each:
                                        #   dvc exp run -n ablation-<setting>-seed<N>
    python tools/ablation.py table      # report/ablation.csv: one row per setting and seed, and
                                        #   its analysis (below)
    python tools/ablation.py analyze    # report/ablation.md: the paired comparisons, from the CSV

One experiment per setting and seed, not per setting: an experiment lives only in this
repository's .git and its resume state on this machine, and a machine may be lent for a few hours
only; a seed's run (an hour on a 2-core CPU) lands in report/ablation.csv with `table`, to be
committed, long before a five-seed setting would end. `run` skips a setting and seed that HEAD's
report/ablation.csv or a finished experiment already holds, so the ablation goes on from a fresh
clone; it runs the study's seeds seed by seed (every setting's seed 0, then seed 1, ...), so the
paired comparisons grow together, and optional settings (baseline_40) after all the others.

`run` needs the study committed at HEAD: its results committed, and nothing that decides them
(code, params, commands) changed since; DVC's outputs may be absent (a fresh clone has no cache):
each experiment re-makes its variant's, with the data they need. Each experiment re-trains one
variant for one seed (`-S seed=N -S train.seeds=1`: the same initial weights and order as the
study's run of seed N), in the precision the study's runs trained in (`-S train.precision=...`:
'auto' picks by the machine, bf16 where the CPU has native bf16, and a run in other arithmetic
drifts from the study's run of its seed from the first step), and tests it
(`dvc exp run ... evaluate_test@<variant>`), nothing else.
Experiments run one at a time in this workspace; before each, the workspace is put back to HEAD's
results (params, lock, metrics, plots and DVC outputs), so no setting starts from another's
params. So `run` refuses to start over results that differ from HEAD's, unless they are its own:
an experiment it started and did not see end (stopped, killed, failed) is named in RUNNING, and
`run` started again puts HEAD's results back and resumes it per epoch.
`dvc exp run` detaches HEAD while it runs and puts the branch back when it ends or is stopped;
killed, it leaves HEAD detached, where a commit would land on no branch. RUNNING also names the
branch, and `run` started again puts HEAD back on it (if the branch is still where HEAD is).
`table` reads the study's runs from HEAD and each ablation run from its experiment's commit (plots
are git-tracked, so every experiment commit holds its own), or, where this clone has no such
experiment, from HEAD's report/ablation.csv; a run both hold must read the same in both.
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

from convlab.ablation import COLUMNS, SETTINGS, Setting, described_precision, markdown
from convlab.atomic import write_text
from convlab.errors import ConvlabError, run_stage
from convlab.params import Params, parse_params
from convlab.stage_files import RUNS, TESTS, read_at

CSV = Path("report/ablation.csv")
ANALYSIS = Path("report/ablation.md")
PREFIX = "ablation-"
HEAD_RESULTS = ["params.yaml", "dvc.lock", "metrics", "plots", "report"]
# The experiment run started, until it ends, and the branch HEAD was on (or its commit).
RUNNING = Path(".convlab/ablation-running")
# Status a stage may show while the study at HEAD is whole: outputs this clone lacks (no DVC
# cache) or holds from an experiment; code, params or a command changed is another study.
OUTPUT_STATES = {"not in cache", "deleted", "modified", "new"}


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
    lacks, the next experiment makes). Their index entries go first: `dvc exp run` can leave an
    entry whose size, inode and second match a file it rewrote after it, which git then takes
    for HEAD's and `git checkout` skips."""
    _run("git", "rm", "-r", "-q", "--cached", "--ignore-unmatch", "--", *HEAD_RESULTS)
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


def _study_changes() -> list[str]:
    """What `dvc status` shows beyond outputs: a changed dependency that no stage makes (code,
    data given by hand), changed params, a changed command. Empty when HEAD's study is whole."""
    status = json.loads(_dvc("status", "--json").stdout or "{}")
    entries = [entry for changes in status.values() for entry in changes if isinstance(entry, dict)]
    outputs = {path for entry in entries for path in entry.get("changed outs", {})}
    found = []
    for stage, changes in status.items():
        for entry in changes:
            if not isinstance(entry, dict):
                found.append(f"{stage}: {entry}")
                continue
            for kind, paths in entry.items():
                for path, state in paths.items() if isinstance(paths, dict) else [(paths, "")]:
                    if kind == "changed outs" and state in OUTPUT_STATES:
                        continue
                    if kind == "changed deps" and state in OUTPUT_STATES and path in outputs:
                        continue
                    found.append(f"{stage}: {kind} {path} {state}".rstrip())
    return found


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
    changes = _study_changes()
    if changes:
        raise AblationError(
            f"the study at HEAD is not committed whole ({changes[0]}): "
            "run dvc repro and commit its results first"
        )


def _params_at(rev: str) -> Params:
    from ruamel.yaml import YAML

    return parse_params(YAML(typ="safe", pure=True).load(_run("git", "show", f"{rev}:params.yaml").stdout))


def experiment_name(setting: str, seed: int) -> str:
    return f"{PREFIX}{setting}-seed{seed}"


def _committed() -> dict[tuple[str, int], dict[str, str]]:
    """The runs HEAD's report/ablation.csv holds, by setting and seed (none before the first)."""
    shown = _run("git", "show", f"HEAD:{CSV.as_posix()}", check=False)
    if shown.returncode != 0:
        return {}
    rows = list(csv.DictReader(io.StringIO(shown.stdout)))
    if rows and list(rows[0]) != list(COLUMNS):
        raise AblationError(f"HEAD:{CSV} has columns {', '.join(rows[0])}, not {', '.join(COLUMNS)}")
    try:
        return {(row["setting"], int(row["seed"])): row for row in rows}
    except (TypeError, ValueError):
        raise AblationError(f"HEAD:{CSV} is damaged: a seed that is not a whole number") from None


def _plan(seeds: list[int], only: list[str]) -> list[tuple[Setting, int]]:
    """Every ablation run in the order run makes them: seed by seed, optional settings last."""
    unknown = sorted(set(only) - {s.name for s in SETTINGS if s.overrides})
    if unknown:
        names = ", ".join(s.name for s in SETTINGS if s.overrides)
        raise AblationError(f"{unknown[0]} is not an ablation setting: the settings are {names}")
    return [
        (setting, seed)
        for optional in (False, True)
        for seed in seeds
        for setting in SETTINGS
        if setting.overrides and setting.optional == optional and (not only or setting.name in only)
    ]


def study_precision(variant: str) -> str:
    """The precision the study's runs of `variant` trained in, as HEAD's runs.csv records it."""
    found = set()
    for row in read_at(RUNS, "HEAD", variant):
        try:
            found.add(described_precision(row["runtime"]))
        except ValueError as error:
            raise AblationError(f"HEAD's {variant} run of seed {row['seed']}: {error}") from None
    if len(found) != 1:
        raise AblationError(
            f"the study's {variant} runs trained in {' and '.join(sorted(found)) or 'nothing'}, "
            "not one precision: no ablation run pairs with all of them; "
            "re-run the study on one kind of machine"
        )
    return found.pop()


def run(only: list[str], limit: int | None) -> None:
    _check_study()
    done, committed = experiments(), _committed()
    todo = [
        (setting, seed)
        for setting, seed in _plan(_params_at("HEAD").run_seeds, only)
        if experiment_name(setting.name, seed) not in done and (setting.name, seed) not in committed
    ]
    print(f"ablation: {len(todo)} runs to make", flush=True)
    for setting, seed in todo[:limit]:
        # The workspace holds HEAD's results here (_check_study, or the last run's end), so this
        # run starts from the committed params alone.
        name = experiment_name(setting.name, seed)
        precision = study_precision(setting.variant)
        overrides = {**setting.overrides, "seed": seed, "train.seeds": 1, "train.precision": precision}
        arguments = [arg for key, value in overrides.items() for arg in ("-S", f"{key}={value}")]
        target = f"evaluate_test@{setting.variant}"
        print(f"ablation: {name}: dvc exp run -n {name} {' '.join(arguments)} {target}", flush=True)
        write_text(RUNNING, f"{name}\n{_head_ref()}\n")
        command = [sys.executable, "-m", "dvc", "exp", "run", "-n", name, *arguments, target]
        if subprocess.run(command, check=False).returncode != 0:
            raise AblationError(f"the experiment {name} failed; `python tools/ablation.py run` resumes it")
        _head_results()
        RUNNING.unlink()


def _rows(setting: Setting, rev: str) -> list[dict[str, Any]]:
    """The setting's runs at rev: params from its params.yaml, accuracies from its plots."""
    variant = _params_at(rev).variant(setting.variant)
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
            "precision": described_precision(row["runtime"]),
        }
        for row in runs
    ]


def _as_written(row: dict[str, Any]) -> dict[str, str]:
    return {key: str(row[key]) for key in COLUMNS}


def table() -> None:
    done, committed = experiments(), _committed()
    head = _run("git", "rev-parse", "HEAD").stdout.strip()
    seeds = _params_at("HEAD").run_seeds
    rows = [_as_written(row) for setting in SETTINGS if not setting.overrides for row in _rows(setting, head)]
    missing = []
    for setting in SETTINGS:
        for seed in seeds if setting.overrides else []:
            name = experiment_name(setting.name, seed)
            if name not in done:
                if (setting.name, seed) in committed:
                    rows.append(committed[(setting.name, seed)])
                else:
                    missing.append(name)
                continue
            ran = _rows(setting, done[name])
            if [row["seed"] for row in ran] != [seed]:
                seeds_ran = ", ".join(str(row["seed"]) for row in ran)
                raise AblationError(f"{name} at {done[name][:7]} ran seeds {seeds_ran}, not {seed} alone")
            study = study_precision(setting.variant)
            if ran[0]["precision"] != study:
                raise AblationError(
                    f"{name} at {done[name][:7]} trained in {ran[0]['precision']}, the study's "
                    f"{setting.variant} runs in {study}: not a pair; `dvc exp remove {name}` and run it again"
                )
            made = [_as_written(row) for row in ran]
            if committed.get((setting.name, seed), made[0]) != made[0]:
                raise AblationError(
                    f"{name} at {done[name][:7]} differs from its row in HEAD:{CSV}: "
                    "the row was edited, or the experiment is another study's"
                )
            rows.append(made[0])
    if missing:
        print(f"ablation: {len(missing)} runs not made yet, first {missing[0]} (tools/ablation.py run)")
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(COLUMNS), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    write_text(CSV, buffer.getvalue())
    # The analysis is a function of the table alone: written with it, it cannot be committed stale.
    write_text(ANALYSIS, analysis())
    print(f"ablation: wrote {CSV}, {len(rows)} runs, and its analysis, {ANALYSIS}")


def analysis() -> str:
    """The analysis of report/ablation.csv, as report/ablation.md holds it."""
    try:
        rows = list(csv.DictReader(CSV.open()))
    except FileNotFoundError:
        raise AblationError(f"{CSV} not found: run python tools/ablation.py table first") from None
    for row in rows:
        row["seed"] = int(row["seed"])
        row["best_val_acc"], row["test_acc"] = float(row["best_val_acc"]), float(row["test_acc"])
    return markdown(rows)


def analyze() -> None:
    text = analysis()
    write_text(ANALYSIS, text)
    print(text, end="")


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("command", choices=["run", "table", "analyze"])
    parser.add_argument("--only", nargs="+", default=[], metavar="SETTING", help="run: only these settings")
    parser.add_argument("--max", type=int, default=None, metavar="N", help="run: at most N experiments")
    args = parser.parse_args(argv)
    if args.max is not None and args.max < 1:
        parser.error(f"--max must be 1 or more, got {args.max}")
    {"run": lambda: run(args.only, args.max), "table": table, "analyze": analyze}[args.command]()


if __name__ == "__main__":
    run_stage("ablation", main)
