"""Training batches on the device: a split held there as one uint8 tensor, batches as index
slices of it, and augmentation drawn as maps of source pixels.

Keeping uint8 (a quarter of float32's size) lets the whole training set live in GPU memory;
converting and normalizing a batch is one fused multiply-add on the device, so no per-image
Python transform or DataLoader worker sits between the data and the model.

Augmentation: a crop of the image reflect-padded by `padding` pixels, and a left-right mirror,
only move pixels: each output pixel is some pixel of the stored image. So the draws become, per
image, the source row of every output row and the source column of every output column (the
padding's reflection and the mirror folded in), and the batch is gathered once from the stored
uint8 images with them. No padded copy, no float image is moved: one small gather instead of a
pad, a gather and a flip of the float batch. Drawn from torch's global RNG of the data's device,
in a fixed order (rows' offsets, columns' offsets, then flips), so the seed fixes them and a
resumed run continues them exactly.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from convlab.data import Normalization, Split
from convlab.runtime import Runtime


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
    reflect-padded copy) and, when `flip`, mirrored left-right with probability 1/2. The padding
    is less than the image's side (params.MAX_CROP_PADDING)."""
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


class DeviceImages:
    def __init__(self, split: Split, norm: Normalization, runtime: Runtime) -> None:
        device = runtime.device
        self.x = torch.from_numpy(split.x).to(device)
        self.y = torch.from_numpy(split.y).to(device=device, dtype=torch.long)
        std = torch.tensor(norm.std, dtype=torch.float32, device=device).view(1, 3, 1, 1)
        mean = torch.tensor(norm.mean, dtype=torch.float32, device=device).view(1, 3, 1, 1)
        # (x / 255 - mean) / std  ==  x * scale + shift
        self.scale = 1.0 / (255.0 * std)
        self.shift = -mean / std
        self.memory_format = torch.channels_last if runtime.channels_last else torch.contiguous_format

    def __len__(self) -> int:
        return len(self.y)

    @property
    def image_size(self) -> tuple[int, int]:
        return self.x.shape[2], self.x.shape[3]

    def batch(
        self, index: torch.Tensor | slice, maps: PixelMaps | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Images (normalized floats in the training layout) and labels of `index`; with `maps`,
        output pixel (i, c, r, w) is stored pixel (index[i], c, maps.rows[i, r], maps.cols[i, w])."""
        pixels = self.x[index] if maps is None else self._gather(index, maps)
        images = torch.addcmul(self.shift, pixels.float(), self.scale)
        return images.contiguous(memory_format=self.memory_format), self.y[index]

    def _gather(self, index: torch.Tensor | slice, maps: PixelMaps) -> torch.Tensor:
        if isinstance(index, slice):
            index = torch.arange(len(self.y), device=self.x.device)[index]
        _, channels, height, width = self.x.shape
        n = len(index)
        # Flat offsets into the stored images, built in the training layout's memory order
        # (N, H, W, C for channels-last) so the gathered batch needs no reordering after.
        image = (index * (channels * height * width)).view(n, 1, 1, 1)
        row = (maps.rows * width).view(n, height, 1, 1)
        col = maps.cols.view(n, 1, width, 1)
        channel = (torch.arange(channels, device=self.x.device) * (height * width)).view(1, 1, 1, channels)
        if self.memory_format == torch.channels_last:
            return self.x.take(image + row + col + channel).permute(0, 3, 1, 2)
        return self.x.take((image + row + col + channel).permute(0, 3, 1, 2))
