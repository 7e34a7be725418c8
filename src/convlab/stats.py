"""How much of a difference in accuracy is noise, from scipy.stats.

- The mean of n runs: the t interval (n - 1 degrees of freedom).
- Two recipes' means: Welch's t interval of the difference (unequal variances).
- Two settings run with the same seeds: the paired t interval and test of the seed-by-seed
  differences, and the exact sign-flip (permutation) test beside it, which assumes no normality;
  several comparisons at once: Holm's step-down adjustment (scipy has none; Holm 1979, below).
- Two models on the same test images: McNemar's exact test.
One run has no spread: its summary is the value alone, and a difference with it is not judged.
The train and evaluate stages average with the standard library's fmean and do not import this
module: the study's statistics can change without re-training it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from statistics import fmean

import numpy as np
from scipy import stats

CONFIDENCE = 0.95


def _within(low: float, high: float, bounds: tuple[float, float]) -> tuple[tuple[float, float], bool]:
    """The interval cut to what the quantity can be (an accuracy in [0, 1]), and whether it was."""
    cut = (max(low, bounds[0]), min(high, bounds[1]))
    return cut, cut != (low, high)


@dataclass(frozen=True)
class Summary:
    n: int
    mean: float
    std: float | None  # sample standard deviation; None for one run
    ci95: tuple[float, float] | None  # t interval of the mean, within bounds; None for one run
    clipped: bool = False  # the interval reached past the bounds and was cut back to them


def summarize(values: Sequence[float], bounds: tuple[float, float] = (0.0, 1.0)) -> Summary:
    n, average = len(values), fmean(values)
    if n == 1:
        return Summary(1, average, None, None)
    std = float(np.std(values, ddof=1))
    if std == 0:
        return Summary(n, average, 0.0, (average, average))
    low, high = stats.t.interval(CONFIDENCE, n - 1, loc=average, scale=std / math.sqrt(n))
    ci95, clipped = _within(float(low), float(high), bounds)
    return Summary(n, average, std, ci95, clipped)


@dataclass(frozen=True)
class Difference:
    diff: float  # mean of a - mean of b
    ci95: tuple[float, float] | None  # 95% interval; None when a side has one run
    p_value: float = math.nan
    clipped: bool = False

    @property
    def beyond_noise(self) -> bool:
        """The interval excludes zero: the runs' spread does not explain the gap."""
        return self.ci95 is not None and not self.ci95[0] <= 0 <= self.ci95[1]


def welch_difference(a: Sequence[float], b: Sequence[float]) -> Difference:
    """Difference of the means of two sets of runs, with Welch's t interval (within +-1)."""
    diff = fmean(a) - fmean(b)
    if len(a) < 2 or len(b) < 2:
        return Difference(diff, None)
    if np.var(a) == 0 and np.var(b) == 0:  # every run identical on both sides: the gap is exact
        return Difference(diff, (diff, diff), float(diff == 0))
    test = stats.ttest_ind(a, b, equal_var=False)
    ci95, clipped = _within(*map(float, test.confidence_interval(CONFIDENCE)), (-1.0, 1.0))
    return Difference(diff, ci95, float(test.pvalue), clipped)


def paired_difference(a: Sequence[float], b: Sequence[float]) -> Difference:
    """a[i] and b[i] measured in pairs (the same seed): the mean difference, its paired t interval
    and the paired t test's p."""
    diffs = np.asarray(a, float) - np.asarray(b, float)
    if len(diffs) < 2:
        return Difference(float(diffs.mean()), None)
    if np.all(diffs == diffs[0]):
        return Difference(float(diffs[0]), (float(diffs[0]),) * 2, float(diffs[0] == 0))  # type: ignore[arg-type]
    test = stats.ttest_rel(a, b)
    low, high = test.confidence_interval(CONFIDENCE)
    return Difference(float(diffs.mean()), (float(low), float(high)), float(test.pvalue))


def sign_flip_p(a: Sequence[float], b: Sequence[float]) -> float:
    """The exact two-sided paired permutation p: of the 2**n ways to flip the signs of the n
    seed-by-seed differences, the share whose mean is at least as far from 0 as the observed one.
    With n = 5 the smallest possible p is 2/32 = 0.0625."""
    diffs = np.asarray(a, float) - np.asarray(b, float)
    result = stats.permutation_test(
        (diffs,), np.mean, permutation_type="samples", n_resamples=math.inf, alternative="two-sided"
    )
    return float(result.pvalue)


def seeds_for_power(mean: float, sd: float, alpha: float, power: float = 0.8, most: int = 100) -> int | None:
    """The fewest paired seeds with which a two-sided paired t test at `alpha` finds a true mean
    difference `mean` with probability `power`, if seed-by-seed differences spread with standard
    deviation `sd` (noncentral t). Fed the measured mean and spread, it inherits their uncertainty.
    None: more than `most`, or no difference to find."""
    if mean == 0:
        return None
    if sd == 0:
        return 2
    for n in range(2, most + 1):
        shift, critical = abs(mean) / (sd / math.sqrt(n)), stats.t.ppf(1 - alpha / 2, n - 1)
        if stats.nct.sf(critical, n - 1, shift) + stats.nct.cdf(-critical, n - 1, shift) >= power:
            return n
    return None


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm's adjusted p-values, in the order given: the k-th smallest times (m - k + 1), each at
    least the one before it, at most 1."""
    m, adjusted, running = len(p_values), [0.0] * len(p_values), 0.0
    for rank, index in enumerate(sorted(range(m), key=lambda i: p_values[i])):
        running = max(running, min(1.0, (m - rank) * p_values[index]))
        adjusted[index] = running
    return adjusted


def binomial_standard_error(accuracy: float, n: int) -> float:
    """Standard error of an accuracy measured on n independent images."""
    return math.sqrt(max(accuracy * (1 - accuracy), 0.0) / n)


def mcnemar(correct_a: np.ndarray, correct_b: np.ndarray) -> tuple[int, int, float]:
    """Images only A gets right, only B gets right, and the exact two-sided binomial p on them."""
    only_a, only_b = int((correct_a & ~correct_b).sum()), int((~correct_a & correct_b).sum())
    if only_a + only_b == 0:
        return 0, 0, 1.0
    return only_a, only_b, float(stats.binomtest(only_a, only_a + only_b, 0.5).pvalue)
