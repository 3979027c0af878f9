"""Closed-form tests of σ_A² = 0 for the balanced one-way model (studies' fast path) and their exact
rejection probabilities, against the general inference code and independent computations."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

import compare_mm as cm
from compare_mm.inference import component_lrt, exact_rlrt, oneway_lrt
from compare_mm.oneway.htests import (lrt_as_function_of_f, oneway_rejection_probability,
                                               oneway_test_statistics)
from compare_mm.oneway.closed_forms import design_to_array, f_test_power, oneway_stats, simulate_oneway


@pytest.mark.parametrize("method", ["REML", "ML"])
def test_lrt_is_the_stated_function_of_f(method):
    # T from the profiled likelihoods of 400 data sets equals T(F) of the docstring
    Y = simulate_oneway(np.random.default_rng(4), 7, 4, 1.0, 0.2, 1.3, size=400)
    s = oneway_stats(Y)
    T = oneway_lrt(s, method)[0]
    np.testing.assert_allclose(lrt_as_function_of_f(s.f, 7, 4, method), T, rtol=1e-9, atol=1e-10)
    assert (T == 0).mean() > 0.05 and (T > 0).mean() > 0.3  # both branches exercised


@pytest.mark.parametrize("method", ["REML", "ML"])
def test_closed_form_tests_equal_the_general_ones(oneway_frame, method):
    d = cm.make_design("y ~ 1 + (1 | g)", oneway_frame(8, 5, 0.3, 12), method=method)
    res = oneway_test_statistics(oneway_stats(design_to_array(d)), method,
                                 ["f_test", "lrt_chi2", "lrt_chibar2", "exact_rlrt"])
    r = component_lrt(d, method=method)
    assert float(res["lrt_chi2"][0]) == pytest.approx(r.statistic, rel=1e-6)
    assert float(res["lrt_chi2"][1]) == pytest.approx(r.p_chi2, rel=1e-5)
    assert float(res["lrt_chibar2"][1]) == pytest.approx(r.p_chibar2, rel=1e-5)
    F = float(res["f_test"][0])
    assert float(res["f_test"][1]) == pytest.approx(stats.f.sf(F, 7, 32), rel=1e-12)


@pytest.mark.parametrize("seed", [12, 5, 40])
def test_closed_form_exact_rlrt_equals_the_simulated_one(oneway_frame, seed):
    # RLRsim-style simulation of the exact null distribution (20,000 draws) vs the closed form P(F ≥ f)
    d = cm.make_design("y ~ 1 + (1 | g)", oneway_frame(8, 5, 0.3, seed), method="REML")
    T, p = (float(v) for v in oneway_test_statistics(oneway_stats(design_to_array(d)), "REML", ["exact_rlrt"])
            ["exact_rlrt"])
    sim = exact_rlrt(d, nsim=20_000, seed=seed)
    assert T == pytest.approx(sim.statistic, rel=1e-6, abs=1e-9)
    if T == 0:
        assert p == sim.p_value == 1.0
    else:
        assert abs(sim.p_value - p) < 4 * np.sqrt(p * (1 - p) / 20_000) + 1e-4, (sim.p_value, p)


def test_exact_sizes_match_the_known_values_and_f_test():
    # a = 10, n = 5, α = 0.05: naive χ² and χ̄² LRT sizes (REML 2.044%, 4.147%; ML 1.352%, 2.838%)
    assert oneway_rejection_probability("lrt_chi2", 10, 5, 0, 1, 0.05, "REML") == pytest.approx(0.02044, abs=5e-5)
    assert oneway_rejection_probability("lrt_chibar2", 10, 5, 0, 1, 0.05, "REML") == pytest.approx(0.04147, abs=5e-5)
    assert oneway_rejection_probability("lrt_chi2", 10, 5, 0, 1, 0.05, "ML") == pytest.approx(0.01352, abs=5e-5)
    assert oneway_rejection_probability("lrt_chibar2", 10, 5, 0, 1, 0.05, "ML") == pytest.approx(0.02838, abs=5e-5)
    for sa2 in (0.0, 0.2):
        exact_f = float(f_test_power(10, 5, sa2, 1.0, 0.05))
        assert oneway_rejection_probability("f_test", 10, 5, sa2, 1, 0.05) == pytest.approx(exact_f, rel=1e-12)
        assert oneway_rejection_probability("exact_rlrt", 10, 5, sa2, 1, 0.05) == pytest.approx(exact_f, rel=1e-12)


@pytest.mark.parametrize("test,method", [("lrt_chi2", "REML"), ("lrt_chibar2", "ML")])
def test_exact_power_agrees_with_simulated_f_variates(test, method):
    # F = (1 + nγ) F_{ν₁,ν₂} drawn directly; T(F) > c counted — 400,000 draws, within 4 MCSE
    a, n, sa2 = 6, 4, 0.35
    rng = np.random.default_rng(8)
    F = (1 + n * sa2) * stats.f.rvs(a - 1, a * (n - 1), size=400_000, random_state=rng)
    crit = stats.chi2.isf(0.05, 1) if test == "lrt_chi2" else stats.chi2.isf(0.10, 1)
    mc = float(np.mean(lrt_as_function_of_f(F, a, n, method) > crit))
    exact = oneway_rejection_probability(test, a, n, sa2, 1.0, 0.05, method)
    assert abs(mc - exact) < 4 * np.sqrt(exact * (1 - exact) / F.size), (mc, exact)
