"""Batched profile intervals of random-slope designs (:mod:`compare_mm.inference.batch_profile_slope`).

Reference: the profiled deviance written out here from the dense marginal likelihood, V = ZGZ' + σ²I
(ML: log|V| + r'V⁻¹r + n log 2π with β by GLS; REML adds log|X'V⁻¹X| and uses n − p), minimised over the
other parameters by BFGS from several starts in unconstrained coordinates (SDs through their absolute
value, the correlation through tanh).  Each limit L the batch reports must be a crossing of ζ = ±z:
ζ(L − δ) and ζ(L + δ) on either side of the target, δ = 1e-6 × the interval's width; a limit on a bound
(SD 0, correlation ±1) must have |ζ(bound)| ≤ z.  Replicates simulated with σ_B² = 0 (σ̂_B = 0) and with a
large intercept–slope correlation (|ρ̂| = 1) are included: per case one on the boundary, one inside.  The box-constrained per-replicate
search (:func:`compare_mm.inference.profile.box_profile_intervals`) agrees to 1e-6 of the width on
replicates away from those boundaries.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import optimize, stats

import compare_mm as cm
from compare_mm.fitter.batch_fit import BatchFitter
from compare_mm.fitter.theta import make_layout
from compare_mm.inference.batch_profile import profile_many, profiled_in_batch
from compare_mm.inference.batch_profile_slope import slope_design
from compare_mm.fitter.extended import fit_theta, surface
from compare_mm.inference.profile import VarParamMap, box_profile_intervals, profile_intervals

# numpy's floating-point warnings reach a user's stderr: these paths must not print any
pytestmark = pytest.mark.filterwarnings("error::RuntimeWarning")

Z95 = float(np.sqrt(stats.chi2.ppf(0.95, 1)))
X_VALUES = np.arange(6.0)
GROUPS = 8


def _design(formula):
    g = np.repeat(np.arange(GROUPS), X_VALUES.size)
    df = pd.DataFrame({"y": np.cos(2.4 * np.arange(g.size)), "x": np.tile(X_VALUES, GROUPS),
                       "g": [f"g{i}" for i in g]})
    return cm.make_design(formula, df)


def _responses(seed, R, sb2, rho):
    rng = np.random.default_rng(seed)
    g = np.repeat(np.arange(GROUPS), X_VALUES.size)
    x = np.tile(X_VALUES, GROUPS)
    cov = np.array([[0.6, rho * np.sqrt(0.6 * sb2)], [rho * np.sqrt(0.6 * sb2), sb2]])
    u = rng.multivariate_normal(np.zeros(2), cov, size=(R, GROUPS), method="eigh")
    return 1.0 + 0.5 * x + u[:, :, 0][:, g] + u[:, :, 1][:, g] * x + rng.normal(size=(R, g.size))


class Dense:
    """The dense deviance of one response (module docstring) as a function of ψ = (sd_A, ρ, sd_B, σ)."""

    def __init__(self, design, y, reml):
        self.X = np.asarray(design.X, float)
        g = np.repeat(np.arange(GROUPS), X_VALUES.size)
        ind = (g[:, None] == np.arange(GROUPS)[None, :]).astype(float)
        x = np.tile(X_VALUES, GROUPS)
        self.ZA, self.ZB, self.y, self.reml = ind, ind * x[:, None], np.asarray(y, float), reml

    def deviance(self, sa, rho, sb, sigma, fix=None):
        n, p = self.X.shape
        V = (sa * sa * self.ZA @ self.ZA.T + sb * sb * self.ZB @ self.ZB.T
             + rho * sa * sb * (self.ZA @ self.ZB.T + self.ZB @ self.ZA.T) + sigma * sigma * np.eye(n))
        try:
            L = np.linalg.cholesky(V)
        except np.linalg.LinAlgError:
            return np.inf
        X, y = self.X, self.y
        if fix is not None:                                  # β_j fixed at b: offset x_j b, column j dropped
            j, b = fix
            y, X = y - X[:, j] * b, np.delete(X, j, axis=1)
        Xs, ys = np.linalg.solve(L, X), np.linalg.solve(L, y)
        beta = np.linalg.lstsq(Xs, ys, rcond=None)[0]
        r = ys - Xs @ beta
        out = 2.0 * np.log(np.diag(L)).sum() + r @ r
        if self.reml:
            out += np.linalg.slogdet(Xs.T @ Xs)[1] + (n - p) * np.log(2.0 * np.pi)
        else:
            out += n * np.log(2.0 * np.pi)
        return float(out)


def _coords(name, diagonal):
    """The free coordinates when ``name`` is profiled ('' or a fixed effect: all of them)."""
    out = [] if name.startswith("sd_(Intercept)") else ["sa"]
    if not diagonal and not name.startswith("cor_"):
        out.append("w")
    if not name.startswith("sd_x"):
        out.append("sb")
    if name != "sigma":
        out.append("ls")
    return out


def _psi(name, coords, z, v):
    """ψ = (sd_A, ρ, sd_B, σ) from the free coordinates z, with parameter ``name`` at v."""
    c = dict(zip(coords, z))
    sa = v if name.startswith("sd_(Intercept)") else abs(c["sa"])
    rho = v if name.startswith("cor_") else (np.tanh(c["w"]) if "w" in c else 0.0)
    sb = v if name.startswith("sd_x") else abs(c["sb"])
    sigma = v if name == "sigma" else np.exp(c["ls"])
    return sa, rho, sb, sigma


def _minimum(fun, starts):
    best, arg = np.inf, None
    for s in starts:
        r = optimize.minimize(fun, np.asarray(s, float), method="BFGS", options=dict(gtol=1e-8))
        if r.fun < best:
            best, arg = float(r.fun), r.x
    return best, arg


def _starts(coords, psi):
    sa, rho, sb, sigma = psi
    base = dict(sa=sa, w=float(np.arctanh(np.clip(rho, -0.99, 0.99))), sb=sb, ls=float(np.log(sigma)))
    out = [[base[c] for c in coords], [base[c] * (0.5 if c != "ls" else 1.0) + 0.1 for c in coords]]
    if "w" in coords:
        out += [[(w if c == "w" else base[c]) for c in coords] for w in (-2.0, 2.0)]
    for zero in ("sa", "sb"):                                # near a zero SD (where ρ is free)
        if zero in coords:
            out.append([(1e-3 if c == zero else base[c]) for c in coords])
    return out


def _profiled(dense, name, v, diagonal, psi_hat, starts=None):
    """(min, argmin) over the other parameters with ``name`` at v of the dense deviance, from several
    starts (or ``starts``)."""
    fix = {"(Intercept)": 0, "x": 1}.get(name)
    coords = _coords("" if fix is not None else name, diagonal)
    if fix is not None:
        def fun(z):
            return dense.deviance(*_psi("", coords, z, np.nan), fix=(fix, v))
    else:
        def fun(z):
            return dense.deviance(*_psi(name, coords, z, v))
    return _minimum(fun, _starts(coords, psi_hat) if starts is None else starts)


def _dense_fit(dense, diagonal, design, reml):
    """(d̂, ψ̂) of the dense deviance, from generic starts and from compare_mm's estimate (a start only)."""
    coords = _coords("", diagonal)
    fit = fit_theta(surface(design), reml)
    psi = VarParamMap(design).from_theta(fit.theta, fit.sigma)
    own = (psi[0], 0.0, psi[1], psi[2]) if diagonal else tuple(psi)
    best, arg = np.inf, None
    for guess in ((0.7, 0.0, 0.3, 1.0), (0.3, 0.96, 0.05, 1.0), (0.3, -0.96, 0.05, 1.0), own):
        fun = (lambda z: dense.deviance(*_psi("", coords, z, np.nan)))
        r = optimize.minimize(fun, np.asarray(_starts(coords, guess)[0], float), method="BFGS",
                              options=dict(gtol=1e-9))
        r = optimize.minimize(fun, r.x, method="Nelder-Mead", options=dict(xatol=1e-12, fatol=1e-14, maxiter=4000))
        if r.fun < best:
            best, arg = float(r.fun), r.x
    return best, _psi("", coords, arg, np.nan)


