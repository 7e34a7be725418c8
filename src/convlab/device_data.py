"""A split held on the training device as one uint8 tensor; batches are index slices of it.

Keeping uint8 (a quarter of float32's size) lets the whole training set live in GPU memory;
converting and normalizing a batch is one fused multiply-add on the device, so no per-image
Python transform or DataLoader worker sits between the data and the model. An augmented batch
is gathered pixel by pixel from the uint8 images (augment.PixelMaps) before that conversion.
"""

from __future__ import annotations

import torch

from convlab.augment import PixelMaps
from convlab.data import Normalization, Split
from convlab.runtime import Runtime


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
