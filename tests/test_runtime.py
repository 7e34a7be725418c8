"""train.precision 'auto' takes bf16 exactly where the CPU multiplies bf16 in hardware, from the
CPU's feature flags (never from timings), and says why; explicit choices are obeyed."""

from __future__ import annotations

import pytest
import torch

from convlab.runtime import choose_precision, native_bf16_feature

# Abridged /proc/cpuinfo texts of each family, flags as Linux prints them.
SAPPHIRE_RAPIDS = """processor\t: 0
vendor_id\t: GenuineIntel
model name\t: Intel(R) Xeon(R) Platinum 8481C CPU @ 2.70GHz
flags\t\t: fpu vme sse sse2 avx avx2 avx512f avx512_bf16 avx512_fp16 amx_bf16 amx_tile amx_int8
"""
ZEN4 = """processor\t: 0
vendor_id\t: AuthenticAMD
model name\t: AMD EPYC 9R14 96-Core Processor
flags\t\t: fpu vme sse sse2 avx avx2 avx512f avx512bw avx512_bf16 avx512_vnni
"""
SKYLAKE = """processor\t: 0
vendor_id\t: GenuineIntel
model name\t: Intel(R) Xeon(R) Gold 6148 CPU @ 2.40GHz
flags\t\t: fpu vme sse sse2 avx avx2 avx512f avx512bw avx512_vnni
"""
GRAVITON3 = """processor\t: 0
BogoMIPS\t: 2100.00
Features\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm \
jscvt fcma lrcpc dcpop sha3 sm3 sm4 asimddp sha512 sve asimdfhm dit uscat ilrcpc flagm ssbs \
paca pacg dcpodp svei8mm svebf16 i8mm bf16 dgh rng
CPU implementer\t: 0x41
"""
GRAVITON2 = """processor\t: 0
BogoMIPS\t: 243.75
Features\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm \
lrcpc dcpop asimddp ssbs
CPU implementer\t: 0x41
"""


@pytest.mark.parametrize(
    ("cpuinfo", "machine", "feature"),
    [
        (SAPPHIRE_RAPIDS, "x86_64", "AMX (amx_bf16)"),
        (ZEN4, "x86_64", "AVX512-BF16 (avx512_bf16)"),
        (SKYLAKE, "x86_64", None),
        (GRAVITON3, "aarch64", "Arm BF16 (bf16)"),
        (GRAVITON2, "aarch64", None),
        ("", "x86_64", None),
    ],
    ids=["amx", "avx512-bf16-only", "neither", "arm64-bf16", "arm64-no-bf16", "unreadable"],
)
def test_native_bf16_is_read_from_the_cpu_flags(cpuinfo: str, machine: str, feature: str | None) -> None:
    assert native_bf16_feature(cpuinfo, machine) == feature


def test_flags_are_whole_words_of_the_right_architecture() -> None:
    # 'svebf16' alone is not the bf16 feature; an arm64 flag on x86 (or the reverse) is ignored.
    assert native_bf16_feature("Features\t: fp asimd svebf16\n", "aarch64") is None
    assert native_bf16_feature("flags\t: fpu bf16\n", "x86_64") is None
    assert native_bf16_feature("Features\t: fp amx_bf16\n", "aarch64") is None


@pytest.mark.parametrize(
    ("feature", "dtype", "why"),
    [
        ("AMX (amx_bf16)", torch.bfloat16, "natively with AMX"),
        ("AVX512-BF16 (avx512_bf16)", torch.bfloat16, "natively with AVX512-BF16"),
        (None, None, "no native bf16"),
    ],
)
def test_auto_on_the_cpu_follows_the_feature(
    feature: str | None, dtype: torch.dtype | None, why: str
) -> None:
    chosen, reason = choose_precision("auto", torch.device("cpu"), feature)
    assert chosen == dtype and why in reason


@pytest.mark.parametrize("feature", [None, "AMX (amx_bf16)"])
def test_explicit_precision_is_obeyed(feature: str | None) -> None:
    cpu = torch.device("cpu")
    assert choose_precision("fp32", cpu, feature) == (None, "train.precision = fp32")
    assert choose_precision("bf16", cpu, feature) == (torch.bfloat16, "train.precision = bf16")
