"""Crossed and nested models against an independent dense computation with V = ZGZ' + σ²I.

For each fit: the ML / REML log-likelihood evaluated directly from V (scipy.stats.multivariate_normal
and the textbook restricted likelihood) at our estimates equals our logLik; β̂ is the GLS estimate;
the BLUPs are G Z'V⁻¹(y − Xβ̂) and the conditional SDs the square roots of diag(G − G Z'V⁻¹Z G); and
a generic optimiser of the dense likelihood (Nelder-Mead over log-variances, from another start)
reaches the same maximum.  Z is rebuilt from the DataFrame with pandas dummies, not from the Design.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.optimize import minimize
from scipy.stats import multivariate_normal

import compare_mm


def crossed_data(seed=11) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    a, b = np.meshgrid(np.arange(8), np.arange(6), indexing="ij")
    a, b = np.repeat(a.ravel(), 2), np.repeat(b.ravel(), 2)
    keep = rng.random(a.size) < 0.85
    a, b = a[keep], b[keep]
    x = rng.normal(size=a.size)
    y = 1 + 0.5 * x + rng.normal(scale=1.0, size=8)[a] + rng.normal(scale=0.7, size=6)[b] \
        + 0.3 * rng.normal(size=8)[a] * x + rng.normal(scale=0.5, size=a.size)
    return pd.DataFrame({"y": y, "x": x, "a": [f"A{i}" for i in a], "b": [f"B{i}" for i in b]})


def nested_data(seed=5) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    a = np.repeat(np.arange(6), 12)
    b = np.tile(np.repeat(np.arange(4), 3), 6)
    x = rng.normal(size=a.size)
    y = 2 + x + rng.normal(scale=1.2, size=6)[a] + rng.normal(scale=0.8, size=24)[a * 4 + b] \
        + rng.normal(scale=0.6, size=a.size)
    return pd.DataFrame({"y": y, "x": x, "a": [f"a{i}" for i in a], "b": [f"b{i}" for i in b]})


def dummies(df: pd.DataFrame, group: str) -> tuple[np.ndarray, list[str]]:
    col = df[group.split(":")[0]].astype(str)
    for g in group.split(":")[1:]:
        col = col + ":" + df[g].astype(str)
    D = pd.get_dummies(col).astype(float)
    return D.to_numpy(), list(D.columns)


def dense_loglik(y, X, V, reml: bool) -> tuple[float, np.ndarray]:
    """ML or REML log-likelihood from the dense V, and the GLS β̂."""
    Vi = np.linalg.inv(V)
    XtViX = X.T @ Vi @ X
    beta = np.linalg.solve(XtViX, X.T @ Vi @ y)
    ll = multivariate_normal(mean=X @ beta, cov=V).logpdf(y)
    if reml:
        n, p = X.shape
        ll += 0.5 * p * np.log(2 * np.pi) - 0.5 * np.linalg.slogdet(XtViX)[1]
    return float(ll), beta


def dense_loglik_chol(y, X, V, reml: bool) -> float:
    """The same log-likelihood through a Cholesky factor of V (fast, for the generic optimiser)."""
    L = np.linalg.cholesky(V)
    Xs, ys = np.linalg.solve(L, X), np.linalg.solve(L, y)
    beta = np.linalg.lstsq(Xs, ys, rcond=None)[0]
    e = ys - Xs @ beta
    n, p = X.shape
    ll = -0.5 * (n * np.log(2 * np.pi) + 2 * np.log(np.diag(L)).sum() + e @ e)
    if reml:
        ll += 0.5 * p * np.log(2 * np.pi) - 0.5 * np.linalg.slogdet(Xs.T @ Xs)[1]
    return float(ll)


# model: formula, data maker, list of (group, [(name, column or None for intercept)]) per term
MODELS = {
    "crossed": ("y ~ x + (1 | a) + (1 | b)", crossed_data, [("a", ["1"]), ("b", ["1"])]),
    "nested": ("y ~ x + (1 | a/b)", nested_data, [("a", ["1"]), ("a:b", ["1"])]),
    "crossed_slope": ("y ~ x + (x | a) + (1 | b)", crossed_data, [("a", ["1", "x"]), ("b", ["1"])]),
}


def _zblocks(df, terms):
    """Dense Z per term: for each effect, the dummies times the effect's column."""
    out = []
    for group, effects in terms:
        D, _ = dummies(df, group)
        cols = [D * (1.0 if e == "1" else df[e].to_numpy()[:, None]) for e in effects]
        out.append((group, cols))
    return out


