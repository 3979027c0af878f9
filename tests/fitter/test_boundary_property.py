"""Property tests: the fitter's optimum on unbalanced designs against brute force written here.

Random-intercept models (one scalar θ): over random unbalanced designs (1–30 groups of sizes 1–50,
σ_A² from 0 to 10, REML and ML, with and without a covariate) our criterion at θ̂ is never above a
brute-force minimisation of the same profiled deviance by more than 1e-9 relative, and σ̂_A² = 0 exactly
iff the brute force's optimum is at 0.  The brute force evaluates the profiled deviance from the dense
marginal covariance V = I + θ²ZZ' one group at a time (our fit on the one-factor, dense general and sparse
paths) — V_i = I + λJ (λ = θ²), whose inverse and
determinant are the compound-symmetry identities (I + λJ)⁻¹ = I − λ/(1 + n_iλ) J, |I + λJ| = 1 + n_iλ —
on a fine grid of θ, then polishes the best grid point with a bounded 1-D minimiser.  The identities are
checked against ``numpy.linalg`` on the full dense V in :func:`test_brute_force_equals_dense_v`.

"iff" near a tie: when the interior optimum and θ = 0 differ by less than :data:`TIE` relative (far
below the 1e-9 the optimum must meet, and below what either computation can resolve), either answer is
right; every other case must agree exactly.

Random slopes ``(x | g)`` and ``(x || g)`` and crossed / nested scalar terms: our optimum is no worse than
a generic optimiser (Powell, bounded) of the dense likelihood from several starts.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from scipy.linalg import solve_triangular
from scipy.optimize import minimize, minimize_scalar

import compare_mm

TIE = 1e-12
GRID = np.geomspace(1e-4, 1e3, 1400)
SETTINGS = dict(deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])


def simulate(sizes, sigma_a2, covariate, seed):
    rng = np.random.default_rng(seed)
    g = np.repeat(np.arange(len(sizes)), sizes)
    x = rng.normal(size=g.size)
    y = 1.0 + (0.7 * x if covariate else 0.0) + rng.normal(scale=math.sqrt(sigma_a2), size=len(sizes))[g] \
        + rng.normal(size=g.size)
    return pd.DataFrame({"y": y, "x": x, "g": [f"g{i:02d}" for i in g]})


def group_sums(df, covariate):
    """What V_i = I + λJ needs of the data, computed once per data set: X'X, X'y, y'y, n_i, 1'X_i, 1'y_i."""
    y = df["y"].to_numpy()
    X = np.column_stack([np.ones(len(y))] + ([df["x"].to_numpy()] if covariate else []))
    codes = pd.factorize(df["g"])[0]
    sx = np.stack([np.bincount(codes, X[:, j]) for j in range(X.shape[1])], 1)  # (G, p): 1'X_i
    return dict(XtX=X.T @ X, Xty=X.T @ y, yty=y @ y, n=X.shape[0], p=X.shape[1],
                ni=np.bincount(codes).astype(float)[None, :], sx=sx, sy=np.bincount(codes, y))


def profiled_from_sums(s, reml, lam):
    """Profiled deviance d(θ) / d_R(θ) at λ = θ² (array) from :func:`group_sums`."""
    lam = np.atleast_1d(lam)[:, None]                                  # (K, 1)
    w = lam / (1.0 + s["ni"] * lam)                                    # (K, G): V_i⁻¹ = I − w_i J
    XtViX = s["XtX"] - np.einsum("kg,ga,gb->kab", w, s["sx"], s["sx"])
    XtViy = s["Xty"] - np.einsum("kg,ga,g->ka", w, s["sx"], s["sy"])
    ytViy = s["yty"] - w @ (s["sy"] * s["sy"])
    beta = np.linalg.solve(XtViX, XtViy[..., None])[..., 0]
    r2 = ytViy - np.einsum("ka,ka->k", beta, XtViy)
    logdetV = np.log1p(s["ni"] * lam).sum(axis=1)
    nu = s["n"] - s["p"] if reml else s["n"]
    dev = logdetV + nu * (1.0 + math.log(2 * math.pi) + np.log(r2 / nu))
    if reml:
        dev += np.linalg.slogdet(XtViX)[1]
    return dev


def brute_profiled(df, covariate, reml, lam):
    """Profiled deviance d(θ) / d_R(θ) at λ = θ² (array), from V_i = I + λJ group by group."""
    return profiled_from_sums(group_sums(df, covariate), reml, lam)


