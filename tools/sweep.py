"""Accuracy against a swept param, as a table and a plot, from `dvc exp show` (dvc.api) and pandas.

    dvc exp run --queue -S 'dropout.fc=0.2,0.3,0.4,0.5' && dvc queue start
    python tools/sweep.py dropout.fc [--by PARAM ...] [--rev REV] [--exp NAME ...]

The rows are the finished experiments of commit REV (default HEAD). Without --exp they are grouped
by everything else that decides a result, every other param and the hash of every .py file a stage
depends on, and the table is the group in which PARAM (and the --by params) take the most values:
a table never mixes runs that differ in anything but what was swept. It says what it held fixed
and which experiments it left out; --exp names the rows instead. A param of one variant's section
shows that variant's accuracies, a shared one (seed, train.lr, data.normalize) every variant's:
each the mean over the experiment's seeds, ± their std where it ran several (read from the runs
its commit holds). Writes sweeps/<param>.md and sweeps/<param>.png and prints the table.
"""

from __future__ import annotations

import argparse
import io
import subprocess
from pathlib import Path

import matplotlib
import pandas as pd

from convlab.errors import ConvlabError, run_main
from convlab.outputs import RUNS
from convlab.params import load_params
from convlab.report import markdown_table

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

OUT = Path("sweeps")
ACCURACIES = {"val": "best_val_acc", "test": "test_acc"}  # metric key -> the runs' column


def experiments(rev: str) -> pd.DataFrame:
    """One row per finished experiment of rev: its name, commit, params, metrics and code hashes."""
    import dvc.api

    frame = pd.DataFrame(dvc.api.exp_show(revs=rev))
    done = frame[(frame["typ"] != "baseline") & frame["Experiment"].notna()]
    return done[done["State"].isna() | (done["State"] == "Success")].reset_index(drop=True)


def choose(frame: pd.DataFrame, swept: list[str], params: list[str]) -> tuple[pd.DataFrame, list[str]]:
    """The largest group of experiments that differ in the swept params alone, and notes."""
    facts = [c for c in params if c not in swept] + [c for c in frame.columns if c.endswith(".py")]
    keys = frame[facts].astype(str).agg("|".join, axis=1)
    values = frame[swept].astype(str).agg("|".join, axis=1)
    scored = {key: (values[keys == key].nunique(), (keys == key).sum()) for key in keys.unique()}
    best = max(scored, key=lambda key: scored[key])
    if scored[best][0] < 2:
        raise ConvlabError(
            f"no two finished experiments differ in {' and '.join(swept)} alone (--exp names rows)"
        )
    chosen, others = frame[keys == best], frame[keys != best]
    varying = [c for c in facts if frame[c].astype(str).nunique() > 1]
    notes = [f"Held fixed: {', '.join(f'{c}={chosen[c].iloc[0]}' for c in varying)}."] if varying else []
    if len(others):
        notes.append(f"Left out, differing in more than the swept params: {', '.join(others['Experiment'])}.")
    return chosen, notes


def seed_std(rev: str, variant: str, kind: str) -> float:
    """The std over the experiment's seeds, from the runs its commit holds (NaN where unread)."""
    shown = subprocess.run(["git", "show", f"{rev}:{RUNS.as_posix()}"], capture_output=True, text=True)
    if shown.returncode != 0:
        return float("nan")
    runs = pd.read_csv(io.StringIO(shown.stdout))
    return float(runs[runs["variant"] == variant][ACCURACIES[kind]].std())


def sweep_table(frame: pd.DataFrame, param: str, by: list[str], variants: list[str]) -> pd.DataFrame:
    rows = []
    for _, exp in frame.iterrows():
        row = {p: exp[p] for p in [param, *by]} | {"experiment": exp["Experiment"]}
        for variant in variants:
            for kind in ACCURACIES:
                row[f"{variant} {kind}"] = exp.get(f"{variant}.{kind}")
                several = exp.get("train.seeds", 1) > 1
                row[f"{variant} {kind} std"] = (
                    seed_std(exp["rev"], variant, kind) if several else float("nan")
                )
        rows.append(row)
    return pd.DataFrame(rows).sort_values([*by, param, "experiment"], ignore_index=True)


def markdown(table: pd.DataFrame, param: str, by: list[str], variants: list[str], notes: list[str]) -> str:
    rows = []
    for _, row in table.iterrows():
        cells = {p: row[p] for p in [param, *by, "experiment"]}
        for variant in variants:
            for kind in ACCURACIES:
                mean, std = row[f"{variant} {kind}"], row[f"{variant} {kind} std"]
                cells[f"{variant} {kind}"] = f"{100 * mean:.1f}%" + (
                    "" if pd.isna(std) else f" ± {100 * std:.1f}"
                )
        rows.append(cells)
    return "\n".join([f"# Sweep of {param}", "", *markdown_table(rows), "", *notes]) + "\n"


def plot(table: pd.DataFrame, param: str, by: list[str], variants: list[str], path: Path) -> None:
    fig, ax = plt.subplots(figsize=(7, 4))
    groups = table.groupby(by) if by else [((), table)]
    for key, group in groups:
        for variant in variants:
            for kind, style in (("val", "o-"), ("test", "s--")):
                where = (f"{b}={k}" for b, k in zip(by, key, strict=False))
                label = " ".join([variant, kind, *where])
                column = f"{variant} {kind}"
                ax.errorbar(
                    group[param], group[column], group[f"{column} std"], fmt=style, capsize=3, label=label
                )
    ax.set_xlabel(param)
    ax.set_ylabel("accuracy (mean over seeds)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("param", help="the swept param, as -S names it: dropout.fc")
    parser.add_argument("--by", nargs="+", default=[], help="other swept params: a line each value")
    parser.add_argument("--rev", default="HEAD", help="the commit whose experiments to table")
    parser.add_argument("--exp", nargs="+", default=[], metavar="NAME", help="these experiments as the rows")
    args = parser.parse_args(argv)
    params = load_params()
    frame = experiments(args.rev)
    dumped = {"data": params.data.model_dump(), "train": params.train.model_dump()}
    dumped |= {name: variant.model_dump() for name, variant in params.variants.items()}
    names = ["seed", *(f"{section}.{key}" for section, keys in dumped.items() for key in keys)]
    param_columns = [name for name in names if name in frame.columns]
    for name in [args.param, *args.by]:
        if name not in param_columns:
            raise ConvlabError(f"{name} is not a param of {args.rev}'s experiments (params.yaml names them)")
    if args.exp:
        chosen, notes = frame[frame["Experiment"].isin(args.exp)], []
        if unknown := sorted(set(args.exp) - set(chosen["Experiment"])):
            raise ConvlabError(f"no finished experiment {unknown[0]} of {args.rev}")
    elif frame.empty:
        raise ConvlabError(
            f"{args.rev} has no finished experiments: dvc exp run --queue -S ..., then dvc queue start"
        )
    else:
        chosen, notes = choose(frame, [args.param, *args.by], param_columns)
    section = args.param.split(".")[0]
    variants = [section] if section in params.variants else list(params.variants)
    table = sweep_table(chosen, args.param, args.by, variants)
    OUT.mkdir(exist_ok=True)
    text = markdown(table, args.param, args.by, variants, notes)
    (OUT / f"{args.param}.md").write_text(text)
    plot(table, args.param, args.by, variants, OUT / f"{args.param}.png")
    print(text, end="")
    print(f"sweep: wrote {OUT / args.param}.md and .png")


if __name__ == "__main__":
    run_main("sweep", main)
