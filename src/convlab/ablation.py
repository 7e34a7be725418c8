"""Why staged dropout wins: the epoch-matched ablation's settings, and its paired analysis.

staged_dropout differs from dropout in three ways at once: 40 epochs against 20, the fc rate (0.5
against 0.1) and the conv profile (pool2 0.2 against 0.1). The ablation changes one at a time, each
setting trained with the study's seeds, and compares settings seed by seed: a seed fixes the
initial weights and the order of the images, so a paired difference leaves that noise out. Test
accuracy of the checkpoint chosen on validation is the headline (the test set chose nothing); the
best validation accuracy, a maximum over epochs that can only grow with more of them, stands
beside it. Holm's correction covers every comparison made.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

from convlab.markdown import markdown_table
from convlab.stats import holm, paired_difference


@dataclass(frozen=True)
class Setting:
    name: str
    variant: str  # the study's variant it re-trains
    overrides: Mapping[str, Any]  # -S values over the committed params.yaml: none for the study itself
    what: str
    optional: bool = False  # run after every other setting's seeds (asked for "if the time allows")


SETTINGS = (
    Setting("baseline", "baseline", {}, "the study's baseline, 20 epochs"),
    Setting("dropout", "dropout", {}, "the study's uniform dropout 0.1/0.1/0.1, 20 epochs"),
    Setting("staged_dropout", "staged_dropout", {}, "the study's staged dropout 0.1/0.2/0.5, 40 epochs"),
    Setting("dropout_40", "dropout", {"dropout.epochs": 40}, "uniform dropout 0.1/0.1/0.1 at 40 epochs"),
    Setting(
        "dropout_40_fc05",
        "dropout",
        {"dropout.epochs": 40, "dropout.fc": 0.5},
        "0.1/0.1/0.5 at 40 epochs: staged dropout but for the conv profile",
    ),
    Setting(
        "staged_aug",
        "staged_dropout",
        {"staged_dropout.crop_padding": 4, "staged_dropout.flip": True},
        "the study's staged dropout, 40 epochs, with crop 4 + flip",
    ),
    Setting("baseline_40", "baseline", {"baseline.epochs": 40}, "the baseline at 40 epochs", optional=True),
)
BY_NAME = {setting.name: setting for setting in SETTINGS}


def described_precision(description: str) -> str:
    """The precision a run's record names: the second word of the Runtime.describe() text in its
    runs.csv row ('cpu fp32 channels-last' trained in fp32). ValueError where it names none.
    Here, not beside describe() in runtime.py: that file decides the study's numbers (every train
    stage depends on it), so a change there would leave the committed study behind its code."""
    words = description.split()
    if len(words) < 2 or words[1] not in ("fp32", "bf16"):
        raise ValueError(f"{description!r} names no precision (a device, then fp32 or bf16)")
    return words[1]


@dataclass(frozen=True)
class Comparison:
    label: str
    a: str  # setting names: the difference is a - b, seed by seed
    b: str


TOTAL = Comparison("staged dropout's gain over uniform dropout", "staged_dropout", "dropout")
# Three steps from dropout to staged_dropout: their differences add up to TOTAL exactly, seed by seed.
STEPS = (
    Comparison("epochs alone (20 -> 40)", "dropout_40", "dropout"),
    Comparison("the fc rate alone (0.1 -> 0.5)", "dropout_40_fc05", "dropout_40"),
    Comparison("the conv profile alone (pool2 0.1 -> 0.2)", "staged_dropout", "dropout_40_fc05"),
)
OTHERS = (
    Comparison("augmentation at equal epochs (crop 4 + flip)", "staged_aug", "staged_dropout"),
    Comparison("length without dropout (20 -> 40)", "baseline_40", "baseline"),
)
COMPARISONS = (TOTAL, *STEPS, *OTHERS)
COLUMNS = (
    "setting", "variant", "epochs", "pool1", "pool2", "fc", "crop_padding", "flip", "seed",
    "best_val_acc", "test_acc",
)  # fmt: skip
METRICS = (("test_acc", "test"), ("best_val_acc", "best val"))


def by_seed(rows: Sequence[Mapping[str, Any]], setting: str, metric: str) -> dict[int, float]:
    return {int(row["seed"]): float(row[metric]) for row in rows if row["setting"] == setting}


@dataclass(frozen=True)
class Result:
    comparison: Comparison
    metric: str
    seeds: list[int]
    diff: float  # mean of a - b over the seeds both have
    ci95: tuple[float, float]
    p_value: float
    p_holm: float = math.nan


def compare(rows: Sequence[Mapping[str, Any]]) -> list[Result]:
    """Every comparison whose two settings share two or more seeds, on test and on validation,
    with Holm's adjustment over all of them."""
    results = []
    for comparison in COMPARISONS:
        for metric, _ in METRICS:
            a, b = by_seed(rows, comparison.a, metric), by_seed(rows, comparison.b, metric)
            seeds = sorted(set(a) & set(b))
            if len(seeds) < 2:
                continue
            d = paired_difference([a[s] for s in seeds], [b[s] for s in seeds])
            results.append(Result(comparison, metric, seeds, d.diff, d.ci95, d.p_value))
    adjusted = holm([r.p_value for r in results])
    return [Result(**{**r.__dict__, "p_holm": p}) for r, p in zip(results, adjusted, strict=True)]


