"""The epoch-matched ablation (report/ablation.yaml): run its experiments, table them, analyse them.

    python tools/ablation.py run [--only SETTING ...] [--max N]
    python tools/ablation.py table      # report/ablation.csv (+ its analysis) from the experiments
    python tools/ablation.py analyze    # report/ablation.md from report/ablation.csv

`run` makes each setting and seed that neither report/ablation.csv nor an experiment holds, seed by
seed, each as one DVC experiment, `ablation-<setting>-seed<N>`: `dvc exp run --temp` re-trains and
tests the setting's variant for that seed alone (`-S seed=N -S train.seeds=1` and the setting's
values), in a temporary copy, so the workspace and HEAD are never touched; a killed run resumes per
epoch when `run` is started again. Named experiments, read back by `table`, rather than a second
pipeline with a matrix of settings and seeds: a run takes 30-70 minutes on a 2-core CPU and lands as
its row of the CSV, committed, long before a matrix stage's lock could be true of every run; the
rows committed so far were made that way and stay.

Each row carries its precision and the study commit it pairs with: the commit of the study's results
its experiment ran beside. A row pairs only if that study's run of its variant and seed reads the
same as HEAD's, its precision is the study's, and it was trained with its setting's params:
anything else (another study, a synthetic run, bf16 beside fp32) is refused. `table` never drops a
row: a row the CSV and an experiment both hold must read the same in both.
"""

from __future__ import annotations

import argparse
import io
import math
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from convlab.errors import ConvlabError, run_main
from convlab.outputs import RUNS, test_results, train_results, write_text
from convlab.params import load_params
from convlab.report import markdown_table
from convlab.stats import Difference, holm, paired_difference, seeds_for_power, sign_flip_p

CSV = Path("report/ablation.csv")
ANALYSIS = Path("report/ablation.md")
MOST_SEEDS = 100  # the power column says "> MOST_SEEDS" beyond it
DEFINITION = Path("report/ablation.yaml")
PREFIX = "ablation-"
COLUMNS = {
    "setting": str, "variant": str, "epochs": int, "pool1": float, "pool2": float, "fc": float,
    "crop_padding": int, "flip": bool, "seed": int, "best_val_acc": float, "test_acc": float,
    "precision": str, "normalize": str, "study": str,
}  # fmt: skip
PARAMS = ("epochs", "pool1", "pool2", "fc", "crop_padding", "flip")  # a variant's, in each run's record
METRICS = {"test_acc": "test", "best_val_acc": "best val"}


class AblationError(ConvlabError):
    """The ablation cannot run, or a row cannot be tabled, as asked."""


def _git(*args: str) -> str:
    done = subprocess.run(["git", *args], capture_output=True, text=True)
    if done.returncode != 0:
        raise AblationError(f"git {' '.join(args)} failed: {done.stderr.strip()[:200]}")
    return done.stdout


def _parse(kind: type, text: str) -> Any:
    """A cell as CSV holds what Python writes, and nothing else (float() alone takes '7_9e-1')."""
    if kind is bool and text in ("True", "False"):
        return text == "True"
    if kind is int and re.fullmatch(r"-?[0-9]+", text):
        return int(text)
    if kind is float and re.fullmatch(r"-?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][-+]?[0-9]+)?", text):
        if math.isfinite(value := float(text)):
            return value
    if kind is str and re.fullmatch(r"[A-Za-z0-9_.-]+", text):
        return text
    raise ValueError(f"{text[:40]!r} is not {kind.__name__}")


def _in_range(row: dict[str, Any]) -> str | None:
    if not all(0 <= row[m] <= 1 for m in METRICS):
        return "an accuracy outside [0, 1]"
    if not all(0 <= row[r] < 1 for r in ("pool1", "pool2", "fc")) or row["epochs"] < 1 or row["seed"] < 0:
        return "a dropout rate, epochs or seed out of range"
    if row["normalize"] not in ("standardize", "none"):
        return "a normalize other than standardize or none"
    return None if row["precision"] in ("fp32", "bf16") else "a precision other than fp32 or bf16"


