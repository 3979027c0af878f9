"""Exact theory of one variance component (compare_mm.inference.onevc) against the balanced closed forms,
the package's exact RLRT and our fitter on an unbalanced design."""

import numpy as np
import pandas as pd
import pytest

from compare_mm.backends.reml import RemlBackend
from compare_mm.fitter.batch_fit import BatchFitter
from compare_mm.inference import onevc
from compare_mm.inference.rlrt import rlrt_eigenvalues, simulate_rlrt_null
from compare_mm.model.design import build_design
from compare_mm.model.spec import ModelSpec, RandomTerm
from compare_mm.oneway import theory
from compare_mm.oneway.htests import oneway_rejection_probability
from compare_mm.study.generate import model_spec, template_frame

SIZES = [2, 3, 3, 5, 8, 12, 20]


@pytest.mark.parametrize("a,n", [(3, 2), (6, 3), (18, 10), (4, 25)])
@pytest.mark.parametrize("gamma", [0.0, 0.05, 0.3, 2.0])
@pytest.mark.parametrize("method", ["REML", "ML"])
def test_balanced_mass_at_zero_equals_closed_form(a, n, gamma, method):
    sp = onevc.oneway_spectrum([n] * a)
    exact = float(theory.boundary_probability(a, n, gamma, 1.0, method))
    assert abs(onevc.boundary_probability(sp, gamma, method) - exact) < 1e-8


@pytest.mark.parametrize("method", ["REML", "ML"])
def test_balanced_estimate_cdf_equals_closed_form(method):
    # the balanced criterion is unimodal: P(score at c ≤ 0) = P(γ̂ ≤ c)
    sp = onevc.oneway_spectrum([4] * 6)
    for c in (0.1, 0.5, 2.0):
        exact = float(theory.variance_ratio_cdf(c, 6, 4, 0.5, 1.0, method))
        assert abs(onevc.estimate_cdf(sp, c, 0.5, method) - exact) < 1e-8
    assert onevc.underestimation_probability(sp, 0.0, method) == 0.0


def test_balanced_global_boundary_has_no_correction():
    sp = onevc.oneway_spectrum([3] * 6)
    g = onevc.boundary_probability_global(sp, 0.2, "ML", nsim=20_000)
    assert g.value == pytest.approx(onevc.boundary_probability(sp, 0.2, "ML"), abs=1e-12)
    assert g.mcse == 0.0


def _fitted_theta(method, sigma_a2, R, seed):
    """θ̂ = σ̂_A/σ̂_ε (the relative Cholesky factor) of R replicates of the unbalanced design, by our batched
    fitter (per-replicate fitter for the replicates the batch leaves undecided)."""
    cond = {"per_group": SIZES, "sigma_a2": sigma_a2, "sigma_e2": 1.0, "mu": 0.0}
    design = build_design(model_spec("oneway", method=method), template_frame("oneway", cond))
    rng = np.random.default_rng(seed)
    sizes = np.asarray(SIZES)
    Y = np.repeat(rng.standard_normal((R, sizes.size)) * np.sqrt(sigma_a2), sizes, axis=1) \
        + rng.standard_normal((R, sizes.sum()))
    prep = RemlBackend().prepare(design, {})
    bf = BatchFitter(design, prep.layout)
    theta, ok, _ = bf.optimum(bf.problem(Y), method == "REML")
    theta = theta[:, 0].copy()
    for i in np.flatnonzero(~ok):
        theta[i] = prep.fit(Y[i]).theta[0]
    return theta


def _fitted_boundary_rate(method, sigma_a2, R, seed):
    """Share of θ̂ = 0 over R replicates of the unbalanced design (:func:`_fitted_theta`)."""
    return float(np.mean(_fitted_theta(method, sigma_a2, R, seed) == 0.0))


@pytest.mark.slow
@pytest.mark.parametrize("method,sigma_a2", [("REML", 0.0), ("ML", 0.2)])
def test_unbalanced_mass_at_zero_agrees_with_our_fitter(method, sigma_a2):
    R = 20_000
    rate = _fitted_boundary_rate(method, sigma_a2, R, seed=11 if method == "REML" else 12)
    sp = onevc.oneway_spectrum(SIZES)
    exact = onevc.boundary_probability_global(sp, sigma_a2, method)
    local = onevc.boundary_probability(sp, sigma_a2, method)
    mcse = np.sqrt(exact.value * (1 - exact.value) / R)
    assert abs(rate - exact.value) < 4 * np.hypot(mcse, exact.mcse)
    # the local-maximum probability is an upper bound, by the rare second interior maximum
    assert 0.0 <= local - exact.value < 0.01


@pytest.mark.parametrize("method", ["REML", "ML"])
def test_balanced_global_underestimation_equals_closed_form(method):
    # balanced: P(γ̂ < γ) = F cdf at 1/k (k = 1 REML, (a − 1)/a ML), and no draw has a second mode
    for a, n in ((6, 4), (3, 2), (10, 15)):
        sp = onevc.oneway_spectrum([n] * a)
        for lam in (0.05, 0.3, 1.0, 4.0):
            g = onevc.underestimation_probability_global(sp, lam, method, nsim=4_000)
            exact = float(theory.variance_ratio_cdf(lam, a, n, lam, 1.0, method))
            assert abs(g.value - exact) < 1e-8, (a, n, lam)
            assert g.mcse == 0.0
    assert onevc.underestimation_probability_global(sp, 0.0, method).value == 0.0


