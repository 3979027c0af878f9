"""PyMC backend numerics without sampling: KDE mode, HDI, the marginal likelihood (Woodbury) against the
dense multivariate normal, and the conditional draws of u against the dense Gaussian conditional."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from compare_mm.backends.pymc.marginal import draw_ranef, marginal_loglik, marginal_loglik_numpy
from compare_mm.backends.pymc.stats import conditional_loglik, graph_stats, sufficient_stats
from compare_mm.backends.pymc.summary import kde_mode, summarise_all, summarise_draws
from compare_mm.model.design import Design, RandomBlock
from compare_mm.model.spec import ModelSpec, RandomTerm


def test_kde_mode_of_a_gamma_sample():
    """Gamma(k=4, θ=2) has mode (k − 1)θ = 6."""
    x = np.random.default_rng(1).gamma(4.0, 2.0, size=20000)
    assert kde_mode(x, lower=0.0) == pytest.approx(6.0, abs=0.35)


def test_kde_mode_at_the_boundary():
    """A half-normal sample has its mode at 0; reflection keeps it there (a plain KDE would not)."""
    x = np.abs(np.random.default_rng(2).normal(size=4000))
    assert kde_mode(x, lower=0.0) < 0.05
    assert kde_mode(x) > 0.05  # without the bound the plain KDE mode moves inside


def test_hdi_and_eti_of_an_exponential():
    """Exp(1): 95% HDI = [0, −ln 0.05] = [0, 2.996]; ETI = [−ln 0.975, −ln 0.025] = [0.0253, 3.689]."""
    d = np.random.default_rng(3).exponential(size=(2, 100000))
    s = summarise_draws("x", d, 0.95, lower=0.0)
    assert s.hdi_lower == pytest.approx(0.0, abs=0.01)
    assert s.hdi_upper == pytest.approx(-np.log(0.05), abs=0.06)
    assert s.eti_lower == pytest.approx(-np.log(0.975), abs=0.003)
    assert s.eti_upper == pytest.approx(-np.log(0.025), abs=0.08)
    assert s.mean == pytest.approx(1.0, abs=0.01) and s.median == pytest.approx(np.log(2), abs=0.01)
    assert s.mode < 0.05
    assert s.rhat < 1.01 and s.ess_bulk > 150000
    s80 = summarise_draws("x", d, 0.80, lower=0.0)  # the level is honoured (not ArviZ's 0.89)
    assert s80.hdi_upper == pytest.approx(-np.log(0.2), abs=0.04)


def test_vectorised_summaries_match_arviz_per_parameter():
    """summarise_all (one ArviZ call per diagnostic, numpy HDI) = ArviZ called on each parameter alone."""
    import arviz as az

    rng = np.random.default_rng(4)
    draws = {"a": rng.normal(size=(2, 500)), "b": rng.gamma(2.0, size=(2, 500)),
             "c": np.cumsum(rng.normal(size=(2, 500)), axis=1)}  # c: a random walk, R-hat ≫ 1
    out = summarise_all(draws, {"a": (None, None), "b": (0.0, None), "c": (None, None)}, 0.9)
    for n, d in draws.items():
        s = out[n]
        assert s.rhat == pytest.approx(float(az.rhat(d)), rel=1e-12)
        assert s.ess_bulk == pytest.approx(float(az.ess(d, method="bulk")), rel=1e-12)
        assert s.ess_tail == pytest.approx(float(az.ess(d, method="tail")), rel=1e-12)
        assert [s.hdi_lower, s.hdi_upper] == pytest.approx(list(np.ravel(az.hdi(d.ravel(), hdi_prob=0.9))))
        assert [s.eti_lower, s.eti_upper] == pytest.approx(list(np.quantile(d, [0.05, 0.95])))
        assert s.median == pytest.approx(np.median(d)) and s.sd == pytest.approx(d.std(ddof=1))
    assert out["c"].rhat > 1.05 and out["a"].rhat < 1.01


def _design(q: int, rng) -> Design:
    m, per = 7, 5
    n = m * per
    codes = np.repeat(np.arange(m), per)
    codes = codes[rng.permutation(n)][: n - 3]  # unbalanced, shuffled
    n = codes.size
    x = rng.normal(size=n)
    X = np.column_stack([np.ones(n), x])
    Z = X[:, :q].copy()
    y = X @ [1.0, 0.5] + rng.normal(size=n)
    term = RandomTerm(("g",), "1 + x" if q == 2 else "1", "unstructured")
    spec = ModelSpec("y", "1 + x", (term,))
    block = RandomBlock("g", ("(Intercept)", "x")[:q], "unstructured", codes, tuple(map(str, range(m))), Z)
    return Design(spec, y, X, ("(Intercept)", "x"), (block,), "y")


@pytest.mark.parametrize("q", [1, 2])
def test_marginal_loglik_matches_dense(q):
    """Woodbury/determinant-lemma form (pytensor) = Σ_i log N(y_i; X_iβ, Z_i G Z_i' + σ²I) (scipy)."""
    import pytensor.tensor as pt

    rng = np.random.default_rng(10 + q)
    d = _design(q, rng)
    S = {k: pt.as_tensor(v) for k, v in graph_stats(sufficient_stats(d)).items()}
    beta = np.array([0.7, 0.3])
    L = np.array([[1.3]]) if q == 1 else np.array([[1.3, 0.0], [-0.4, 0.6]])
    sigma = 0.8
    got = float(marginal_loglik(S, pt.as_tensor(beta), L, pt.as_tensor(sigma), q, 2).eval())
    assert got == pytest.approx(marginal_loglik_numpy(d, beta, L @ L.T, sigma), rel=1e-10)


@pytest.mark.parametrize("q", [1, 2])
def test_conditional_loglik_matches_direct_normal(q):
    """Sufficient-statistic form (pymc_stats eq. 1–2) = Σ_r log N(y_r; X_rβ + Z_r u_{g(r)}, σ²) (scipy),
    also with y shifted by 10⁶ (the OLS-residual form must not lose the digits to cancellation)."""
    import pytensor.tensor as pt

    rng = np.random.default_rng(20 + q)
    d = _design(q, rng)
    b = d.blocks[0]
    beta = np.array([0.7, 0.3])
    u = rng.normal(size=(b.n_levels, q))
    sigma = 0.8
    for shift in (0.0, 1e6):
        y = d.y + shift
        dd = d.with_y(y)
        bb = beta + np.array([shift, 0.0])
        S = {k: pt.as_tensor(v) for k, v in graph_stats(sufficient_stats(dd)).items()}
        got = float(conditional_loglik(S, pt.as_tensor(bb), [pt.as_tensor(u[:, j]) for j in range(q)],
                                       pt.as_tensor(sigma), q, 2).eval())
        mean = d.X @ bb + np.sum(b.Z * u[b.codes], axis=1)
        assert got == pytest.approx(stats.norm.logpdf(y, mean, sigma).sum(), rel=1e-11, abs=1e-8)


def test_conditional_draws_of_u_match_dense_conditional():
    """u | y ~ N(G Z'V⁻¹ r, G − G Z'V⁻¹ZG) per group (dense); 40,000 draws at fixed (β, G, σ)."""
    rng = np.random.default_rng(5)
    d = _design(2, rng)
    st = sufficient_stats(d)
    beta = np.array([0.7, 0.3])
    L = np.array([[1.3, 0.0], [-0.4, 0.6]])
    sigma = 0.8
    S = 40000
    u = draw_ranef(st, np.tile(beta, (S, 1)), np.tile(L, (S, 1, 1)), np.full(S, sigma),
                   np.random.default_rng(6))
    G = L @ L.T
    b = d.blocks[0]
    for i in (0, 3):
        rows = b.codes == i
        Zi = b.Z[rows]
        V = Zi @ G @ Zi.T + sigma**2 * np.eye(rows.sum())
        r = d.y[rows] - d.X[rows] @ beta
        mean = G @ Zi.T @ np.linalg.solve(V, r)
        cov = G - G @ Zi.T @ np.linalg.solve(V, Zi @ G)
        se = np.sqrt(np.diag(cov) / S)
        np.testing.assert_array_less(np.abs(u[:, i].mean(0) - mean), 4.5 * se)
        np.testing.assert_allclose(np.cov(u[:, i].T), cov, atol=4.5 * np.sqrt(2.0 / S) * np.max(np.diag(cov)))
