"""Split CIFAR-10 into train / validation / test, compute the normalization statistics, store them.

Prepared data is three .npz files of uint8 images (N, 3, 32, 32) and uint8 labels, and stats.json:
the per-channel statistics and the content checksum of the archive they came from, so two copies
of the data can be compared. They are the split stage's outputs and are read back as they are.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from convlab.errors import ConvlabError
from convlab.outputs import atomic

if TYPE_CHECKING:
    from convlab.cifar import Cifar10

SPLITS = ("train", "val", "test")
IMAGE_SHAPE = (3, 32, 32)


@dataclass(frozen=True)
class Split:
    x: np.ndarray  # (N, 3, 32, 32) uint8
    y: np.ndarray  # (N,) uint8

    def __len__(self) -> int:
        return len(self.y)


@dataclass(frozen=True)
class Normalization:
    """Per-channel mean and std of images scaled to [0, 1]; x_norm = (x / 255 - mean) / std."""

    mode: str
    mean: tuple[float, float, float]
    std: tuple[float, float, float]


def split_dataset(data: Cifar10, val_size: int) -> dict[str, Split]:
    """Validation is the LAST val_size training images, training the ones before them."""
    if val_size >= len(data.y_train):
        raise ConvlabError(
            f"data.val_size = {val_size} is not allowed: expected fewer than the archive's "
            f"{len(data.y_train):,} training images, so that some are left to train on"
        )
    images = data.x_train.reshape(-1, *IMAGE_SHAPE)
    return {
        "train": Split(images[:-val_size], data.y_train[:-val_size]),
        "val": Split(images[-val_size:], data.y_train[-val_size:]),
        "test": Split(data.x_test.reshape(-1, *IMAGE_SHAPE), data.y_test),
    }


def normalization_stats(images: np.ndarray, mode: str) -> Normalization:
    """Per-channel statistics of uint8 images (N, 3, H, W), in [0, 1] units, from each channel's
    histogram: the sums are exact integers, so the statistics do not depend on summation order."""
    if mode == "none":
        return Normalization(mode, (0.0, 0.0, 0.0), (1.0, 1.0, 1.0))
    values = np.arange(256, dtype=np.int64)
    means, stds = [], []
    for channel in range(images.shape[1]):
        counts = np.bincount(images[:, channel].ravel(), minlength=256).astype(np.int64)
        n = int(counts.sum())
        total = int((counts * values).sum())
        squares = int((counts * values * values).sum())
        mean = total / n
        if squares * n == total * total:  # every pixel of the channel is the same: std 0
            raise ConvlabError(
                f"channel {'RGB'[channel]} of the training images is {total // n} everywhere, so it "
                "cannot be standardized; use data.normalize=none or another archive"
            )
        means.append(mean / 255)
        stds.append(float(np.sqrt(squares / n - mean * mean)) / 255)
    return Normalization(mode, tuple(means), tuple(stds))  # type: ignore[arg-type]


def save_prepared(
    directory: str | Path, splits: dict[str, Split], norm: Normalization, content_sha256: str
) -> None:
    """The three splits and stats.json; the folder appears whole or not at all."""
    with atomic(Path(directory)) as tmp:
        tmp.mkdir()
        for name, split in splits.items():
            np.savez(tmp / f"{name}.npz", x=split.x, y=split.y)
        stats = {
            "normalize": norm.mode,
            "mean": list(norm.mean),
            "std": list(norm.std),
            "sizes": {name: len(split) for name, split in splits.items()},
            "content_sha256": content_sha256,
        }
        (tmp / "stats.json").write_text(json.dumps(stats, indent=2) + "\n")


def load_split(directory: str | Path, name: str) -> Split:
    with np.load(Path(directory) / f"{name}.npz") as archive:
        return Split(archive["x"], archive["y"])


def load_stats(directory: str | Path) -> dict:
    return json.loads((Path(directory) / "stats.json").read_text())


def load_normalization(directory: str | Path) -> Normalization:
    stats = load_stats(directory)
    return Normalization(stats["normalize"], tuple(stats["mean"]), tuple(stats["std"]))  # type: ignore[arg-type]