@pytest.mark.slow
@pytest.mark.parametrize("method,sigma_a2", [("REML", 0.1), ("ML", 0.4)])
def test_unbalanced_underestimation_agrees_with_our_fitter(method, sigma_a2):
    R = 20_000
    theta = _fitted_theta(method, sigma_a2, R, seed=21 if method == "REML" else 22)
    rate = float(np.mean(theta ** 2 < sigma_a2))          # λ̂ = θ̂² = σ̂_A²/σ̂_ε² below λ₀ (σ_ε² = 1)
    sp = onevc.oneway_spectrum(SIZES)
    exact = onevc.underestimation_probability_global(sp, sigma_a2, method, nsim=100_000)
    mcse = np.sqrt(exact.value * (1 - exact.value) / R)
    assert abs(rate - exact.value) < 4 * np.hypot(mcse, exact.mcse), (rate, exact)


def _tail(draws, t):
    p = np.mean(draws > t)
    return p, np.sqrt(p * (1 - p) / draws.size)


@pytest.mark.parametrize("design", ["unbalanced", "covariates"])
def test_rlrt_null_agrees_with_package_exact_rlrt(design):
    if design == "unbalanced":
        sp = onevc.oneway_spectrum(SIZES)
        X = np.ones((sum(SIZES), 1))
        Z = np.repeat(np.eye(len(SIZES)), SIZES, axis=0)
    else:  # random intercept with a covariate, 10 groups of 4
        rng = np.random.default_rng(4)
        X = np.column_stack([np.ones(40), rng.normal(size=40)])
        Z = np.repeat(np.eye(10), 4, axis=0)
        sp = onevc.spectrum(X, Z)
    ours = onevc.simulate(sp, 0.0, "REML", 100_000, rng=1).statistic
    theirs = simulate_rlrt_null(rlrt_eigenvalues(X, Z), X.shape[0], X.shape[1], 100_000, rng=2)
    for t in (0.0, 0.3, 1.0, 2.71):
        (p1, s1), (p2, s2) = _tail(ours, t), _tail(theirs, t)
        assert abs(p1 - p2) < 4 * np.hypot(s1, s2), t


def test_rlrt_null_quantiles_match_the_balanced_f_distribution():
    # balanced: the RLRT is increasing in F above 1, so P(T_R > T_R(f)) = P(F_{a−1,a(n−1)} > f)
    from scipy import stats
    from compare_mm.oneway.htests import lrt_as_function_of_f

    a, n = 5, 4
    draws = onevc.simulate(onevc.oneway_spectrum([n] * a), 0.0, "REML", 100_000, rng=3).statistic
    for f in (1.5, 2.5, 4.0):
        t = float(lrt_as_function_of_f(f, a, n, "REML"))
        p, s = _tail(draws, t)
        assert abs(p - stats.f.sf(f, a - 1, a * (n - 1))) < 4 * s


@pytest.mark.parametrize("test,method", [("lrt_chi2", "ML"), ("lrt_chibar2", "REML"), ("exact_rlrt", "REML")])
def test_balanced_power_agrees_with_closed_form(test, method):
    a, n, gamma = 6, 3, 0.3
    sp = onevc.oneway_spectrum([n] * a)
    sim = onevc.rejection_probability(sp, gamma, test, method, 0.05, nsim=100_000)
    exact = float(oneway_rejection_probability(test, a, n, gamma, 1.0, 0.05, method))
    assert abs(sim.value - exact) < 4 * sim.mcse + 0.004 * (test == "exact_rlrt")  # + its null quantile's error


def test_design_spectrum_with_covariates_equals_dense_spectrum():
    rng = np.random.default_rng(8)
    g = np.repeat(np.arange(7), [2, 3, 3, 5, 4, 6, 2])
    df = pd.DataFrame({"g": [f"g{i}" for i in g], "x": rng.normal(size=g.size), "y": rng.normal(size=g.size)})
    spec = ModelSpec(response="y", fixed="1 + x", random=(RandomTerm(group=("g",), formula="1"),), method="REML")
    d = build_design(spec, df)
    Z = (g[:, None] == np.arange(7)[None, :]).astype(float)
    a, b = onevc.design_spectrum(d), onevc.spectrum(np.asarray(d.X), Z)
    np.testing.assert_allclose(a.mu, b.mu, rtol=1e-10)
    np.testing.assert_allclose(a.xi, b.xi, rtol=1e-10)
    assert (a.n, a.p, a.rest) == (b.n, b.p, b.rest) == (g.size, 2, g.size - 2 - 6)


def test_underestimation_probability_against_spectral_draws():
    sp = onevc.oneway_spectrum(SIZES)
    draws = onevc.simulate(sp, 0.5, "REML", 100_000, rng=9)
    p, s = _tail(-draws.lam_hat, -0.5)  # P(λ̂ < 0.5)
    # the score-sign probability assumes a unimodal criterion; the grid's λ̂ resolution adds ~1e-3
    assert abs(onevc.underestimation_probability(sp, 0.5, "REML") - p) < 4 * s + 0.003


def test_one_variance_only():
    df = pd.DataFrame({"g": np.repeat(["a", "b", "c", "d"], 5), "x": np.tile(np.arange(5.0), 4),
                       "y": np.random.default_rng(1).normal(size=20)})
    spec = ModelSpec(response="y", fixed="1 + x", random=(RandomTerm(group=("g",), formula="1 + x",
                                                                     covariance="diagonal"),), method="REML")
    from compare_mm.errors import ModelSpecError
    with pytest.raises(ModelSpecError, match="exactly one random variance"):
        onevc.design_spectrum(build_design(spec, df))
