"""Dropout whose masks cost little on the CPU, with nn.Dropout's distribution and rounding.

Every element is kept with probability 1 - p, independently, and scaled by 1 / (1 - p), as in
nn.Dropout. On the CPU torch draws each mask element from its Mersenne Twister one at a time
(about 4 ns an element, serially) and converts a boolean mask without vectorizing: for the
study's three dropout layers that made an epoch about 30% slower. Here:

- One draw from torch's global generator seeds a PCG64 stream (numpy), so torch's generator stays
  the only state: the seed fixes the masks, and a resumed run (which restores that generator)
  continues them exactly.
- An element is kept when a uniform 32-bit number u is below k = round((1 - p) * 2**32), so the
  keep probability is exact to 2**-33 (torch's own float draws resolve 2**-24). u < k is decided
  by u's top byte alone except when that byte equals k's (1 element in 256): only those elements
  draw the 24 low bits. So a mask costs 8 random bits an element, not 32, for the same law.
- The 0 / 1 (or 0 / scale) mask is written in the tensor's own dtype and memory layout.

On CUDA, torch's fused dropout (counter-based Philox, on the device) is already cheap: used as is.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

_SEED_BOUND = 2**63 - 1  # numpy's SeedSequence takes any non-negative int; torch draws int64
_LOW_BITS = 24  # u = top byte * 2**24 + low 24 bits
_LOW_MASK = (1 << _LOW_BITS) - 1
# numpy integer type of each element size, to write a float's bit pattern without a float cast
_SAME_SIZE_INT = {2: (np.int16, torch.int16), 4: (np.int32, torch.int32), 8: (np.int64, torch.int64)}


def keep_threshold(p: float) -> int:
    """Uniform 32-bit values below this are kept: a share of (1 - p) of all 2**32 values."""
    return round((1.0 - p) * 2**32)


def draw_keep_mask(shape: tuple[int, ...], p: float) -> np.ndarray:
    """A boolean mask of `shape` (C order), each element True with probability 1 - p,
    independently, from a PCG64 stream seeded by one draw of torch's global CPU generator."""
    n = int(np.prod(shape))
    seed = int(torch.randint(0, _SEED_BOUND, (), dtype=torch.int64))
    stream = np.random.PCG64(seed)
    top = stream.random_raw((n + 7) // 8).view(np.uint8)[:n]  # 8 top bits per element
    high, low = divmod(keep_threshold(p), 1 << _LOW_BITS)
    keep = top < high
    if low:
        ties = np.flatnonzero(top == high)  # u < k is decided by the low bits here
        if ties.size:
            low_bits = stream.random_raw(ties.size) & _LOW_MASK
            keep[ties[low_bits < low]] = True
    return keep.reshape(shape)


def _mask_tensor(keep: np.ndarray, value: float, like: torch.Tensor) -> torch.Tensor:
    """`keep` as a tensor of like's dtype, `value` where True and 0 elsewhere, laid out in like's
    memory order (channels-last stays channels-last), so the multiply is one dense pass."""
    dtype = like.dtype
    sizes = _SAME_SIZE_INT.get(torch.empty((), dtype=dtype).element_size())
    if sizes is not None and dtype.is_floating_point:
        numpy_int, torch_int = sizes
        pattern = torch.tensor(value, dtype=dtype).view(torch_int).item()  # positive: fits
        flat = torch.from_numpy(np.multiply(keep.reshape(-1), numpy_int(pattern), dtype=numpy_int))
        values = flat.view(dtype)
    else:
        values = torch.from_numpy(keep.reshape(-1).view(np.uint8)).to(dtype) * value
    if like.dim() == 4 and not like.is_contiguous() and like.is_contiguous(memory_format=torch.channels_last):
        # The elements are iid: drawing them in NHWC order is the same law, in like's layout.
        return values.as_strided(like.shape, like.stride())
    return values.view(like.shape)


def dropout(x: torch.Tensor, p: float, training: bool) -> torch.Tensor:
    """F.dropout(x, p, training), with a cheap mask on the CPU."""
    if not training or p == 0.0:
        return x
    if x.device.type != "cpu":
        return F.dropout(x, p, training=True)
    scale = 1.0 / (1.0 - p)
    keep = draw_keep_mask(tuple(x.shape), p)
    # torch's dropout computes x * scale in fp32 and rounds once to x's dtype. A mask holding the
    # scale does the same where x's dtype holds fp32's scale exactly (fp32 itself; 2.0 or 1.25 in
    # bf16); otherwise (1 / 0.9 in bf16) multiply by 0 / 1, then by the scale.
    if torch.tensor(scale, dtype=x.dtype).float() == torch.tensor(scale, dtype=torch.float32):
        return x * _mask_tensor(keep, scale, x)
    return (x * _mask_tensor(keep, 1.0, x)).mul_(scale)


class Dropout(nn.Module):
    """nn.Dropout's behaviour (drop in training, identity in eval) with dropout() above."""

    def __init__(self, p: float) -> None:
        super().__init__()
        self.p = p  # in [0, 1): params.py checks the rates

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return dropout(x, self.p, self.training)

    def extra_repr(self) -> str:
        return f"p={self.p}"
