"""The blocked path (compare_mm.fitter.blocked / blocked_eval) against independent computations.

* small crossed, nested, partially crossed and three-factor data: the profiled deviance at random θ
  equals the one computed from the dense V = I + ZΛΛ'Z' (Z rebuilt from the DataFrame with pandas
  dummies; GLS β̂, r² = e'V⁻¹e, log|V|, log|X'V⁻¹X|), and the analytic gradient equals fourth-order
  central differences of that dense deviance;
* medium data: deviance, gradient, conditional modes and diag(ΛA⁻¹Λ') equal the dense general path's
  (compare_mm.fitter.general) to 1e-8 relative, for both storages of Z_r'Z_1 (sparse and dense) and
  random θ drawn by hypothesis;
* full fits: the blocked optimum is no worse than the general path's and the estimates, conditional
  modes and SDs agree; inference (profile intervals, Satterthwaite df, LRTs) on the blocked path equals
  the general path's.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings, strategies as st

import compare_mm
from compare_mm import OptionError, make_design
from compare_mm.fitter import blocked, blocked_eval, general
from compare_mm.fitter.centring import theta_to_user
from compare_mm.fitter.extended import choose_path
from compare_mm.fitter.theta import make_layout
from compare_mm.inference.run import run_inference


def crossed(seed=1, na=9, nb=7, nc=3, n=90) -> pd.DataFrame:
    """Unbalanced crossed factors a, b, c (c partially nested in b), and a covariate."""
    rng = np.random.default_rng(seed)
    a, b = rng.integers(0, na, n), rng.integers(0, nb, n)
    c = (b + rng.integers(0, 2, n)) % nc
    x = rng.normal(size=n)
    y = (1 + 0.5 * x + rng.normal(0, 1.0, na)[a] + 0.4 * rng.normal(size=na)[a] * x
         + rng.normal(0, 0.7, nb)[b] + rng.normal(0, 0.5, nc)[c] + rng.normal(0, 0.6, n))
    return pd.DataFrame({"y": y, "x": x, "a": [f"a{i}" for i in a], "b": [f"b{i}" for i in b],
                         "c": [f"c{i}" for i in c]})


def nested(seed=2, na=5, nb=4, m=3) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    a = np.repeat(np.arange(na), nb * m)
    b = np.tile(np.repeat(np.arange(nb), m), na)
    x = rng.normal(size=a.size)
    y = 2 + x + rng.normal(0, 1.2, na)[a] + rng.normal(0, 0.8, na * nb)[a * nb + b] + rng.normal(0, 0.6, a.size)
    return pd.DataFrame({"y": y, "x": x, "a": [f"a{i}" for i in a], "b": [f"b{i}" for i in b]})


# formula, data, per term in lme4 order: (grouping columns, effects)
SMALL = {
    "crossed": ("y ~ x + (1 | a) + (1 | b)", crossed),
    "crossed_slope": ("y ~ x + (x | a) + (1 | b)", crossed),
    "slope_on_second": ("y ~ x + (1 | a) + (x | b)", crossed),
    "three": ("y ~ x + (1 | a) + (1 | b) + (1 | c)", crossed),
    "diag_slope": ("y ~ x + (x || a) + (1 | c)", crossed),
    # an uncorrelated slope term after the first: its Λ positions are listed effect by effect, not in order
    "diag_slope_on_second": ("y ~ x + (1 | a) + (x || b)", crossed),
    "diag_slope_and_interaction": ("y ~ x + (x || a) + (1 | a:b)", nested),
    "nested": ("y ~ x + (1 | a/b)", nested),
    "nested_explicit": ("y ~ x + (1 | a) + (1 | a:b)", nested),
}


def _dense_Z(df: pd.DataFrame, design, layout) -> list[np.ndarray]:
    """Per term (lme4 order), the dense Z_t with columns level-major (level's q effects together),
    from pandas dummies of the grouping columns (not from the Design)."""
    out = []
    for t in layout.terms:
        col = None
        for g in t.group.split(":"):
            col = df[g].astype(str) if col is None else col + ":" + df[g].astype(str)
        D = pd.get_dummies(col).astype(float).to_numpy()
        eff = [np.ones(len(df)) if name == "(Intercept)" else df[name].to_numpy() for name in t.names]
        Zt = np.stack([D * e[:, None] for e in eff], axis=2).reshape(len(df), -1)    # level-major
        out.append(Zt)
    return out


def dense_deviance(df, Zs, layout, theta, reml: bool) -> float:
    """d(θ) from V = I + Σ_t Z_t (I ⊗ Λ_tΛ_t') Z_t' (Bates et al. 2015, eqs. 34 and 41, via V);
    ``Zs`` from :func:`_dense_Z`."""
    n = len(df)
    y = df["y"].to_numpy()
    X = np.column_stack([np.ones(n), df["x"].to_numpy()])
    V = np.eye(n)
    for t, Zt in zip(layout.terms, Zs):
        lam = t.factor(np.asarray(theta))
        levels = Zt.shape[1] // t.q
        V += Zt @ np.kron(np.eye(levels), lam @ lam.T) @ Zt.T
    Vi = np.linalg.inv(V)
    M = X.T @ Vi @ X
    beta = np.linalg.solve(M, X.T @ Vi @ y)
    e = y - X @ beta
    r2 = float(e @ Vi @ e)
    p = X.shape[1]
    nu = n - p if reml else n
    d = np.linalg.slogdet(V)[1] + nu * (1 + np.log(2 * np.pi * r2 / nu))
    return float(d + (np.linalg.slogdet(M)[1] if reml else 0.0))


def _theta(layout, rng) -> np.ndarray:
    th = rng.uniform(-0.5, 0.5, layout.n_theta)
    th[layout.diagonal] = rng.uniform(0.2, 1.6, int(layout.diagonal.sum()))
    return th


@pytest.mark.parametrize("reml", [True, False])
@pytest.mark.parametrize("model", sorted(SMALL))
def test_deviance_and_gradient_equal_the_dense_V_computation(model, reml):
    formula, make = SMALL[model]
    df = make()
    design = make_design(formula, df)
    layout = make_layout(design.blocks)
    assert choose_path(design) == "blocked"
    pr = blocked.build_blocked(design, layout)
    Zs = _dense_Z(df, design, layout)
    rng = np.random.default_rng(7)
    user = lambda th: theta_to_user(layout, th)  # noqa: E731  the problem is on centred slopes (fitter.centring)
    for _ in range(2):
        th = _theta(layout, rng)
        d, g = blocked_eval.evaluate(pr, th, reml)
        assert d == pytest.approx(dense_deviance(df, Zs, layout, user(th), reml), rel=1e-11)
        h = 1e-3
        fd = np.empty_like(th)
        for k in range(th.size):
            e = np.zeros_like(th)
            e[k] = h
            f = [dense_deviance(df, Zs, layout, user(th + s * e), reml) for s in (2, 1, -1, -2)]
            fd[k] = (-f[0] + 8 * f[1] - 8 * f[2] + f[3]) / (12 * h)
        assert g == pytest.approx(fd, rel=1e-6, abs=1e-6 * abs(d))


def medium(seed=3) -> pd.DataFrame:
    return crossed(seed, na=40, nb=30, nc=5, n=900)


MEDIUM = ["y ~ x + (x | a) + (1 | b)", "y ~ x + (1 | a) + (1 | b) + (1 | c)", "y ~ x + (1 | a) + (x | b)",
          "y ~ x + (1 | b/c)", "y ~ x + (1 | a) + (x || b)"]


@pytest.fixture(scope="module")
def medium_problems():
    """Per formula: the layout, the dense general problem and the blocked problem with Z_r'Z_1 stored
    sparsely and densely (the fill here would choose the sparse storage)."""
    df = medium()
    out = {}
    for f in MEDIUM:
        design = make_design(f, df)
        layout = make_layout(design.blocks)
        out[f] = (layout, general.build_general(design, layout),
                  {s: blocked.build_blocked(design, layout, storage=s) for s in ("sparse", "dense")})
    return out


@pytest.mark.slow
@settings(max_examples=10, deadline=None, derandomize=True)
@given(k=st.integers(0, len(MEDIUM) - 1), seed=st.integers(0, 2**31), reml=st.booleans(),
       dense_coupling=st.booleans())
def test_medium_equals_general_path(medium_problems, k, seed, reml, dense_coupling):
    layout, gp, bps = medium_problems[MEDIUM[k]]
    bp = bps["dense" if dense_coupling else "sparse"]
    th = _theta(layout, np.random.default_rng(seed))
    if seed % 3 == 0:                                   # a variance at exactly 0 (singular Λ)
        th[np.flatnonzero(layout.diagonal)[-1]] = 0.0
    d1, g1 = general.evaluate(gp, th, reml)
    d2, g2 = blocked_eval.evaluate(bp, th, reml)
    assert d2 == pytest.approx(d1, rel=1e-12)
    assert np.max(np.abs(g2 - g1)) <= 1e-8 * max(1.0, np.max(np.abs(g1)))
    p1, b1, v1 = general.solution(gp, th, reml)
    p2, b2, v2 = blocked_eval.solution(bp, th, reml)
    assert b2 == pytest.approx(b1, rel=1e-8, abs=1e-10)
    assert v2 == pytest.approx(v1, rel=1e-8, abs=1e-12)
    assert p2.beta == pytest.approx(p1.beta, rel=1e-10)


def test_storage_of_the_coupling(medium_problems):
    # the hypothesis test above covers both storages; "auto" chooses by the fill of Z_r'Z_1
    df = medium()
    for f, (layout, _, bps) in medium_problems.items():
        assert bps["sparse"].coupling.kind == "sparse" and bps["dense"].coupling.kind == "dense"
        Sr1 = bps["sparse"].coupling.Sr1
        fill = Sr1.nnz / (Sr1.shape[0] * Sr1.shape[1])
        auto = blocked.build_blocked(make_design(f, df), layout).coupling.kind
        assert auto == ("dense" if fill >= blocked.DENSE_FILL else "sparse")


@pytest.mark.parametrize("method", ["REML", "ML"])
@pytest.mark.parametrize("formula", ["y ~ x + (x | a) + (1 | b)", "y ~ x + (1 | a) + (1 | b) + (1 | c)",
                                     "y ~ x + (1 | a/b)"])
def test_fit_matches_general_path_and_is_no_worse(formula, method):
    df = crossed(5, na=30, nb=20, nc=4, n=600) if "a/b" not in formula else nested(4, na=12, nb=6, m=5)
    g = compare_mm.fit(formula, df, method=method, path="general")
    b = compare_mm.fit(formula, df, method=method)
    assert b.options["path"] == "blocked" and b.converged
    assert "Powell" not in b.optimisation.optimizer and b.optimisation.gradient_evaluations > 0
    assert b.criterion <= g.criterion + 1e-10 * abs(g.criterion)        # no worse than the old path
    assert b.criterion == pytest.approx(g.criterion, rel=1e-12)
    assert np.allclose(b.theta, g.theta, rtol=1e-6, atol=1e-7)
    assert [r.estimate for r in b.fixef] == pytest.approx([r.estimate for r in g.fixef], rel=1e-7)
    assert [r.se for r in b.fixef] == pytest.approx([r.se for r in g.fixef], rel=1e-6)
    assert [r.value for r in b.ranef] == pytest.approx([r.value for r in g.ranef], rel=1e-6, abs=1e-8)
    assert [r.condsd for r in b.ranef] == pytest.approx([r.condsd for r in g.ranef], rel=1e-6)
    # at the same θ the conditional SDs agree to rounding (the 1e-6 above is the optimiser's tolerance)
    design = make_design(formula, df, method=method)
    layout = make_layout(design.blocks)
    th = np.asarray(b.theta)
    _, _, v_g = general.solution(general.build_general(design, layout), th, method == "REML")
    _, _, v_b = blocked_eval.solution(blocked.build_blocked(design, layout), th, method == "REML")
    assert v_b == pytest.approx(v_g, rel=1e-10)


@pytest.mark.slow
def test_inference_on_the_blocked_path_equals_the_general_path(monkeypatch):
    df = crossed(8, na=12, nb=9, nc=3, n=200)
    formula = "y ~ x + (1 | a) + (1 | b)"
    r = compare_mm.fit(formula, df)
    assert r.options["path"] == "blocked"
    with_b = run_inference(r, tests=True, profile="ml", seed=1, nsim=200)
    monkeypatch.setattr(blocked, "REST_MAX", 0)          # every surface now takes the dense general path
    r_g = compare_mm.fit(formula, df)
    assert r_g.options["path"] == "general"
    with_g = run_inference(r_g, tests=True, profile="ml", seed=1, nsim=200)
    assert [f.df for f in with_b.fixef] == pytest.approx([f.df for f in with_g.fixef], rel=1e-5)
    ib = {(i.parameter, i.kind): (i.lower, i.upper) for i in with_b.intervals}
    ig = {(i.parameter, i.kind): (i.lower, i.upper) for i in with_g.intervals}
    assert ib.keys() == ig.keys() and any(k[1] == "profile" for k in ib)
    for k in ib:
        assert ib[k] == pytest.approx(ig[k], rel=1e-5, abs=1e-7)
    tb = {(t.name, t.group, t.term): t.statistic for t in with_b.tests}
    tg = {(t.name, t.group, t.term): t.statistic for t in with_g.tests}
    assert tb.keys() == tg.keys() and tb
    for k in tb:
        assert tb[k] == pytest.approx(tg[k], rel=1e-6, abs=1e-8)


def test_blocked_option_needs_two_terms():
    df = crossed()
    with pytest.raises(OptionError, match="at least two random-effects terms"):
        compare_mm.fit("y ~ x + (1 | a)", df, path="blocked")
