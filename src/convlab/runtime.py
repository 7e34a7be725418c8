"""Turn the train params' device, precision, layout and compile choices into what runs.

precision 'auto' is the fastest setting that learns the same as fp32, chosen from what the hardware
does natively and never from timings, so one machine always makes the same choice: bf16 autocast
on CUDA cards that support it and on CPUs that multiply bf16 in hardware (AMX or AVX512-BF16 on
x86, the `bf16` feature on arm64), fp32 where bf16 would be emulated (slower than fp32).
torch.compile is off unless asked for ('on'): at batch 32 on the 2-core CPUs measured it was slower
than eager (bench/README.md).
"""

from __future__ import annotations

import functools
import platform
from dataclasses import dataclass
from pathlib import Path

import torch

from convlab.params import ParamsError, TrainParams

# CPU feature flags (as /proc/cpuinfo names them) that mean bf16 arithmetic in hardware.
_NATIVE_BF16 = {"x86": (("amx_bf16", "AMX"), ("avx512_bf16", "AVX512-BF16")), "arm": (("bf16", "Arm BF16"),)}


@dataclass(frozen=True)
class Runtime:
    device: torch.device
    autocast_dtype: torch.dtype | None  # None: plain fp32
    channels_last: bool
    compile: bool
    precision_reason: str = ""  # why this precision, in words, for logs and the run's record

    @property
    def precision(self) -> str:
        return "bf16" if self.autocast_dtype == torch.bfloat16 else "fp32"

    def describe(self) -> str:
        layout = "channels-last" if self.channels_last else "NCHW"
        return f"{self.device} {self.precision} {layout}{' compiled' if self.compile else ''}"


@functools.cache
def _cpuinfo() -> str:
    try:
        return Path("/proc/cpuinfo").read_text()
    except OSError:  # not Linux: no flags to read, so no claim of native bf16
        return ""


def native_bf16_feature(cpuinfo: str, machine: str) -> str | None:
    """The CPU feature that multiplies bf16 in hardware, e.g. 'AMX (amx_bf16)', or None."""
    words = {
        word
        for line in cpuinfo.splitlines()
        if line.partition(":")[0].strip().lower() in ("flags", "features")
        for word in line.partition(":")[2].split()
    }
    family = "arm" if machine.lower() in ("aarch64", "arm64") else "x86"
    return next((f"{name} ({flag})" for flag, name in _NATIVE_BF16[family] if flag in words), None)


def cpu_model() -> str:
    """The CPU's model name, or the machine type where /proc/cpuinfo does not say."""
    for line in _cpuinfo().splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("model name", "Model") and value.strip():
            return value.strip()
    return platform.processor() or platform.machine() or "unknown CPU"


def hardware(runtime: Runtime) -> str:
    if runtime.device.type == "cuda":
        return torch.cuda.get_device_name(runtime.device)
    return cpu_model()


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and (device.index or 0) >= torch.cuda.device_count():
        raise ParamsError(
            f"train.device = {name!r} is not allowed: there are {torch.cuda.device_count()} CUDA devices here"
        )
    return device


def choose_precision(
    precision: str, device: torch.device, cpu_feature: str | None
) -> tuple[torch.dtype | None, str]:
    """The autocast dtype (None: fp32) for train.precision on `device`, and why, in words."""
    if precision != "auto":
        return (torch.bfloat16 if precision == "bf16" else None), f"train.precision = {precision}"
    if device.type == "cuda":
        if torch.cuda.is_bf16_supported():
            return torch.bfloat16, "auto: the CUDA device supports bf16"
        return None, "auto: the CUDA device has no bf16, so fp32"
    if cpu_feature is not None:
        return torch.bfloat16, f"auto: the CPU multiplies bf16 natively with {cpu_feature}"
    return None, "auto: the CPU has no native bf16 (no AMX, AVX512-BF16 or Arm BF16), so fp32"


def resolve_runtime(params: TrainParams) -> Runtime:
    device = resolve_device(params.device)
    feature = native_bf16_feature(_cpuinfo(), platform.machine()) if device.type == "cpu" else None
    dtype, reason = choose_precision(params.precision, device, feature)
    return Runtime(device, dtype, params.channels_last, params.compile == "on", reason)
