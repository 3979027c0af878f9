"""Oracle shrinkage (compare_mm.inference.oracle_shrinkage) against BLUPs computed by brute force at the true
parameters (dense V = ZGZ' + σ²I, GLS β̂) in a 10,000-replicate Monte Carlo."""

import numpy as np
import pytest

from compare_mm.inference.oracle_shrinkage import oneway_oracle, random_slope_oracle, shrinkage_matrices
from compare_mm.study.exact import exact_value
from compare_mm.study.summarise_groups import group_metrics

R = 10_000


def _dense_blups(X, Z, Gb, sigma2, Y):
    """û = G_b Z'V⁻¹(y − Xβ̂), β̂ the GLS estimate, for every row of Y."""
    V = Z @ Gb @ Z.T + sigma2 * np.eye(X.shape[0])
    Vi = np.linalg.inv(V)
    B = np.linalg.solve(X.T @ Vi @ X, X.T @ Vi @ Y.T)          # (p, R)
    return (Gb @ Z.T @ Vi @ (Y.T - X @ B)).T                    # (R, mq)


def _metrics(pred, raw, u, q):
    """The study's group metrics per effect from (R, m, q) arrays of predictions, raw effects and truths."""
    Rn, m, _ = pred.shape
    out = []
    for k in range(q):
        rows = dict(ok=np.ones(Rn * m, bool), estimate=pred[:, :, k].ravel(), raw=raw[:, :, k].ravel(),
                    truth=u[:, :, k].ravel(), replicate=np.repeat(np.arange(Rn), m))
        out.append({name: (v, s) for name, v, s, _ in group_metrics(rows)})
    return out


def _check(metrics, oracle, q):
    for k in range(q):
        for name, exact in (("shrinkage_factor", oracle.slope[k]), ("mse_blup", oracle.mse_blup[k]),
                            ("mse_raw", oracle.mse_raw[k]), ("mse_ratio", oracle.mse_ratio[k])):
            v, s = metrics[k][name]
            assert abs(v - exact) < 4 * s, (k, name, v, exact, s)


def test_random_slope_oracle_against_monte_carlo_of_blups():
    m, x = 12, np.arange(6.0)
    sa2, sb2, rho, se2 = 0.8, 0.15, 0.4, 1.0
    cab = rho * np.sqrt(sa2 * sb2)
    G = np.array([[sa2, cab], [cab, sb2]])
    Xi = np.column_stack([np.ones(x.size), x])
    X = np.tile(Xi, (m, 1))
    Z = np.kron(np.eye(m), Xi)
    rng = np.random.default_rng(2024)
    u = rng.multivariate_normal(np.zeros(2), G, size=(R, m))                  # (R, m, 2)
    beta = np.array([1.0, -0.5])
    Y = (X @ beta)[None] + np.einsum("ij,rj->ri", Z, u.reshape(R, -1)) + rng.normal(size=(R, m * x.size))
    pred = _dense_blups(X, Z, np.kron(np.eye(m), G), se2, Y).reshape(R, m, 2)
    bhat = Y.reshape(R, m, x.size) @ (Xi @ np.linalg.inv(Xi.T @ Xi))             # per-group OLS (R, m, 2)
    raw = bhat - bhat.mean(axis=1, keepdims=True)                            # the study's raw effects
    oracle = random_slope_oracle(x, m, sa2, sb2, rho, se2)
    # the BLUP at the true parameters is exactly K(β̂_i − β̂) (equal designs: β̂ = mean of the β̂_i)
    np.testing.assert_allclose(pred, raw @ oracle.K[0].T, atol=1e-9)
    # K = E[u_i | β̂_i − β]: the regression of the realised effects on the OLS deviations, with its OLS SEs
    d = (bhat - beta).reshape(-1, 2)
    coef, *_ = np.linalg.lstsq(d, u.reshape(-1, 2), rcond=None)
    resid = u.reshape(-1, 2) - d @ coef
    se = np.sqrt(np.outer(np.diag(np.linalg.inv(d.T @ d)), resid.var(axis=0)))
    assert np.all(np.abs(coef.T - oracle.K[0]) < 4 * se.T)
    _check(_metrics(pred, raw, u, 2), oracle, 2)
    # the study attaches the same values to its rows
    cond = dict(groups=m, x=list(x), sigma_a2=sa2, sigma_b2=sb2, rho=rho, sigma_e2=se2, beta0=1.0, beta1=-0.5)
    assert exact_value("random_slope", cond, False, "REML", "u_b", "mse_blup", 0.95) == \
        pytest.approx(oracle.mse_blup[1], rel=1e-12)
    assert exact_value("random_slope", cond, True, "", "u_a", "shrinkage_factor", 0.95) == \
        pytest.approx(sa2 / (sa2 + np.linalg.inv(Xi.T @ Xi)[0, 0] * se2), rel=1e-12)


def test_unbalanced_oneway_oracle_against_monte_carlo_of_blups():
    sizes = np.array([2, 3, 3, 5, 8, 12, 20])
    sa2, se2 = 0.3, 1.0
    n, m = sizes.sum(), sizes.size
    X = np.ones((n, 1))
    Z = np.repeat(np.eye(m), sizes, axis=0)
    rng = np.random.default_rng(7)
    u = rng.normal(size=(R, m)) * np.sqrt(sa2)
    Y = 2.0 + u @ Z.T + rng.normal(size=(R, n))
    pred = _dense_blups(X, Z, sa2 * np.eye(m), se2, Y)
    means = (Y @ Z) / sizes
    raw = means - Y.mean(axis=1, keepdims=True)                             # ȳ_i − ȳ, as the study
    oracle = oneway_oracle(sizes, sa2, se2)
    np.testing.assert_allclose(oracle.K[:, 0, 0], sa2 / (sa2 + se2 / sizes))
    _check(_metrics(pred[..., None], raw[..., None], u[..., None], 1), oracle, 1)


def test_balanced_oneway_oracle_is_the_closed_form():
    o = oneway_oracle([5] * 6, 0.3, 1.0)
    assert o.slope[0] == pytest.approx(5 * 0.3 / (1 + 5 * 0.3), rel=1e-12)
    # PEV of the BLUP with μ estimated: σ_A² − (1 − 1/a) σ_A⁴/(σ_A² + σ²/n); raw: (1 − 1/a)σ²/n + σ_A²/a
    assert o.mse_blup[0] == pytest.approx(0.3 - (5 / 6) * 0.09 / 0.5, rel=1e-12)
    assert o.mse_raw[0] == pytest.approx((5 / 6) * 0.2 + 0.3 / 6, rel=1e-12)
    np.testing.assert_allclose(shrinkage_matrices(np.eye(1) * 0.3, 1.0, np.full(6, 5.0))[:, 0, 0], 0.6)
