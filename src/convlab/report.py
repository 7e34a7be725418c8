"""The study's report: a Markdown page with a results table and PNG figures."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only: no display on servers or in CI

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from convlab.cifar import CLASSES  # noqa: E402
from convlab.evaluate import per_class_accuracy  # noqa: E402
from convlab.markdown import markdown_table  # noqa: E402
from convlab.params import TrainParams, VariantParams  # noqa: E402
from convlab.stats import (  # noqa: E402
    ACCURACY_BOUNDS,
    Difference,
    binomial_standard_error,
    mcnemar,
    summarize,
    welch_difference,
)

FIGURES = "figures"  # the report's PNGs, in this folder beside report.md

# What the study being reproduced reported (validation / test accuracy), and the settings it
# reported them for: (epochs, pool1, pool2, fc). The figure is shown only for a variant trained
# that way, without augmentation, with the study's SGD (lr 1e-3, momentum 0.9, batch 32).
REFERENCE = {
    "baseline": ((20, 0.0, 0.0, 0.0), "val close to 70%"),
    "dropout": ((20, 0.1, 0.1, 0.1), "not reported"),
    "staged_dropout": ((40, 0.1, 0.2, 0.5), "val 77%, test 75%"),
}
STUDY_SGD = {"lr": 1e-3, "momentum": 0.9, "batch_size": 32}
NOT_THE_STUDYS = "none (not the study's settings)"


def reference_for(name: str, variant: VariantParams, train: TrainParams) -> str:
    """The reproduced study's figure for this variant, or a note that these settings are not the
    study's (so no figure of the study's applies)."""
    if name not in REFERENCE:
        return NOT_THE_STUDYS
    settings, figure = REFERENCE[name]
    sgd = {key: getattr(train, key) for key in STUDY_SGD}
    ours = (variant.epochs, variant.pool1, variant.pool2, variant.fc)
    same = ours == settings and not variant.augments and sgd == STUDY_SGD
    return figure if same else NOT_THE_STUDYS


@dataclass(frozen=True)
class VariantResult:
    name: str
    dropout: tuple[float, float, float]
    augmentation: str  # "none" or what the variant's training batches went through
    epochs: list[dict[str, float]]  # rows of plots/train_<variant>/epochs.csv (first seed)
    runs: list[dict[str, Any]]  # rows of plots/train_<variant>/runs.csv: one per seed, first first
    test_runs: list[float]  # test accuracy of each run's best checkpoint, in the order of runs
    confusion: np.ndarray  # counts[actual, predicted], first seed's model
    correct: np.ndarray  # per test image, in test order: did the first seed's model get it right
    reference: str = NOT_THE_STUDYS  # the reproduced study's figure (reference_for)

    def __post_init__(self) -> None:
        if not len(self.runs) == len(self.test_runs) > 0:
            raise ValueError(
                f"{self.name}: {len(self.runs)} training runs but {len(self.test_runs)} test results: "
                "re-run the train and evaluate_test stages"
            )

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
        """Device, precision and layout, and the hardware by name, of the first run."""
        first = self.runs[0]
        return f"{first['runtime']}, {first['hardware']}"


def _save(fig: plt.Figure, path: Path) -> None:
    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)


def plot_first_image(image: np.ndarray, label: int, path: Path) -> None:
    fig, ax = plt.subplots(figsize=(3, 3))
    ax.imshow(image.transpose(1, 2, 0), interpolation="nearest")
    ax.set_title(f"first training image: {CLASSES[label]}")
    ax.axis("off")
    _save(fig, path)


def plot_grid(images: np.ndarray, labels: np.ndarray, path: Path, columns: int = 10) -> None:
    rows = math.ceil(len(images) / columns)
    fig, axes = plt.subplots(rows, columns, figsize=(columns * 1.1, rows * 1.25), layout="constrained")
    for ax in np.ravel(axes):
        ax.axis("off")
    for ax, image, label in zip(np.ravel(axes), images, labels, strict=False):
        ax.imshow(image.transpose(1, 2, 0), interpolation="nearest")
        ax.set_title(CLASSES[label], fontsize=7)
    fig.suptitle(f"the first {len(images)} training images")
    _save(fig, path)


def plot_curves(result: VariantResult, path: Path) -> None:
    epochs = [row["epoch"] for row in result.epochs]
    fig, (loss_ax, acc_ax) = plt.subplots(1, 2, figsize=(10, 3.6))
    for ax, key, title in ((loss_ax, "loss", "loss"), (acc_ax, "acc", "accuracy")):
        ax.plot(epochs, [row[f"train_{key}"] for row in result.epochs], label="training")
        ax.plot(epochs, [row[f"val_{key}"] for row in result.epochs], label="validation")
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # no 1.2, 1.4, ... on short runs
        ax.set_title(f"{result.name}: {title}")
        ax.grid(alpha=0.3)
        ax.legend()
    _save(fig, path)


def plot_validation(results: list[VariantResult], path: Path) -> None:
    fig, ax = plt.subplots(figsize=(7, 4))
    for result in results:
        ax.plot(
            [row["epoch"] for row in result.epochs],
            [row["val_acc"] for row in result.epochs],
            label=result.name,
        )
    ax.set_xlabel("epoch")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel("validation accuracy")
    ax.set_title("validation accuracy of every variant")
    ax.grid(alpha=0.3)
    ax.legend()
    _save(fig, path)


def plot_seeds(results: list[VariantResult], path: Path) -> None:
    """Every run's best validation and test accuracy, with each variant's mean and 95% CI."""
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8), sharey=True)
    for ax, attribute, title in ((axes[0], "val_runs", "best validation"), (axes[1], "test_runs", "test")):
        for x, result in enumerate(results):
            values = getattr(result, attribute)
            summary = summarize(values, ACCURACY_BOUNDS)
            low, high = summary.ci95
            ax.scatter([x] * len(values), values, s=18, alpha=0.6, color=f"C{x}")
            ax.errorbar(
                [x + 0.15],
                [summary.mean],
                yerr=[[summary.mean - low], [high - summary.mean]],
                fmt="o",
                color="black",
                capsize=4,
            )
        ax.set_xticks(range(len(results)), [r.name for r in results])
        ax.set_title(f"{title} accuracy: each seed, mean and 95% CI", fontsize=10)
        ax.grid(alpha=0.3)
    bottom, top = axes[0].get_ylim()
    axes[0].set_ylim(max(bottom, 0.0), min(top, 1.0))  # an accuracy axis never leaves [0, 1]
    _save(fig, path)


def plot_confusions(results: list[VariantResult], path: Path) -> None:
    fig, axes = plt.subplots(1, len(results), figsize=(5.5 * len(results), 5.4), layout="constrained")
    for ax, result in zip(np.atleast_1d(axes), results, strict=True):
        ax.imshow(result.confusion, cmap="Blues")
        for (i, j), count in np.ndenumerate(result.confusion):
            ax.text(
                j,
                i,
                str(count),
                ha="center",
                va="center",
                fontsize=6,
                color="white" if count > result.confusion.max() / 2 else "black",
            )
        ax.set_xticks(range(len(CLASSES)), CLASSES, rotation=90, fontsize=7)
        ax.set_yticks(range(len(CLASSES)), CLASSES, fontsize=7)
        ax.set_xlabel("predicted")
        if ax is np.atleast_1d(axes)[0]:
            ax.set_ylabel("actual")
        ax.set_title(f"{result.name} (seed {result.seeds[0]}): test accuracy {result.test_runs[0]:.1%}")
    _save(fig, path)


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
    (the interval within 0-100%, marked where it had to be cut)."""
    summary = summarize(values, ACCURACY_BOUNDS)
    low, high = summary.ci95
    mark = CLIPPED if summary.clipped else ""
    return f"{_pct(summary.mean)} ± {_points(summary.std)} [{_points(low)}, {_points(high)}]{mark}"


