"""The row-vectorised summaries of the batched quadrature against per-row brute-force references.

Each function here replaces a per-replicate computation: a quantile of a fine CDF (np.interp per row),
the shortest interval of a given probability (an exhaustive search written here), the mode, the exact
quantiles of a Gaussian mixture (root finding on its CDF by scipy's brentq), and its exact mode and HDI
(a dense-grid search for the highest-density region).
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import interpolate, optimize, special, stats

from compare_mm.backends.pymc.quadrature_batch_summary import (
    _hdi, _merge_rows, _rows_quantile, posterior_arrays)
from compare_mm.backends.pymc.quadrature_mixture import mixture_quantiles, mixture_summary
from compare_mm.backends.pymc.quadrature_summary import Marginal, density_mode, vertex


def _random_marginals(rng, R: int, F: int = 2049):
    """R skewed or boundary-piled densities on a fine grid: (x, pdf, cdf)."""
    x = np.sort(rng.uniform(0, 1, (R, 1)) * 0 + np.linspace(0, 1, F)[None] * rng.uniform(1, 5, (R, 1)), 1)
    shape = rng.uniform(0.6, 4.0, (R, 1))
    rate = rng.uniform(1.0, 6.0, (R, 1))
    with np.errstate(divide="ignore"):
        pdf = x ** (shape - 1) * np.exp(-rate * x)
    pdf[:, 0] = np.where(shape[:, 0] < 1, pdf[:, 1] * 1.5, pdf[:, 0])   # finite at 0 for the piled ones
    cdf = np.concatenate([np.zeros((R, 1)), np.cumsum(0.5 * (pdf[:, 1:] + pdf[:, :-1]) * np.diff(x, axis=1), 1)], 1)
    tot = cdf[:, -1:]
    return x, pdf / tot, cdf / tot


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), R=st.integers(1, 7))
def test_rows_quantile_is_np_interp_per_row(seed, R):
    rng = np.random.default_rng(seed)
    x, _, cdf = _random_marginals(rng, R, F=257)
    probs = np.concatenate([[0.0, 1.0, -0.1, 1.1], rng.uniform(0, 1, 12)])
    got = _rows_quantile(cdf, x, probs)
    want = np.stack([np.interp(probs, cdf[r], x[r]) for r in range(R)])
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-12)


def test_hdi_and_mode_match_the_per_replicate_summary():
    rng = np.random.default_rng(3)
    x, pdf, cdf = _random_marginals(rng, 40)
    arr = posterior_arrays(x, pdf, cdf, 0.95)
    for r in range(x.shape[0]):
        ref = Marginal(x[r], pdf[r], cdf[r], 0.0, 1.0).summary("p", 0.95)
        scale = x[r, -1]
        for key in ("median", "eti_lower", "eti_upper", "mode"):
            assert arr[key][r] == pytest.approx(getattr(ref, key), abs=1e-12 * scale)
        # the HDI search is finer than the per-replicate 4,001 starts: never wider, and its ends agree to
        # the resolution of the coarser search
        w_new = arr["hdi_upper"][r] - arr["hdi_lower"][r]
        w_ref = ref.hdi_upper - ref.hdi_lower
        assert w_new <= w_ref + 1e-12 * scale
        assert arr["hdi_lower"][r] == pytest.approx(ref.hdi_lower, abs=2e-3 * scale)
        assert arr["hdi_upper"][r] == pytest.approx(ref.hdi_upper, abs=2e-3 * scale)


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**31 - 1))
def test_vertex_is_the_maximum_of_the_interpolating_parabola(seed):
    """vertex() against numpy's quadratic fit through the three points (unequal spacing), and inside
    [x0, x2] whenever the middle value is the largest."""
    rng = np.random.default_rng(seed)
    x = np.cumsum(rng.uniform(0.01, 3.0, 3))
    y = rng.normal(size=3)
    y[1] = y.max() + rng.uniform(1e-3, 1.0)
    got, ok = vertex(*x, *y)
    a, b, _ = np.polyfit(x, y, 2)
    assert ok and a < 0
    assert got == pytest.approx(-b / (2 * a), rel=1e-9, abs=1e-9 * x[2])
    assert x[0] <= got <= x[2]


@pytest.mark.parametrize("F", [513, 2049, 8193])
def test_the_mode_of_a_variance_does_not_depend_on_the_grid(F):
    """σ_A² = s² with s's density positive at 0 (a half-normal spike at 0 plus a hump at s = 1.4, and the
    spike alone): the density of v, f_s(√v)/(2√v), is infinite at 0; the mode is the hump's maximum in v
    (found here by a dense search of the analytic density), or 0 without a hump — on every fine grid."""
    def f_s(s, hump):
        return 0.3 * 2 * stats.norm.pdf(s) + (hump * stats.norm.pdf(s, 1.4, 0.25) if hump else 0.0)

    for hump in (0.7, 0.0):
        s_grid = np.linspace(0.0, 4.0, F)
        v = s_grid**2
        with np.errstate(divide="ignore"):
            pv = np.where(v > 0, f_s(s_grid, hump) / (2 * s_grid), np.inf)
        got = density_mode(v[None], pv[None])[0]
        vv = np.linspace(0.5, 4.0, 400001)             # the hump's maximum: dense search away from 0
        dense = f_s(np.sqrt(vv), hump) / (2 * np.sqrt(vv))
        want = float(vv[np.argmax(dense)]) if hump else 0.0
        assert got == pytest.approx(want, abs=2e-3), (hump, got, want)


def test_variance_modes_are_never_negative():
    """The σ_A² marginal's fine grid is the square of an η grid from 0 (spacings 1 : 3 : 5 …); with the
    equal-spacing parabola, 69 of 200 half-normal one-way fits had reported a variance mode of about −1e-6.
    Batched and per-replicate fits: every mode lies in its parameter's support."""
    import pandas as pd

    import compare_mm as cm
    from compare_mm.backends.pymc.backend import BACKEND

    rng = np.random.default_rng(7)
    g = np.repeat(np.arange(18), 10)
    df = pd.DataFrame({"y": rng.normal(size=g.size), "g": [f"g{k:02d}" for k in g]})
    design = cm.make_design("y ~ 1 + (1 | g)", df)
    Y = np.stack([10 + rng.normal(0, s, 18)[g] + rng.normal(0, 3, g.size) for s in np.tile([0.3, 2.0], 24)])
    prepared = BACKEND.prepare(design, {"sampler": "quadrature"})
    fits = prepared.fit_many(Y, list(range(Y.shape[0]))) + [prepared.fit(Y[i], i) for i in range(6)]
    assert all(f.diagnostics.get("batched", True) for f in fits[:-6])
    for f in fits:
        for p in f.posterior:
            if p.parameter.startswith(("var_", "sd_", "sigma")):
                assert p.mode >= 0.0, (p.parameter, p.mode)


