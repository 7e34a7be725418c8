"""Review a change: the params it changed, whether each changed variant beats seed noise, its plots.

    python tools/review.py BASE            # the workspace (a pull request's head) against commit BASE
    python tools/review.py --experiments   # every finished experiment of HEAD against HEAD

From committed files only (params.yaml, dvc.lock, plots/runs.csv and plots/epochs.csv), read
through git: nothing is trained. A variant's runs are compared by seed (paired t) when both sides
ran the same seeds on the same data, by Welch's t otherwise, and not judged with one run a side;
the verdict is the report's: larger than seed noise when the 95% interval of the difference
excludes zero. BASE writes review/review.md
(short enough for a pull-request comment) and review/*.png: validation accuracy by epoch and every
seed's accuracies, BASE against head, for the variants that changed. --experiments prints one row
per experiment, every variant's validation and test accuracy in 120 columns, where `dvc exp show`
has room for four of the six and no verdict.
"""

from __future__ import annotations

import argparse
import io
import subprocess
from dataclasses import dataclass
from pathlib import Path
from statistics import fmean
from typing import Any

import matplotlib
import pandas as pd
import yaml

from convlab.errors import ConvlabError, run_main
from convlab.outputs import EPOCHS, RUNS
from convlab.report import markdown_table, verdict
from convlab.stats import Difference, paired_difference, welch_difference

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

OUT = Path("review")
METRICS = {"best_val_acc": "best val", "test_acc": "test"}


def read(rev: str | None, path: Path | str) -> str | None:
    """A file as commit `rev` holds it (None: the workspace), or None where it is absent."""
    if rev is None:
        return Path(path).read_text() if Path(path).exists() else None
    shown = subprocess.run(["git", "show", f"{rev}:{Path(path).as_posix()}"], capture_output=True, text=True)
    return shown.stdout if shown.returncode == 0 else None


