"""Split CIFAR-10 into train / validation / test, compute normalization statistics, store them.

Prepared data is three .npz files of uint8 images (N, 3, 32, 32) and uint8 labels, plus a small
JSON of per-channel statistics. They load with allow_pickle=False, so reading them runs no code.
A damaged file never gives numbers: the .npz members carry zip CRCs, checked as they are read,
and the statistics carry a sha256 of their values.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from convlab.atomic import atomic_directory, write_bytes, write_json
from convlab.cifar import CLASSES, IMAGE_SHAPE, Cifar10
from convlab.errors import ConvlabError, one_line
from convlab.params import NORMALIZATIONS
from convlab.stage_files import DamagedInputError, read_json

SPLITS = ("train", "val", "test")
STATS_FILE = "stats.json"
_FIX = "run dvc repro"


class DataError(ConvlabError, ValueError):
    """Prepared data that is missing, malformed, or cannot be made from the given params."""


def _damaged(path: Path, what: str) -> DataError:
    return DataError(f"{path} is damaged ({what}); {_FIX}")


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
    """Validation is the LAST val_size training images (params.py keeps some to train on); training
    the ones before them."""
    images = data.x_train.reshape(-1, *IMAGE_SHAPE)
    train = Split(images[:-val_size], data.y_train[:-val_size])
    val = Split(images[-val_size:], data.y_train[-val_size:])
    test = Split(data.x_test.reshape(-1, *IMAGE_SHAPE), data.y_test)
    return train, val, test


def normalization_stats(images: np.ndarray, mode: str) -> Normalization:
    """Per-channel statistics of uint8 images (N, 3, H, W), in [0, 1] units.

    Computed from each channel's histogram of the 256 pixel values, so the sums are exact integers,
    independent of summation order, and need no float copy of the images. A channel with a single
    value everywhere cannot be standardized (its std is 0): refused here, before any training.
    """
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
        if squares * n == total * total:  # exact integers: every pixel of the channel is the same
            raise DataError(
                f"channel {'RGB'[channel]} of the {len(images)} training images is {total // n} in every "
                "pixel, so it cannot be standardized; use data.normalize=none or another archive"
            )
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
    except Exception as err:
        # Damaged bytes surface as whatever zipfile or numpy trips on: BadZipFile (bad CRC,
        # truncated), EOFError, zlib.error, ValueError (header, pickle), KeyError (a lost member),
        # NotImplementedError (a flipped compression method), MemoryError (a flipped shape)...
        # Each means the same: the file is not the one split wrote.
        raise _damaged(path, one_line(err)) from None
    if x.dtype != np.uint8 or x.ndim != 4 or x.shape[1:] != IMAGE_SHAPE:
        raise _damaged(path, f"images are {x.dtype} {x.shape}, expected uint8 (N, 3, 32, 32)")
    if y.dtype != np.uint8 or y.shape != (len(x),):
        raise _damaged(path, f"labels are {y.dtype} {y.shape}, expected uint8 ({len(x)},)")
    if len(y) and int(y.max()) >= len(CLASSES):
        raise _damaged(path, f"label {int(y.max())}, expected 0 to {len(CLASSES) - 1}")
    return Split(x, y)


def _stats_sha256(stats: dict[str, Any]) -> str:
    """sha256 of the statistics' values (sorted JSON, floats at full precision), so a changed digit
    that still parses is caught."""
    values = {k: v for k, v in stats.items() if k != "sha256"}
    return hashlib.sha256(json.dumps(values, sort_keys=True).encode()).hexdigest()


def save_prepared(directory: str | Path, prepared: Prepared) -> None:
    """Write the three splits and the statistics; the folder appears whole or not at all."""
    norm = prepared.norm
    with atomic_directory(directory) as tmp:
        for name in SPLITS:
            _save_split(tmp / f"{name}.npz", getattr(prepared, name))
        stats = {
            "normalize": norm.mode,
            "mean": list(norm.mean),
            "std": list(norm.std),
            "sizes": {name: len(getattr(prepared, name)) for name in SPLITS},
        }
        write_json(tmp / STATS_FILE, {**stats, "sha256": _stats_sha256(stats)})


def _channels(value: Any, positive: bool) -> bool:
    """Three finite numbers, each > 0 where positive is asked for."""
    return (
        isinstance(value, list)
        and len(value) == 3
        and all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in value)
        and (not positive or all(v > 0 for v in value))
    )


def load_normalization(directory: str | Path) -> Normalization:
    path = Path(directory) / STATS_FILE
    try:
        stats = read_json(path)
    except FileNotFoundError:
        raise DataError(f"{path} not found: run the split stage first (dvc repro split)") from None
    except DamagedInputError as err:  # not UTF-8, not JSON, cut short, nested without bound...
        raise DataError(str(err)) from None
    if "sha256" not in stats:
        raise _damaged(path, "no checksum: made by an older convlab")
    if stats["sha256"] != _stats_sha256(stats):
        raise _damaged(path, "its values do not match their checksum")
    # Checksummed, so these only fail for a file some other code wrote.
    mode, mean, std = stats.get("normalize"), stats.get("mean"), stats.get("std")
    if mode not in NORMALIZATIONS or not _channels(mean, False) or not _channels(std, True):
        raise _damaged(path, "normalize, mean or std missing or invalid")
    return Normalization(mode, tuple(float(m) for m in mean), tuple(float(s) for s in std))  # type: ignore[arg-type]


def load_prepared(directory: str | Path, splits: tuple[str, ...] = SPLITS) -> dict[str, Split]:
    return {name: _load_split(Path(directory) / f"{name}.npz") for name in splits}