def table(rows: list[dict[str, Any]] | pd.DataFrame) -> list[str]:
    """The lines of a Markdown table of rows (dicts with the same keys, the column names, or a
    frame), so a row reads (and greps) as `| baseline | 0/0/0 | ...`."""
    return markdown_table(pd.DataFrame(rows)).splitlines()


def _recipe(r: VariantResult) -> dict[str, Any]:
    return {
        "variant": r.name,
        "dropout (pool1/pool2/fc)": "/".join(f"{d:g}" for d in r.dropout),
        "augmentation": r.augmentation,
        "epochs": len(r.epochs),
    }


def _pairs(results: list[VariantResult]) -> list[tuple[VariantResult, VariantResult]]:
    return [(a, b) for i, a in enumerate(results) for b in results[i + 1 :]]


def _verdict(beyond_noise: bool) -> str:
    return "**larger than noise**" if beyond_noise else "within noise"


def _single_run_difference(a: float, b: float, n: int) -> Difference:
    """a - b for two accuracies measured once each on n images, as independent binomial
    measurements (normal approximation, hence infinite degrees of freedom)."""
    diff = a - b
    half = 1.96 * math.hypot(binomial_standard_error(a, n), binomial_standard_error(b, n))
    return Difference(diff, (diff - half, diff + half), math.inf)


