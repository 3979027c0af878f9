"""Exact RLRT (Crainiceanu & Ruppert 2004; RLRsim's exactRLRT) against lme4/RLRsim and the exact F test."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

import compare_mm as cm
from compare_mm.errors import ModelSpecError
from compare_mm.inference import exact_rlrt, f_test_design, rlrt_eigenvalues, simulate_rlrt_null
from compare_mm.inference.components import components
from compare_mm.inference.rlrt import component_cross, component_z, rlrt_eigenvalues_cross


def test_statistic_equals_rlrsim_for_sleepstudy(sleep_design, lme4, ref_key):
    ref = lme4[ref_key("int", "REML")]["exactRLRT"]
    res = exact_rlrt(sleep_design("int"), nsim=2000, seed=1)
    assert res.name == "exact_rlrt" and res.group == "Subject" and res.term == "(Intercept)"
    assert res.statistic == pytest.approx(ref["statistic"], rel=1e-4)
    assert res.p_value == 0.0 and res.nsim == 2000  # RLRsim: p = 0 with 100,000 simulations


def test_statistic_is_the_reml_criterion_difference_of_lme4(sleep_design, lme4, ref_key):
    # with an ML fit as input the test still uses REML fits (RLRsim refits nothing, lme4's REML numbers)
    res = exact_rlrt(sleep_design("int", "ML"), nsim=10, seed=1)
    assert res.statistic == pytest.approx(lme4[ref_key("int", "REML")]["exactRLRT"]["statistic"], rel=1e-6)


def test_eigenvalues_of_balanced_oneway_are_n_and_zero(oneway_frame):
    # Z'PZ = n(I_a − J_a/a): eigenvalue n (a − 1 times) and 0; normalised: ones and a zero
    d = cm.make_design("y ~ 1 + (1 | g)", oneway_frame(7, 3, 1.0, 0))
    mu = rlrt_eigenvalues(d.X, component_z(d, components(d)[0]))
    assert mu.shape == (7,)
    np.testing.assert_allclose(mu[:-1], 1.0, atol=1e-12)
    assert abs(mu[-1]) < 1e-12


@pytest.mark.parametrize("kind,term", [("int", "(Intercept)"), ("diag", "Days")])
def test_cross_product_eigenvalues_equal_the_svd(sleep_design, kind, term):
    d = sleep_design(kind)
    comp = [c for c in components(d) if c.term == term][0]
    a = rlrt_eigenvalues(d.X, component_z(d, comp))
    b = rlrt_eigenvalues_cross(*component_cross(d, comp))
    np.testing.assert_allclose(a, b, atol=1e-10)


@pytest.mark.parametrize("seed,sigma_a", [(11, 0.35), (12, 0.5), (13, 0.25)])
def test_pvalue_equals_exact_f_test_on_balanced_oneway(seed, sigma_a, oneway_frame):
    # the restricted likelihood depends on balanced one-way data only through F, and the RLRT is
    # increasing in F above 1, so P(RLRT ≥ obs) = P(F ≥ F_obs) exactly; equal within simulation error
    d = cm.make_design("y ~ 1 + (1 | g)", oneway_frame(8, 4, sigma_a, seed))
    f = f_test_design(d)
    nsim = 40_000
    r = exact_rlrt(d, nsim=nsim, seed=seed)
    assert 0.005 < f.p_value < 0.6, "the data should give an informative p-value"
    mcse = np.sqrt(f.p_value * (1 - f.p_value) / nsim)
    assert abs(r.p_value - f.p_value) < 4 * mcse


def test_simulated_null_matches_f_distribution_everywhere():
    # whole null distribution, not one p-value: P(RLRT* > rlrt(F)) = P(F_{a-1, a(n-1)} > F) for several F
    a, n = 8, 4
    N = a * n
    mu = np.r_[np.ones(a - 1), 0.0]
    sim = simulate_rlrt_null(mu, N, 1, 100_000, rng=5)
    for F in (1.2, 1.6, 2.2, 3.0):
        sse, ssa = a * (n - 1), (a - 1) * F   # MSE = 1
        rlrt = (N - 1) * np.log((sse + ssa) / (N - 1)) - (a - 1) * np.log(F)
        p_exact = stats.f.sf(F, a - 1, a * (n - 1))
        p_sim = np.mean(sim > rlrt)
        assert abs(p_sim - p_exact) < 4 * np.sqrt(p_exact * (1 - p_exact) / sim.size), F
    assert np.mean(sim == 0) == pytest.approx(stats.f.cdf(1.0, a - 1, a * (n - 1)), abs=0.006)


def test_seeded_and_vectorised_chunks_do_not_change_draws():
    mu = np.r_[np.ones(5), 0.3, 0.0]
    a = simulate_rlrt_null(mu, 40, 2, 3000, rng=9)
    b = simulate_rlrt_null(mu, 40, 2, 3000, rng=9)
    c = simulate_rlrt_null(mu, 40, 2, 3000, rng=10)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    assert np.all(a >= 0)


def test_correlated_slope_is_not_a_single_variance(sleep_design):
    with pytest.raises(ModelSpecError, match="'Days'.*covariance"):
        exact_rlrt(sleep_design("corr"), term="Days", nsim=10)
