"""Turn the train params' device, precision, layout and compile choices into what runs.

The defaults ('auto') are the fastest settings that learn the same as fp32, chosen from what the
hardware does natively and never from timings, so one machine always makes the same choice:
- CPU: bf16 autocast where the CPU multiplies bf16 in hardware (AMX or AVX512-BF16 on x86, the
  `bf16` feature on arm64), fp32 where bf16 would be emulated (slower than fp32). With
  channels-last, bf16 runs a training step 2.5x faster than fp32 NCHW on AMX (Sapphire Rapids) and
  1.8x on AVX512-BF16 (AMD Zen 4): bench/step_time.py, figures in README's Performance section.
- CUDA: bf16 autocast where the card supports it.
- torch.compile: slower than eager on the 2-core CPUs measured at batch 32 (15.7 vs 9.6 ms a step
  with AMX, 22.4 vs 17.5 ms on Zen 4), so 'auto' leaves it off; 'on' turns it on.
"""

from __future__ import annotations

import functools
import platform
from dataclasses import dataclass
from pathlib import Path

import torch

from convlab.params import ParamsError, TrainParams

# CPU feature flags (as Linux names them in /proc/cpuinfo) that mean bf16 dot products in
# hardware, with the name a person knows them by. x86 lists `flags`, arm64 `Features`.
_X86_BF16 = (("amx_bf16", "AMX"), ("avx512_bf16", "AVX512-BF16"))
_ARM64_BF16 = (("bf16", "Arm BF16"),)
_ARM64_MACHINES = ("aarch64", "arm64")


@dataclass(frozen=True)
class Runtime:
    device: torch.device
    autocast_dtype: torch.dtype | None  # None: plain fp32
    channels_last: bool
    compile: bool
    precision_reason: str = ""  # why this precision, in words, for logs and the run record

    @property
    def precision(self) -> str:
        return "bf16" if self.autocast_dtype == torch.bfloat16 else "fp32"

    def describe(self) -> str:
        layout = "channels-last" if self.channels_last else "NCHW"
        return f"{self.device} {self.precision} {layout}{' compiled' if self.compile else ''}"


def native_bf16_feature(cpuinfo: str, machine: str) -> str | None:
    """The CPU feature that multiplies bf16 in hardware, named, e.g. 'AMX (amx_bf16)'; None where
    the CPU has none and bf16 would be emulated. `cpuinfo` is /proc/cpuinfo's text, `machine`
    platform.machine()."""
    words: set[str] = set()
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip().lower() in ("flags", "features"):
            words.update(value.split())
    table = _ARM64_BF16 if machine.lower() in _ARM64_MACHINES else _X86_BF16
    for flag, name in table:
        if flag in words:
            return f"{name} ({flag})"
    return None


@functools.cache
def _this_cpu_bf16_feature() -> str | None:
    try:
        cpuinfo = Path("/proc/cpuinfo").read_text()
    except OSError:  # not Linux: no flags to read, so no claim of native bf16
        return None
    return native_bf16_feature(cpuinfo, platform.machine())


@functools.cache
def cpu_model() -> str:
    """The CPU's model name (for the figures a run prints), or the machine type if unknown."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() in ("model name", "Model", "CPU part") and value.strip():
                return value.strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def hardware(runtime: Runtime) -> str:
    """What runs the work, by name: the GPU's model or the CPU's."""
    if runtime.device.type == "cuda":
        return torch.cuda.get_device_name(runtime.device)
    return cpu_model()


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


def choose_precision(
    precision: str, device: torch.device, cpu_feature: str | None = None
) -> tuple[torch.dtype | None, str]:
    """The autocast dtype (None: fp32) for train.precision on `device`, and why, in words.
    `cpu_feature` is the CPU's native bf16 feature (native_bf16_feature), read for 'auto' on a CPU."""
    if precision == "fp32":
        return None, "train.precision = fp32"
    if precision == "bf16":
        return torch.bfloat16, "train.precision = bf16"
    if device.type == "cuda":
        if torch.cuda.is_bf16_supported():
            return torch.bfloat16, "auto: the CUDA device supports bf16"
        return None, "auto: the CUDA device has no bf16, so fp32"
    if cpu_feature is not None:
        return torch.bfloat16, f"auto: the CPU multiplies bf16 natively with {cpu_feature}"
    return None, "auto: the CPU has no native bf16 (no AMX, AVX512-BF16 or Arm BF16), so fp32"


def resolve_runtime(params: TrainParams) -> Runtime:
    device = resolve_device(params.device)
    feature = _this_cpu_bf16_feature() if device.type == "cpu" else None
    dtype, reason = choose_precision(params.precision, device, feature)
    return Runtime(
        device=device,
        autocast_dtype=dtype,
        channels_last=params.channels_last,
        compile=params.compile == "on",
        precision_reason=reason,
    )
