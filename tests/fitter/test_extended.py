"""fitter.extended: the deviance at (θ, σ), with a coefficient fixed, and its optimum — the quantities
inference needs — against lme4's json, the dense likelihood V = ZGZ' + σ²I and refits of reduced designs."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

import compare_mm as cm
from compare_mm.fitter.extended import fit_design, fit_theta, fix_coefficient, surface
from compare_mm.fitter.theta import make_layout

MODELS = {"corr": "(Days | Subject)", "diag": "(Days || Subject)", "int": "(1 | Subject)"}


@pytest.mark.parametrize("kind", ["corr", "diag", "int"])
@pytest.mark.parametrize("method", ["REML", "ML"])
def test_lme4_criterion_at_lme4_theta_and_our_optimum(sleepstudy, lme4, kind, method):
    f = f"Reaction ~ Days + {MODELS[kind]}"
    ref = lme4[f"sleepstudy | {f} | {method}"]
    d = cm.make_design(f, sleepstudy, method=method)
    surf = surface(d)
    theta = np.atleast_1d(np.array(ref["theta"], dtype=float))
    prof = surf.at(theta, method == "REML")
    assert prof.deviance == pytest.approx(ref["deviance_or_reml_crit"], abs=1e-6)
    assert np.sqrt(prof.r2 / prof.nu) == pytest.approx(ref["sigma"], rel=1e-6)
    # d(θ, σ̂(θ)) is the profiled deviance
    assert surf.deviance_sigma(theta, np.sqrt(prof.r2 / prof.nu), method == "REML") == pytest.approx(
        prof.deviance, rel=1e-12)
    fit = fit_design(d)
    assert fit.deviance <= ref["deviance_or_reml_crit"] + 1e-6
    np.testing.assert_allclose(fit.theta, theta, rtol=2e-4, atol=1e-5)
    # the same optimum as the backend
    res = cm.fit(f, sleepstudy, method=method)
    assert fit.deviance == pytest.approx(res.criterion, abs=1e-9)


def _dense_z(design, layout):
    """Dense Z (columns level-major per term, terms in lme4 order) and the matching G from θ and σ."""
    cols = []
    for t in layout.terms:
        b = design.blocks[t.block]
        Z = np.zeros((design.n, b.n_levels * b.q))
        for j in range(b.q):
            Z[np.arange(design.n), np.asarray(b.codes) * b.q + j] = np.asarray(b.Z)[:, j]
        cols.append(Z)
    return np.hstack(cols)


def _dense(design, theta, sigma, method, y=None):
    """−2 log-likelihood (ML) or REML criterion from V = Z G Z' + σ² I directly."""
    layout = make_layout(design.blocks)
    Z = _dense_z(design, layout)
    G = np.zeros((Z.shape[1], Z.shape[1]))
    k = 0
    for t in layout.terms:
        lam = t.factor(theta)
        m = t.n_levels * t.q
        G[k:k + m, k:k + m] = np.kron(np.eye(t.n_levels), sigma ** 2 * lam @ lam.T)
        k += m
    X, y = design.X, design.y if y is None else y
    n, p = X.shape
    V = Z @ G @ Z.T + sigma ** 2 * np.eye(n)
    Vi = np.linalg.inv(V)
    XVX = X.T @ Vi @ X
    r = y - X @ np.linalg.solve(XVX, X.T @ Vi @ y)
    out = np.linalg.slogdet(V)[1] + r @ Vi @ r
    if method == "REML":
        return out + np.linalg.slogdet(XVX)[1] + (n - p) * np.log(2 * np.pi), np.linalg.inv(XVX)
    return out + n * np.log(2 * np.pi), np.linalg.inv(XVX)


def _frame():
    rng = np.random.default_rng(5)
    a, b = np.repeat(np.arange(5), 8), np.tile(np.arange(4), 10)
    return pd.DataFrame({"y": 50 + rng.normal(size=40), "x": rng.normal(size=40), "a": a.astype(str),
                         "b": b.astype(str)})


