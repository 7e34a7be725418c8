"""The study's report as Markdown: each variant's runs, which differences are larger than seed noise,
the models compared image by image, and the figures (convlab.figures). One path for any number of
runs: one run is a mean of one, with no spread, and a difference with it is not judged. Each
variant is described by what its runs' records say they were trained with, not by params.yaml.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from convlab.cifar import CLASSES
from convlab.params import augmentation
from convlab.stats import binomial_standard_error, mcnemar, summarize, welch_difference

# What the study being reproduced reported, and for which settings (epochs, pool1, pool2, fc, with
# SGD lr 1e-3, momentum 0.9, batch 32 and no augmentation): shown beside a variant trained so.
REFERENCE = {
    (20, 0.0, 0.0, 0.0): "val close to 70%",
    (40, 0.1, 0.2, 0.5): "val 77%, test 75%",
}
CLIPPED = "†"


def confusion_matrix(labels: np.ndarray, predictions: np.ndarray, classes: int = 10) -> np.ndarray:
    """counts[actual, predicted]."""
    counts = np.zeros((classes, classes), dtype=np.int64)
    np.add.at(counts, (labels.astype(np.int64), predictions.astype(np.int64)), 1)
    return counts


def per_class_accuracy(confusion: np.ndarray) -> np.ndarray:
    totals = confusion.sum(axis=1)
    return np.divide(np.diag(confusion), totals, out=np.zeros(len(totals)), where=totals > 0)


@dataclass(frozen=True)
class VariantResult:
    name: str
    runs: pd.DataFrame  # runs.csv: one row per seed, with what it was trained with
    epochs: pd.DataFrame  # epochs.csv: the first run's validation curve
    test_acc: list[float]  # each run's test accuracy, in the order of runs
    confusion: np.ndarray  # counts[actual, predicted] of the first run's model
    correct: np.ndarray  # per test image: did the first run's model get it right

    @property
    def val_acc(self) -> list[float]:
        return self.runs["best_val_acc"].tolist()

    @property
    def trained_with(self) -> dict[str, Any]:
        return self.runs.iloc[0].to_dict()

    def reference(self) -> str:
        r = self.trained_with
        study_sgd = (r["lr"], r["momentum"], r["batch_size"]) == (1e-3, 0.9, 32)
        plain = not r["crop_padding"] and not r["flip"]
        figure = REFERENCE.get((r["epochs"], r["pool1"], r["pool2"], r["fc"]))
        return figure if figure and study_sgd and plain else "none (not the study's settings)"


def markdown_table(rows: list[dict[str, Any]]) -> list[str]:
    """Rows (dicts with the same keys) as Markdown lines, cells as given and unpadded."""
    head = list(rows[0])
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    return lines + ["| " + " | ".join(str(row[key]) for key in head) + " |" for row in rows]


def _pct(value: float) -> str:
    return f"{100 * value:.1f}%"


def spread(values: list[float]) -> str:
    """'74.1% ± 0.6 [73.4, 74.8]': mean, std and 95% CI in points (marked where cut at 0-100%)."""
    summary = summarize(values)
    if summary.ci95 is None:
        return _pct(summary.mean)
    low, high = (100 * bound for bound in summary.ci95)
    mark = CLIPPED if summary.clipped else ""
    return f"{_pct(summary.mean)} ± {100 * (summary.std or 0):.1f} [{low:.1f}, {high:.1f}]{mark}"


def _results(results: list[VariantResult]) -> list[str]:
    rows = []
    for r in results:
        w = r.trained_with
        first = r.runs.iloc[0]
        diverged = int((r.runs["status"] != "finished").sum())
        rows.append(
            {
                "variant": r.name,
                "dropout (pool1/pool2/fc)": f"{w['pool1']:g}/{w['pool2']:g}/{w['fc']:g}",
                "augmentation": augmentation(w["crop_padding"], w["flip"]),
                "epochs": w["epochs"],
                "seeds": len(r.runs) if not diverged else f"{len(r.runs)} ({diverged} diverged)",
                "best val: mean ± std [95% CI]": spread(r.val_acc),
                "best epoch (mean)": f"{r.runs['best_epoch'].mean():.1f}",
                "test: mean ± std [95% CI]": spread(r.test_acc),
                "train s (all runs)": f"{r.runs['train_seconds'].sum():.0f}",
                "run on": f"{first['runtime']}, {first['hardware']}, {first['threads']} threads",
                "study's reference": r.reference(),
            }
        )
    return markdown_table(rows)


def _pairs(results: list[VariantResult]) -> list[tuple[VariantResult, VariantResult]]:
    return [(a, b) for i, a in enumerate(results) for b in results[i + 1 :]]


def verdict(beyond_noise: bool) -> str:
    return "**larger than noise**" if beyond_noise else "within noise"


def _differences(results: list[VariantResult], val_size: int) -> list[str]:
    seeds = ", ".join(str(s) for s in results[0].runs["seed"])
    typical = binomial_standard_error(results[0].val_acc[0], val_size)
    lines = [
        "## Which differences are larger than noise",
        "",
        f"Runs per variant: seeds {seeds}. A difference of two recipes is larger than noise when the "
        "95% interval of the difference of their means (Welch's t: unequal variances) excludes zero. "
        "That takes two or more runs per variant (`dvc exp run -S train.seeds=5`). Beside it, the "
        f"evaluation's own noise: one {val_size:,}-image validation accuracy near "
        f"{_pct(results[0].val_acc[0])} moves about {100 * typical:.1f} points from the choice of images.",
        "",
    ]
    rows, clipped = [], False
    for a, b in _pairs(results):
        row: dict[str, Any] = {"comparison": f"{a.name} - {b.name}"}
        for what, first, second in (("best val", a.val_acc, b.val_acc), ("test", a.test_acc, b.test_acc)):
            d = welch_difference(first, second)
            if d.ci95 is None:
                row[f"{what} [95% CI]"], row[f"{what} verdict"] = (
                    f"{100 * d.diff:+.1f}",
                    "not judged (one run)",
                )
                continue
            clipped |= d.clipped
            low, high = (100 * bound for bound in d.ci95)
            row[f"{what} [95% CI]"] = f"{100 * d.diff:+.1f} [{low:+.1f}, {high:+.1f}]{CLIPPED * d.clipped}"
            row[f"{what} verdict"] = verdict(d.beyond_noise)
        rows.append(row)
    clipped |= any(summarize(v).clipped for r in results for v in (r.val_acc, r.test_acc))
    note = f"{CLIPPED} The t interval reached past 0-100% (or ±100 points) and is cut there: it says little."
    return lines + markdown_table(rows) + (["", note] if clipped else [])


def _models_compared(results: list[VariantResult], test_size: int) -> list[str]:
    seed = results[0].runs["seed"].iloc[0]
    lines = [
        f"The {test_size:,} test images are the same for every variant, so seed {seed}'s models are also "
        "compared image by image (McNemar's exact test on the images exactly one of the two gets right). "
        "That tests these trained models, not the recipes: the seeds' noise above is the recipes' test.",
        "",
    ]
    rows = []
    for a, b in _pairs(results):
        only_a, only_b, p = mcnemar(a.correct, b.correct)
        rows.append(
            {
                "comparison": f"{a.name} - {b.name}",
                "test accuracy": f"{100 * (a.test_acc[0] - b.test_acc[0]):+.1f} points",
                "only the first right": only_a,
                "only the second": only_b,
                "p": f"{p:.2g}",
                "verdict (5% level)": verdict(p < 0.05),
            }
        )
    return lines + markdown_table(rows)


def markdown(results: list[VariantResult], sizes: dict[str, int], normalize: str) -> str:
    """report.md; its figures are report/figures/<name>.png (convlab.figures.write_figures)."""
    seed = results[0].runs["seed"].iloc[0]
    lines = [
        "# convlab report",
        "",
        f"CIFAR-10, {sizes['train']:,} training, {sizes['val']:,} validation and {sizes['test']:,} test "
        f"images; inputs: {normalize}.",
        "",
        *_results(results),
        "",
        "![every seed's accuracy](figures/seeds.png)",
        "",
        *_differences(results, sizes["val"]),
        "",
        *_models_compared(results, sizes["test"]),
        "",
        "## Data",
        "",
        "![first training image](figures/first_image.png) ![first 100 images](figures/first_100.png)",
        "",
        "## Validation accuracy of every variant",
        "",
        "![validation accuracy](figures/val_acc.png)",
        "",
        f"## Training and validation curves (seed {seed})",
        "",
        "![training and validation curves](figures/curves.png)",
        "",
        f"## Test confusion matrices of seed {seed}'s models (rows: actual, columns: predicted)",
        "",
        "![confusion matrices](figures/confusion.png)",
        "",
        f"## Per-class test accuracy of seed {seed}'s models",
        "",
    ]
    per_class = [
        {"class": name, **{r.name: _pct(per_class_accuracy(r.confusion)[i]) for r in results}}
        for i, name in enumerate(CLASSES)
    ]
    return "\n".join(lines + markdown_table(per_class)) + "\n"