def test_hdi_against_an_exhaustive_search():
    """The shortest interval of probability 0.9 over every pair of fine-grid CDF values (brute force)."""
    rng = np.random.default_rng(8)
    x, _, cdf = _random_marginals(rng, 12, F=1025)
    lo, hi = _hdi(cdf, x, 0.9)
    for r in range(x.shape[0]):
        starts = np.linspace(0, 0.1, 200_001)
        a = np.interp(starts, cdf[r], x[r])
        b = np.interp(starts + 0.9, cdf[r], x[r])
        i = np.argmin(b - a)
        # the width is flat at its minimum: the refined search finds it to 1e-6 of the range
        assert hi[r] - lo[r] <= b[i] - a[i] + 1e-6 * x[r, -1]
        assert lo[r] == pytest.approx(a[i], abs=1e-4 * x[r, -1])


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**31 - 1))
def test_mixture_quantiles_against_root_finding(seed):
    rng = np.random.default_rng(seed)
    R, P = 5, 300
    w = rng.dirichlet(np.full(P, 0.3), R)
    m = rng.normal(0, 1, (R, P)) * rng.uniform(0.1, 3, (R, 1))
    v = np.exp(rng.normal(-1, 1, (R, P)))
    mean = np.einsum("rp,rp->r", w, m)
    sd = np.sqrt(np.einsum("rp,rp->r", w, v + m * m) - mean ** 2)
    row, W, M, V = _merge_rows(w, m, v)
    probs = (0.025, 0.5, 0.975)
    got = mixture_quantiles(row, W, M, V, mean, sd, probs)
    for r in range(R):
        def F(t, a):  # the unmerged mixture: the merge itself is part of what is checked
            return float(np.sum(w[r] * special.ndtr((t - m[r]) / np.sqrt(v[r])))) - a
        for k, a in enumerate(probs):
            want = optimize.brentq(F, mean[r] - 50 * sd[r], mean[r] + 50 * sd[r], args=(a,), xtol=1e-13)
            # the histogram merge (cells of 0.05 SD) moves a quantile by well under 1e-3 posterior SDs
            assert abs(got[r, k] - want) < 1e-3 * sd[r]


