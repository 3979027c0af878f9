"""Exact theory of the balanced two-way mixed model against Monte Carlo and brute-force integration."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import integrate, stats

from compare_mm.study.generate import simulate_twoway_balanced
from compare_mm.twoway import anova, theory

T, B, N = 3, 6, 2
GRID = [(0.0, 0.0), (0.0, 0.4), (0.3, 0.0), (0.3, 0.4), (1.5, 1.0)]


def _cond(sb2, sab2, effects=(0.0, 0.5, 1.0)):
    return {"model": "two_way", "treatments": T, "blocks": B, "per_cell": N, "trt_effects": list(effects),
            "sigma_b2": sb2, "sigma_ab2": sab2, "sigma_e2": 1.0, "mu": 0.3}


def _within(p_hat, p, n, k=4.0):
    return abs(p_hat - p) <= k * np.sqrt(p * (1 - p) / n)


@pytest.mark.parametrize("sb2,sab2", GRID)
def test_f_tests_size_and_power_within_4_mcse_of_exact(sb2, sab2):
    """4,000 replicates of the study's own DGP: both F tests reject as often as the scaled central F says."""
    R = 4000
    Y, _ = simulate_twoway_balanced(_cond(sb2, sab2), seed=20261203, condition=int(10 * sb2 + sab2 * 100),
                                    replicates=range(R))
    ft = anova.f_tests(anova.twoway_stats(Y))
    for comp, p in (("sigma_ab2", ft.p_ab), ("sigma_b2", ft.p_b)):
        exact = theory.f_test_power(comp, T, B, N, sb2, sab2, 1.0, alpha=0.05)
        assert _within(np.mean(p < 0.05), exact, R), (comp, np.mean(p < 0.05), exact)
        if (comp == "sigma_ab2" and sab2 == 0) or (comp == "sigma_b2" and sb2 == 0):
            assert exact == pytest.approx(0.05, abs=1e-12)
        else:
            assert exact > 0.2  # power, not size: the comparison above can tell them apart


def test_power_is_the_scaled_f_tail_computed_by_scipy_stats():
    (d1, d2, d3), (l1, l2, l3) = theory.strata(T, B, N, 0.5, 0.3, 2.0)
    q = stats.f.isf(0.05, d2, d3)
    assert theory.f_test_power("sigma_ab2", T, B, N, 0.5, 0.3, 2.0) == pytest.approx(stats.f.sf(q * l3 / l2, d2, d3),
                                                                                  rel=1e-12)
    q = stats.f.isf(0.05, d1, d2)
    assert theory.f_test_power("sigma_b2", T, B, N, 0.5, 0.3, 2.0) == pytest.approx(stats.f.sf(q * l2 / l1, d1, d2),
                                                                                 rel=1e-12)


def _chi2_strata(sb2, sab2, R, seed):
    (d1, d2, d3), (l1, l2, l3) = theory.strata(T, B, N, sb2, sab2, 1.0)
    rng = np.random.default_rng(seed)
    return anova.TwowayStats(T, B, N, np.zeros(R), np.zeros((R, T)), l1 * rng.chisquare(d1, R),
                             l2 * rng.chisquare(d2, R), l3 * rng.chisquare(d3, R))


@pytest.mark.parametrize("sb2,sab2", GRID)
def test_boundary_probabilities_within_4_mcse(sb2, sab2):
    """P(REML/ML σ̂ = 0) and P(ANOVA σ̂ < 0) against 200,000 draws of the three χ² strata."""
    R = 200_000
    st = _chi2_strata(sb2, sab2, R, seed=int(1000 * sb2 + 10 * sab2) + 7)
    for method in ("REML", "ML"):
        e = anova.estimates(st, method)
        for comp, est in (("sigma_b2", e.sigma_b2), ("sigma_ab2", e.sigma_ab2)):
            assert (est >= 0).all()
            exact = theory.likelihood_zero_probability(comp, method, T, B, N, sb2, sab2, 1.0)
            assert _within(np.mean(est == 0), exact, R), (method, comp, np.mean(est == 0), exact)
    a = anova.estimates(st, "ANOVA")
    for comp, est in (("sigma_b2", a.sigma_b2), ("sigma_ab2", a.sigma_ab2)):
        exact = theory.anova_negative_probability(comp, T, B, N, sb2, sab2, 1.0)
        assert _within(np.mean(est < 0), exact, R), (comp, np.mean(est < 0), exact)
        assert abs(est.mean() - {"sigma_b2": sb2, "sigma_ab2": sab2}[comp]) < 4 * est.std() / np.sqrt(R)


def _brute_zero_probability(comp, method, sb2, sab2):
    """The same probabilities by nested adaptive quadrature over the χ² densities (scipy.stats)."""
    (d1, d2, d3), (l1, l2, l3) = theory.strata(T, B, N, sb2, sab2, 1.0)
    w1, w2, w3 = anova.weights(T, B, N, method)
    if comp == "sigma_ab2":
        def outer(xe):
            m = l3 * xe / w3
            hi = (w1 + w2) * m / l2   # beyond it the second condition always holds
            inner = integrate.quad(lambda a: stats.chi2.pdf(a, d2) * stats.chi2.sf(((w1 + w2) * m - l2 * a) / l1, d1),
                                   w2 * m / l2, hi, epsabs=1e-11)[0]
            return stats.chi2.pdf(xe, d3) * (inner + stats.chi2.sf(hi, d2))
        return 1 - integrate.quad(outer, 0, np.inf, epsabs=1e-11, limit=200)[0]

    def outer(xb):
        m = l1 * xb / w1
        inner = integrate.quad(lambda a: stats.chi2.pdf(a, d2) * stats.chi2.cdf(((w2 + w3) * m - l2 * a) / l3, d3),
                               0, w2 * m / l2, epsabs=1e-11)[0]
        return stats.chi2.pdf(xb, d1) * inner
    return 1 - integrate.quad(outer, 0, np.inf, epsabs=1e-11, limit=200)[0]


@pytest.mark.slow
@pytest.mark.parametrize("comp,method,sb2,sab2", [("sigma_ab2", "REML", 0.0, 0.0), ("sigma_b2", "REML", 0.3, 0.4),
                                                  ("sigma_ab2", "ML", 0.3, 0.4), ("sigma_b2", "ML", 0.0, 0.0)])
def test_boundary_probability_equals_nested_quadrature(comp, method, sb2, sab2):
    got = theory.likelihood_zero_probability(comp, method, T, B, N, sb2, sab2, 1.0)
    assert got == pytest.approx(_brute_zero_probability(comp, method, sb2, sab2), abs=1e-7)


def test_contrast_interval_coverage_within_4_mcse():
    """ȳ_i.. − ȳ_1.. ± q sqrt(2 MS_AB/(bn)): t quantile covers at the level, normal quantile at 2T(z) − 1."""
    R = 4000
    Y, _ = simulate_twoway_balanced(_cond(0.5, 0.7), seed=5, condition=0, replicates=range(R))
    st = anova.twoway_stats(Y)
    est = st.trt_means[:, 1] - st.trt_means[:, 0]
    se = np.sqrt(2 * st.ms_ab / (B * N))
    for kind, q in (("t", stats.t.ppf(0.975, (T - 1) * (B - 1))), ("wald", stats.norm.ppf(0.975))):
        cover = np.mean(np.abs(est - 0.5) <= q * se)
        exact = theory.contrast_coverage(kind, T, B, N, 0.95)
        assert _within(cover, exact, R), (kind, cover, exact)
    assert theory.contrast_coverage("wald", T, B, N, 0.95) < 0.93  # 10 df: visibly below 95 %
