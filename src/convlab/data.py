"""Split CIFAR-10 into train / validation / test, compute normalization statistics, store them.

Prepared data is three .npz files of uint8 images (N, 3, 32, 32) and uint8 labels, plus a small
JSON of per-channel statistics. They load with allow_pickle=False, so reading them runs no code.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from convlab.atomic import atomic_directory, write_bytes, write_json
from convlab.cifar import IMAGE_SHAPE, Cifar10

SPLITS = ("train", "val", "test")
STATS_FILE = "stats.json"


class DataError(ValueError):
    """Prepared data that is missing, malformed, or cannot be made from the given params."""


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


@dataclass(frozen=True)
class Prepared:
    train: Split
    val: Split
    test: Split
    norm: Normalization


def split_dataset(data: Cifar10, val_size: int) -> tuple[Split, Split, Split]:
    """Validation is the LAST val_size training images; training the ones before them."""
    n = len(data.y_train)
    if not 0 < val_size < n:
        raise DataError(
            f"data.val_size = {val_size} is not allowed: the archive has {n} training images, "
            f"so it must be between 1 and {n - 1} to leave training data"
        )
    images = data.x_train.reshape(-1, *IMAGE_SHAPE)
    train = Split(images[:-val_size], data.y_train[:-val_size])
    val = Split(images[-val_size:], data.y_train[-val_size:])
    test = Split(data.x_test.reshape(-1, *IMAGE_SHAPE), data.y_test)
    return train, val, test


def normalization_stats(images: np.ndarray, mode: str) -> Normalization:
    """Per-channel statistics of uint8 images (N, 3, H, W), in [0, 1] units.

    Computed from each channel's histogram of the 256 pixel values, so the sums are exact integers,
    independent of summation order, and need no float copy of the images.
    """
    if mode == "none":
        return Normalization(mode, (0.0, 0.0, 0.0), (1.0, 1.0, 1.0))
    if mode != "standardize":
        raise DataError(f"data.normalize = {mode!r} is not allowed: expected 'standardize' or 'none'")
    values = np.arange(256, dtype=np.int64)
    means, stds = [], []
    for channel in range(images.shape[1]):
        counts = np.bincount(images[:, channel].ravel(), minlength=256).astype(np.int64)
        n = int(counts.sum())
        total = int((counts * values).sum())
        squares = int((counts * values * values).sum())
        mean = total / n
        means.append(mean / 255)
        stds.append(float(np.sqrt(squares / n - mean * mean)) / 255)
    return Normalization(mode, tuple(means), tuple(stds))  # type: ignore[arg-type]


def _save_split(path: Path, split: Split) -> None:
    buffer = io.BytesIO()
    np.savez(buffer, x=split.x, y=split.y)
    write_bytes(path, buffer.getvalue())


def _load_split(path: Path) -> Split:
    try:
        with np.load(path, allow_pickle=False) as archive:
            x, y = archive["x"], archive["y"]
    except FileNotFoundError:
        raise DataError(f"{path} not found: run the split stage first (dvc repro split)") from None
    except (ValueError, KeyError, OSError) as err:
        raise DataError(f"{path} is not a prepared split: {err}") from None
    if x.dtype != np.uint8 or x.ndim != 4 or x.shape[1:] != IMAGE_SHAPE:
        raise DataError(f"{path}: images have {x.dtype} {x.shape}, expected uint8 (N, 3, 32, 32)")
    if y.dtype != np.uint8 or y.shape != (len(x),):
        raise DataError(f"{path}: labels have {y.dtype} {y.shape}, expected uint8 ({len(x)},)")
    return Split(x, y)


def save_prepared(directory: str | Path, prepared: Prepared) -> None:
    """Write the three splits and the statistics; the folder appears whole or not at all."""
    norm = prepared.norm
    with atomic_directory(directory) as tmp:
        for name in SPLITS:
            _save_split(tmp / f"{name}.npz", getattr(prepared, name))
        write_json(
            tmp / STATS_FILE,
            {
                "normalize": norm.mode,
                "mean": list(norm.mean),
                "std": list(norm.std),
                "sizes": {name: len(getattr(prepared, name)) for name in SPLITS},
            },
        )


def load_normalization(directory: str | Path) -> Normalization:
    path = Path(directory) / STATS_FILE
    try:
        stats = json.loads(path.read_text())
        return Normalization(stats["normalize"], tuple(stats["mean"]), tuple(stats["std"]))
    except FileNotFoundError:
        raise DataError(f"{path} not found: run the split stage first (dvc repro split)") from None
    except (ValueError, KeyError, TypeError) as err:
        raise DataError(f"{path} is not a statistics file: {err}") from None


def load_prepared(directory: str | Path, splits: tuple[str, ...] = SPLITS) -> dict[str, Split]:
    return {name: _load_split(Path(directory) / f"{name}.npz") for name in splits}