def _dense_summary(w, m, v, level):
    """Brute force on one unmerged mixture: density and CDF on 40,001 points over mean ± 12 SD, the mode
    as the densest point, the HDI as the highest-density region {f ≥ k} with mass level (k by bisection)."""
    mean = w @ m
    sd = np.sqrt(w @ (v + m * m) - mean ** 2)
    x = np.linspace(mean - 12 * sd, mean + 12 * sd, 40_001)
    f = w @ (np.exp(-0.5 * (x[None] - m[:, None]) ** 2 / v[:, None]) / np.sqrt(2 * np.pi * v[:, None]))
    dx = x[1] - x[0]
    lo_k, hi_k = 0.0, f.max()
    for _ in range(60):
        k = 0.5 * (lo_k + hi_k)
        mass = f[f >= k].sum() * dx
        lo_k, hi_k = (k, hi_k) if mass > level else (lo_k, k)
    inside = np.flatnonzero(f >= lo_k)
    return x[np.argmax(f)], x[inside[0]], x[inside[-1]], sd, dx


@settings(max_examples=10, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), common_mean=st.booleans())
def test_exact_mixture_summary_against_dense_grid(seed, common_mean):
    """The exact mode and HDI of unimodal mixtures (a common mean, or means spread by less than the
    components' SDs) equal a brute-force dense-grid search; their defining equations hold to rounding."""
    rng = np.random.default_rng(seed)
    R, P = 4, 60
    w = rng.dirichlet(np.full(P, 0.5), R)
    v = np.exp(rng.normal(0, 0.6, (R, P)))
    m = np.zeros((R, P)) if common_mean else rng.normal(0, 0.3, (R, P))
    m = m + rng.normal(0, 5, (R, 1))
    mean = np.einsum("rp,rp->r", w, m)
    sd = np.sqrt(np.einsum("rp,rp->r", w, v + m * m) - mean ** 2)
    row, W, M, V = np.repeat(np.arange(R), P), w.ravel(), m.ravel(), v.ravel()
    got, bad = mixture_summary(row, W, M, V, mean, sd, 0.9)
    for r in range(R):
        if bad[r]:   # a mixture failing the unimodality check is left to the grid path
            continue
        mode, a, b, s, dx = _dense_summary(w[r], m[r], v[r], 0.9)
        assert abs(got["mode"][r] - mode) <= dx + 1e-6 * s
        assert abs(got["hdi_lower"][r] - a) <= 2 * dx and abs(got["hdi_upper"][r] - b) <= 2 * dx
        F = [float(w[r] @ special.ndtr((t - m[r]) / np.sqrt(v[r]))) for t in (got["hdi_lower"][r], got["hdi_upper"][r])]
        assert F[1] - F[0] == pytest.approx(0.9, abs=1e-10)
    assert not bad.all()


def test_exact_mixture_summary_flags_a_bimodal_mixture():
    """Two well-separated components: no single interval is the HDI region, so the row is flagged."""
    W = np.array([0.5, 0.5, 1.0])
    M = np.array([-3.0, 3.0, 0.0])
    V = np.array([0.25, 0.25, 1.0])
    row = np.array([0, 0, 1])
    mean = np.array([0.0, 0.0])
    sd = np.sqrt(np.array([0.25 + 9.0, 1.0]))
    _, bad = mixture_summary(row, W, M, V, mean, sd, 0.95)
    assert bad.tolist() == [True, False]


