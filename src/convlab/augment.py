"""Data augmentation of a training batch on the device: random crop and horizontal flip.

Whole-batch tensor ops, no per-image Python, drawn from torch's global RNG of the batch's device:
the seed fixes them, and train()'s resume state (which saves that RNG) continues them exactly.
"""

from __future__ import annotations

import torch
from torch.nn import functional as F


def random_crop(x: torch.Tensor, padding: int) -> torch.Tensor:
    """Each image of an (N, C, H, W) batch cropped back to H x W at a random offset from its
    reflect-padded copy, so the network sees it shifted by up to `padding` pixels either way."""
    if padding == 0:
        return x
    n, c, h, w = x.shape
    padded = F.pad(x, (padding, padding, padding, padding), mode="reflect")
    top = torch.randint(0, 2 * padding + 1, (n, 1), device=x.device)
    left = torch.randint(0, 2 * padding + 1, (n, 1), device=x.device)
    rows = top + torch.arange(h, device=x.device)  # (N, H)
    cols = left + torch.arange(w, device=x.device)  # (N, W)
    images = torch.arange(n, device=x.device).view(n, 1, 1, 1)
    channels = torch.arange(c, device=x.device).view(1, c, 1, 1)
    return padded[images, channels, rows.view(n, 1, h, 1), cols.view(n, 1, 1, w)]


def random_flip(x: torch.Tensor) -> torch.Tensor:
    """Each image of an (N, C, H, W) batch mirrored left-right with probability 1/2."""
    flip = torch.rand(len(x), device=x.device) < 0.5
    return torch.where(flip.view(-1, 1, 1, 1), x.flip(3), x)


def augment(
    x: torch.Tensor, crop_padding: int, flip: bool, memory_format: torch.memory_format
) -> torch.Tensor:
    """The batch with the augmentations a variant asks for, laid out in `memory_format`
    (the crop's gather returns a plain contiguous tensor)."""
    x = random_crop(x, crop_padding)
    if flip:
        x = random_flip(x)
    return x.contiguous(memory_format=memory_format)
