"""Noise statistics on known numbers."""

from __future__ import annotations

import math

import numpy as np
import pytest

from convlab.stats import (
    binomial_standard_error,
    mcnemar,
    summarize,
    summary_metrics,
    t975,
    welch_difference,
)


def test_t_quantiles_match_published_values() -> None:
    assert t975(1) == 12.706 and t975(4) == 2.776 and t975(30) == 2.042
    assert t975(40) == pytest.approx(2.021, abs=1e-3)
    assert t975(60) == pytest.approx(2.000, abs=1e-3)
    assert t975(120) == pytest.approx(1.980, abs=1e-3)
    with pytest.raises(ValueError):
        t975(0)


def test_summary_of_five_values() -> None:
    s = summarize([1.0, 2.0, 3.0, 4.0, 5.0])
    assert s.n == 5 and s.mean == 3.0
    assert s.std == pytest.approx(math.sqrt(2.5))
    half = 2.776 * math.sqrt(2.5) / math.sqrt(5)  # 1.963
    assert s.ci95 == pytest.approx((3.0 - half, 3.0 + half))


def test_summary_of_one_value_has_no_spread() -> None:
    assert summarize([0.74]) == summarize([0.74]).__class__(1, 0.74, 0.0, (0.74, 0.74))
    with pytest.raises(ValueError):
        summarize([])


def test_seed_metrics_of_three_runs() -> None:
    # Three seeds' accuracies 70, 72, 74%: std 2 points, t(0.975; 2) = 4.303.
    metrics = summary_metrics("test_acc", [0.70, 0.72, 0.74])
    half = 4.303 * 0.02 / math.sqrt(3)  # 4.97 points
    assert metrics == pytest.approx(
        {
            "test_acc": 0.72,
            "test_acc_std": 0.02,
            "test_acc_ci95_low": 0.72 - half,
            "test_acc_ci95_high": 0.72 + half,
        }
    )


def test_seed_metrics_of_one_run_claim_no_spread() -> None:
    assert summary_metrics("best_val_acc", [0.739]) == {"best_val_acc": 0.739}


def test_welch_difference_with_unequal_spreads() -> None:
    # Means 3 and 6, variances 2.5 and 10: se = sqrt(0.5 + 2) = 1.581, Welch df = 6.25 / 1.0625
    # = 5.88, taken as 5 (t = 2.571): interval -3 +- 4.065, which holds zero.
    d = welch_difference([1, 2, 3, 4, 5], [2, 4, 6, 8, 10], bounds=None)
    assert d.diff == -3.0
    assert d.df == pytest.approx(5.882, abs=1e-3)
    assert d.ci95 == pytest.approx((-3 - 2.571 * math.sqrt(2.5), -3 + 2.571 * math.sqrt(2.5)))
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
    metrics = summary_metrics("best_val_acc", runs)
    assert metrics["best_val_acc_ci95_low"] == 0.0 and metrics["best_val_acc_ci95_high"] <= 1.0
    assert not summarize([0.70, 0.72, 0.74], (0.0, 1.0)).clipped


def test_difference_intervals_stay_within_plus_minus_one() -> None:
    d = welch_difference([0.95, 0.10], [0.05, 0.90])
    assert d.clipped and -1.0 <= d.ci95[0] and d.ci95[1] <= 1.0
    assert not d.beyond_noise


def test_welch_difference_larger_than_the_spread() -> None:
    # Equal spreads and sizes: df = 2 (n - 1) = 4, t = 2.776, se = 0.01 * sqrt(2 / 3).
    d = welch_difference([0.80, 0.81, 0.82], [0.70, 0.71, 0.72])
    assert d.df == pytest.approx(4.0)
    half = 2.776 * 0.01 * math.sqrt(2 / 3)  # 2.27 points
    assert d.ci95 == pytest.approx((0.10 - half, 0.10 + half))
    assert d.beyond_noise
    assert welch_difference([0.70, 0.71, 0.72], [0.80, 0.81, 0.82]).beyond_noise  # sign-blind


def test_welch_difference_edge_cases() -> None:
    same = welch_difference([0.5, 0.5], [0.5, 0.5])
    assert same.ci95 == (0.0, 0.0) and not same.beyond_noise
    assert welch_difference([0.6, 0.6], [0.5, 0.5]).beyond_noise  # no spread at all: exact
    with pytest.raises(ValueError, match="two or more runs per side"):
        welch_difference([0.7], [0.6, 0.7])


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