def test_batch_summarises_a_bimodal_row_on_the_per_replicate_fine_grid():
    """A row failing the unimodality check gets the per-replicate path's fine-grid summary; the other rows
    keep the exact one."""
    from compare_mm.backends.pymc.quadrature_batch_summary import _mixture_margs
    from compare_mm.backends.pymc.quadrature_summary import _fine_mixture

    P = 40
    w = np.full((2, P), 1.0 / P)
    m = np.vstack([np.r_[np.full(P // 2, -3.0), np.full(P // 2, 3.0)], np.zeros(P)])
    v = np.vstack([np.full(P, 0.25), np.linspace(0.5, 2.0, P)])
    *_, mean, sd, q, arrs = _mixture_margs(w, m, v, 0.95)
    for r in range(2):
        want = _fine_mixture(w[r], m[r], v[r], float(mean[r]), float(sd[r])).summary("b", 0.95)
        for k in ("median", "eti_lower", "eti_upper", "hdi_lower", "hdi_upper"):
            assert arrs[k][r] == pytest.approx(getattr(want, k), abs=1e-3 * sd[r])
    assert q[0, 1] == pytest.approx(arrs["median"][0])


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**31 - 1))
def test_merged_components_keep_the_quantiles_within_1e4_sd(seed):
    """merge_components (the β mixture's (mean × log variance) histogram, moment-matched per cell) moves the
    2.5/50/97.5 % quantiles by < 1e-4 mixture SDs (its docstring's bound), against the unmerged mixture's
    exact quantiles — on grid-like mixtures: 20,000 components whose means and variances vary smoothly
    with a 4-D node (spread of the means 0.5–6 component SDs, variances over a factor 1–20) and whose
    weights are a skewed, boundary-piled density over the nodes."""
    from compare_mm.backends.pymc.quadrature_summary import merge_components

    rng = np.random.default_rng(seed)
    z = rng.uniform(0, 1, (20_000, 4))
    a = rng.normal(size=4)
    w = np.exp(-rng.uniform(2, 8) * (z[:, 0] - rng.uniform(0, 0.3)) ** 2 - 3 * (z[:, 1:] ** 2).sum(1) + z @ a * 0.3)
    w /= w.sum()
    m = rng.uniform(0.5, 6) * np.tanh(z @ rng.normal(size=4)) + rng.normal()
    v = np.exp(np.log(rng.uniform(1, 20)) * z[:, 0] * z[:, 2] + rng.normal() * 0.5)
    mean = float(w @ m)
    sd = float(np.sqrt(w @ (v + m * m) - mean * mean))
    W, M, V = merge_components(w, m, v)
    assert W.size < w.size              # the histogram did merge
    probs = np.array([0.025, 0.5, 0.975])
    args = (np.array([mean]), np.array([sd]), probs)
    exact = mixture_quantiles(np.zeros(w.size, np.int64), w, m, v, *args)[0]
    merged = mixture_quantiles(np.zeros(W.size, np.int64), W, M, V, *args)[0]
    assert np.max(np.abs(merged - exact)) / sd < 1e-4, (merged - exact) / sd


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), N=st.integers(5, 33))
def test_even_spline_basis_is_the_mirrored_spline(seed, N):
    """The batched path's even axis basis (node values at t = 0 … N − 1 to the fine grid) equals scipy's
    not-a-knot spline through the mirrored data v_{|t|}, t = −(N − 1) … N − 1, built here directly on the
    data; its slope at t = 0 is zero, and on an even function it is closer to the truth near 0 than the
    one-sided spline."""
    from compare_mm.backends.pymc.quadrature_batch_summary import _even_spline_basis, _spline_basis

    rng = np.random.default_rng(seed)
    v = rng.normal(size=N)
    t = np.arange(-(N - 1), N, dtype=float)
    ref = interpolate.CubicSpline(t, v[np.abs(t).astype(int)])
    tf = np.linspace(0.0, N - 1, 2049)
    assert np.allclose(v @ _even_spline_basis(N), ref(tf), atol=1e-12)
    assert abs(ref(0.0, 1)) < 1e-12
    s = rng.uniform(1.0, 3.0)
    f = lambda x: -0.5 * (x / s) ** 2 - 0.05 * np.cos(x) ** 2 * x ** 2   # an even log density
    nodes = f(np.arange(N, dtype=float))
    near = tf <= 1.0
    err_even = np.max(np.abs(nodes @ _even_spline_basis(N) - f(tf))[near])
    err_one = np.max(np.abs(nodes @ _spline_basis(N) - f(tf))[near])
    assert err_even < err_one
