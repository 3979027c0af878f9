"""The profiled deviance used by profiles, Satterthwaite and the LRTs, against lme4 and dense algebra."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import compare_mm as cm
from compare_mm.inference.deviance import ProfiledDeviance, block_factors, dense_z, fit_theta


@pytest.mark.parametrize("kind", ["corr", "diag", "int"])
@pytest.mark.parametrize("method", ["REML", "ML"])
def test_lme4_criterion_at_lme4_theta_and_our_optimum(sleep_design, lme4, ref_key, kind, method):
    ref = lme4[ref_key(kind, method)]
    dev = ProfiledDeviance(sleep_design(kind, method))
    theta = np.atleast_1d(np.array(ref["theta"], dtype=float))
    assert dev.deviance(theta, method) == pytest.approx(ref["deviance_or_reml_crit"], abs=1e-6)
    assert dev.sigma_hat(theta, method) == pytest.approx(ref["sigma"], rel=1e-6)
    fit = fit_theta(dev, method)
    assert fit.deviance <= ref["deviance_or_reml_crit"] + 1e-6
    np.testing.assert_allclose(fit.theta, theta, rtol=2e-4, atol=1e-5)


def _dense(design, theta, sigma, method):
    """−2 log-likelihood (ML) or REML criterion from V = Z G Z' + σ² I directly."""
    Z = np.hstack([dense_z(b) for b in design.blocks])
    G = np.zeros((Z.shape[1], Z.shape[1]))
    k = 0
    for b, T in zip(design.blocks, block_factors(design.blocks, theta)):
        m = b.n_levels * b.q
        G[k:k + m, k:k + m] = np.kron(np.eye(b.n_levels), sigma ** 2 * T @ T.T)
        k += m
    X, y = design.X, design.y
    n, p = X.shape
    V = Z @ G @ Z.T + sigma ** 2 * np.eye(n)
    Vi = np.linalg.inv(V)
    XVX = X.T @ Vi @ X
    r = y - X @ np.linalg.solve(XVX, X.T @ Vi @ y)
    out = np.linalg.slogdet(V)[1] + r @ Vi @ r
    if method == "REML":
        return out + np.linalg.slogdet(XVX)[1] + (n - p) * np.log(2 * np.pi)
    return out + n * np.log(2 * np.pi)


@pytest.mark.parametrize("formula,theta", [("y ~ x + (1 | a) + (1 | b)", [0.7, 0.4]),
                                           ("y ~ x + (x | a) + (1 | b)", [0.9, -0.3, 0.5, 0.4]),
                                           ("y ~ x + (x || a)", [0.8, 0.3])])
@pytest.mark.parametrize("method", ["REML", "ML"])
def test_both_paths_equal_the_dense_likelihood(formula, theta, method):
    # the single-term path (batched q×q) and the several-term path (dense Q×Q) against V directly
    rng = np.random.default_rng(5)
    a, b = np.repeat(np.arange(5), 8), np.tile(np.arange(4), 10)
    df = pd.DataFrame({"y": rng.normal(size=40), "x": rng.normal(size=40), "a": a.astype(str),
                       "b": b.astype(str)})
    d = cm.make_design(formula, df, method=method)
    dev = ProfiledDeviance(d)
    # lme4's REML criterion is log|V| + log|X'V⁻¹X| + r'V⁻¹r + (n − p) log 2π (no −log|X'X| term)
    assert dev.deviance_sigma(np.array(theta), 1.3, method) == pytest.approx(
        _dense(d, np.array(theta), 1.3, method), rel=1e-10)
