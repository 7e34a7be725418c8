"""The study's report as Markdown: the results, which differences are larger than noise, and links
to the figures (convlab.figures). One path for any number of runs per variant: one run is a
mean of one, with no spread, and a difference between single runs is not judged against the
seeds' noise (it cannot be measured from one run)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from convlab.cifar import CLASSES
from convlab.evaluate import per_class_accuracy
from convlab.markdown import markdown_table
from convlab.stats import ACCURACY_BOUNDS, binomial_standard_error, mcnemar, summarize, welch_difference

FIGURES = "figures"  # the report's PNGs, in this folder beside report.md


@dataclass(frozen=True)
class VariantResult:
    name: str
    dropout: tuple[float, float, float]
    augmentation: str  # "none" or what the variant's training batches went through
    epochs: list[dict[str, float]]  # rows of plots/train_<variant>/epochs.csv (first run)
    runs: list[dict[str, Any]]  # rows of plots/train_<variant>/runs.csv: one per seed, first first
    test_runs: list[float]  # test accuracy of each run's best checkpoint, in the order of runs
    confusion: np.ndarray  # counts[actual, predicted], first run's model
    correct: np.ndarray  # per test image, in test order: did the first run's model get it right
    reference: str  # the reproduced study's figure (convlab.reference)

    @property
    def seeds(self) -> list[int]:
        return [int(run["seed"]) for run in self.runs]

    @property
    def val_runs(self) -> list[float]:
        """Best validation accuracy of each run."""
        return [float(run["best_val_acc"]) for run in self.runs]

    @property
    def train_seconds(self) -> float:
        """Seconds in training steps, all runs together."""
        return math.fsum(float(run["train_seconds"]) for run in self.runs)

    @property
    def ran_on(self) -> str:
        """Device, precision and layout, the hardware by name and the threads, of the first run."""
        first = self.runs[0]
        return f"{first['runtime']}, {first['hardware']}, {first['threads']} threads"


def _pct(value: float) -> str:
    return f"{100 * value:.1f}%"


def _points(value: float) -> str:
    return f"{100 * value:.1f}"


CLIPPED = "†"
CLIPPED_NOTE = (
    f"{CLIPPED} The t interval reached past what the quantity can be (an accuracy outside "
    "0-100%, a difference outside ±100 points) and is cut at that bound: with this few runs and "
    "this much spread it says little more than that."
)


def _spread(values: list[float]) -> str:
    """'74.1% ± 0.6 [73.4, 74.8]': the runs' mean, standard deviation and 95% CI, in points
    (the interval within 0-100%, marked where it had to be cut); one run: its value."""
    summary = summarize(values, ACCURACY_BOUNDS)
    if summary.ci95 is None:
        return _pct(summary.mean)
    low, high = summary.ci95
    mark = CLIPPED if summary.clipped else ""
    return f"{_pct(summary.mean)} ± {_points(summary.std or 0.0)} [{_points(low)}, {_points(high)}]{mark}"


def table(rows: list[dict[str, Any]] | pd.DataFrame) -> list[str]:
    """The lines of a Markdown table of rows (dicts with the same keys, the column names, or a
    frame), so a row reads (and greps) as `| baseline | 0/0/0 | ...`."""
    return markdown_table(pd.DataFrame(rows)).splitlines()


def _pairs(results: list[VariantResult]) -> list[tuple[VariantResult, VariantResult]]:
    return [(a, b) for i, a in enumerate(results) for b in results[i + 1 :]]


def _verdict(beyond_noise: bool) -> str:
    return "**larger than noise**" if beyond_noise else "within noise"


def _results(results: list[VariantResult]) -> list[str]:
    return table(
        [
            {
                "variant": r.name,
                "dropout (pool1/pool2/fc)": "/".join(f"{d:g}" for d in r.dropout),
                "augmentation": r.augmentation,
                "epochs": len(r.epochs),
                "seeds": len(r.seeds),
                "best val: mean ± std [95% CI]": _spread(r.val_runs),
                "best epoch (mean)": f"{round(np.mean([run['best_epoch'] for run in r.runs]), 1):g}",
                "test: mean ± std [95% CI]": _spread(r.test_runs),
                "train s (all runs)": f"{r.train_seconds:.0f}",
                "run on": r.ran_on,
                "study's reference": r.reference,
            }
            for r in results
        ]
    )


def _differences(results: list[VariantResult], val_size: int) -> list[str]:
    """Every pair of variants on validation and test: Welch's interval of the difference of the
    means, and whether it excludes zero; not judged where a side has one run."""
    runs = len(results[0].seeds)
    plural = "s" if runs > 1 else ""
    typical_se = binomial_standard_error(results[0].val_runs[0], val_size)
    lines = [
        "## Which differences are larger than noise",
        "",
        f"{runs} run{plural} per variant (seed{plural} {', '.join(map(str, results[0].seeds))}). "
        "A difference of two recipes is larger than noise when the 95% confidence interval of the "
        "difference of their means (Welch's t interval: unequal variances, Welch-Satterthwaite "
        "degrees of freedom) excludes zero: the run-to-run spread does not explain it. That takes "
        "two or more runs per variant (`dvc exp run -S train.seeds=5`); one run cannot measure it. "
        f"Beside it, the evaluation's own noise: one {val_size:,}-image validation accuracy near "
        f"{_pct(results[0].val_runs[0])} moves about {_points(typical_se)} points from the choice of "
        "images alone.",
        "",
    ]
    clipped = any(summarize(v, ACCURACY_BOUNDS).clipped for r in results for v in (r.val_runs, r.test_runs))
    rows = []
    for a, b in _pairs(results):
        row: dict[str, Any] = {"comparison": f"{a.name} vs {b.name}"}
        for what, first, second in (("best val", a.val_runs, b.val_runs), ("test", a.test_runs, b.test_runs)):
            d = welch_difference(first, second)
            if d.ci95 is None:
                row[f"{what} difference [95% CI]"] = f"{100 * d.diff:+.1f} points"
                row[f"{what} verdict"] = "not judged (one run each)"
                continue
            clipped |= d.clipped
            row[f"{what} difference [95% CI]"] = (
                f"{100 * d.diff:+.1f} points [{100 * d.ci95[0]:+.1f}, {100 * d.ci95[1]:+.1f}]"
                f"{CLIPPED if d.clipped else ''}"
            )
            row[f"{what} verdict"] = _verdict(d.beyond_noise)
        rows.append(row)
    return lines + table(rows) + (["", CLIPPED_NOTE] if clipped else [])


def _models_compared(results: list[VariantResult], test_size: int) -> list[str]:
    """McNemar's exact test of the first seed's models on the same test images."""
    seed = results[0].seeds[0]
    lines = [
        f"The test set is the same {test_size:,} images for every variant, so seed {seed}'s models "
        "can also be compared image by image (McNemar's exact test on the images exactly one of "
        "the two gets right). That tests the trained models, not the recipes: how far a recipe's "
        "accuracy moves between training runs with other seeds is the noise above.",
        "",
    ]
    rows = []
    for first, second in _pairs(results):
        test = mcnemar(first.correct, second.correct)
        rows.append(
            {
                "comparison": f"{first.name} vs {second.name}",
                "test accuracy difference": f"{100 * (first.test_runs[0] - second.test_runs[0]):+.1f} points",
                "images only the first gets right": test.only_a,
                "only the second": test.only_b,
                "p-value": f"{test.p_value:.2g}",
                "verdict": f"{_verdict(test.p_value < 0.05)} (5% level)",
            }
        )
    return lines + table(rows)


def markdown(results: list[VariantResult], val_size: int, test_size: int, normalize: str) -> str:
    """report.md. Every variant must have the same number of runs (the report compares like with
    like; the report stage checks it)."""
    seed = results[0].seeds[0]
    lines = [
        "# convlab report",
        "",
        f"CIFAR-10, {val_size:,} validation and {test_size:,} test images; inputs: {normalize}.",
        "",
        *_results(results),
        "",
        f"![every seed's accuracy]({FIGURES}/seeds.png)",
        "",
        *_differences(results, val_size),
        "",
        *_models_compared(results, test_size),
        "",
        "## Data",
        "",
        f"![first training image]({FIGURES}/first_image.png) "
        f"![first 100 training images]({FIGURES}/first_100.png)",
        "",
        "## Validation accuracy of every variant",
        "",
        f"![validation accuracy]({FIGURES}/val_acc.png)",
        "",
        f"## Training and validation curves (seed {seed})",
        "",
    ]
    for r in results:
        lines += [f"![{r.name} curves]({FIGURES}/curves_{r.name}.png)", ""]
    lines += [
        f"## Test confusion matrices of seed {seed}'s models (rows: actual, columns: predicted)",
        "",
        f"![confusion matrices]({FIGURES}/confusion.png)",
        "",
        f"## Per-class test accuracy of seed {seed}'s models",
        "",
    ]
    per_class = pd.DataFrame({r.name: per_class_accuracy(r.confusion) for r in results}, index=list(CLASSES))
    lines += table(per_class.map(_pct).rename_axis("class").reset_index())
    return "\n".join(lines) + "\n"