def _dense_V(zb, covs: dict, sigma2: float, n: int) -> np.ndarray:
    V = sigma2 * np.eye(n)
    for group, cols in zb:
        G = covs[group]
        for i, Zi in enumerate(cols):
            for j, Zj in enumerate(cols):
                if G[i, j] != 0.0:
                    V += G[i, j] * Zi @ Zj.T
    return V


def _covs_from_fit(res) -> dict:
    covs: dict = {}
    for group in res.ngroups:
        rows = [r for r in res.varcorr if r.group == group]
        names = [r.term for r in rows if r.term2 is None]
        G = np.diag([r.variance for r in rows if r.term2 is None])
        for r in rows:
            if r.term2 is not None:
                i, j = names.index(r.term), names.index(r.term2)
                G[i, j] = G[j, i] = r.cov
        covs[group] = G
    return covs


@pytest.mark.parametrize("method", ["REML", "ML"])
@pytest.mark.parametrize("model", sorted(MODELS))
def test_against_dense_likelihood(model, method):
    formula, make, terms = MODELS[model]
    df = make()
    res = compare_mm.fit(formula, df, method=method)
    assert res.converged and not res.singular
    reml = method == "REML"
    y = df["y"].to_numpy()
    X = np.column_stack([np.ones(len(df)), df["x"].to_numpy()])
    zb = _zblocks(df, terms)
    covs = _covs_from_fit(res)
    V = _dense_V(zb, covs, res.sigma**2, len(df))
    ll, beta = dense_loglik(y, X, V, reml)
    assert res.loglik == pytest.approx(ll, abs=1e-8)
    assert [r.estimate for r in res.fixef] == pytest.approx(beta, rel=1e-8)

    # BLUPs and conditional SDs (lme4's condVar: β̂ treated as known)
    Vi = np.linalg.inv(V)
    r = y - X @ beta
    for group, cols in zb:
        G = covs[group]
        _, levels = dummies(df, group)
        for i, Zi in enumerate(cols):
            GZt = sum(G[i, j] * Zj.T for j, Zj in enumerate(cols))        # row block i of G Z'
            b = GZt @ Vi @ r
            cv = np.diag(G[i, i] * np.eye(len(levels)) - GZt @ Vi @ GZt.T)
            name = "(Intercept)" if terms[[t[0] for t in terms].index(group)][1][i] == "1" else "x"
            ours = {rr.level: rr for rr in res.ranef if rr.group == group and rr.term == name}
            assert [ours[lv].value for lv in levels] == pytest.approx(b, abs=1e-7)
            assert [ours[lv].condsd for lv in levels] == pytest.approx(np.sqrt(cv), rel=1e-6)

    # a generic optimiser of the dense likelihood, from a different start, finds the same maximum
    def negll(par):
        k = 0
        cv = {}
        for group, cols in zb:
            q = len(cols)
            if q == 1:
                cv[group] = np.array([[np.exp(par[k])]])
                k += 1
            else:
                sd = np.exp(par[k:k + 2])
                rho = np.tanh(par[k + 2])
                cv[group] = np.array([[sd[0] ** 2, rho * sd[0] * sd[1]], [rho * sd[0] * sd[1], sd[1] ** 2]])
                k += 3
        return -dense_loglik_chol(y, X, _dense_V(zb, cv, np.exp(par[k]), len(df)), reml)

    npar = sum(1 if len(c) == 1 else 3 for _, c in zb) + 1
    best = minimize(negll, np.full(npar, -0.5), method="Nelder-Mead",
                    options=dict(xatol=1e-5, fatol=1e-9, maxiter=5000, maxfev=5000))
    best = minimize(negll, best.x, method="BFGS", options=dict(gtol=1e-8))
    assert -best.fun <= res.loglik + 1e-8          # ours is the maximum …
    assert -best.fun == pytest.approx(res.loglik, abs=1e-6)   # … and the generic optimiser agrees


def test_lme4_term_order_in_theta():
    """θ and VarCorr list terms by decreasing number of levels, as lme4 does (a: 8 levels, b: 6)."""
    df = crossed_data()
    res = compare_mm.fit("y ~ x + (1 | b) + (1 | a)", df)
    assert [r.group for r in res.varcorr] == ["a", "b", "Residual"]
    sd_a = res.varcorr[0].sd
    assert res.theta[0] == pytest.approx(sd_a / res.sigma, rel=1e-12)
    res2 = compare_mm.fit("y ~ x + (1 | a) + (1 | b)", df)
    assert res2.loglik == pytest.approx(res.loglik, abs=1e-9)
    assert res2.theta == pytest.approx(res.theta, rel=1e-6)