def _results_single_run(results: list[VariantResult], val_size: int, test_size: int) -> list[str]:
    """One run per variant: each accuracy with its standard error on that many images."""
    lines = table(
        [
            {
                **_recipe(r),
                "best val ± SE (epoch)": f"{_pct(r.val_runs[0])} ± "
                f"{_points(binomial_standard_error(r.val_runs[0], val_size))} ({r.runs[0]['best_epoch']})",
                "final val": _pct(r.runs[0]["final_val_acc"]),
                "test ± SE": f"{_pct(r.test_runs[0])} ± "
                f"{_points(binomial_standard_error(r.test_runs[0], test_size))}",
                "train s": f"{r.train_seconds:.0f}",
                "images/s": f"{float(r.runs[0]['images_per_second']):.0f}",
                "run on": r.ran_on,
                "study's reference": r.reference,
            }
            for r in results
        ]
    )
    typical_se = binomial_standard_error(results[0].val_runs[0], val_size)
    lines += [
        "",
        "## Which differences are larger than noise",
        "",
        f"One run per variant (seed {results[0].seeds[0]}), so this can only measure the noise of "
        f"the evaluation images. SE is the standard error of an accuracy measured on that many "
        f"images: one {val_size:,}-image validation accuracy moves about {_points(typical_se)} points "
        "from the choice of images alone, so two variants' validation accuracies must differ by "
        f"about {100 * 1.96 * math.sqrt(2) * typical_se:.1f} points (the 95% interval of the difference "
        "of two such measurements) before the ranking is evidence:",
        "",
    ]
    differences = [
        (a, b, _single_run_difference(a.val_runs[0], b.val_runs[0], val_size)) for a, b in _pairs(results)
    ]
    return lines + table(
        [
            {
                "comparison": f"{a.name} vs {b.name}",
                "best val difference": f"{100 * d.diff:+.1f} points",
                "95% interval": f"[{100 * d.ci95[0]:+.1f}, {100 * d.ci95[1]:+.1f}]",
                "verdict": _verdict(d.beyond_noise),
            }
            for a, b, d in differences
        ]
    )


