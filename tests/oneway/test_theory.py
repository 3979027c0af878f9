"""Exact one-way theory (compare_mm.oneway.theory) against simulation (within 4 Monte Carlo SEs) and
against independent adaptive quadrature (scipy.integrate.quad on the original densities)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import integrate, stats

from compare_mm.oneway import closed_forms as oneway
from compare_mm.errors import OptionError
from compare_mm.oneway.closed_forms import fit_oneway, simulate_oneway
from compare_mm.oneway import theory

METHODS = ("REML", "ML", "ANOVA")


def _within(share, p, R, k=4.0):
    mcse = np.sqrt(max(p * (1 - p), 1e-12) / R)
    assert abs(share - p) < k * mcse, (share, p, mcse)


@pytest.mark.parametrize("sigma_a2", [0.0, 0.2, 1.0])
def test_boundary_probability_vs_simulation(sigma_a2):
    a, n, R = 6, 3, 4000
    Y = simulate_oneway(np.random.default_rng(int(100 + 10 * sigma_a2)), a, n, 0.0, sigma_a2, 1.0, size=R)
    s = oneway.oneway_stats(Y)
    for m in METHODS:
        p = float(theory.boundary_probability(a, n, sigma_a2, 1.0, m))
        _within(np.mean(fit_oneway(s, m).boundary), p, R)
    # ML sits on the boundary more often than REML, REML and ANOVA share the event
    pr, pm, pa = (theory.boundary_probability(a, n, sigma_a2, 1.0, m) for m in METHODS)
    assert pm > pr and pa == pr


def test_boundary_probability_is_vectorised_and_checks_method():
    p = theory.boundary_probability(np.array([6, 18])[:, None], np.array([3, 10])[:, None],
                                    np.array([0.0, 0.05, 0.2, 1.0]), 1.0, "REML")
    assert p.shape == (2, 4) and np.all(np.diff(p, axis=1) < 0)
    # σ_A² = 0: REML boundary probability is P(F ≤ 1), which is > 1/2 for these df (independent: scipy)
    np.testing.assert_allclose(p[:, 0], [stats.f.cdf(1, 5, 12), stats.f.cdf(1, 17, 162)], rtol=1e-14)
    with pytest.raises(OptionError):
        theory.boundary_probability(6, 3, 0.2, 1.0, "Bayes")


def test_f_test_power_is_reexported():
    assert theory.f_test_power is oneway.f_test_power


def test_shrinkage_factor_is_the_regression_slope_of_effects_on_group_means():
    a, n, R, sa2, se2, mu = 6, 3, 4000, 0.5, 1.0, 2.0
    rng = np.random.default_rng(7)
    u = rng.standard_normal((R, a)) * np.sqrt(sa2)
    Y = mu + u[..., None] + rng.standard_normal((R, a, n)) * np.sqrt(se2)
    dev = (Y.mean(-1) - mu).ravel()
    u = u.ravel()
    slope = u @ dev / (dev @ dev)
    se = np.sqrt(np.var(u - slope * dev) / (dev @ dev))
    w = float(theory.shrinkage_factor(n, sa2, se2))
    assert abs(slope - w) < 4 * se
    np.testing.assert_allclose(w, 1.5 / 2.5, rtol=1e-15)
    assert theory.shrinkage_factor(3, 0.0, 1.0) == 0


@pytest.mark.parametrize("sigma_a2", [0.0, 1.0])
def test_t_interval_coverage_is_exact(sigma_a2):
    a, n, R, mu, level = 6, 3, 4000, 1.0, 0.9
    Y = simulate_oneway(np.random.default_rng(31), a, n, mu, sigma_a2, 1.0, size=R)
    e = fit_oneway(Y, "REML", level=level)
    cover = np.mean((e.mu_lower <= mu) & (mu <= e.mu_upper))
    assert theory.mu_t_interval_coverage(level) == level
    _within(cover, level, R)


@pytest.mark.parametrize("method", METHODS)
def test_variance_ratio_cdf_vs_simulation(method):
    a, n, R, sa2 = 6, 3, 4000, 0.3
    e = fit_oneway(simulate_oneway(np.random.default_rng(41), a, n, 0.0, sa2, 1.0, size=R), method)
    for c in (0.0, 0.2, 1.0):
        _within(np.mean(e.gamma <= c), float(theory.variance_ratio_cdf(c, a, n, sa2, 1.0, method)), R)
    below = float(theory.variance_ratio_cdf(-0.1, a, n, sa2, 1.0, method))
    if method == "ANOVA":
        _within(np.mean(e.gamma <= -0.1), below, R)
    else:
        assert below == 0


def _sigma_a2_cdf_quad(c, a, n, sa2, se2, method):
    """Independent reference: adaptive quadrature of P(kMSA − MSE ≤ nc) over MSE's Gamma density."""
    k = (a - 1) / a if method == "ML" else 1.0
    nu1, nu2 = a - 1, a * (n - 1)
    msa = stats.gamma(nu1 / 2, scale=2 * (se2 + n * sa2) / nu1)
    mse = stats.gamma(nu2 / 2, scale=2 * se2 / nu2)
    f = lambda y: msa.cdf((y + n * c) / k) * mse.pdf(y)
    return integrate.quad(f, max(0.0, -n * c), np.inf, epsabs=1e-13, epsrel=1e-12, limit=500)[0]