def _points(value: float) -> str:
    return f"{100 * value:+.1f}"


def _interval(diff: float, ci95: tuple[float, float]) -> str:
    return f"{_points(diff)} [{_points(ci95[0])}, {_points(ci95[1])}]"


def markdown(rows: Sequence[Mapping[str, Any]]) -> str:
    """The ablation's analysis: the settings and their seeds, every paired comparison, and which
    share of staged dropout's gain each of the three steps is."""
    frame = pd.DataFrame(rows, columns=list(COLUMNS))
    settings = []
    for setting in SETTINGS:
        runs = frame[frame["setting"] == setting.name]
        if runs.empty:
            continue
        settings.append(
            {
                "setting": setting.name,
                "what": setting.what,
                "seeds": " ".join(str(s) for s in runs["seed"]),
                "test (mean)": f"{100 * runs['test_acc'].mean():.1f}%",
                "best val (mean)": f"{100 * runs['best_val_acc'].mean():.1f}%",
            }
        )
    results = compare(rows)
    table = [
        {
            "comparison": r.comparison.label,
            "a - b": f"{r.comparison.a} - {r.comparison.b}",
            "metric": dict(METRICS)[r.metric],
            "seeds": len(r.seeds),
            "mean paired difference [95% CI]": _interval(r.diff, r.ci95),
            "p": f"{r.p_value:.2g}",
            "p (Holm)": f"{r.p_holm:.2g}",
        }
        for r in results
    ]
    lines = [
        "# The epoch-matched ablation",
        "",
        "Each setting trained once per seed; a seed fixes the initial weights and the order of the "
        "images, so settings are compared seed by seed (paired t: the mean difference, its 95% "
        "interval and p-value), and Holm's correction is applied across every comparison below. "
        "Test accuracy of the checkpoint chosen on validation is the headline; best validation "
        "accuracy is a maximum over epochs and grows with their number.",
        "",
        *markdown_table(pd.DataFrame(settings)).splitlines(),
        "",
        *(
            markdown_table(pd.DataFrame(table)).splitlines()
            if table
            else ["No comparison has two seeds yet."]
        ),
    ]
    shares = _shares(results)
    if shares:
        lines += [
            "",
            "Shares of staged dropout's gain over uniform dropout (test, mean paired difference):",
            "",
        ]
        lines += [f"- {label}: {share}" for label, share in shares]
    return "\n".join(lines) + "\n"


def _shares(results: Sequence[Result]) -> list[tuple[str, str]]:
    """Each step's mean difference as a share of the total, on test, where the steps and the total
    were measured on the same seeds (then they add up to it exactly)."""
    test = {r.comparison: r for r in results if r.metric == "test_acc"}
    if TOTAL not in test or not all(step in test for step in STEPS):
        return []
    total = test[TOTAL]
    if any(test[step].seeds != total.seeds for step in STEPS) or total.diff == 0:
        return []
    return [
        (step.label, f"{_points(test[step].diff)} points, {100 * test[step].diff / total.diff:.0f}%")
        for step in STEPS
    ]
