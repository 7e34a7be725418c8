"""Data augmentation of a training batch: random crop and horizontal flip, drawn as pixel maps.

A crop of the image reflect-padded by `padding` pixels, and a left-right mirror, only move
pixels: each output pixel is some pixel of the stored image. So the draws here become, per image,
the source row of every output row and the source column of every output column (the padding's
reflection and the mirror folded in), and the batch is gathered once from the stored uint8
images with them (DeviceImages.batch). No padded copy, no float image is moved, and it costs
one small gather instead of a pad, a gather and a flip of the float batch.

Drawn from torch's global RNG of the data's device, in the same order as before (rows' offsets,
columns' offsets, then flips), so the seed fixes them and a resumed run continues them exactly.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class PixelMaps:
    """For each image of a batch, the source row of each output row (N, H) and the source column
    of each output column (N, W), indices into the stored H x W image."""

    rows: torch.Tensor
    cols: torch.Tensor


def reflect(index: torch.Tensor, size: int) -> torch.Tensor:
    """Positions of a reflect-padded axis (may run past 0 or size - 1) mapped back into the axis
    the way F.pad(mode='reflect') fills the padding: -1 -> 1, size -> size - 2."""
    index = index.abs()
    return torch.where(index > size - 1, 2 * (size - 1) - index, index)


def draw_pixel_maps(
    n: int, height: int, width: int, padding: int, flip: bool, device: torch.device
) -> PixelMaps:
    """Each image shifted uniformly by -padding..padding pixels in each direction (a window of its
    reflect-padded copy) and, when `flip`, mirrored left-right with probability 1/2."""
    if padding >= min(height, width):
        raise ValueError(f"reflect padding of {padding} needs images larger than {height}x{width}")
    rows = torch.arange(height, device=device).expand(n, height)
    cols = torch.arange(width, device=device).expand(n, width)
    if padding:
        top = torch.randint(0, 2 * padding + 1, (n, 1), device=device)
        left = torch.randint(0, 2 * padding + 1, (n, 1), device=device)
        rows = reflect(rows + top - padding, height)
        cols = reflect(cols + left - padding, width)
    if flip:
        mirrored = torch.rand(n, device=device) < 0.5
        cols = torch.where(mirrored.view(n, 1), cols.flip(1), cols)
    return PixelMaps(rows, cols)