# θ in lme4 order: the 5-level factor a before the 4-level b, whatever the formula order
@pytest.mark.parametrize("formula,theta", [("y ~ x + (1 | a) + (1 | b)", [0.7, 0.4]),
                                           ("y ~ x + (1 | b) + (1 | a)", [0.7, 0.4]),
                                           ("y ~ x + (x | a) + (1 | b)", [0.9, -0.3, 0.5, 0.4]),
                                           ("y ~ x + (x || a)", [0.8, 0.3]),
                                           ("y ~ x + (x | a)", [0.8, 0.2, 0.3])])
@pytest.mark.parametrize("method", ["REML", "ML"])
@pytest.mark.parametrize("path", ["auto", "sparse"])
def test_deviance_at_sigma_and_vcov_equal_the_dense_likelihood(formula, theta, method, path):
    d = cm.make_design(formula, _frame(), method=method)
    surf = surface(d, path=path)
    # lme4's REML criterion is log|V| + log|X'V⁻¹X| + r'V⁻¹r + (n − p) log 2π (no −log|X'X| term)
    dev, vcov = _dense(d, np.array(theta), 1.3, method)
    assert surf.deviance_sigma(np.array(theta), 1.3, method == "REML") == pytest.approx(dev, rel=1e-10)
    np.testing.assert_allclose(surf.vcov_beta(np.array(theta), 1.3), vcov, rtol=1e-9)


def test_linear_model_is_ordinary_least_squares():
    df = _frame()
    d = replace(cm.make_design("y ~ x + (1 | a)", df), blocks=())
    for reml in (False, True):
        fit = fit_design(d, reml)
        beta, rss = np.linalg.lstsq(d.X, d.y, rcond=None)[:2]
        n, p = d.X.shape
        np.testing.assert_allclose(fit.beta, beta, rtol=1e-12)
        nu = n - p if reml else n
        assert fit.sigma == pytest.approx(np.sqrt(rss[0] / nu), rel=1e-12)
        expect = nu * (1 + np.log(2 * np.pi * rss[0] / nu)) + (np.linalg.slogdet(d.X.T @ d.X)[1] if reml else 0)
        assert fit.deviance == pytest.approx(expect, rel=1e-12)


@pytest.mark.parametrize("formula", ["y ~ x + (1 | a) + (1 | b)", "y ~ x + (x | a)", "y ~ x + (1 | a)"])
@pytest.mark.parametrize("j,b", [(0, 49.5), (1, 0.3)])
def test_fixed_coefficient_equals_the_refit_with_an_offset(formula, j, b):
    # β_j = b: the design without column j fitted to y − x_j b, at θ and at the optimum
    d = cm.make_design(formula, _frame(), method="ML")
    keep = [k for k in range(d.p) if k != j]
    sub = replace(d, X=np.ascontiguousarray(d.X[:, keep]), fixed_names=tuple(d.fixed_names[k] for k in keep))
    y = d.y - d.X[:, j] * b
    fixed = fix_coefficient(surface(d), j, b)
    theta = make_layout(d.blocks).start() * 0.6
    assert fixed.deviance_sigma(theta, 1.1, False) == pytest.approx(_dense(sub, theta, 1.1, "ML", y)[0],
                                                                     rel=1e-10)
    ref = fit_design(sub, False, y=y)
    mine = fit_theta(fixed, False)
    assert mine.deviance == pytest.approx(ref.deviance, rel=1e-10)
    np.testing.assert_allclose(mine.beta, ref.beta, rtol=1e-7)
    np.testing.assert_allclose(mine.theta, ref.theta, rtol=1e-5, atol=1e-7)
    # a warm start reaches the same optimum
    warm = fit_theta(fixed, False, start=ref.theta * 1.3)
    assert warm.deviance == pytest.approx(ref.deviance, rel=1e-10)