def brute_force(df, covariate, reml):
    """(f at θ = 0, best θ > 0, f there): fine grid in θ, then a bounded polish around the best point."""
    sums = group_sums(df, covariate)
    f0 = float(profiled_from_sums(sums, reml, 0.0)[0])
    vals = profiled_from_sums(sums, reml, GRID ** 2)
    i = int(np.argmin(vals))
    lo, hi = GRID[max(i - 1, 0)] if i else 0.0, GRID[min(i + 1, GRID.size - 1)]
    r = minimize_scalar(lambda t: float(profiled_from_sums(sums, reml, t * t)[0]), bounds=(lo, hi),
                        method="bounded", options=dict(xatol=1e-13))
    t, f = (float(r.x), float(r.fun)) if r.fun < vals[i] else (float(GRID[i]), float(vals[i]))
    return f0, t, f


def test_brute_force_equals_dense_v():
    """The group-wise identities of :func:`brute_profiled` equal the full dense V computed by numpy."""
    rng = np.random.default_rng(3)
    for case in range(6):
        sizes = rng.integers(1, 9, size=rng.integers(2, 7))
        df = simulate(sizes, 0.5, case % 2 == 1, case)
        covariate = case % 2 == 1
        y = df["y"].to_numpy()
        X = np.column_stack([np.ones(len(y))] + ([df["x"].to_numpy()] if covariate else []))
        Z = pd.get_dummies(df["g"]).to_numpy(float)
        for lam in (0.0, 0.03, 1.7):
            V = np.eye(len(y)) + lam * Z @ Z.T
            Vi = np.linalg.inv(V)
            b = np.linalg.solve(X.T @ Vi @ X, X.T @ Vi @ y)
            e = y - X @ b
            for reml in (True, False):
                n, p = X.shape
                nu = n - p if reml else n
                want = np.linalg.slogdet(V)[1] + nu * (1 + math.log(2 * math.pi) + math.log(e @ Vi @ e / nu))
                if reml:
                    want += np.linalg.slogdet(X.T @ Vi @ X)[1]
                got = brute_profiled(df, covariate, reml, lam)[0]
                assert got == pytest.approx(want, rel=1e-12)


@st.composite
def one_way_cases(draw, paths=("auto",), max_size=50, max_groups=30):
    sizes = draw(st.lists(st.integers(1, max_size), min_size=1, max_size=max_groups))
    sigma_a2 = draw(st.one_of(st.just(0.0), st.floats(0.0, 10.0), st.floats(0.0, 0.1)))
    path = draw(st.sampled_from(paths))
    return sizes, sigma_a2, draw(st.booleans()), draw(st.booleans()), path, draw(st.integers(0, 2**31 - 1))


@pytest.mark.slow
@settings(max_examples=1500, **SETTINGS)
@given(one_way_cases())
def test_random_intercept_optimum_equals_brute_force(case):
    """The one-factor fast path (what ``path="auto"`` takes for one grouping factor)."""
    check_random_intercept(case)


@pytest.mark.slow
@settings(max_examples=120, **SETTINGS)
@given(one_way_cases(paths=("general", "sparse"), max_size=20, max_groups=15))
def test_random_intercept_on_the_general_paths_equals_brute_force(case):
    """The same model forced through the dense general path (analytic gradient) and the sparse path
    (no gradient: Brent's bounded minimiser and a difference quotient for the derivative at 0)."""
    check_random_intercept(case)


def check_random_intercept(case):
    sizes, sigma_a2, covariate, reml, path, seed = case
    p = 2 if covariate else 1
    # identifiable: θ is confounded with σ² when every group has one observation, and the group effect
    # with the intercept when there is one group (the criterion is then flat in θ)
    assume(len(sizes) >= 2 and max(sizes) >= 2 and sum(sizes) > p + 1)
    df = simulate(sizes, sigma_a2, covariate, seed)
    res = compare_mm.fit("y ~ x + (1 | g)" if covariate else "y ~ 1 + (1 | g)", df,
                         method="REML" if reml else "ML", path=path)
    f0, t_bf, f_bf = brute_force(df, covariate, reml)
    ours = float(brute_profiled(df, covariate, reml, res.theta[0] ** 2)[0])
    assert ours == pytest.approx(res.criterion, rel=1e-11)             # same criterion, two computations
    best = min(f0, f_bf)
    assert ours <= best + 1e-9 * abs(best), (ours, f0, t_bf, f_bf)
    if res.theta[0] == 0.0:
        assert f_bf >= f0 - TIE * abs(f0), ("zero kept although the interior is better", f0, t_bf, f_bf)
    else:
        assert f0 >= f_bf - TIE * abs(f0), ("interior returned although 0 is better", f0, t_bf, f_bf)
        assert res.theta[0] > 0.0


