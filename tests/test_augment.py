"""On-device augmentation: crops are true shifted windows, flips are true mirrors, both seeded."""

from __future__ import annotations

import pytest
import torch
from torch.nn import functional as F

from convlab.augment import augment, random_crop, random_flip


def batch(n: int = 64) -> torch.Tensor:
    return torch.randn(n, 3, 32, 32, generator=torch.Generator().manual_seed(1))


def test_every_crop_is_a_window_of_the_reflect_padded_image() -> None:
    x = batch()
    torch.manual_seed(0)
    out = random_crop(x, 4)
    assert out.shape == x.shape
    padded = F.pad(x, (4, 4, 4, 4), mode="reflect")
    offsets = set()
    for i in range(len(x)):
        found = [
            (top, left)
            for top in range(9)
            for left in range(9)
            if torch.equal(out[i], padded[i, :, top : top + 32, left : left + 32])
        ]
        assert found, f"image {i} is not a 32x32 window of its padded copy"
        offsets.add(found[0])
    assert len(offsets) > 20  # offsets vary from image to image (81 possible)


def test_flip_mirrors_about_half_of_the_images_and_leaves_the_rest() -> None:
    x = batch(400)
    torch.manual_seed(0)
    out = random_flip(x)
    mirrored = [torch.equal(o, i.flip(2)) for o, i in zip(out, x, strict=True)]
    kept = [torch.equal(o, i) for o, i in zip(out, x, strict=True)]
    assert all(m or k for m, k in zip(mirrored, kept, strict=True))
    assert 150 < sum(mirrored) < 250


def test_no_padding_is_no_crop() -> None:
    x = batch()
    assert random_crop(x, 0) is x


@pytest.mark.parametrize("memory_format", [torch.channels_last, torch.contiguous_format])
def test_augment_is_seeded_and_keeps_the_memory_format(memory_format: torch.memory_format) -> None:
    x = batch().contiguous(memory_format=memory_format)
    outs = []
    for _ in range(2):
        torch.manual_seed(3)
        outs.append(augment(x, 4, True, memory_format))
    assert torch.equal(outs[0], outs[1])
    assert outs[0].is_contiguous(memory_format=memory_format)
    torch.manual_seed(4)
    assert not torch.equal(augment(x, 4, True, memory_format), outs[0])
