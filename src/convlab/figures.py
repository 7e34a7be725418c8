"""The report's figures (PNG, matplotlib): the data, the curves, every seed, the confusion matrices."""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: no display on servers or in CI

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from convlab.cifar import CLASSES  # noqa: E402
from convlab.report import VariantResult  # noqa: E402
from convlab.stats import summarize  # noqa: E402


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
    # One mosaic in one axes, not an axes per image: laying out 100 axes took seconds.
    rows = math.ceil(len(images) / columns)
    _, channels, height, width = images.shape
    gap, label_band = 4, 10  # pixels between images, and above each for its class name
    cell_w, cell_h = width + gap, height + label_band
    mosaic = np.full((rows * cell_h, columns * cell_w, channels), 255, dtype=np.uint8)
    fig, ax = plt.subplots(figsize=(columns * 1.1, rows * 1.25))
    for index, (image, label) in enumerate(zip(images, labels, strict=True)):
        top, left = (index // columns) * cell_h + label_band, (index % columns) * cell_w
        mosaic[top : top + height, left : left + width] = image.transpose(1, 2, 0)
        ax.text(left + width / 2, top - 1, CLASSES[label], ha="center", va="bottom", fontsize=7)
    ax.imshow(mosaic, interpolation="nearest")
    ax.axis("off")
    ax.set_title(f"the first {len(images)} training images")
    _save(fig, path)


def plot_curves(results: list[VariantResult], path: Path) -> None:
    """Training and validation loss and accuracy by epoch: a row per variant, one figure."""
    fig, axes = plt.subplots(len(results), 2, figsize=(10, 3 * len(results)), squeeze=False)
    for (loss_ax, acc_ax), result in zip(axes, results, strict=True):
        epochs = result.epochs["epoch"]
        for ax, key, title in ((loss_ax, "loss", "loss"), (acc_ax, "acc", "accuracy")):
            ax.plot(epochs, result.epochs[f"train_{key}"], label="training")
            ax.plot(epochs, result.epochs[f"val_{key}"], label="validation")
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # no 1.2, 1.4, ... on short runs
            ax.set_title(f"{result.name}: {title}")
            ax.grid(alpha=0.3)
        loss_ax.legend(loc="upper right")
    for ax in axes[-1]:
        ax.set_xlabel("epoch")
    _save(fig, path)


def plot_validation(results: list[VariantResult], path: Path) -> None:
    fig, ax = plt.subplots(figsize=(7, 4))
    for result in results:
        ax.plot(result.epochs["epoch"], result.epochs["val_acc"], label=result.name)
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
    for ax, attribute, title in ((axes[0], "val_acc", "best validation"), (axes[1], "test_acc", "test")):
        for x, result in enumerate(results):
            values = getattr(result, attribute)
            summary = summarize(values)
            low, high = summary.ci95 or (summary.mean, summary.mean)  # one run: no interval
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
        shown = ax.imshow(result.confusion, cmap="Blues")
        ax.set_xticks(range(len(CLASSES)), CLASSES, rotation=90, fontsize=7)
        ax.set_yticks(range(len(CLASSES)), CLASSES, fontsize=7)
        ax.set_xlabel("predicted")
        if ax is np.atleast_1d(axes)[0]:
            ax.set_ylabel("actual")
        ax.set_title(
            f"{result.name} (seed {result.runs['seed'].iloc[0]}): test accuracy {result.test_acc[0]:.1%}"
        )
    # Counts by colour: each cell's number is in the report's per-class table and `dvc plots show`.
    fig.colorbar(shown, ax=axes, shrink=0.7, label="test images")
    _save(fig, path)


def write_figures(
    directory: Path, results: list[VariantResult], train_images: np.ndarray, train_labels: np.ndarray
) -> None:
    """Write the report's figures into `directory` (which must exist), under the names markdown()
    links as figures/<name>."""
    plot_first_image(train_images[0], int(train_labels[0]), directory / "first_image.png")
    plot_grid(train_images[:100], train_labels[:100], directory / "first_100.png")
    plot_validation(results, directory / "val_acc.png")
    plot_curves(results, directory / "curves.png")
    plot_confusions(results, directory / "confusion.png")
    plot_seeds(results, directory / "seeds.png")