@pytest.mark.parametrize("method", METHODS)
def test_sigma_a2_cdf_vs_adaptive_quadrature_and_simulation(method):
    a, n, sa2, R = 6, 3, 0.2, 4000
    cs = [0.0, 0.05, 0.3, 1.5] + ([-0.2] if method == "ANOVA" else [])
    got = theory.sigma_a2_cdf(np.array(cs), a, n, sa2, 1.0, method)
    ref = [_sigma_a2_cdf_quad(c, a, n, sa2, 1.0, method) for c in cs]
    np.testing.assert_allclose(got, ref, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(got[0], theory.boundary_probability(a, n, sa2, 1.0, method), rtol=1e-10)
    e = fit_oneway(simulate_oneway(np.random.default_rng(51), a, n, 0.0, sa2, 1.0, size=R), method)
    for c, p in zip(cs, got):
        _within(np.mean(e.sigma_a2 <= c), p, R)
    if method != "ANOVA":
        assert theory.sigma_a2_cdf(-0.01, a, n, sa2, 1.0, method) == 0
    # a second design and a large variance: still the adaptive-quadrature value
    np.testing.assert_allclose(theory.sigma_a2_cdf(2.0, 18, 10, 3.0, 0.5, method),
                               _sigma_a2_cdf_quad(2.0, 18, 10, 3.0, 0.5, method), rtol=1e-9, atol=1e-12)


def _expected_quad(a, n, sa2, se2, method):
    """Independent reference: nested adaptive quadrature of E[max(0, kMSA − MSE)]/n over both densities."""
    k = (a - 1) / a if method == "ML" else 1.0
    nu1, nu2 = a - 1, a * (n - 1)
    msa = stats.gamma(nu1 / 2, scale=2 * (se2 + n * sa2) / nu1)
    mse = stats.gamma(nu2 / 2, scale=2 * se2 / nu2)
    inner = lambda y: integrate.quad(lambda x: (k * x - y) * msa.pdf(x), y / k, np.inf, epsabs=1e-13)[0]
    return integrate.quad(lambda y: inner(y) * mse.pdf(y), 0, np.inf, epsabs=1e-12, limit=200)[0] / n


@pytest.mark.parametrize("method", ["REML", "ML"])
def test_expected_sigma_a2_vs_quadrature_and_simulation(method):
    a, n, sa2, R = 6, 3, 0.2, 100_000
    got = float(theory.expected_sigma_a2(a, n, sa2, 1.0, method))
    np.testing.assert_allclose(got, _expected_quad(a, n, sa2, 1.0, method), rtol=1e-8)
    est = fit_oneway(simulate_oneway(np.random.default_rng(61), a, n, 0.0, sa2, 1.0, size=R), method).sigma_a2
    assert abs(est.mean() - got) < 4 * est.std() / np.sqrt(R)
    if method == "REML":
        assert got > sa2  # truncation at 0 biases REML upwards at small σ_A²
    else:
        assert got < float(theory.expected_sigma_a2(a, n, sa2, 1.0, "REML"))  # ML shrinks by (1 − 1/a)


def test_anova_moments_vs_simulation():
    a, n, sa2, se2, R = 6, 3, 0.4, 1.5, 100_000
    mean, var = theory.anova_sigma_a2_moments(a, n, sa2, se2)
    assert theory.expected_sigma_a2(a, n, sa2, se2, "ANOVA") == sa2 == mean
    est = fit_oneway(simulate_oneway(np.random.default_rng(71), a, n, 0.0, sa2, se2, size=R), "ANOVA").sigma_a2
    assert abs(est.mean() - mean) < 4 * np.sqrt(var / R)
    # MCSE of the sample variance ≈ var·sqrt(2/(R−1)) is too small for the heavy tail; use the 4th moment
    m4 = np.mean((est - est.mean()) ** 4)
    assert abs(est.var() - var) < 4 * np.sqrt((m4 - est.var() ** 2) / R)


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("sigma_a2", [0.0, 0.2])
def test_wald_coverage_vs_simulation(method, sigma_a2):
    a, n, R, mu, level = 6, 3, 100_000, 0.5, 0.95
    Y = simulate_oneway(np.random.default_rng(81 + int(10 * sigma_a2)), a, n, mu, sigma_a2, 1.0, size=R)
    e = fit_oneway(Y, method, level=level)
    cover = np.mean((e.mu_wald_lower <= mu) & (mu <= e.mu_wald_upper))
    exact = float(theory.mu_wald_coverage(a, n, sigma_a2, 1.0, method, level))
    _within(cover, exact, R)
    assert exact < level  # the Wald interval with 5 df for the group means undercovers


def test_wald_coverage_against_recorded_adaptive_quadrature():
    """Value computed once by nested scipy.integrate.quad over the χ² quantiles (an earlier, slower
    implementation of the same integral): 0.9236022560462037 for REML, a = 6, n = 3, γ = 0.2, 95%."""
    np.testing.assert_allclose(theory.mu_wald_coverage(6, 3, 0.2, 1.0, "REML"), 0.9236022560462037,
                               rtol=1e-10)
    t = stats.t.cdf(stats.norm.ppf(0.975), 5)
    np.testing.assert_allclose(theory.mu_wald_coverage(6, 3, 0.2, 1.0, "ANOVA"), 2 * t - 1, rtol=1e-14)
