"""Which CPU kernels torch may use (train.cpu_kernels), set before torch loads.

PyTorch, oneDNN and MKL pick their kernels from the CPU at start: on a CPU with AVX-512 they round
sums otherwise than on one with AVX2 alone, so the same seed gives other numbers. Capped to AVX2,
every x86 CPU of the last decade runs the same kernels and repeats a run to the last digit (given
the precision and the thread count). The caps are environment variables each library reads once
when it loads, so a stage sets them before it imports torch; as a param, they are part of each
stage's key in dvc.lock and in DVC's run cache, which so never hands out a run of other kernels.
"""

from __future__ import annotations

import os
import sys

from convlab.errors import ConvlabError, fail

CAPS = {
    "avx2": {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2", "MKL_ENABLE_INSTRUCTIONS": "AVX2"},
    "native": {},  # each library picks the best its CPU has
}


def cap_cpu_kernels(setting: str) -> None:
    """Set (or, for 'native', clear) the caps; only before torch is imported can they act."""
    if "torch" in sys.modules:
        raise RuntimeError("cap_cpu_kernels() must run before torch is imported")
    for name in {name for caps in CAPS.values() for name in caps}:
        os.environ.pop(name, None)
    os.environ.update(CAPS[setting])


def cap_from_params(stage: str) -> None:
    """cap_cpu_kernels(train.cpu_kernels of params.yaml); a bad params.yaml is the stage's one line."""
    from convlab.params import load_params

    try:
        cap_cpu_kernels(load_params().train.cpu_kernels)
    except ConvlabError as err:
        fail(stage, str(err))