def read_table(text: str, where: str | Path = CSV) -> list[dict[str, Any]]:
    """The ablation's rows, read strictly: every column, each value of its kind and in range."""
    frame = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False)
    if list(frame.columns) != list(COLUMNS):
        raise AblationError(f"{where} has columns {', '.join(frame.columns)}; expected {', '.join(COLUMNS)}")
    rows = []
    for line, raw in enumerate(frame.to_dict("records"), start=2):
        try:
            row = {column: _parse(kind, raw[column]) for column, kind in COLUMNS.items()}
        except ValueError as err:
            column = next(c for c, k in COLUMNS.items() if not _parses(k, raw[c]))
            raise AblationError(f"{where} line {line}, {column}: {err}") from None
        if (problem := _in_range(row)) is not None:
            raise AblationError(f"{where} line {line}: {problem}")
        rows.append(row)
    keys = [(row["setting"], row["seed"]) for row in rows]
    if len(set(keys)) != len(keys):
        raise AblationError(f"{where} holds a setting and seed twice")
    return rows


def _parses(kind: type, text: str) -> bool:
    try:
        _parse(kind, text)
    except ValueError:
        return False
    return True


def definition() -> dict[str, Any]:
    return yaml.safe_load(DEFINITION.read_text())


def comparisons() -> list[dict[str, str]]:
    spec = definition()
    return [spec["total"], *spec["steps"], *spec["others"]]


def study_commit(rev: str = "HEAD") -> str:
    """The commit of the study's results as `rev` holds them: the last to change dvc.lock."""
    return _git("log", "-1", "--format=%h", rev, "--", "dvc.lock").strip()


def _records(runs: pd.DataFrame, rev: str) -> dict[int, dict[str, Any]]:
    """seed -> accuracies, precision, params and the inputs' normalization, of one variant's runs."""
    normalize = yaml.safe_load(_git("show", f"{rev}:params.yaml"))["data"]["normalize"]
    return {
        int(run["seed"]): {
            "best_val_acc": float(run["best_val_acc"]),
            "test_acc": float(run["test_acc"]),
            "precision": run["runtime"].split()[1],  # "<device> <precision> <layout>"
            "normalize": normalize,
            **{key: run[key] for key in PARAMS},
        }
        for run in runs.to_dict("records")
    }


def study_runs(rev: str, variant: str) -> dict[int, dict[str, Any]]:
    """The study's runs of `variant` at commit `rev`, from the report stage's table in git."""
    runs = pd.read_csv(io.StringIO(_git("show", f"{rev}:{RUNS.as_posix()}")))
    return _records(runs[runs["variant"] == variant], rev)


def experiment_runs(name: str, sha: str, variant: str) -> dict[int, dict[str, Any]]:
    """An experiment's runs of `variant`. It ran the variant's evaluate stage, not the report, so
    its commit holds the train and evaluate stages' tables in DVC's cache, not the report's."""
    import dvc.api
    from dvc.exceptions import DvcException
    from dvc_data.index import DataIndexError

    def table(path: Path) -> pd.DataFrame:
        try:
            with dvc.api.open(path.as_posix(), rev=sha) as file:
                return pd.read_csv(file)
        except (DvcException, DataIndexError) as err:  # e.g. a cache emptied by `dvc gc`
            first = (str(err).strip().splitlines() or [type(err).__name__])[0]  # DVC's hints span lines
            raise AblationError(
                f"experiment {name}: {path} cannot be read at its commit {sha[:7]} ({first}); "
                f"`dvc exp pull <remote> {name}` brings it, `dvc exp remove {name}` drops the experiment"
            ) from None

    tests = table(test_results(variant) / "tests.csv").drop(columns="variant")
    return _records(table(train_results(variant) / "runs.csv").merge(tests, on="seed"), sha)


