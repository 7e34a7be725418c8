"""The split, the normalization statistics and the prepared files are the study's."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from convlab.cifar import read_archive
from convlab.data import (
    DataError,
    Prepared,
    load_normalization,
    load_prepared,
    normalization_stats,
    save_prepared,
    split_dataset,
)


def test_validation_is_the_last_images(small_archive: Path) -> None:
    data = read_archive(small_archive)
    train, val, test = split_dataset(data, val_size=100)
    assert (len(train), len(val), len(test)) == (900, 100, 300)
    assert np.array_equal(val.x.reshape(100, -1), data.x_train[-100:])
    assert np.array_equal(train.x.reshape(900, -1), data.x_train[:900])
    assert np.array_equal(val.y, data.y_train[-100:])
    assert train.x.shape[1:] == (3, 32, 32)
    # Rows are R, G, B planes: channel 0 of image 0 is the first 1024 bytes of its row.
    assert np.array_equal(train.x[0, 0].ravel(), data.x_train[0, :1024])


@pytest.mark.parametrize("val_size", [0, 1000, 5000])
def test_val_size_must_leave_training_data(small_archive: Path, val_size: int) -> None:
    with pytest.raises(DataError, match=f"data.val_size = {val_size} is not allowed"):
        split_dataset(read_archive(small_archive), val_size)


def test_standardize_statistics_match_float64_numpy() -> None:
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(500, 3, 32, 32), dtype=np.uint8)
    norm = normalization_stats(images, "standardize")
    scaled = images.astype(np.float64) / 255
    assert np.allclose(norm.mean, scaled.mean(axis=(0, 2, 3)), rtol=0, atol=1e-12)
    assert np.allclose(norm.std, scaled.std(axis=(0, 2, 3)), rtol=0, atol=1e-12)
    standardized = (scaled - np.array(norm.mean).reshape(1, 3, 1, 1)) / np.array(norm.std).reshape(1, 3, 1, 1)
    assert np.allclose(standardized.mean(axis=(0, 2, 3)), 0, atol=1e-9)
    assert np.allclose(standardized.std(axis=(0, 2, 3)), 1, atol=1e-9)


def test_none_is_the_identity_on_pixels_over_255() -> None:
    norm = normalization_stats(np.zeros((2, 3, 32, 32), np.uint8), "none")
    assert norm.mean == (0.0, 0.0, 0.0) and norm.std == (1.0, 1.0, 1.0)


def test_statistics_come_from_training_images_only(small_archive: Path) -> None:
    train, val, _ = split_dataset(read_archive(small_archive), 100)
    from_train = normalization_stats(train.x, "standardize")
    from_all = normalization_stats(np.concatenate([train.x, val.x]), "standardize")
    assert from_train != from_all


def test_prepared_round_trip(tmp_path: Path, small_archive: Path) -> None:
    train, val, test = split_dataset(read_archive(small_archive), 100)
    norm = normalization_stats(train.x, "standardize")
    save_prepared(tmp_path / "prepared", Prepared(train, val, test, norm))
    loaded = load_prepared(tmp_path / "prepared")
    for name, split in (("train", train), ("val", val), ("test", test)):
        assert np.array_equal(loaded[name].x, split.x) and np.array_equal(loaded[name].y, split.y)
    assert load_normalization(tmp_path / "prepared") == norm
    assert sorted(p.name for p in tmp_path.iterdir()) == ["prepared"]  # no temp folders left


def test_missing_prepared_data_names_the_stage(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="run the split stage first"):
        load_prepared(tmp_path)
    with pytest.raises(DataError, match="run the split stage first"):
        load_normalization(tmp_path)


def test_failed_save_keeps_the_old_folder(tmp_path: Path, small_archive: Path) -> None:
    train, val, test = split_dataset(read_archive(small_archive), 100)
    norm = normalization_stats(train.x, "standardize")
    save_prepared(tmp_path / "prepared", Prepared(train, val, test, norm))
    before = {p.name: p.read_bytes() for p in (tmp_path / "prepared").iterdir()}
    broken = Prepared(train, val, None, norm)  # type: ignore[arg-type]
    with pytest.raises(AttributeError):
        save_prepared(tmp_path / "prepared", broken)
    assert {p.name: p.read_bytes() for p in (tmp_path / "prepared").iterdir()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["prepared"]