CASES = [("y ~ x + (x | g)", "reml", 0.0, 0.3), ("y ~ x + (x | g)", "ml", 0.05, 0.95),
         ("y ~ x + (x || g)", "reml", 0.0, 0.0), ("y ~ x + (x || g)", "ml", 0.02, 0.0)]


@pytest.mark.slow
@pytest.mark.parametrize("formula,mode,sb2,rho", CASES)
def test_limits_are_crossings_of_the_dense_profile(formula, mode, sb2, rho):
    d = _design(formula)
    diagonal = "||" in formula
    fitter = BatchFitter(d, make_layout(d.blocks))
    assert slope_design(fitter) and profiled_in_batch(fitter)
    Y = _responses(31, 8, sb2, rho)
    got = profile_many(fitter, Y, mode=mode)
    theta, solved, _ = fitter.optimum(fitter.problem(Y), mode == "reml")
    # the batch decides every replicate whose θ̂ the batched fitter decides (the others: per replicate)
    assert all((g is not None) == bool(s) for g, s in zip(got, solved)) and solved.sum() >= 6
    # checked: a replicate on the boundary (σ̂_B = 0, or |ρ̂| = 1: Λ's last diagonal entry 0) and one inside
    on_edge = theta[:, -1] == 0.0
    pick = list(np.flatnonzero(solved & on_edge)[:1]) + list(np.flatnonzero(solved & ~on_edge)[:1])
    assert len(pick) == 2
    for i in pick:
        y, ivs = Y[i], got[i]
        dense = Dense(d, y, mode == "reml")
        dmin, psi_hat = _dense_fit(dense, diagonal, d.with_y(y), mode == "reml")
        for iv in ivs:
            width = iv.upper - iv.lower
            for lim, side in ((iv.lower, -1.0), (iv.upper, 1.0)):
                bound = (iv.parameter.startswith("sd_") and lim == 0.0) or (iv.parameter.startswith("cor_")
                                                                             and abs(lim) == 1.0)
                dv, arg = _profiled(dense, iv.parameter, lim, diagonal, psi_hat)
                if bound:
                    assert dv - dmin <= Z95 ** 2 + 1e-7, (iv, lim)
                    continue
                delta = 1e-6 * width                         # from the best start at the limit itself
                inner = _profiled(dense, iv.parameter, lim - side * delta, diagonal, psi_hat, [arg])[0] - dmin
                outer = _profiled(dense, iv.parameter, lim + side * delta, diagonal, psi_hat, [arg])[0] - dmin
                assert inner < Z95 ** 2 < outer, (iv, lim, inner, outer)