class Study:
    """HEAD's study, and what a row must be to pair with it."""

    def __init__(self) -> None:
        self.commit = study_commit()
        self.params = load_params()
        self.runs = {variant: study_runs(self.commit, variant) for variant in self.params.variants}
        self.settings = definition()["settings"]
        self._at: dict[tuple[str, str], dict[int, dict[str, Any]]] = {}

    def rows(self) -> list[dict[str, Any]]:
        return [
            {
                "setting": variant,
                "variant": variant,
                **self.expected(variant),
                "seed": seed,
                "best_val_acc": run["best_val_acc"],
                "test_acc": run["test_acc"],
                "precision": run["precision"],
                "study": self.commit,
            }  # fmt: skip
            for variant, runs in self.runs.items()
            for seed, run in runs.items()
        ]

    def expected(self, setting: str) -> dict[str, Any]:
        """The params a setting's runs train with: its variant's and the data's, with its values."""
        spec = self.settings.get(setting, {"variant": setting, "set": {}})
        params = {
            **self.params.variant(spec["variant"]).model_dump(),
            "normalize": self.params.data.normalize,
        }
        params.update({key.rpartition(".")[2]: value for key, value in spec["set"].items()})
        return {key: params[key] for key in (*PARAMS, "normalize")}

    def check(self, row: dict[str, Any]) -> None:
        """Refuse a row that does not pair with this study (see the module's notes)."""
        name = f"{row['setting']} seed {row['seed']}"
        if row["setting"] not in self.settings and row["setting"] not in self.runs:
            raise AblationError(f"{name}: no such setting in {DEFINITION} and no such variant")
        if row["variant"] != self.settings.get(row["setting"], {"variant": row["setting"]})["variant"]:
            raise AblationError(f"{name}: trains {row['variant']}, not the setting's variant")
        here = self.runs[row["variant"]].get(row["seed"])
        if here is None:
            raise AblationError(f"{name}: the study has no run of seed {row['seed']}")
        if (differs := [k for k, v in self.expected(row["setting"]).items() if row[k] != v]) != []:
            raise AblationError(f"{name}: trained with another {differs[0]} than the setting's; not a pair")
        if row["precision"] != here["precision"]:
            raise AblationError(f"{name}: trained in {row['precision']}, the study in {here['precision']}")
        key = (row["study"], row["variant"])
        if key not in self._at:
            self._at[key] = study_runs(row["study"], row["variant"])
        then = self._at[key].get(row["seed"], {})
        if any(then.get(m) != here[m] for m in METRICS):
            raise AblationError(
                f"{name}: the study it ran beside ({row['study']}) is not HEAD's study ({self.commit}); "
                "its run of this seed reads otherwise"
            )


def experiments() -> dict[str, tuple[str, str]]:
    """{name: (baseline commit, experiment commit)} of every ablation experiment in this clone."""
    from dvc.repo import Repo

    with Repo() as repo:
        listed = repo.experiments.ls(all_commits=True)
    return {
        name: (base, sha) for base, exps in listed.items() for name, sha in exps if name.startswith(PREFIX)
    }


def experiment_row(name: str, base: str, sha: str, study: Study) -> dict[str, Any]:
    match = re.fullmatch(rf"{PREFIX}(\w+)-seed([0-9]+)", name)
    if match is None or match[1] not in study.settings:
        raise AblationError(f"experiment {name} is not named {PREFIX}<setting>-seed<N> of a setting")
    setting, seed = match[1], int(match[2])
    variant = study.settings[setting]["variant"]
    runs = experiment_runs(name, sha, variant)
    if list(runs) != [seed]:
        raise AblationError(f"experiment {name} ran seeds {list(runs)}, not {seed} alone")
    run = runs[seed]
    measured = {key: run[key] for key in (*PARAMS, "best_val_acc", "test_acc", "precision", "normalize")}
    return {"setting": setting, "variant": variant, "seed": seed, **measured, "study": study_commit(base)}


def _write_csv(rows: list[dict[str, Any]]) -> None:
    order = {name: i for i, name in enumerate([*load_params().variants, *definition()["settings"]])}
    rows = sorted(rows, key=lambda r: (order.get(r["setting"], len(order)), r["seed"]))
    buffer = io.StringIO()
    pd.DataFrame(rows, columns=list(COLUMNS)).to_csv(buffer, index=False, lineterminator="\n")
    write_text(CSV, buffer.getvalue())


