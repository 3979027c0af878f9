"""Imhof's distribution function of a weighted χ² sum against closed forms and a brute-force Monte Carlo."""

import numpy as np
from hypothesis import given, settings, strategies as st
from scipy import stats

from compare_mm.inference.imhof import chi2_sum_cdf


@settings(max_examples=40, deadline=None)
@given(st.floats(0.05, 20.0), st.integers(1, 30), st.floats(0.05, 20.0), st.integers(1, 60))
def test_two_weights_of_opposite_sign_are_an_f_cdf(l1, h1, l2, h2):
    # P(λ₁χ²_{h₁} − λ₂χ²_{h₂} ≤ 0) = F_{h₁,h₂}.cdf(λ₂h₂/(λ₁h₁))
    exact = stats.f.cdf(l2 * h2 / (l1 * h1), h1, h2)
    assert abs(chi2_sum_cdf(0.0, [l1, -l2], [h1, h2]) - exact) < 1e-8


@settings(max_examples=30, deadline=None)
@given(st.floats(0.1, 10.0), st.integers(2, 40), st.floats(0.02, 0.98))
def test_equal_weights_are_a_chi2_cdf(lam, h, q):
    x = lam * stats.chi2.ppf(q, h)
    # the same total df split over several equal weights must not matter either
    parts = [1.0] * h
    assert abs(chi2_sum_cdf(x, [lam], [h]) - q) < 1e-8
    assert abs(chi2_sum_cdf(x, [lam] * h, parts) - q) < 1e-8


@settings(max_examples=15, deadline=None)
@given(st.lists(st.floats(-5.0, 5.0).filter(lambda v: abs(v) > 0.05), min_size=2, max_size=6),
       st.floats(-3.0, 3.0), st.integers(0, 2**31 - 1))
def test_random_weights_against_brute_force_monte_carlo(weights, x, seed):
    w = np.asarray(weights)
    rng = np.random.default_rng(seed)
    n = 40_000
    q = rng.chisquare(1.0, size=(n, w.size)) @ w
    p_mc = float(np.mean(q <= x))
    mcse = max(np.sqrt(p_mc * (1 - p_mc) / n), 1.0 / n)
    assert abs(chi2_sum_cdf(x, w) - p_mc) < 4 * mcse + 1e-6


def test_one_signed_weights_are_certain():
    assert chi2_sum_cdf(0.0, [1.0, 2.0]) == 0.0
    assert chi2_sum_cdf(0.0, [-1.0, -2.0]) == 1.0