@pytest.mark.parametrize("formula,mode", [pytest.param("y ~ x + (x | g)", "ml", marks=pytest.mark.slow),
                                          ("y ~ x + (x || g)", "reml")])
def test_box_search_agrees_away_from_the_boundary(formula, mode):
    d = _design(formula)
    Y = _responses(5, 1, 0.3, 0.2)
    got = profile_many(BatchFitter(d, make_layout(d.blocks)), Y, mode=mode)
    for y, ivs in zip(Y, got):
        ref = box_profile_intervals(d.with_y(y), mode=mode, level=0.95)
        assert [iv.parameter for iv in ivs] == [iv.parameter for iv in ref]
        for a, b in zip(ref, ivs):
            w = a.upper - a.lower
            assert abs(a.lower - b.lower) <= 1e-6 * w and abs(a.upper - b.upper) <= 1e-6 * w, (a, b)


def test_profile_intervals_uses_the_batched_routine():
    d = _design("y ~ x + (x | g)")
    y = _responses(8, 1, 0.1, 0.5)[0]
    one = profile_intervals(d.with_y(y), mode="reml", parameters=["sigma"])
    many = profile_many(BatchFitter(d, make_layout(d.blocks)), y[None, :], mode="reml")[0]
    assert [iv.parameter for iv in one] == ["sigma"]
    assert one[0] == [iv for iv in many if iv.parameter == "sigma"][0]