def table() -> None:
    study = Study()
    rows = {(r["setting"], r["seed"]): r for r in (read_table(CSV.read_text()) if CSV.exists() else [])}
    made = study.rows()
    for name, (base, sha) in sorted(experiments().items()):
        made.append(experiment_row(name, base, sha, study))
    for row in made:
        key = (row["setting"], row["seed"])
        if key in rows and {k: rows[key][k] for k in METRICS} != {k: row[k] for k in METRICS}:
            raise AblationError(f"{key[0]} seed {key[1]}: the CSV and the run read otherwise; not tabled")
        rows.setdefault(key, row)
    for row in rows.values():
        study.check(row)
    _write_csv(list(rows.values()))
    write_text(ANALYSIS, analysis(list(rows.values())))
    print(f"ablation: wrote {CSV} ({len(rows)} runs) and {ANALYSIS}")


def run(only: list[str], limit: int | None) -> None:
    study = Study()
    if unknown := sorted(set(only) - set(study.settings)):
        raise AblationError(f"{unknown[0]} is not a setting of {DEFINITION}: {', '.join(study.settings)}")
    if _git("status", "--porcelain", "--untracked-files=no").strip():
        raise AblationError(
            "the workspace differs from HEAD: commit first, so every run pairs with HEAD's study"
        )
    have = {(r["setting"], r["seed"]) for r in (read_table(CSV.read_text()) if CSV.exists() else [])}
    done = experiments()
    todo = [
        (setting, seed)
        for seed in study.params.run_seeds
        for setting in study.settings
        if (not only or setting in only)
        and (setting, seed) not in have
        and f"{PREFIX}{setting}-seed{seed}" not in done
    ]
    print(f"ablation: {len(todo)} runs to make", flush=True)
    for setting, seed in todo[:limit]:
        spec = study.settings[setting]
        precision = study.runs[spec["variant"]][seed]["precision"]
        values = {"seed": seed, "train.seeds": 1, "train.precision": precision, **spec["set"]}
        name = f"{PREFIX}{setting}-seed{seed}"
        command = [sys.executable, "-m", "dvc", "exp", "run", "--temp", "-n", name]
        command += [arg for key, value in values.items() for arg in ("-S", f"{key}={value}")]
        command.append(f"evaluate_test@{spec['variant']}")
        print(f"ablation: {' '.join(command[2:])}", flush=True)
        if subprocess.run(command).returncode != 0:
            raise AblationError(f"{name} failed; the same command resumes it")


@dataclass(frozen=True)
class Paired:
    """One comparison on one metric, over the seeds both settings ran."""

    comparison: dict[str, str]  # label, a, b as report/ablation.yaml names them
    metric: str
    seeds: list[int]
    difference: Difference  # a - b: mean, t interval, t p
    sign_flip_p: float
    signs: str  # how many seeds a is higher, equal, lower
    spread: float  # standard deviation of the seed-by-seed differences


