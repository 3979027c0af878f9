"""Intervals for the variance components of the balanced one-way model: exact (χ², F), MLS, profile.

Hand checks against textbook formulas written out here (scipy quantiles, sums of squares by loops),
the profile intervals against the general profiling routine, and boundary behaviour (closed at 0)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from scipy import stats

from compare_mm.oneway.closed_forms import fit_oneway, oneway_stats, simulate_oneway
from compare_mm.oneway.intervals import (closed_form_intervals, exact_interval_coverage, icc_interval,
                                         mls_sigma_a2_interval, sigma_e2_interval, variance_ratio_interval)
from compare_mm.oneway.profile import oneway_profile_intervals
from compare_mm.errors import NoExactValueError

LEVEL = 0.90


def _datasets():
    rng = np.random.default_rng(20261202)
    out = [simulate_oneway(rng, a, n, 1.0, sa2, 2.0) for a, n, sa2 in
           [(5, 3, 0.0), (6, 4, 0.5), (10, 2, 3.0), (4, 7, 0.1), (8, 5, 1.0)]]
    # a data set with MSA < MSE (σ̂_A² = 0 by REML)
    y = np.array([[0.1, 1.9, 1.0], [1.2, -0.2, 1.1], [0.4, 1.6, 0.9], [1.5, 0.6, 0.0]])
    return out + [y]


def _anova(y):
    """SSA, SSE and mean squares by explicit loops (independent of oneway_stats)."""
    a, n = y.shape
    grand = sum(sum(r) for r in y) / (a * n)
    means = [sum(r) / n for r in y]
    ssa = n * sum((m - grand) ** 2 for m in means)
    sse = sum((v - m) ** 2 for r, m in zip(y, means) for v in r)
    return a, n, ssa, sse, ssa / (a - 1), sse / (a * (n - 1))


@pytest.mark.parametrize("y", _datasets())
def test_exact_intervals_against_scipy_quantiles(y):
    a, n, ssa, sse, msa, mse = _anova(y)
    v1, v2, al = a - 1, a * (n - 1), 1 - LEVEL
    e = sigma_e2_interval(y, LEVEL)
    assert e.lower == pytest.approx(sse / stats.chi2.ppf(1 - al / 2, v2), rel=1e-12)
    assert e.upper == pytest.approx(sse / stats.chi2.ppf(al / 2, v2), rel=1e-12)
    F = msa / mse
    lo = max(0.0, (F / stats.f.ppf(1 - al / 2, v1, v2) - 1) / n)
    hi = max(0.0, (F / stats.f.ppf(al / 2, v1, v2) - 1) / n)
    g = variance_ratio_interval(y, LEVEL)
    assert (float(g.lower), float(g.upper)) == pytest.approx((lo, hi), rel=1e-12, abs=1e-15)
    r = icc_interval(y, LEVEL)
    assert (float(r.lower), float(r.upper)) == pytest.approx((lo / (1 + lo), hi / (1 + hi)), rel=1e-12, abs=1e-15)
    mu = closed_form_intervals(y, "exact", LEVEL)["mu"]
    est = fit_oneway(y, "REML", LEVEL)
    assert (float(mu.lower), float(mu.upper)) == pytest.approx((float(est.mu_lower), float(est.mu_upper)))


def _mls_textbook(y, level):
    """Burdick & Graybill's MLS interval for σ_A² written in their upper-point notation:
    F_{α:ν1,ν2} has α to its right; F_{α:ν,∞} = χ²_{α:ν}/ν."""
    a, n, ssa, sse, s1, s2 = _anova(y)
    n1, n2, al = a - 1, a * (n - 1), 1 - level

    def Fup(p, d1, d2=None):
        return stats.chi2.isf(p, d1) / d1 if d2 is None else stats.f.isf(p, d1, d2)

    G1, G2 = 1 - 1 / Fup(al / 2, n1), 1 - 1 / Fup(al / 2, n2)
    H1, H2 = 1 / Fup(1 - al / 2, n1) - 1, 1 / Fup(1 - al / 2, n2) - 1
    F1, F2 = Fup(al / 2, n1, n2), Fup(1 - al / 2, n1, n2)
    G12 = ((F1 - 1) ** 2 - G1 ** 2 * F1 ** 2 - H2 ** 2) / F1
    H12 = ((1 - F2) ** 2 - H1 ** 2 * F2 ** 2 - G2 ** 2) / F2
    VL = G1 ** 2 * s1 ** 2 + H2 ** 2 * s2 ** 2 + G12 * s1 * s2
    VU = H1 ** 2 * s1 ** 2 + G2 ** 2 * s2 ** 2 + H12 * s1 * s2
    L = (s1 - s2 - np.sqrt(VL)) / n
    U = (s1 - s2 + np.sqrt(VU)) / n
    return max(L, 0.0), max(U, 0.0), F1, F2


@pytest.mark.parametrize("y", _datasets())
def test_mls_interval_against_the_textbook_formula(y):
    L, U, _, _ = _mls_textbook(y, LEVEL)
    m = mls_sigma_a2_interval(y, LEVEL)
    assert (float(m.lower), float(m.upper)) == pytest.approx((L, U), rel=1e-12, abs=1e-15)
    assert closed_form_intervals(y, "mls", LEVEL)["sigma_a2"].upper == m.upper


def test_mls_limits_are_zero_exactly_at_the_f_critical_points():
    """G12 and H12 make L = 0 at F = F_{α/2 upper} and U = 0 at F = F_{1−α/2 upper}, so the MLS interval
    excludes 0 exactly when the one-sided F test at α/2 rejects (its coverage at σ_A² = 0 is 1 − α/2)."""
    rng = np.random.default_rng(1)
    y = simulate_oneway(rng, 7, 3, 0.0, 0.5, 1.0)
    s = oneway_stats(y)
    _, _, F1, F2 = _mls_textbook(y, 0.95)

    def with_f(target):  # rescale the group-mean deviations so that MSA/MSE = target
        k = np.sqrt(target / float(s.f))
        return s.grand_mean + k * (s.group_means[:, None] - s.grand_mean) + (y - s.group_means[:, None])

    assert float(oneway_stats(with_f(F1)).f) == pytest.approx(F1, rel=1e-12)
    assert float(mls_sigma_a2_interval(with_f(F1 * (1 + 1e-6)), 0.95).lower) > 0
    assert float(mls_sigma_a2_interval(with_f(F1 * (1 - 1e-6)), 0.95).lower) == 0
    assert float(mls_sigma_a2_interval(with_f(F2 * (1 + 1e-6)), 0.95).upper) > 0
    assert float(mls_sigma_a2_interval(with_f(F2 * (1 - 1e-6)), 0.95).upper) == 0
    # the plain Graybill–Wang form (no cross terms) lacks that property: its lower limit is 0 at F1 + ε
    plain = mls_sigma_a2_interval(with_f(F1 * (1 + 1e-6)), 0.95, cross_terms=False)
    assert float(plain.lower) == 0.0


def test_exact_coverages():
    assert exact_interval_coverage("exact", "sigma_e2", 6, 4, 0.3, 1.0, 0.95) == 0.95
    assert exact_interval_coverage("exact", "gamma", 6, 4, 0.3, 1.0, 0.95) == 0.95
    assert exact_interval_coverage("exact", "icc", 6, 4, 0.0, 1.0, 0.95) == pytest.approx(0.975)
    assert exact_interval_coverage("mls", "sigma_a2", 6, 4, 0.0, 1.0, 0.9) == pytest.approx(0.95)
    with pytest.raises(NoExactValueError):
        exact_interval_coverage("mls", "sigma_a2", 6, 4, 0.3, 1.0, 0.95)
    # profile at σ_A² = 0: the REML LRT's acceptance probability, by simulation of F
    from compare_mm.oneway.htests import f_threshold
    p = exact_interval_coverage("profile", "sigma_a2", 6, 4, 0.0, 1.0, 0.95, profile="reml")
    thr = f_threshold(stats.chi2.ppf(0.95, 1), 6, 4, "REML")
    assert p == pytest.approx(stats.f.cdf(thr, 5, 18), rel=1e-12) and 0.95 < p < 1


def _general_profile(y, mode, level):
    import pandas as pd

    from compare_mm.api import make_design
    from compare_mm.inference.profile import profile_intervals
    from compare_mm.study.generate import model_spec

    a, n = y.shape
    df = pd.DataFrame({"y": y.ravel(), "g": np.repeat([f"g{i}" for i in range(a)], n)})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ivs = profile_intervals(make_design(model_spec("oneway", None, "REML"), df), mode=mode, level=level)
    return {i.parameter: (i.lower, i.upper) for i in ivs}


@pytest.mark.parametrize("mode", ["reml", "ml"])
def test_vectorised_profile_equals_the_general_routine(mode):
    ys = _datasets()
    ys = [y for y in ys if y.shape == ys[0].shape] + [ys[-1]]
    for y in ys:
        got = oneway_profile_intervals(y, mode, LEVEL)
        ref = _general_profile(y, mode, LEVEL)
        sd, sig = ref["sd_(Intercept)|g"], ref["sigma"]
        assert float(got["sigma_a2"].lower) == pytest.approx(max(sd[0], 0) ** 2, rel=1e-5, abs=1e-9)
        assert float(got["sigma_a2"].upper) == pytest.approx(sd[1] ** 2, rel=1e-5)
        assert float(got["sigma_e2"].lower) == pytest.approx(sig[0] ** 2, rel=1e-5)
        assert float(got["sigma_e2"].upper) == pytest.approx(sig[1] ** 2, rel=1e-5)
        if mode == "ml":
            assert (float(got["mu"].lower), float(got["mu"].upper)) == pytest.approx(ref["(Intercept)"], rel=1e-6)
        else:
            assert "mu" not in got


def test_profile_interval_is_closed_at_zero_on_the_boundary():
    y = _datasets()[-1]
    assert float(fit_oneway(y, "REML").sigma_a2) == 0.0
    got = oneway_profile_intervals(y, "reml", 0.95)["sigma_a2"]
    assert float(got.lower) == 0.0 and float(got.upper) > 0
    ref = _general_profile(y, "reml", 0.95)["sd_(Intercept)|g"]
    assert ref[0] == 0.0  # the general routine closes it at 0 too
    # vectorised: each replicate's limits equal its own computation
    rng = np.random.default_rng(5)
    Y = simulate_oneway(rng, 5, 3, 0.0, 0.0, 1.0, size=40)
    allv = oneway_profile_intervals(Y, "reml", 0.95)["sigma_a2"]
    one = [oneway_profile_intervals(Y[k], "reml", 0.95)["sigma_a2"] for k in (0, 17, 39)]
    np.testing.assert_allclose([float(o.upper) for o in one], allv.upper[[0, 17, 39]], rtol=1e-10)
    est = fit_oneway(Y, "REML").sigma_a2
    assert np.all(allv.lower[est == 0] == 0) and (est == 0).any()
    assert np.all(allv.lower <= est) and np.all(est <= allv.upper)


@pytest.mark.parametrize("mode", ["reml", "ml"])
def test_profile_limits_solve_the_profile_equation_on_small_and_extreme_designs(mode):
    """At every finite limit the profiled deviance is D̂ + χ²_{1,0.95} (to 1e-6), for tiny designs (a = 2,
    n = 2) and variance ratios from 0 to 1e4; a lower limit of 0 has D(0) ≤ D̂ + χ² (closed at 0)."""
    from compare_mm.oneway import profile as P
    from compare_mm.oneway.closed_forms import variance_estimates

    rng = np.random.default_rng(4)
    crit = stats.chi2.ppf(0.95, 1)
    for a, n in [(2, 2), (3, 2), (2, 10), (50, 2)]:
        for sa2 in [0.0, 1e-4, 1.0, 1e4]:
            s = oneway_stats(simulate_oneway(rng, a, n, 5.0, sa2, 1.0, size=200))
            iv = oneway_profile_intervals(s, mode, 0.95)
            A, E = variance_estimates(s, mode.upper())
            dmin = P._dev(P._c1(s, mode), a * (n - 1), E + n * A, E, s.ssa, s.sse)
            lo, hi = iv["sigma_a2"].lower, iv["sigma_a2"].upper
            np.testing.assert_allclose(P.profile_sigma_a2(s, hi, mode) - dmin, crit, atol=1e-6)
            inner = lo > 0
            np.testing.assert_allclose((P.profile_sigma_a2(s, np.where(inner, lo, 0.0), mode) - dmin)[inner],
                                       crit, atol=1e-6)
            assert np.all(P.profile_sigma_a2(s, np.zeros_like(lo), mode)[~inner] - dmin[~inner] <= crit + 1e-9)
            for lim in (iv["sigma_e2"].lower, iv["sigma_e2"].upper):
                np.testing.assert_allclose(P.profile_sigma_e2(s, lim, mode) - dmin, crit, atol=1e-6)