def test_unbalanced_one_way_zero_is_not_a_saddle():
    """The data set that exposed the fault: BFGS landed on θ = 0 exactly (where ∂d/∂θ vanishes by
    symmetry) although the REML criterion decreases inwards; lme4's optimum is interior."""
    rng = np.random.default_rng(1)
    sizes = [3, 11, 5, 9, 3, 12, 14, 10, 5, 9, 18, 14, 2, 7]
    g = np.repeat(np.arange(len(sizes)), sizes)
    df = pd.DataFrame({"y": rng.normal(scale=0.3, size=len(sizes))[g] + rng.normal(size=g.size),
                       "g": [f"g{i}" for i in g]})
    f0, t_bf, f_bf = brute_force(df, False, True)
    res = compare_mm.fit("y ~ 1 + (1 | g)", df)
    assert (f_bf < f0 - 1e-6) == (res.theta[0] > 0)
    assert res.criterion == pytest.approx(min(f0, f_bf), rel=1e-12)


# --- several θ components: random slopes, crossed and nested scalar terms ------------------------------

def dense_profiled(y, X, Zs, structure, reml, theta):
    """Profiled deviance from the dense V = I + Z Λ Λ'Z' (blocks per term) at θ (lme4 order per term)."""
    n, p = X.shape
    ZD = []
    k = 0
    for Z, kind in zip(Zs, structure):
        if kind == "scalar":
            ZD.append(theta[k] * Z)
            k += 1
        else:                                      # (Z_int, Z_slope) of an (x | g) or (x || g) term
            Zi, Zx = Z
            if kind == "corr":
                l11, l21, l22 = theta[k:k + 3]
                k += 3
                ZD += [l11 * Zi + l21 * Zx, l22 * Zx]
            else:
                ZD += [theta[k] * Zi, theta[k + 1] * Zx]
                k += 2
    W = np.hstack(ZD)
    V = np.eye(n) + W @ W.T
    try:
        L = np.linalg.cholesky(V)
    except np.linalg.LinAlgError:
        return 1e300
    XYs = solve_triangular(L, np.column_stack([X, y]), lower=True, check_finite=False)   # L⁻¹[X y]
    Xs, ys = XYs[:, :-1], XYs[:, -1]
    beta = np.linalg.lstsq(Xs, ys, rcond=None)[0]
    r2 = float(np.sum((ys - Xs @ beta) ** 2))
    nu = n - p if reml else n
    dev = 2 * np.log(np.diag(L)).sum() + nu * (1 + math.log(2 * math.pi) + math.log(r2 / nu))
    if reml:
        dev += np.linalg.slogdet(Xs.T @ Xs)[1]
    return float(dev)


def generic_best(fun, n_theta, diag, seed):
    """Best of Powell (bounded: diagonal θ ≥ 0) from lme4's start and four random starts."""
    rng = np.random.default_rng(seed)
    starts = [np.where(diag, 1.0, 0.0)] + [np.where(diag, rng.uniform(0.05, 2.0, n_theta),
                                                   rng.uniform(-1, 1, n_theta)) for _ in range(4)]
    bounds = [(0.0, 1e3) if d else (-1e3, 1e3) for d in diag]     # θ = σ_b/σ: 1e3 is far beyond the data
    best = math.inf
    for s in starts:
        r = minimize(fun, s, method="Powell", bounds=bounds, options=dict(xtol=1e-9, ftol=1e-13, maxfev=6000))
        best = min(best, float(r.fun))
    return best


@st.composite
def slope_cases(draw):
    sizes = draw(st.lists(st.integers(1, 12), min_size=3, max_size=12))
    return (sizes, draw(st.sampled_from([0.0, 0.05, 0.5, 2.0])), draw(st.sampled_from([0.0, 0.02, 0.3])),
            draw(st.sampled_from(["corr", "diag"])), draw(st.booleans()), draw(st.integers(0, 2**31 - 1)))


