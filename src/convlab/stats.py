"""How much of a difference in accuracy is noise: intervals of means and of differences, and a
paired test of two models, all from scipy.stats.

- The mean of n runs: the t interval (n - 1 degrees of freedom).
- The difference of two recipes' means: Welch's t interval (unequal variances), the quantile taken
  at the Welch-Satterthwaite degrees of freedom as they are (a fraction, not rounded).
- Two models on the same test images: McNemar's exact test (a two-sided binomial test on the
  images exactly one of them gets right).
- Two settings run with the same seeds: the paired t interval and test of the seed-by-seed
  differences; several such comparisons at once: Holm's step-down adjustment of their p-values
  (scipy has none; written out below, as Holm (1979) defines it).
One run has no spread: its summary is the value alone, and a difference with it is not judged.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

# scipy.stats is imported where an interval or a test needs it, not here: the train and evaluate
# stages need only a mean, and the import adds over a second to each stage's start.

ACCURACY_BOUNDS = (0.0, 1.0)
DIFFERENCE_BOUNDS = (-1.0, 1.0)  # of two accuracies
CONFIDENCE = 0.95


@dataclass(frozen=True)
class Summary:
    n: int
    mean: float
    std: float | None  # sample standard deviation (n - 1); None for one run
    ci95: tuple[float, float] | None  # t interval of the mean, within bounds; None for one run
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


def mean(values: Sequence[float]) -> float:
    """The mean of repeated measurements (the number the metrics files hold)."""
    if not values:
        raise ValueError("no values to summarize")
    return math.fsum(values) / len(values)


def summarize(values: Sequence[float], bounds: tuple[float, float] | None = None) -> Summary:
    """Mean, sample standard deviation and 95% confidence interval of repeated measurements;
    `bounds` (e.g. (0, 1) for an accuracy) keeps the interval within what the quantity can be."""
    from scipy import stats

    n, average = len(values), mean(values)
    if n == 1:
        return Summary(1, average, None, None)
    std = float(np.std(values, ddof=1))
    if std == 0:  # every run the same: the interval is the value itself
        return Summary(n, average, 0.0, (average, average))
    low, high = stats.t.interval(CONFIDENCE, n - 1, loc=average, scale=std / math.sqrt(n))
    ci95, clipped = _within(float(low), float(high), bounds)
    return Summary(n, average, std, ci95, clipped)


@dataclass(frozen=True)
class Difference:
    diff: float  # mean of a - mean of b
    ci95: tuple[float, float] | None  # Welch's 95% interval, within bounds; None with one run a side
    df: float  # Welch-Satterthwaite degrees of freedom (inf when neither side varies)
    clipped: bool = False  # the interval was cut back to the bounds

    @property
    def judged(self) -> bool:
        """Whether the runs' spread could be measured on both sides (two or more runs each)."""
        return self.ci95 is not None

    @property
    def beyond_noise(self) -> bool:
        """True when the interval excludes zero: the runs' spread does not explain the gap."""
        return self.ci95 is not None and not self.ci95[0] <= 0 <= self.ci95[1]


def welch_difference(
    a: Sequence[float], b: Sequence[float], bounds: tuple[float, float] | None = DIFFERENCE_BOUNDS
) -> Difference:
    """Difference of the means of two sets of repeated runs with Welch's t interval, within
    `bounds` (by default those of a difference of two accuracies)."""
    from scipy import stats

    diff = mean(a) - mean(b)
    if len(a) < 2 or len(b) < 2:
        return Difference(diff, None, math.nan)
    if np.var(a) == 0 and np.var(b) == 0:  # every run identical on both sides: the gap is exact
        return Difference(diff, (diff, diff), math.inf)
    test = stats.ttest_ind(a, b, equal_var=False)
    low, high = test.confidence_interval(CONFIDENCE)
    ci95, clipped = _within(float(low), float(high), bounds)
    return Difference(diff, ci95, float(test.df), clipped)


def binomial_standard_error(accuracy: float, n: int) -> float:
    """Standard error of an accuracy measured on n independent images."""
    return math.sqrt(max(accuracy * (1 - accuracy), 0.0) / n)


@dataclass(frozen=True)
class McNemar:
    only_a: int  # images model A gets right and model B wrong
    only_b: int  # images model B gets right and model A wrong
    p_value: float  # exact two-sided binomial test on the discordant images


def mcnemar(correct_a: np.ndarray, correct_b: np.ndarray) -> McNemar:
    """Paired test of two models on the same images: is the difference more than chance? Only the
    images on which the two disagree carry information; under "equally good" each of them is
    equally likely to favour either model."""
    from scipy import stats

    a, b = np.asarray(correct_a, bool), np.asarray(correct_b, bool)
    if a.shape != b.shape:
        raise ValueError(f"the two models were scored on different images: {a.shape} vs {b.shape}")
    only_a, only_b = int((a & ~b).sum()), int((~a & b).sum())
    if only_a + only_b == 0:
        return McNemar(0, 0, 1.0)
    return McNemar(only_a, only_b, float(stats.binomtest(only_a, only_a + only_b, 0.5).pvalue))


@dataclass(frozen=True)
class Paired:
    n: int
    diff: float  # mean of a[i] - b[i]
    ci95: tuple[float, float]  # paired t interval of the mean difference
    p_value: float  # two-sided paired t test of "no difference"


def paired_difference(a: Sequence[float], b: Sequence[float]) -> Paired:
    """a and b measured in pairs (the same seed): the mean of the differences, its t interval and
    the paired t test's p-value. Identical pairs differ by exactly their difference (p 0 or 1)."""
    from scipy import stats

    if len(a) != len(b) or len(a) < 2:
        raise ValueError(f"a paired difference needs two or more pairs, got {len(a)} and {len(b)} values")
    diffs = np.asarray(a, float) - np.asarray(b, float)
    average = float(diffs.mean())
    if np.all(diffs == diffs[0]):  # no spread: the difference is exact
        return Paired(len(diffs), average, (average, average), 1.0 if average == 0 else 0.0)
    test = stats.ttest_rel(a, b)
    low, high = test.confidence_interval(CONFIDENCE)
    return Paired(len(diffs), average, (float(low), float(high)), float(test.pvalue))


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm's adjusted p-values, in the order given: the k-th smallest p times (m - k + 1), each at
    least its predecessor's, at most 1. Rejecting where the adjusted p < alpha keeps the chance of
    any false rejection among all m comparisons below alpha."""
    m = len(p_values)
    adjusted = [0.0] * m
    running = 0.0
    for rank, index in enumerate(sorted(range(m), key=lambda i: p_values[i])):
        running = max(running, min(1.0, (m - rank) * p_values[index]))
        adjusted[index] = running
    return adjusted
