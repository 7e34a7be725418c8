"""Noise statistics (scipy.stats underneath) on known numbers from published tables."""

from __future__ import annotations

import math

import numpy as np
import pytest

from convlab.stats import binomial_standard_error, mcnemar, summarize, welch_difference

# Published two-sided 95% quantiles of Student's t (any statistics table).
T975 = {2: 4.303, 4: 2.776}


def test_summary_of_five_values() -> None:
    s = summarize([1.0, 2.0, 3.0, 4.0, 5.0])
    assert s.n == 5 and s.mean == 3.0
    assert s.std == pytest.approx(math.sqrt(2.5))
    half = T975[4] * math.sqrt(2.5) / math.sqrt(5)  # 1.963
    assert s.ci95 == pytest.approx((3.0 - half, 3.0 + half), abs=1e-3)


def test_summary_of_one_value_has_no_spread() -> None:
    one = summarize([0.74])
    assert (one.n, one.mean, one.std, one.ci95) == (1, 0.74, None, None)
    with pytest.raises(ValueError):
        summarize([])


def test_summary_of_three_runs() -> None:
    # Three seeds' accuracies 70, 72, 74%: std 2 points, t(0.975; 2) = 4.303.
    s = summarize([0.70, 0.72, 0.74], (0.0, 1.0))
    half = T975[2] * 0.02 / math.sqrt(3)  # 4.97 points
    assert (s.mean, s.std) == pytest.approx((0.72, 0.02))
    assert s.ci95 == pytest.approx((0.72 - half, 0.72 + half), abs=1e-4)


def test_welch_difference_with_unequal_spreads() -> None:
    # Means 3 and 6, variances 2.5 and 10: se = sqrt(0.5 + 2) = 1.581, Welch df = 6.25 / 1.0625
    # = 5.882, t(0.975; 5.882) = 2.4588 (the quantile at the fractional df, not at 5, whose 2.571
    # is wider): interval -3 +- 3.888, which holds zero.
    d = welch_difference([1, 2, 3, 4, 5], [2, 4, 6, 8, 10], bounds=None)
    assert d.diff == -3.0
    assert d.df == pytest.approx(5.882, abs=1e-3)
    assert d.ci95 == pytest.approx((-3 - 2.4588 * math.sqrt(2.5), -3 + 2.4588 * math.sqrt(2.5)), abs=1e-3)
    assert not d.beyond_noise


def test_accuracy_intervals_stay_within_0_and_1() -> None:
    """Two seeds far apart (15.5% +- 9.2 points) give a t interval (12.7) far past 0%: it is cut
    at 0 and says so; the metrics are cut the same way; a plain quantity keeps its interval."""
    runs = [0.09, 0.22]
    free = summarize(runs)
    assert free.ci95[0] < -0.5 and not free.clipped
    bounded = summarize(runs, (0.0, 1.0))
    assert bounded.clipped and bounded.ci95 == (0.0, pytest.approx(free.ci95[1]))
    assert bounded.mean == free.mean and bounded.std == free.std
    assert not summarize([0.70, 0.72, 0.74], (0.0, 1.0)).clipped


def test_difference_intervals_stay_within_plus_minus_one() -> None:
    d = welch_difference([0.95, 0.10], [0.05, 0.90])
    assert d.clipped and -1.0 <= d.ci95[0] and d.ci95[1] <= 1.0
    assert not d.beyond_noise


def test_welch_difference_larger_than_the_spread() -> None:
    # Equal spreads and sizes: df = 2 (n - 1) = 4, t = 2.776, se = 0.01 * sqrt(2 / 3).
    d = welch_difference([0.80, 0.81, 0.82], [0.70, 0.71, 0.72])
    assert d.df == pytest.approx(4.0)
    half = T975[4] * 0.01 * math.sqrt(2 / 3)  # 2.27 points
    assert d.ci95 == pytest.approx((0.10 - half, 0.10 + half), abs=1e-5)
    assert d.beyond_noise
    assert welch_difference([0.70, 0.71, 0.72], [0.80, 0.81, 0.82]).beyond_noise  # sign-blind


def test_welch_difference_edge_cases() -> None:
    same = welch_difference([0.5, 0.5], [0.5, 0.5])
    assert same.ci95 == (0.0, 0.0) and not same.beyond_noise
    assert welch_difference([0.6, 0.6], [0.5, 0.5]).beyond_noise  # no spread at all: exact
    single = welch_difference([0.7], [0.6, 0.7])  # one run: its spread cannot be measured
    assert single.diff == pytest.approx(0.05) and not single.judged and not single.beyond_noise


def test_binomial_standard_error_of_a_validation_set() -> None:
    assert binomial_standard_error(0.74, 1000) == pytest.approx(0.01387, abs=1e-5)
    assert binomial_standard_error(0.5, 10_000) == pytest.approx(0.005)


def test_mcnemar_exact_p_values() -> None:
    a = np.array([True] * 10 + [False] * 0 + [True] * 50)
    b = np.array([False] * 10 + [True] * 0 + [True] * 50)
    result = mcnemar(a, b)
    assert (result.only_a, result.only_b) == (10, 0)
    assert result.p_value == pytest.approx(2 * 0.5**10)
    balanced = mcnemar(np.array([True] * 5 + [False] * 5), np.array([False] * 5 + [True] * 5))
    assert balanced.p_value == 1.0
    # 7 vs 2 discordant: 2 * P(X <= 2), X ~ Bin(9, 1/2) = 2 * 46/512
    seven_two = mcnemar(np.array([True] * 7 + [False] * 2), np.array([False] * 7 + [True] * 2))
    assert seven_two.p_value == pytest.approx(2 * 46 / 512)
    assert mcnemar(np.ones(5, bool), np.ones(5, bool)).p_value == 1.0


def test_mcnemar_with_thousands_of_discordant_images_does_not_overflow() -> None:
    a = np.array([True] * 1200 + [False] * 1000)
    result = mcnemar(a, ~a)
    assert 0 < result.p_value < 1e-4


def test_mcnemar_needs_the_same_images() -> None:
    with pytest.raises(ValueError, match="different images"):
        mcnemar(np.ones(3, bool), np.ones(4, bool))