@pytest.mark.slow
@settings(max_examples=40, **SETTINGS)
@given(slope_cases())
def test_random_slope_optimum_no_worse_than_generic_optimiser(case):
    sizes, s2a, s2b, kind, reml, seed = case
    assume(sum(sizes) >= 2 * len(sizes) + 3)
    rng = np.random.default_rng(seed)
    g = np.repeat(np.arange(len(sizes)), sizes)
    x = rng.uniform(0, 5, g.size)
    y = 1 + 0.5 * x + rng.normal(scale=math.sqrt(s2a), size=len(sizes))[g] \
        + rng.normal(scale=math.sqrt(s2b), size=len(sizes))[g] * x + rng.normal(size=g.size)
    df = pd.DataFrame({"y": y, "x": x, "g": [f"g{i:02d}" for i in g]})
    formula = "y ~ x + (x | g)" if kind == "corr" else "y ~ x + (x || g)"
    res = compare_mm.fit(formula, df, method="REML" if reml else "ML")
    X = np.column_stack([np.ones(g.size), x])
    Zi = pd.get_dummies(df["g"]).to_numpy(float)
    Zs, structure = [(Zi, Zi * x[:, None])], [kind]
    fun = lambda th: dense_profiled(y, X, Zs, structure, reml, np.asarray(th))
    ours = fun(np.array(res.theta))
    assert ours == pytest.approx(res.criterion, rel=1e-10)
    diag = np.array([True, False, True]) if kind == "corr" else np.array([True, True])
    other = generic_best(fun, diag.size, diag, seed)
    assert ours <= other + 1e-9 * abs(other), (ours, other, res.theta)


@st.composite
def crossed_cases(draw):
    na, nb = draw(st.integers(2, 7)), draw(st.integers(2, 6))
    keep = draw(st.floats(0.45, 1.0))
    return na, nb, keep, draw(st.sampled_from(["crossed", "nested"])), \
        draw(st.sampled_from([0.0, 0.05, 1.0])), draw(st.sampled_from([0.0, 0.05, 1.0])), \
        draw(st.booleans()), draw(st.sampled_from(["auto", "sparse"])), draw(st.integers(0, 2**31 - 1))


@pytest.mark.slow
@settings(max_examples=40, **SETTINGS)
@given(crossed_cases())
def test_crossed_and_nested_scalar_terms_no_worse_than_generic_optimiser(case):
    na, nb, keep, kind, s2a, s2b, reml, path, seed = case
    rng = np.random.default_rng(seed)
    a, b = np.meshgrid(np.arange(na), np.arange(nb), indexing="ij")
    a, b = np.repeat(a.ravel(), 2), np.repeat(b.ravel(), 2)
    m = rng.random(a.size) < keep
    a, b = a[m], b[m]
    assume(len(set(a)) >= 2 and len(set(b)) >= 2 and a.size >= 8)
    bb = a * nb + b if kind == "nested" else b
    y = rng.normal(scale=math.sqrt(s2a), size=na)[a] + rng.normal(scale=math.sqrt(s2b), size=na * nb)[bb] \
        + rng.normal(size=a.size)
    df = pd.DataFrame({"y": y, "a": [f"a{i}" for i in a], "b": [f"b{i}" for i in b]})
    formula = "y ~ 1 + (1 | a) + (1 | b)" if kind == "crossed" else "y ~ 1 + (1 | a/b)"
    res = compare_mm.fit(formula, df, method="REML" if reml else "ML", path=path)
    Za = pd.get_dummies(df["a"]).to_numpy(float)
    Zb = pd.get_dummies(df["b"] if kind == "crossed" else df["a"] + ":" + df["b"]).to_numpy(float)
    # lme4 order: the term with more levels first
    Zs = [Za, Zb] if Za.shape[1] >= Zb.shape[1] else [Zb, Za]
    X = np.ones((a.size, 1))
    fun = lambda th: dense_profiled(y, X, Zs, ["scalar", "scalar"], reml, np.asarray(th))
    ours = fun(np.array(res.theta))
    assert ours == pytest.approx(res.criterion, rel=1e-10)
    other = generic_best(fun, 2, np.array([True, True]), seed)
    assert ours <= other + 1e-9 * abs(other), (ours, other, res.theta)
