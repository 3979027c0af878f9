"""χ² and χ̄² likelihood-ratio tests of variance components."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import optimize, stats

from compare_mm.inference import (chi2_pvalue, chibar2_critical, chibar2_pvalue, compare_models, component_lrt,
                                  oneway_lrt)
from compare_mm.inference.components import components, drop_component
from compare_mm.oneway.closed_forms import simulate_oneway


def test_mixture_pvalues_and_critical_values():
    # ½χ²₀ + ½χ²₁: p = ½ P(χ²₁ ≥ t); the 5% critical value is χ²₁'s 90% quantile 2.7055
    assert chibar2_pvalue(stats.chi2.ppf(0.90, 1), 1) == pytest.approx(0.05, abs=1e-12)
    assert chibar2_critical(0.05, 1) == pytest.approx(2.705543, abs=1e-6)
    # ½χ²₁ + ½χ²₂ (random slope with its covariance): 5% critical value 5.1380 (Stram & Lee 1994, Table 1)
    assert chibar2_critical(0.05, 2) == pytest.approx(5.1380, abs=5e-4)
    assert chibar2_pvalue(0.0, 1) == 1.0 and chi2_pvalue(0.0, 1) == 1.0
    t = np.array([0.5, 3.0, 8.0])
    np.testing.assert_allclose(chibar2_pvalue(t, 2), 0.5 * stats.chi2.sf(t, 1) + 0.5 * stats.chi2.sf(t, 2))


@pytest.mark.parametrize("method", ["ML", "REML"])
def test_slope_lrt_equals_lme4_deviance_difference(sleep_design, lme4, ref_key, method):
    # lme4's own criteria: (1 | Subject) vs (Days | Subject), and (1 | Subject) vs (Days || Subject)
    crit = {k: lme4[ref_key(k, method)]["deviance_or_reml_crit"] for k in ("int", "diag", "corr")}
    r = component_lrt(sleep_design("corr", method), "Subject", "Days", method=method)
    assert r.df == 2
    assert r.statistic == pytest.approx(crit["int"] - crit["corr"], abs=1e-5)
    assert r.p_chi2 == pytest.approx(stats.chi2.sf(r.statistic, 2), rel=1e-10)
    assert r.p_chibar2 == pytest.approx(0.5 * stats.chi2.sf(r.statistic, 1) + 0.5 * r.p_chi2, rel=1e-10)
    r = component_lrt(sleep_design("diag", method), "Subject", "Days", method=method)
    assert r.df == 1
    assert r.statistic == pytest.approx(crit["int"] - crit["diag"], abs=1e-5)
    assert r.p_chibar2 == pytest.approx(0.5 * r.p_chi2, rel=1e-12)


def test_compare_models_equals_component_lrt(sleep_design):
    full = sleep_design("corr", "ML")
    null = drop_component(full, components(full)[0])
    a = compare_models(null, full, method="ML")
    b = component_lrt(full, "Subject", "Days", method="ML")
    assert a.statistic == pytest.approx(b.statistic, rel=1e-8) and a.df == b.df == 2


def _exact_size(a: int, n: int, crit: float, method: str) -> float:
    """Exact size of 'reject when LRT > crit' in the balanced one-way model under σ_A² = 0.

    With MSE = 1 (the LRT is scale free) and F = MSA/MSE, the LRT is a function of F alone
    (profile the closed-form likelihoods):
      ML:   N log σ̂₀² − a log(SSA/a)   − a(n−1) log MSE,  σ̂₀² = (SSE+SSA)/N,      when SSA/a > MSE
      REML: (N−1) log σ̂₀² − (a−1) log MSA − a(n−1) log MSE, σ̂₀² = (SSE+SSA)/(N−1), when F > 1
    and 0 otherwise; it increases in F there, so size = P(F_{a−1,a(n−1)} > F*) with LRT(F*) = crit.
    """
    N = a * n
    sse = a * (n - 1)

    def lrt(F):
        ssa = (a - 1) * F
        if method == "ML":
            return N * np.log((sse + ssa) / N) - a * np.log(ssa / a)
        return (N - 1) * np.log((sse + ssa) / (N - 1)) - (a - 1) * np.log(F)

    lo = a / (a - 1) if method == "ML" else 1.0
    F_star = optimize.brentq(lambda F: lrt(F) - crit, lo * (1 + 1e-12), 1e3, xtol=1e-12)
    return float(stats.f.sf(F_star, a - 1, a * (n - 1)))


def _null_lrts(method: str, reps: int, seed: int) -> np.ndarray:
    """LRT statistics of σ_A² = 0 for replicates under H₀ (a = 10, n = 5), by the closed forms."""
    Y = simulate_oneway(np.random.default_rng(seed), 10, 5, 0.0, 0.0, 1.0, size=reps)
    return oneway_lrt(Y, method)[0]


@pytest.mark.parametrize("method", ["ML", "REML"])
def test_oneway_lrt_equals_the_general_lrt(oneway_frame, method):
    import compare_mm as cm
    from compare_mm.oneway.closed_forms import design_to_array

    d = cm.make_design("y ~ 1 + (1 | g)", oneway_frame(7, 4, 0.6, 31), method=method)
    T, p1, p2 = oneway_lrt(design_to_array(d), method)
    r = component_lrt(d, method=method)
    assert float(T) == pytest.approx(r.statistic, rel=1e-6, abs=1e-9)
    assert float(p2) == pytest.approx(r.p_chibar2, rel=1e-5)


@pytest.mark.parametrize("method", ["ML", "REML"])
def test_null_sizes_agree_with_exact_finite_sample_sizes(method):
    # 20,000 replicates under H₀; each Monte Carlo size within 4 MCSE of its exact value
    reps = 20_000
    T = _null_lrts(method, reps, seed=2024)
    for name, p in (("naive", chi2_pvalue(T, 1)), ("mixture", chibar2_pvalue(T, 1))):
        size = float(np.mean(p < 0.05))
        crit = stats.chi2.ppf(0.95, 1) if name == "naive" else stats.chi2.ppf(0.90, 1)
        exact = _exact_size(10, 5, crit, method)
        mcse = np.sqrt(exact * (1 - exact) / reps)
        assert abs(size - exact) < 4 * mcse, (method, name, size, exact)


def test_naive_size_far_below_five_percent_and_mixture_close():
    # the study: H₀ σ_A² = 0, a = 10, n = 5, 2,000 replicates, REML LRT (same fixed effects)
    reps = 2000
    T = _null_lrts("REML", reps, seed=7)
    naive = float(np.mean(chi2_pvalue(T, 1) < 0.05))
    mixture = float(np.mean(chibar2_pvalue(T, 1) < 0.05))
    mcse = lambda p: np.sqrt(p * (1 - p) / reps)  # noqa: E731
    assert naive < 0.05 - 4 * mcse(0.05), f"naive size {naive:.4f} (MCSE {mcse(naive):.4f})"
    assert abs(mixture - 0.05) < 4 * mcse(0.05), f"mixture size {mixture:.4f} (MCSE {mcse(mixture):.4f})"
    # exact values behind these (see test above): naive 2.04%, mixture 4.15% (REML); ML 1.35% and 2.84%
    assert _exact_size(10, 5, stats.chi2.ppf(0.95, 1), "REML") == pytest.approx(0.02044, abs=5e-5)
    assert _exact_size(10, 5, stats.chi2.ppf(0.90, 1), "REML") == pytest.approx(0.04147, abs=5e-5)


def test_boundary_fit_gives_a_zero_statistic_and_p_one():
    # simulated data whose slope variance is estimated exactly 0: T = 0, χ̄² p = 1, exact RLRT p = 1
    import pandas as pd

    import compare_mm as cm
    from compare_mm.inference import exact_rlrt

    rng = np.random.default_rng(3)
    a = np.repeat(np.arange(6), 20)
    x = rng.normal(size=120)
    y = 1 + 0.5 * x + rng.normal(size=6)[a] + rng.normal(size=120)
    d = cm.make_design("y ~ x + (x || a)", pd.DataFrame({"y": y, "x": x, "a": a.astype(str)}), method="REML")
    assert cm.fit(d.spec, pd.DataFrame({"y": y, "x": x, "a": a.astype(str)})).theta[1] == 0.0
    r = component_lrt(d, "a", "x", method="REML")
    assert r.statistic == 0.0 and r.p_chi2 == 1.0 and r.p_chibar2 == 1.0
    e = exact_rlrt(d, "a", "x", nsim=100, seed=1)
    assert e.statistic == 0.0 and e.p_value == 1.0