def _results_seeds(results: list[VariantResult]) -> list[str]:
    """Several runs per variant: mean, spread and 95% CI, and Welch's test between variants."""
    lines = table(
        [
            {
                **_recipe(r),
                "seeds": len(r.seeds),
                "best val: mean ± std [95% CI]": _spread(r.val_runs),
                "test: mean ± std [95% CI]": _spread(r.test_runs),
                "train s (all seeds)": f"{r.train_seconds:.0f}",
                "run on": r.ran_on,
                "study's reference": r.reference,
            }
            for r in results
        ]
    )
    lines += [
        "",
        f"![every seed's accuracy]({FIGURES}/seeds.png)",
        "",
        "## Which differences are larger than noise",
        "",
        f"{len(results[0].seeds)} runs per variant (seeds {', '.join(map(str, results[0].seeds))}). "
        "A difference is larger than noise when the 95% confidence interval of the difference of "
        "the means (Welch's t, unequal variances) excludes zero: the run-to-run spread of the "
        "recipes does not explain it.",
        "",
    ]
    clipped = any(summarize(v, ACCURACY_BOUNDS).clipped for r in results for v in (r.val_runs, r.test_runs))
    rows = []
    for a, b in _pairs(results):
        row: dict[str, Any] = {"comparison": f"{a.name} vs {b.name}"}
        for what, first, second in (("best val", a.val_runs, b.val_runs), ("test", a.test_runs, b.test_runs)):
            d = welch_difference(first, second)
            clipped |= d.clipped
            row[f"{what} difference [95% CI]"] = (
                f"{100 * d.diff:+.1f} points [{100 * d.ci95[0]:+.1f}, {100 * d.ci95[1]:+.1f}]"
                f"{CLIPPED if d.clipped else ''}"
            )
            row[f"{what} verdict"] = _verdict(d.beyond_noise)
        rows.append(row)
    lines += table(rows)
    return lines + (["", CLIPPED_NOTE] if clipped else [])


def markdown(results: list[VariantResult], val_size: int, test_size: int, normalize: str) -> str:
    counts = sorted({len(r.seeds) for r in results})
    if len(counts) != 1:
        raise ValueError(f"variants were trained with different numbers of seeds {counts}: re-run them")
    single = counts == [1]
    lines = [
        "# convlab report",
        "",
        f"CIFAR-10, {val_size:,} validation and {test_size:,} test images; inputs: {normalize}.",
        "",
    ]
    lines += _results_single_run(results, val_size, test_size) if single else _results_seeds(results)
    lines += [
        "",
        f"The test set is the same {test_size:,} images for every variant, so seed "
        f"{results[0].seeds[0]}'s models can also be compared image by image (McNemar's exact test "
        "on the images exactly one of the two gets right):",
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
    lines += table(rows)
    if single:
        lines += [
            "",
            "That tests the trained models, not the recipes: how far a variant's accuracy moves "
            "between training runs with other seeds is a further source of noise one run cannot "
            "show. `dvc exp run -S train.seeds=5` trains every variant five times and reports it.",
        ]
    lines += [
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
        f"## Training and validation curves (seed {results[0].seeds[0]})",
        "",
    ]
    for r in results:
        lines += [f"![{r.name} curves]({FIGURES}/curves_{r.name}.png)", ""]
    lines += [
        f"## Test confusion matrices of seed {results[0].seeds[0]}'s models (rows: actual, columns: "
        "predicted)",
        "",
        f"![confusion matrices]({FIGURES}/confusion.png)",
        "",
        f"## Per-class test accuracy of seed {results[0].seeds[0]}'s models",
        "",
    ]
    per_class = pd.DataFrame({r.name: per_class_accuracy(r.confusion) for r in results}, index=list(CLASSES))
    lines += table(per_class.map(_pct).rename_axis("class").reset_index())
    return "\n".join(lines) + "\n"


def write_figures(
    directory: Path, results: list[VariantResult], train_images: np.ndarray, train_labels: np.ndarray
) -> None:
    """Write the report's figures into `directory` (which must exist), under the names markdown()
    links as FIGURES/<name>."""
    plot_first_image(train_images[0], int(train_labels[0]), directory / "first_image.png")
    plot_grid(train_images[:100], train_labels[:100], directory / "first_100.png")
    plot_validation(results, directory / "val_acc.png")
    for result in results:
        plot_curves(result, directory / f"curves_{result.name}.png")
    plot_confusions(results, directory / "confusion.png")
    if len(results[0].seeds) > 1:
        plot_seeds(results, directory / "seeds.png")
