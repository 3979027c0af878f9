"""Two scalar terms on two factors: equations (1)–(2) by eliminating one factor (quadrature_two) against the
dense K × K computation written here (batched Cholesky of M = σ²I + W̃'W̃, the form the package used before)
and against scipy's multivariate normal density, on random crossed, nested and unbalanced designs."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings, strategies as st
from scipy import stats

import compare_mm as cm
from compare_mm.backends.pymc import quadrature_model as qm
from compare_mm.backends.pymc.backend import BACKEND


def dense_reference(pb, sds, sigma):
    """(1)–(2) with the dense K × K M: log p(y | ψ), E[β], Cov[β], E[u], Var[u] (module docstring of
    quadrature_model), point by point."""
    p, m = pb.p, pb.G
    K = p + m
    WtW = np.block([[pb.XtX, pb.ZtX.T], [pb.ZtX, pb.ZtZ]])
    Wtr = np.concatenate([pb.Xtr, pb.Ztr])
    out = []
    for s, sg in zip(sds, sigma):
        d = np.concatenate([pb.s0, s[pb.col_sd]])
        M = d[:, None] * WtW * d[None] + sg**2 * np.eye(K)
        b = d * Wtr
        Minv = np.linalg.inv(M)
        ll = -0.5 * (pb.n * np.log(2 * np.pi) + (pb.n - K) * np.log(sg**2) + np.linalg.slogdet(M)[1]
                     + (pb.rr - b @ Minv @ b) / sg**2)
        mean = Minv @ b
        out.append((ll, pb.m0 + pb.s0 * mean[:p], sg**2 * pb.s0[:, None] * Minv[:p, :p] * pb.s0[None],
                    d[p:] * mean[p:], sg**2 * np.diag(Minv)[p:] * d[p:] ** 2))
    return [np.array(v) for v in zip(*out)]


def _design(seed: int):
    rng = np.random.default_rng(seed)
    Ga, Gb = int(rng.integers(2, 9)), int(rng.integers(2, 15))
    kind = rng.choice(["crossed", "nested", "unbalanced"])
    if kind == "nested":                       # the two-way design: b = a:trt
        per = int(rng.integers(2, 4))
        a = np.repeat(np.arange(Ga), Gb * per)
        b = np.tile(np.repeat(np.arange(Gb), per), Ga) + Gb * a
    else:
        n = int(rng.integers(3 * (Ga + Gb), 6 * (Ga + Gb)))
        a, b = rng.integers(0, Ga, n), rng.integers(0, Gb, n)
        if kind == "unbalanced":
            keep = rng.random(n) < rng.uniform(0.4, 1.0, Gb)[b]
            a, b = a[keep], b[keep]
    n = a.size
    x = rng.normal(size=n)
    level_a = np.unique(a, return_inverse=True)[1]
    y = rng.normal(size=n) * rng.uniform(0.3, 4) + rng.normal(size=Ga)[level_a] + 2 * x
    df = pd.DataFrame({"y": y, "x": x, "z": rng.normal(size=n),
                       "a": [f"a{i}" for i in a], "b": [f"b{i}" for i in b]})
    formula = "y ~ x + (1 | a) + (0 + z | b)" if rng.random() < 0.3 else "y ~ x + (1 | a) + (1 | b)"
    return df, formula, rng


def _problem(df, formula):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        d = cm.make_design(formula, df)
    _, pri = BACKEND.resolved_options(d, {"sampler": "quadrature"})
    return qm.build_problem(d, pri), d


@settings(max_examples=40, deadline=None, derandomize=True)
@given(seed=st.integers(0, 2**31 - 1))
def test_elimination_equals_the_dense_computation(seed):
    df, formula, rng = _design(seed)
    if df.a.nunique() < 2 or df.b.nunique() < 2:
        return
    pb, _ = _problem(df, formula)
    assert pb.kind == "dense"
    P = 30
    sds = np.exp(rng.uniform(-6, 3, (P, 2))) * df.y.std()
    sds[rng.random((P, 2)) < 0.15] = 0.0            # a variance on its boundary
    sigma = np.exp(rng.uniform(-2, 2, P)) * df.y.std()
    got = qm.conditional(pb, sds, None, sigma, want_u=True)
    ref = dense_reference(pb, sds, sigma)
    for name, g, r in zip(("loglik", "beta_mean", "beta_cov", "u_mean", "u_var"),
                          (got.loglik, got.beta_mean, got.beta_cov, got.u_mean[..., 0], got.u_var[..., 0]), ref):
        scale = np.maximum(np.abs(r), 1e-300).reshape(P, -1).max(1)
        err = np.abs(g - r).reshape(P, -1).max(1) / scale
        assert np.all(err < 1e-8), (name, seed, formula, err.max())


def test_loglik_is_the_multivariate_normal_density():
    df, formula, rng = _design(11)
    pb, d = _problem(df, formula)
    X = np.asarray(d.X)
    Z = [np.zeros((d.n, b.n_levels)) for b in d.blocks]
    for Zk, b in zip(Z, d.blocks):
        Zk[np.arange(d.n), b.codes] = b.Z[:, 0]
    sds, sigma = np.array([[0.7, 0.3]]), np.array([1.3])
    V = sigma[0] ** 2 * np.eye(d.n) + sum(s**2 * Zk @ Zk.T for s, Zk in zip(sds[0], Z)) + X @ np.diag(pb.s0**2) @ X.T
    want = stats.multivariate_normal(X @ pb.m0, V).logpdf(np.asarray(d.y))
    assert qm.conditional(pb, sds, None, sigma).loglik[0] == pytest.approx(want, rel=1e-10)


def test_a_singular_probe_gets_minus_infinity_not_an_error():
    df, formula, _ = _design(5)
    pb, _ = _problem(df, formula)
    sds = np.array([[1.0, 1.0], [1e40, 1e-30], [0.5, 0.5], [0.0, 0.0]])
    sigma = np.array([1.0, 1e-30, 1.0, 0.0])        # the last: S = 0, not positive definite
    with np.errstate(all="ignore"):
        got = qm.conditional(pb, sds, None, sigma, want_u=True)
    assert np.isfinite(got.loglik[[0, 2]]).all()
    assert not np.isnan(got.loglik[1]) and got.loglik[1] < got.loglik[[0, 2]].min() - 1e6   # weight 0
    assert got.loglik[3] == -np.inf
    assert not np.isnan(got.u_mean).any() and not np.isnan(got.beta_cov).any()
