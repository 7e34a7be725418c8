"""The study's report: a Markdown page with a results table and PNG figures."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: no display on servers or in CI

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from convlab.cifar import CLASSES  # noqa: E402
from convlab.evaluate import per_class_accuracy  # noqa: E402
from convlab.stats import binomial_standard_error, mcnemar  # noqa: E402

# What the study being reproduced reported, for comparison (validation / test accuracy).
REFERENCE = {
    "baseline": "val close to 70%",
    "dropout": "not reported",
    "staged_dropout": "val 77%, test 75%",
}


@dataclass(frozen=True)
class VariantResult:
    name: str
    dropout: tuple[float, float, float]
    epochs: list[dict[str, float]]  # rows of plots/train_<variant>/epochs.csv
    train: dict  # metrics/train_<variant>.json
    test: dict  # metrics/test.json[<variant>]
    confusion: np.ndarray  # counts[actual, predicted]
    correct: np.ndarray  # per test image, in test order: did the best checkpoint get it right


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
    ax.set_ylabel("validation accuracy")
    ax.set_title("validation accuracy of every variant")
    ax.grid(alpha=0.3)
    ax.legend()
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
        ax.set_title(f"{result.name}: test accuracy {result.test['test_acc']:.1%}")
    _save(fig, path)


def _pct(value: float) -> str:
    return f"{100 * value:.1f}%"


def markdown(results: list[VariantResult], val_size: int, test_size: int, normalize: str) -> str:
    lines = [
        "# convlab report",
        "",
        f"CIFAR-10, {val_size:,} validation and {test_size:,} test images; inputs: {normalize}.",
        "",
        "| variant | dropout (pool1/pool2/fc) | epochs | best val (epoch) | final val | test "
        "| train s | images/s | run on | reference |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        t = r.train
        lines.append(
            f"| {r.name} | {'/'.join(f'{d:g}' for d in r.dropout)} | {t['epochs']} "
            f"| {_pct(t['best_val_acc'])} ({t['best_epoch']}) | {_pct(t['final_val_acc'])} "
            f"| {_pct(r.test['test_acc'])} | {t['train_seconds']:.0f} | {t['images_per_second']:.0f} "
            f"| {t['runtime']} | {REFERENCE.get(r.name, '')} |"
        )
    typical = results[0].train["best_val_acc"]
    val_se = binomial_standard_error(typical, val_size)
    lines += [
        "",
        f"Noise: one run each. At {_pct(typical)} accuracy one {val_size:,}-image validation "
        f"measurement has a standard error of {_pct(val_se)}, so the difference of two runs' "
        f"validation accuracies must exceed about {100 * 1.96 * math.sqrt(2) * val_se:.1f} points "
        "before it is evidence. The test set is larger and the same images for every variant, so "
        "the test comparison below pairs the models image by image (McNemar's exact test):",
        "",
        "| comparison | test accuracy difference | images only the first gets right "
        "| only the second | p-value | verdict |",
        "|---|---|---|---|---|---|",
    ]
    for i, first in enumerate(results):
        for second in results[i + 1 :]:
            test = mcnemar(first.correct, second.correct)
            diff = first.test["test_acc"] - second.test["test_acc"]
            verdict = "larger than noise" if test.p_value < 0.05 else "within noise"
            lines.append(
                f"| {first.name} vs {second.name} | {100 * diff:+.1f} points | {test.only_a} "
                f"| {test.only_b} | {test.p_value:.2g} | {verdict} (5% level) |"
            )
    lines += [
        "",
        "This tests the trained models, not the recipes: how far a variant's accuracy moves "
        "between training runs with other seeds is a further source of noise one run cannot show.",
        "",
        "## Data",
        "",
        "![first training image](first_image.png) ![first 100 training images](first_100.png)",
        "",
        "## Validation accuracy of every variant",
        "",
        "![validation accuracy](val_acc.png)",
        "",
        "## Training and validation curves",
        "",
    ]
    for r in results:
        lines += [f"![{r.name} curves](curves_{r.name}.png)", ""]
    lines += [
        "## Test confusion matrices (rows: actual, columns: predicted)",
        "",
        "![confusion matrices](confusion.png)",
        "",
        "## Per-class test accuracy",
        "",
        "| class | " + " | ".join(r.name for r in results) + " |",
        "|---|" + "---|" * len(results),
    ]
    per_class = [per_class_accuracy(r.confusion) for r in results]
    for i, name in enumerate(CLASSES):
        lines.append(f"| {name} | " + " | ".join(_pct(p[i]) for p in per_class) + " |")
    return "\n".join(lines) + "\n"


def write_report(
    directory: Path,
    results: list[VariantResult],
    train_images: np.ndarray,
    train_labels: np.ndarray,
    val_size: int,
    test_size: int,
    normalize: str,
) -> None:
    """Write report.md and its figures into `directory` (which must exist)."""
    plot_first_image(train_images[0], int(train_labels[0]), directory / "first_image.png")
    plot_grid(train_images[:100], train_labels[:100], directory / "first_100.png")
    plot_validation(results, directory / "val_acc.png")
    for result in results:
        plot_curves(result, directory / f"curves_{result.name}.png")
    plot_confusions(results, directory / "confusion.png")
    (directory / "report.md").write_text(markdown(results, val_size, test_size, normalize))
