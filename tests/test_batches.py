"""Augmentation: crops are true windows of the reflect-padded image, drawn uniformly; flips are true
mirrors of half the images; both seeded, and the gathered batch is what pad + crop + flip of the
normalized batch gives, in the training layout."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from convlab.batches import DeviceImages, draw_pixel_maps, reflect
from convlab.data import Normalization, Split
from convlab.runtime import Runtime

NORM = Normalization("standardize", (0.49, 0.48, 0.45), (0.25, 0.24, 0.26))


def images(n: int, channels_last: bool = True) -> DeviceImages:
    rng = np.random.default_rng(1)
    split = Split(
        rng.integers(0, 256, (n, 3, 32, 32), dtype=np.uint8), rng.integers(0, 10, n, dtype=np.uint8)
    )
    return DeviceImages(split, NORM, Runtime(torch.device("cpu"), None, channels_last, False))


def windows(image: torch.Tensor, padded: torch.Tensor, padding: int) -> list[tuple[int, int, bool]]:
    """Every (top, left, mirrored) for which `image` is that window of `padded`."""
    size = image.shape[-1]
    found = []
    for top in range(2 * padding + 1):
        for left in range(2 * padding + 1):
            window = padded[:, top : top + size, left : left + size]
            found += [(top, left, False)] if torch.equal(image, window) else []
            found += [(top, left, True)] if torch.equal(image, window.flip(2)) else []
    return found


def test_reflect_matches_torch_reflect_padding() -> None:
    line = torch.arange(10.0).view(1, 1, 10)
    padded = F.pad(line, (4, 4), mode="reflect").view(-1)
    assert torch.equal(padded, reflect(torch.arange(-4, 14), 10).float())


@pytest.mark.parametrize("channels_last", [True, False])
def test_gathered_batch_equals_pad_crop_flip_of_the_normalized_batch(channels_last: bool) -> None:
    data = images(300, channels_last)
    index = torch.randperm(300, generator=torch.Generator().manual_seed(2))[:200]
    torch.manual_seed(0)
    maps = draw_pixel_maps(200, 32, 32, 4, True, torch.device("cpu"))
    out, labels = data.batch(index, maps)
    plain, plain_labels = data.batch(index)
    assert torch.equal(labels, plain_labels)
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    assert out.is_contiguous(memory_format=memory_format) and out.dtype == torch.float32
    padded = F.pad(plain, (4, 4, 4, 4), mode="reflect")
    drawn = []
    for i in range(200):
        found = windows(out[i], padded[i], 4)
        assert found, f"image {i} is not a (mirrored) window of its padded copy"
        drawn.append(found[0])
    assert 60 < sum(mirrored for _, _, mirrored in drawn) < 140


def test_offsets_are_uniform_and_flips_are_fair() -> None:
    torch.manual_seed(0)
    n, padding = 40_500, 4
    maps = draw_pixel_maps(n, 32, 32, padding, True, torch.device("cpu"))
    # The unmirrored column map starts at left - padding (reflected); row 16 of any window is
    # row 16 + shift, which no reflection touches for shifts within 4.
    shift_rows = (maps.rows[:, 16] - 16).numpy()
    mirrored = (maps.cols[:, 0] > maps.cols[:, -1]).numpy()
    shift_cols = np.where(mirrored, maps.cols[:, 16] - 15, maps.cols[:, 16] - 16)
    for shifts in (shift_rows, shift_cols):
        counts = np.bincount(shifts + padding, minlength=2 * padding + 1)
        assert len(counts) == 9
        expected = n / 9
        chi2 = float(((counts - expected) ** 2 / expected).sum())
        assert chi2 < 26.1, f"offsets not uniform: {counts} (chi2 {chi2:.1f}, 8 dof, p=0.001 at 26.1)"
    share = mirrored.mean()
    assert abs(share - 0.5) < 4 * 0.5 / np.sqrt(n), f"mirrored {share:.4f} of the images"
    # Rows and columns are drawn independently.
    assert abs(np.corrcoef(shift_rows, shift_cols)[0, 1]) < 0.03


def test_no_augmentation_draws_nothing_and_keeps_the_image() -> None:
    torch.manual_seed(5)
    before = torch.get_rng_state()
    maps = draw_pixel_maps(8, 32, 32, 0, False, torch.device("cpu"))
    assert torch.equal(torch.get_rng_state(), before)
    data = images(8)
    assert torch.equal(data.batch(slice(0, 8), maps)[0], data.batch(slice(0, 8))[0])


def test_maps_are_seeded() -> None:
    def draw(seed: int) -> tuple[torch.Tensor, torch.Tensor]:
        torch.manual_seed(seed)
        maps = draw_pixel_maps(64, 32, 32, 4, True, torch.device("cpu"))
        return maps.rows, maps.cols

    assert all(torch.equal(a, b) for a, b in zip(draw(3), draw(3), strict=True))
    assert not torch.equal(draw(3)[1], draw(4)[1])
