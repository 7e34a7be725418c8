"""How much of a difference in accuracy is noise: standard errors, confidence intervals, McNemar.

No SciPy: the few distributions needed are small enough to write down and test on known values.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

# Two-sided 95% quantiles of Student's t, t(0.975; df) for df = 1..30.
_T975 = (
    12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228,
    2.201, 2.179, 2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086,
    2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042,
)  # fmt: skip
_Z975 = 1.959964


def t975(df: int) -> float:
    """t(0.975; df): the table up to 30, then the Cornish-Fisher expansion (error < 0.001)."""
    if df < 1:
        raise ValueError(f"degrees of freedom must be >= 1, got {df}")
    if df <= len(_T975):
        return _T975[df - 1]
    z = _Z975
    return z + (z**3 + z) / (4 * df) + (5 * z**5 + 16 * z**3 + 3 * z) / (96 * df**2)


@dataclass(frozen=True)
class Summary:
    n: int
    mean: float
    std: float  # sample standard deviation (n - 1); 0 for a single value
    ci95: tuple[float, float]  # mean +- t * std / sqrt(n), within bounds; the mean for one value
    clipped: bool = False  # the t interval reached past the bounds and was cut back to them


def _within(low: float, high: float, bounds: tuple[float, float] | None) -> tuple[tuple[float, float], bool]:
    """The interval cut to `bounds` (what the quantity can be at all), and whether it had to be.

    The t interval is symmetric around the mean and, with few runs and a wide spread, can reach
    impossible values (an accuracy below 0%); no value outside the bounds is plausible, so cutting
    the interval there keeps every value it excludes excluded and claims nothing new."""
    if bounds is None:
        return (low, high), False
    cut = (max(low, bounds[0]), min(high, bounds[1]))
    return cut, cut != (low, high)


def summarize(values: Sequence[float], bounds: tuple[float, float] | None = None) -> Summary:
    """Mean, sample standard deviation and 95% confidence interval of repeated measurements;
    `bounds` (e.g. (0, 1) for an accuracy) keeps the interval within what the quantity can be."""
    if not values:
        raise ValueError("no values to summarize")
    n = len(values)
    mean = math.fsum(values) / n
    if n == 1:
        return Summary(1, mean, 0.0, (mean, mean))
    std = math.sqrt(math.fsum((v - mean) ** 2 for v in values) / (n - 1))
    half = t975(n - 1) * std / math.sqrt(n)
    ci95, clipped = _within(mean - half, mean + half, bounds)
    return Summary(n, mean, std, ci95, clipped)


ACCURACY_BOUNDS = (0.0, 1.0)


def summary_metrics(
    name: str, values: Sequence[float], bounds: tuple[float, float] | None = ACCURACY_BOUNDS
) -> dict[str, float]:
    """Metrics for repeated runs: {name: mean} and, from two runs on, the spread as
    name_std and the 95% confidence interval of the mean as name_ci95_low / name_ci95_high
    (within `bounds`: by default an accuracy's [0, 1]).
    One run has no spread to report, so it gets the value alone rather than a zero-width interval."""
    summary = summarize(values, bounds)
    metrics = {name: summary.mean}
    if summary.n > 1:
        metrics |= {
            f"{name}_std": summary.std,
            f"{name}_ci95_low": summary.ci95[0],
            f"{name}_ci95_high": summary.ci95[1],
        }
    return metrics


@dataclass(frozen=True)
class Difference:
    diff: float  # mean of a - mean of b
    ci95: tuple[float, float]  # 95% confidence interval of diff, within its bounds
    df: float  # Welch-Satterthwaite degrees of freedom
    clipped: bool = False  # the interval was cut back to the bounds

    @property
    def beyond_noise(self) -> bool:
        """True when the interval excludes zero: the runs' spread does not explain the gap."""
        return not self.ci95[0] <= 0 <= self.ci95[1]


def welch_difference(
    a: Sequence[float], b: Sequence[float], bounds: tuple[float, float] | None = (-1.0, 1.0)
) -> Difference:
    """Difference of the means of two sets of repeated runs with Welch's t interval (unequal
    variances), within `bounds` (by default those of a difference of two accuracies). The t
    quantile is taken at the degrees of freedom rounded down, which widens the interval
    slightly: conservative."""
    if len(a) < 2 or len(b) < 2:
        raise ValueError(f"a difference of means needs two or more runs per side, got {len(a)} and {len(b)}")
    sa, sb = summarize(a), summarize(b)
    diff = sa.mean - sb.mean
    va, vb = sa.std**2 / sa.n, sb.std**2 / sb.n
    se = math.sqrt(va + vb)
    if se == 0:  # every run identical on both sides: no spread, the difference is exact
        return Difference(diff, (diff, diff), math.inf)
    df = (va + vb) ** 2 / (va**2 / (sa.n - 1) + vb**2 / (sb.n - 1))
    half = t975(max(1, math.floor(df))) * se
    ci95, clipped = _within(diff - half, diff + half, bounds)
    return Difference(diff, ci95, df, clipped)


def binomial_standard_error(accuracy: float, n: int) -> float:
    """Standard error of an accuracy measured on n independent images."""
    return math.sqrt(max(accuracy * (1 - accuracy), 0.0) / n)


@dataclass(frozen=True)
class McNemar:
    only_a: int  # images model A gets right and model B wrong
    only_b: int  # images model B gets right and model A wrong
    p_value: float  # exact two-sided binomial test on the discordant images


def mcnemar(correct_a: np.ndarray, correct_b: np.ndarray) -> McNemar:
    """Paired test of two models on the same images: is the difference more than chance?

    Only the images on which the two disagree carry information; under "equally good" each of
    them is equally likely to favour either model.
    """
    a, b = np.asarray(correct_a, bool), np.asarray(correct_b, bool)
    if a.shape != b.shape:
        raise ValueError(f"the two models were scored on different images: {a.shape} vs {b.shape}")
    only_a, only_b = int((a & ~b).sum()), int((~a & b).sum())
    n, k = only_a + only_b, min(only_a, only_b)
    if n == 0:
        return McNemar(0, 0, 1.0)
    # P(X <= k) for X ~ Binomial(n, 1/2), summed in log space so large n cannot overflow.
    log_terms = [
        math.lgamma(n + 1) - math.lgamma(i + 1) - math.lgamma(n - i + 1) - n * math.log(2)
        for i in range(k + 1)
    ]
    top = max(log_terms)
    tail = math.exp(top) * math.fsum(math.exp(t - top) for t in log_terms)
    return McNemar(only_a, only_b, min(1.0, 2 * tail))