def analysis(rows: list[dict[str, Any]]) -> str:
    """report/ablation.md: the settings, every paired comparison (t, exact sign-flip, Holm)."""
    frame = pd.DataFrame(rows)
    spec = definition()
    what = {name: setting["what"] for name, setting in spec["settings"].items()}
    settings = [
        {
            "setting": name,
            "what": what.get(name, "the study's variant"),
            "seeds": " ".join(str(s) for s in runs["seed"]),
            "test (mean)": f"{100 * runs['test_acc'].mean():.1f}%",
            "best val (mean)": f"{100 * runs['best_val_acc'].mean():.1f}%",
        }  # fmt: skip
        for name, runs in frame.groupby("setting", sort=False)
    ]
    results = []
    for comparison in comparisons():
        for metric, label in METRICS.items():
            a, b = (frame[frame["setting"] == comparison[s]].set_index("seed")[metric] for s in "ab")
            seeds = sorted(set(a.index) & set(b.index))
            if len(seeds) >= 2:
                d = paired_difference(a[seeds].tolist(), b[seeds].tolist())
                flip = sign_flip_p(a[seeds].tolist(), b[seeds].tolist())
                signs = [int((a[seeds] > b[seeds]).sum()), int((a[seeds] == b[seeds]).sum())]
                above = f"{signs[0]} higher, {signs[1]} equal, {len(seeds) - sum(signs)} lower"
                spread = float((a[seeds] - b[seeds]).std(ddof=1))
                results.append(Paired(comparison, label, seeds, d, flip, above, spread))
    adjusted = holm([r.difference.p_value for r in results])
    strictest = 0.05 / max(len(results), 1)  # Holm's first step
    counts = sorted({len(r.seeds) for r in results}, reverse=True)
    floors = ", ".join(f"2/{2**n} = {2 / 2**n:.3g} at {n} seeds" for n in counts)
    lines = [
        "# The epoch-matched ablation",
        "",
        f"Settings and comparisons: `{DEFINITION}`; every run: `{CSV}`; made by `python tools/ablation.py "
        "analyze`. Each setting is trained once per seed, and a seed fixes the initial weights and the order "
        "of the images, so settings are compared seed by seed: the mean paired difference, its 95% t "
        "interval and the paired t test's p; beside it the exact sign-flip p (all 2^n sign patterns of the "
        f"n differences; no normality assumed: with n seeds it cannot go below 2/2^n, {floors}); Holm's "
        "adjustment of the t p over every comparison below; and how many seeds a paired t test needs to find "
        "the measured difference 8 times in 10, if the differences spread as measured, at p < 0.05 and at "
        f"Holm's strictest step (0.05 / {len(results)}). Test accuracy of the checkpoint chosen on "
        "validation is the headline; best validation accuracy is a maximum over epochs and grows with "
        "their number.",
        "",
        *markdown_table(settings),
        "",
    ]
    rows = [
        {
            "comparison": r.comparison["label"],
            "a - b": f"{r.comparison['a']} - {r.comparison['b']}",
            "metric": r.metric,
            "seeds": len(r.seeds),
            "mean paired difference [95% CI]": _points(r.difference.diff, r.difference.ci95),
            "a against b, seed by seed": r.signs,
            "p (t)": f"{r.difference.p_value:.2g}",
            "p (sign-flip)": f"{r.sign_flip_p:.2g}",
            "p (Holm)": f"{p:.2g}",
            "seeds for 80% power": " / ".join(
                _seeds(seeds_for_power(r.difference.diff, r.spread, alpha, most=MOST_SEEDS))
                for alpha in (0.05, strictest)
            ),
        }  # fmt: skip
        for r, p in zip(results, adjusted, strict=True)
    ]
    lines += markdown_table(rows) if rows else ["No comparison has two seeds yet."]
    return "\n".join(lines + _shares(spec, results)) + "\n"


def _seeds(n: int | None) -> str:
    return f"> {MOST_SEEDS}" if n is None else str(n)


def _points(diff: float, ci95: tuple[float, float] | None) -> str:
    if ci95 is None:
        return f"{100 * diff:+.1f}"
    return f"{100 * diff:+.1f} [{100 * ci95[0]:+.1f}, {100 * ci95[1]:+.1f}]"


def _shares(spec: dict[str, Any], results: list[Paired]) -> list[str]:
    """Each step's share of the total on test, where all were measured on the same seeds."""
    test = {
        (r.comparison["a"], r.comparison["b"]): (r.seeds, r.difference) for r in results if r.metric == "test"
    }
    steps = [(s["a"], s["b"]) for s in spec["steps"]]
    total = test.get((spec["total"]["a"], spec["total"]["b"]))
    if total is None or any(test.get(s, (None,))[0] != total[0] for s in steps) or total[1].diff == 0:
        return []
    lines = [
        "",
        f"Shares of {spec['total']['label']} on test (mean paired difference; the steps in this order):",
        "",
    ]
    for step in spec["steps"]:
        diff = test[(step["a"], step["b"])][1].diff
        lines.append(f"- {step['label']}: {100 * diff:+.1f} points, {100 * diff / total[1].diff:.0f}%")
    return lines


def analyze() -> None:
    if not CSV.exists():
        raise AblationError(f"{CSV} not found: run python tools/ablation.py table")
    rows = read_table(CSV.read_text())
    study = Study()
    for row in rows:
        study.check(row)
    text = analysis(rows)
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
    {"run": lambda: run(args.only, args.max), "table": table, "analyze": analyze}[args.command]()


if __name__ == "__main__":
    run_main("ablation", main)
