"""Noise statistics on known numbers."""

from __future__ import annotations

import math

import numpy as np
import pytest

from convlab.stats import binomial_standard_error, mcnemar, summarize, t975


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
