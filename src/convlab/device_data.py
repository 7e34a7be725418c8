"""A split held on the training device as one uint8 tensor; batches are index slices of it.

Keeping uint8 (a quarter of float32's size) lets the whole training set live in GPU memory;
converting and normalizing a batch is one fused multiply-add on the device, so no per-image
Python transform or DataLoader worker sits between the data and the model.
"""

from __future__ import annotations

import torch

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

    def batch(self, index: torch.Tensor | slice) -> tuple[torch.Tensor, torch.Tensor]:
        images = torch.addcmul(self.shift, self.x[index].float(), self.scale)
        return images.contiguous(memory_format=self.memory_format), self.y[index]
