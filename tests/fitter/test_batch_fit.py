"""The batched fitter (``PreparedReml.fit_many``) equals the per-replicate fitter, replicate by replicate.

Random one-factor designs (unbalanced group sizes, a covariate drawn per design), responses simulated
with variance components at and near zero so that many replicates end on the boundary (σ̂ = 0 for a
random intercept; a zero slope variance or |ρ̂| = 1 for random slopes).  For every replicate: fixed
effects and their SEs, σ̂, the VarCorr SDs and correlations, θ̂, the conditional modes and SDs to 1e-8
relative, logLik to 1e-9, and identical singular, converged and boundary (σ̂_A² = 0) flags.  Each case
also checks that the batch decided most replicates itself (including boundary ones for the random
intercept), so that the comparison is not vacuous.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

import compare_mm
from compare_mm.backends.reml import BACKEND

REL, LOGLIK = 1e-8, 1e-9


def _design(formula, sizes, method, rng, balanced_x=False):
    G = len(sizes)
    g = np.repeat(np.arange(G), sizes)
    x = np.concatenate([np.arange(s, dtype=float) for s in sizes]) if balanced_x else rng.normal(size=g.size)
    df = pd.DataFrame({"y": rng.normal(size=g.size), "x": x, "g": [f"g{i:02d}" for i in g]})
    d = compare_mm.make_design(formula, df)
    return replace(d, spec=replace(d.spec, method=method)), g, x


def _responses(rng, R, g, x, sa2, sb2, rho=0.0):
    G = int(g.max()) + 1
    cov = np.array([[sa2, rho * np.sqrt(sa2 * sb2)], [rho * np.sqrt(sa2 * sb2), sb2]])
    u = rng.multivariate_normal(np.zeros(2), cov, size=(R, G))
    return 1.0 + 0.5 * x + u[:, g, 0] + u[:, g, 1] * x + rng.normal(size=(R, g.size))


def _close(a, b, rel=REL, what=""):
    a, b = np.asarray(a, float), np.asarray(b, float)
    assert a.shape == b.shape, what
    scale = np.maximum(np.abs(b), 1e-300)
    both_nan = np.isnan(a) & np.isnan(b)
    err = np.where(both_nan, 0.0, np.abs(a - b) / scale)
    assert np.all(err <= rel), f"{what}: max relative difference {np.nanmax(err):.3g}"


def _same(a, b):
    """One replicate's batched and per-replicate results agree (module docstring)."""
    assert a.singular == b.singular and a.converged == b.converged
    _close([r.estimate for r in a.fixef], [r.estimate for r in b.fixef], what="fixef")
    _close([r.se for r in a.fixef], [r.se for r in b.fixef], what="se")
    _close(a.sigma, b.sigma, what="sigma")
    sd_a = [r.sd if r.sd is not None else r.corr for r in a.varcorr]
    sd_b = [r.sd if r.sd is not None else r.corr for r in b.varcorr]
    assert [v == 0.0 for v in sd_a] == [v == 0.0 for v in sd_b]            # the boundary decision
    _close(sd_a, sd_b, what="varcorr")
    _close(np.abs(np.array(a.theta)), np.abs(np.array(b.theta)), what="theta")
    assert [t == 0.0 for t in a.theta] == [t == 0.0 for t in b.theta]
    assert abs(a.loglik - b.loglik) <= LOGLIK
    va = np.array([r.value for r in a.ranef])
    vb = np.array([r.value for r in b.ranef])
    assert np.all(np.abs(va - vb) <= REL * max(1e-12, np.abs(vb).max()))
    _close([r.condsd for r in a.ranef], [r.condsd for r in b.ranef], what="condsd")


def _compare(design, Y):
    prep = BACKEND.prepare(design, {})
    many = prep.fit_many(Y)
    batched = [r.optimisation.optimizer.startswith("batched") for r in many]
    for a, y in zip(many, Y):
        _same(a, prep.fit(y))
    return np.array(batched), many


ML_SLOW = ["REML", pytest.param("ML", marks=pytest.mark.slow)]


@pytest.mark.parametrize("method", ML_SLOW)
@pytest.mark.parametrize("covariate", [False, True])
def test_random_intercept_unbalanced(method, covariate):
    rng = np.random.default_rng(11 if covariate else 12)
    n_batched = n_zero = 0
    for case in range(4):
        sizes = rng.integers(1, 9, size=int(rng.integers(3, 12)))
        formula = "y ~ x + (1 | g)" if covariate else "y ~ 1 + (1 | g)"
        design, g, x = _design(formula, sizes, method, rng)
        sa2 = [0.0, 0.05, 0.3, 2.0][case]
        Y = _responses(rng, 25, g, x, sa2, 0.0)
        batched, many = _compare(design, Y)
        n_batched += batched.sum()
        n_zero += sum(b and r.theta[0] == 0.0 for b, r in zip(batched, many))
    assert n_batched >= 90 and n_zero >= 10


@pytest.mark.parametrize("method", ML_SLOW)
@pytest.mark.parametrize("formula", ["y ~ x + (x || g)", "y ~ x + (x | g)"])
def test_random_slopes(method, formula):
    rng = np.random.default_rng(21 if "||" in formula else 22)
    n_batched = n_boundary = n_rho1 = 0
    for case, (sb2, rho) in enumerate([(0.0, 0.0), (0.02, 0.9), (0.3, 0.3)]):
        sizes = rng.integers(3, 10, size=int(rng.integers(6, 14)))
        design, g, x = _design(formula, sizes, method, rng, balanced_x=case == 2)
        Y = _responses(rng, 20, g, x, 1.0, sb2, rho)
        batched, many = _compare(design, Y)
        n_batched += batched.sum()
        n_boundary += sum(b and r.singular for b, r in zip(batched, many))     # a zero decided by the batch
        n_rho1 += sum(b and any(v.corr is not None and abs(v.corr) == 1.0 for v in r.varcorr)
                      for b, r in zip(batched, many))
    assert n_batched >= 50 and n_boundary >= 10
    if "||" not in formula:
        assert n_rho1 >= 3


def test_balanced_random_slope_all_batched():
    """The benchmark's design (18 groups × x = 0…9): every replicate decided by the batch."""
    rng = np.random.default_rng(3)
    design, g, x = _design("y ~ x + (x | g)", [10] * 18, "REML", rng, balanced_x=True)
    batched, _ = _compare(design, _responses(rng, 20, g, x, 1.0, 0.1, 0.2))
    assert batched.sum() >= 19


def test_other_designs_fall_back():
    """Two grouping factors: fit_many is the per-replicate fit."""
    rng = np.random.default_rng(4)
    n = 40
    df = pd.DataFrame({"y": rng.normal(size=n), "a": [f"a{i % 5}" for i in range(n)],
                       "b": [f"b{i % 4}" for i in range(n)]})
    design = compare_mm.make_design("y ~ 1 + (1 | a) + (1 | b)", df)
    prep = BACKEND.prepare(design, {})
    Y = rng.normal(size=(2, n))
    for a, y in zip(prep.fit_many(Y), Y):
        b = prep.fit(y)
        assert a.theta == b.theta and a.loglik == b.loglik
