"""Turn the train params' device, precision, layout and compile choices into what runs.

The defaults ('auto') are the fastest settings measured for each device that learn the same as
fp32 (figures in README's Performance section):
- CPU with AMX (Intel Sapphire Rapids and later): bf16 autocast + channels-last runs a training
  step about 2.5x faster than fp32 NCHW (bench/step_time.py); without AMX, bf16 is emulated and
  slower, so fp32.
- CUDA: bf16 autocast where the card supports it.
- torch.compile: slower than eager on the 2-core CPU at batch 32 (15.7 vs 9.6 ms a step), so
  'auto' leaves it off; 'on' turns it on for anyone who measures a gain on their device.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import torch

from convlab.params import ParamsError, TrainParams


@dataclass(frozen=True)
class Runtime:
    device: torch.device
    autocast_dtype: torch.dtype | None  # None: plain fp32
    channels_last: bool
    compile: bool

    @property
    def precision(self) -> str:
        return "bf16" if self.autocast_dtype == torch.bfloat16 else "fp32"

    def describe(self) -> str:
        layout = "channels-last" if self.channels_last else "NCHW"
        return f"{self.device} {self.precision} {layout}{' compiled' if self.compile else ''}"


@functools.cache
def cpu_has_amx_bf16() -> bool:
    """True where the CPU multiplies bf16 in hardware (AMX), read from Linux's CPU flags."""
    try:
        return "amx_bf16" in Path("/proc/cpuinfo").read_text().split()
    except OSError:
        return False


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ParamsError(f"train.device = {name!r} is not allowed: no CUDA device is available")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ParamsError(
                f"train.device = {name!r} is not allowed: only {torch.cuda.device_count()} CUDA "
                "device(s) are present"
            )
    return device


def resolve_precision(precision: str, device: torch.device) -> torch.dtype | None:
    if precision == "fp32":
        return None
    if precision == "bf16":
        return torch.bfloat16
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else None
    return torch.bfloat16 if cpu_has_amx_bf16() else None


def resolve_runtime(params: TrainParams) -> Runtime:
    device = resolve_device(params.device)
    return Runtime(
        device=device,
        autocast_dtype=resolve_precision(params.precision, device),
        channels_last=params.channels_last,
        compile=params.compile == "on",
    )