def flat(values: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in values.items():
        out |= flat(value, f"{prefix}{key}.") if isinstance(value, dict) else {f"{prefix}{key}": value}
    return out


@dataclass
class Side:
    """One revision's study: its params, the hash of its prepared data, each variant's runs."""

    name: str
    params: dict[str, Any]
    data: str | None
    runs: dict[str, pd.DataFrame]  # variant -> seed, best_val_acc, test_acc
    epochs: dict[str, pd.DataFrame]  # variant -> the first run's epochs.csv

    @classmethod
    def at(cls, rev: str | None, name: str) -> Side:
        params = yaml.safe_load(read(rev, "params.yaml") or "{}") or {}
        lock = yaml.safe_load(read(rev, "dvc.lock") or "{}") or {}
        split = lock.get("stages", {}).get("split", {}).get("outs", [{}])[0]
        runs_csv, epochs_csv = read(rev, RUNS), read(rev, EPOCHS)
        runs = epochs = {}
        if runs_csv is not None and epochs_csv is not None:
            every = pd.read_csv(io.StringIO(runs_csv))[["variant", "seed", *METRICS]]
            runs = {
                v: frame.drop(columns="variant").reset_index(drop=True)
                for v, frame in every.groupby("variant")
            }
            epochs = dict(tuple(pd.read_csv(io.StringIO(epochs_csv)).groupby("variant")))
        return cls(name, flat(params), split.get("md5"), runs, epochs)


def compare(base: pd.DataFrame, head: pd.DataFrame, metric: str, paired: bool) -> tuple[Difference, str]:
    if len(base) < 2 or len(head) < 2:
        return Difference(fmean(head[metric]) - fmean(base[metric]), None), "not judged (one run a side)"
    if paired:
        return paired_difference(head[metric].tolist(), base[metric].tolist()), "paired by seed"
    return welch_difference(head[metric].tolist(), base[metric].tolist()), "Welch"


def _points(d: Difference) -> str:
    interval = "" if d.ci95 is None else f" [{100 * d.ci95[0]:+.1f}, {100 * d.ci95[1]:+.1f}]"
    return f"{100 * d.diff:+.1f}{interval}"


def changed_variants(base: Side, head: Side) -> list[str]:
    return [v for v in head.runs if v not in base.runs or not head.runs[v].equals(base.runs[v])]


def review_markdown(base: Side, head: Side, changed: list[str]) -> list[str]:
    params = [
        {"param": key, base.name: base.params.get(key, "-"), head.name: head.params.get(key, "-")}
        for key in sorted(set(base.params) | set(head.params))
        if base.params.get(key) != head.params.get(key)
    ]
    lines = ["## Review of the study", "", *(markdown_table(params) if params else ["No param changed."]), ""]
    if not base.runs:
        return [*lines, f"{base.name} holds no results to compare with (no plots/ committed there)."]
    if base.data != head.data:
        data = f"data/prepared {str(base.data)[:8]} and {str(head.data)[:8]}"
        return [*lines, f"{base.name} and {head.name} trained on different data ({data}): not compared."]
    rows = []
    for variant in changed:
        if variant not in base.runs:
            lines += [f"{variant} is new: no results at {base.name} to compare with.", ""]
            continue
        b, h = base.runs[variant], head.runs[variant]
        paired = b["seed"].tolist() == h["seed"].tolist()
        for metric, label in METRICS.items():
            d, how = compare(b, h, metric, paired)
            rows.append({"variant": variant, "metric": label, base.name: f"{100 * fmean(b[metric]):.1f}%",
                         head.name: f"{100 * fmean(h[metric]):.1f}%", "difference [95% CI]": _points(d),
                         "verdict": verdict(d.beyond_noise) if d.ci95 else how, "test": how})  # fmt: skip
    lines += markdown_table(rows) if rows else ["No variant's results changed."]
    same = [v for v in head.runs if v not in changed]
    if same:
        lines += ["", f"Unchanged: {', '.join(same)}."]
    if any(v in base.runs for v in changed):
        lines += [
            "",
            "Plots: [validation accuracy by epoch](val_acc.png), [every seed](seeds.png) (review/).",
        ]
    return lines + ["", f"Seeds: {', '.join(str(s) for s in head.runs[next(iter(head.runs))]['seed'])}."]


def plot(base: Side, head: Side, variants: list[str]) -> None:
    variants = [v for v in variants if v in base.runs]
    if not variants:
        return
    fig, axes = plt.subplots(1, len(variants), figsize=(4.5 * len(variants), 3.4), squeeze=False)
    for ax, variant in zip(axes[0], variants, strict=True):
        for side, style in ((base, "--"), (head, "-")):
            frame = side.epochs[variant]
            ax.plot(frame["epoch"], 100 * frame["val_acc"], style, label=side.name)
        ax.set(title=f"{variant}: validation accuracy (first seed)", xlabel="epoch", ylabel="%")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        ax.legend()
    fig.savefig(OUT / "val_acc.png", dpi=80, bbox_inches="tight")
    fig, axes = plt.subplots(1, len(variants), figsize=(4.5 * len(variants), 3.4), squeeze=False)
    for ax, variant in zip(axes[0], variants, strict=True):
        for x, metric in enumerate(METRICS):
            pairs = base.runs[variant].merge(head.runs[variant], on="seed")  # the same seed on both sides
            for _, pair in pairs.iterrows():
                ax.plot(
                    [x - 0.1, x + 0.1],
                    [100 * pair[f"{metric}_x"], 100 * pair[f"{metric}_y"]],
                    color="0.7",
                    lw=1,
                )
            for offset, side, color in ((-0.1, base, "C0"), (0.1, head, "C1")):
                values = 100 * side.runs[variant][metric]
                ax.scatter(
                    [x + offset] * len(values), values, color=color, label=side.name if x == 0 else None
                )
        ax.set_xticks([0, 1], list(METRICS.values()))
        ax.set(title=f"{variant}: every seed (lines pair a seed)", ylabel="accuracy %")
        ax.grid(alpha=0.3)
        ax.legend()
    fig.savefig(OUT / "seeds.png", dpi=80, bbox_inches="tight")
    plt.close("all")


def review(base_rev: str) -> str:
    if subprocess.run(
        ["git", "rev-parse", "--verify", "-q", f"{base_rev}^{{commit}}"], capture_output=True
    ).returncode:
        raise ConvlabError(f"{base_rev!r} is not a commit of this repository")
    base, head = Side.at(base_rev, base_rev), Side.at(None, "head")
    changed = changed_variants(base, head)
    OUT.mkdir(exist_ok=True)
    for old in OUT.glob("*.png"):
        old.unlink()
    plot(base, head, changed)
    text = "\n".join(review_markdown(base, head, changed)) + "\n"
    (OUT / "review.md").write_text(text)
    return text


def experiments_table(rev: str) -> str:
    """Every finished experiment of rev against rev: the params it changed, every variant's mean
    validation / test accuracy, marked * where the change is larger than seed noise."""
    import dvc.api

    base = Side.at(rev, rev)
    shown = pd.DataFrame(dvc.api.exp_show(revs=rev))
    shown = shown[(shown["typ"] != "baseline") & shown["Experiment"].notna()]
    rows = [{"experiment": rev, "changed": "", **{v: _pair(base.runs[v]) for v in base.runs}}]
    for _, exp in shown.iterrows():
        side = Side.at(exp["rev"], exp["Experiment"])
        changed = [f"{k}={v}" for k, v in side.params.items() if base.params.get(k) != v]
        row = {"experiment": exp["Experiment"], "changed": " ".join(changed)}
        for variant, runs in side.runs.items():
            if variant in base.runs and runs.equals(base.runs[variant]):
                row[variant] = "="
                continue
            paired = variant in base.runs and base.runs[variant]["seed"].tolist() == runs["seed"].tolist()
            marks = [
                "*"
                if variant in base.runs and compare(base.runs[variant], runs, m, paired)[0].beyond_noise
                else ""
                for m in METRICS
            ]
            row[variant] = _pair(runs, marks)
        rows.append(row)
    frame = pd.DataFrame(rows).fillna("-")
    note = "val / test, mean over seeds, %; * larger than seed noise against the first row; = unchanged"
    return frame.to_string(index=False) + "\n" + note + "\n"


def _pair(runs: pd.DataFrame, marks: list[str] | None = None) -> str:
    marks = marks or ["", ""]
    values = [f"{100 * fmean(runs[m]):.1f}{mark}" for m, mark in zip(METRICS, marks, strict=True)]
    return " / ".join(values)


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("base", nargs="?", help="the commit to review the workspace against (main, a sha)")
    parser.add_argument("--experiments", action="store_true", help="table HEAD's experiments against HEAD")
    args = parser.parse_args(argv)
    if args.experiments == (args.base is not None):
        parser.error("give BASE, or --experiments")
    print(experiments_table("HEAD") if args.experiments else review(args.base), end="")


if __name__ == "__main__":
    run_main("review", main)
