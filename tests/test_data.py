"""The split, the normalization statistics and the prepared files are the study's, and a damaged
prepared file is refused in one line instead of giving other numbers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from convlab.cifar import read_archive
from convlab.data import (
    DataError,
    Prepared,
    Split,
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


def test_a_channel_that_cannot_be_standardized_is_refused_at_split() -> None:
    images = np.random.default_rng(0).integers(0, 256, size=(20, 3, 4, 4), dtype=np.uint8)
    images[:, 1] = 7  # green is 7 everywhere: its std is 0
    with pytest.raises(DataError, match="channel G of the 20 training images is 7 in every pixel"):
        normalization_stats(images, "standardize")
    assert normalization_stats(images, "none").std == (1.0, 1.0, 1.0)


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


# --- damaged prepared files are refused in one line that names the file and the fix ----------------


@pytest.fixture
def prepared(tmp_path: Path, small_archive: Path) -> Path:
    train, val, test = split_dataset(read_archive(small_archive), 100)
    norm = normalization_stats(train.x, "standardize")
    save_prepared(tmp_path / "prepared", Prepared(train, val, test, norm))
    return tmp_path / "prepared"


def refused(call, path: Path) -> str:
    with pytest.raises(DataError) as err:
        call()
    message = str(err.value)
    assert message.startswith(f"{path} is damaged (") and message.endswith("); run dvc repro")
    assert "\n" not in message
    return message


def flip(data: bytes, position: int, mask: int = 0x01) -> bytes:
    return data[:position] + bytes([data[position] ^ mask]) + data[position + 1 :]


DAMAGES = {
    "empty": lambda b: b"",
    "cut-short": lambda b: b[: len(b) // 2],
    "last-byte-cut": lambda b: b[:-1],
    "bit-flipped": lambda b: flip(b, len(b) // 2),
    "1000-bytes": lambda b: b[:100] + bytes(x ^ 0x5A for x in b[100:1100]) + b[1100:],
    "garbage": lambda b: b"\x93NUMPY garbage" * 50,
}


@pytest.mark.parametrize("damage", DAMAGES.values(), ids=DAMAGES.keys())
def test_a_damaged_split_is_refused(prepared: Path, damage) -> None:
    path = prepared / "val.npz"
    path.write_bytes(damage(path.read_bytes()))
    refused(lambda: load_prepared(prepared, ("val",)), path)


def test_no_flipped_bit_in_a_split_gives_other_images(tmp_path: Path) -> None:
    """Every 7th byte of a small split, flipped: refused (zip CRCs, headers), or the very same arrays."""
    rng = np.random.default_rng(0)
    split = Split(rng.integers(0, 256, (2, 3, 32, 32), dtype=np.uint8), np.array([3, 7], np.uint8))
    save_prepared(tmp_path, Prepared(split, split, split, normalization_stats(split.x, "none")))
    path = tmp_path / "test.npz"
    good = path.read_bytes()
    refusals = 0
    for position in range(0, len(good), 7):
        path.write_bytes(flip(good, position))
        try:
            loaded = load_prepared(tmp_path, ("test",))["test"]
        except DataError:
            refusals += 1
            continue
        assert np.array_equal(loaded.x, split.x) and np.array_equal(loaded.y, split.y), position
    assert refusals > len(good) // 7 * 0.9


@pytest.mark.parametrize(
    ("damage", "what"),
    [
        (lambda t: "", "empty"),
        (lambda t: t[: len(t) // 2], "cut short"),
        (lambda t: t[: len(t) // 2] + "\n", "not valid JSON"),
        (lambda t: t.replace('"mean": [\n    0.', '"mean": [\n    1.', 1), "do not match their checksum"),
        (lambda t: t.replace('"std": [\n    0.', '"std": [\n    NaN, 0.', 1), "NaN is not a finite number"),
        (lambda t: t.replace('"sha256"', '"sha265"'), "no checksum"),
        (lambda t: "[1, 2, 3]\n", "a JSON list, not an object"),
        (lambda t: '{"a": ' + "[" * 10_000 + "]" * 10_000 + "}\n", "nested deeper than 8 levels"),
    ],
    ids=["empty", "cut-short", "invalid", "digit-changed", "nan", "checksum-key", "a-list", "nested"],
)
def test_damaged_statistics_are_refused(prepared: Path, damage, what: str) -> None:
    path = prepared / "stats.json"
    damaged = damage(path.read_text())
    assert damaged != path.read_text()
    path.write_text(damaged)
    assert what in refused(lambda: load_normalization(prepared), path)


def test_statistics_not_utf8_are_refused(prepared: Path) -> None:
    path = prepared / "stats.json"
    path.write_bytes(flip(path.read_bytes(), 20, 0xFF))
    assert "not UTF-8 text at byte 20" in refused(lambda: load_normalization(prepared), path)
