"""The vectorised summaries of :mod:`.quadrature_batch` (its step 4): R replicates' grids → marginals.

ψ's marginals by the cubic spline of the log marginal density in node-index coordinates (the spline is
affine-invariant and every replicate's nodes are equally spaced), β's Gaussian-mixture marginal with the
histogram merge of :mod:`.quadrature_summary`, the trapezoid node weights with Gregory's end weights at
η = 0, and the every-other-node subgrid comparison behind the accuracy contract.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import interpolate, special
from scipy.integrate import cumulative_trapezoid

from .quadrature import _GREGORY
from .quadrature_summary import PRUNE

#: nodes of a marginal more than this below its maximum are raised to max − _TRIM (< e⁻³⁰ of the mass)
_TRIM = 30.0


def _rows_quantile(cdf: np.ndarray, x: np.ndarray, probs) -> np.ndarray:
    """np.interp(probs, cdf[r], x[r]) for every row r of non-decreasing ``cdf`` (R, F) → (R, len(probs))."""
    F = cdf.shape[1]
    out = []
    for a in probs:
        j = np.clip((cdf <= a).sum(1) - 1, 0, F - 2)
        c0 = np.take_along_axis(cdf, j[:, None], 1)[:, 0]
        c1 = np.take_along_axis(cdf, j[:, None] + 1, 1)[:, 0]
        x0 = np.take_along_axis(x, j[:, None], 1)[:, 0]
        x1 = np.take_along_axis(x, j[:, None] + 1, 1)[:, 0]
        with np.errstate(all="ignore"):
            t = np.clip(np.where(c1 > c0, (a - c0) / (c1 - c0), 0.0), 0.0, 1.0)
        out.append(np.where(a <= cdf[:, 0], x[:, 0], np.where(a >= cdf[:, -1], x[:, -1], x0 + t * (x1 - x0))))
    return np.stack(out, 1)


def _axis_marginals(lf: np.ndarray, lw: list, k: int, lo: np.ndarray, dz: np.ndarray):
    """(fine z, density in z, CDF) of axis k (R, 2049), or None where nodes would be trimmed.

    The log marginal density on the nodes (log Σ_other f w_other) is interpolated by a cubic spline in
    node-index coordinates t (z = lo + t·dz per replicate), evaluated on 2,049 points and integrated by
    the trapezoid rule (quadrature_summary._axis_marginal)."""
    other = 1 - k
    shape = [1, 1, 1]
    shape[1 + other] = lw[other].shape[1]
    w_other = lw[other].reshape(lw[other].shape[0], *shape[1:])
    with np.errstate(all="ignore"):
        logd = special.logsumexp(lf + w_other, axis=1 + other)                  # (R, N_k)
    top = logd.max(1, keepdims=True)
    # nodes below max − 30 (the per-replicate path trims them) are raised to max − 30: they hold < e⁻³⁰
    # of the mass; a node with log f = −inf (η = 0 under an inverse-gamma prior) is accepted only there
    deep = ~(logd > top - _TRIM)
    nb = np.zeros_like(deep)
    nb[:, 1:] |= ~deep[:, :-1]
    nb[:, :-1] |= ~deep[:, 1:]
    ok = np.isfinite(top[:, 0]) & ~np.any(~np.isfinite(logd) & nb, 1)
    logd = np.where(ok[:, None], np.maximum(logd, top - _TRIM), 0.0)
    N = logd.shape[1]
    tf = np.linspace(0.0, N - 1, 2049)
    spl = interpolate.CubicSpline(np.arange(N, dtype=float), logd.T, axis=0)(tf).T
    g = np.exp(spl - logd.max(1, keepdims=True))
    dzf = dz * (N - 1) / 2048
    cdf = cumulative_trapezoid(g, dx=1.0, axis=1, initial=0.0) * dzf[:, None]
    zf = lo[:, None] + tf[None] * dz[:, None]
    tot = cdf[:, -1:]
    return zf, g / tot, cdf / tot, ok


def _psi_margs(lf, lw, lo, dz, c, wn, nat_pts, names, light: bool = False):
    """Marginals of σ_A, σ_A², σ, σ² (quadrature_summary.psi_marginals) as arrays; returns (dict, ok).
    ``light``: only what the accuracy check reads (σ_A's and σ's CDF and SD; no density, no variances)."""
    out, ok_all = {}, np.ones(lf.shape[0], bool)
    for k, name in ((0, names[0]), (1, "sigma")):
        zf, g, cdf, ok = _axis_marginals(lf, lw, k, lo[:, k], dz[:, k])
        ok_all &= ok
        ck = c[:, k, None]
        x = ck * np.sinh(zf)
        val = nat_pts[..., k]
        if light:
            m1, m2 = (np.einsum("rp,rp->r", wn, val**j) for j in (1, 2))
            out[name] = (x, None, cdf, m1, np.sqrt(np.maximum(m2 - m1 * m1, 0.0)))
            continue
        pdf = g / (ck * np.cosh(zf))
        m1, m2, m4 = (np.einsum("rp,rp->r", wn, val**j) for j in (1, 2, 4))
        out[name] = (x, pdf, cdf, m1, np.sqrt(np.maximum(m2 - m1 * m1, 0.0)))
        with np.errstate(divide="ignore", invalid="ignore"):
            pv = np.where(x > 0, pdf / (2 * x), 0.0)
        zero = x[:, 0] == 0.0
        pv[zero, 0] = pdf[zero, 0] / (2 * x[zero, 1])
        vname = "sigma2" if name == "sigma" else name.replace("sd_", "var_", 1)
        out[vname] = (x * x, pv, cdf, m2, np.sqrt(np.maximum(m4 - m2 * m2, 0.0)))
    return out, ok_all


def _merge_rows(w: np.ndarray, m: np.ndarray, v: np.ndarray, dm: float = 0.05, dlv: float = 0.05):
    """quadrature_summary.merge_components on every row at once (rows whose histogram has as many cells
    as components keep them all); returns flat (row, W, M, V) sorted by row."""
    R, P = w.shape
    keep = w > PRUNE * w.max(1, keepdims=True)
    wk = np.where(keep, w, 0.0)
    wk = wk / wk.sum(1, keepdims=True)
    big = np.inf
    vk = np.where(keep, v, big)
    s_min = np.sqrt(vk.min(1, keepdims=True))
    lv = np.log(np.where(keep, v, 1.0))
    m_lo = np.where(keep, m, big).min(1, keepdims=True)
    m_hi = np.where(keep, m, -big).max(1, keepdims=True)
    lv_lo = np.where(keep, lv, big).min(1, keepdims=True)
    lv_hi = np.where(keep, lv, -big).max(1, keepdims=True)
    nm = ((m_hi - m_lo) / (dm * s_min)).astype(np.int64) + 1
    nv = ((lv_hi - lv_lo) / dlv).astype(np.int64) + 1
    n_kept = keep.sum(1, keepdims=True)
    merge = (nm * nv < n_kept) & (nm * nv <= 4_000_000)
    cell = np.where(merge, ((m - m_lo) / (dm * s_min)).astype(np.int64) * nv
                    + ((lv - lv_lo) / dlv).astype(np.int64), np.arange(P)[None])
    cell = np.where(keep, cell, -1)
    C = int(max(P, int((nm * nv)[merge].max()) if merge.any() else 0)) + 1
    code = (np.arange(R)[:, None] * C + cell + 1)[keep]
    uniq, inv = np.unique(code, return_inverse=True)
    W = np.bincount(inv, wk[keep])
    M = np.bincount(inv, wk[keep] * m[keep]) / W
    V = np.bincount(inv, wk[keep] * (v[keep] + (m[keep] - M[inv]) ** 2)) / W
    return uniq // C, W, M, V


def _mixture_margs(w, m, v, nx: int = 129, nf: int = 2049, light: bool = False):
    """quadrature_summary.mixture_marginal per row (w, m, v: (R, P)): exact CDF and density of the merged
    mixture on ``nx`` points mean ± 9 SD, cubic Hermite (in index coordinates) on ``nf`` points
    (2,049: linear interpolation of the CDF between them moves a quantile by ≲ 1e-5 posterior SDs).
    ``light``: no density (the accuracy check reads the CDF only).

    nx = 129 instead of 257: the Hermite cubic's error is h⁴/384 · max|F⁗| ≈ 2e-6 of the CDF at
    h = 0.14 SD, i.e. ≲ 5e-5 posterior SDs on a 2.5 % quantile (tolerance 1e-3)."""
    R = w.shape[0]
    mean = np.einsum("rp,rp->r", w, m)
    sd = np.sqrt(np.maximum(np.einsum("rp,rp->r", w, v + m * m) - mean * mean, 0.0))
    row, W, M, V = _merge_rows(w, m, v)
    x = mean[:, None] + sd[:, None] * np.linspace(-9.0, 9.0, nx)[None]
    s = np.sqrt(V)
    t = (x[row] - M[:, None]) / s[:, None]
    starts = np.searchsorted(row, np.arange(R))
    cdf = np.add.reduceat(W[:, None] * special.ndtr(t), starts, axis=0)
    pdf = np.add.reduceat(W[:, None] * np.exp(-0.5 * t * t) / (np.sqrt(2 * np.pi) * s[:, None]), starts, axis=0)
    dx = 18.0 * sd / (nx - 1)
    her = interpolate.CubicHermiteSpline(np.arange(nx, dtype=float), cdf.T, (pdf * dx[:, None]).T, axis=0)
    tf = np.linspace(0.0, nx - 1, nf)
    cf = np.maximum.accumulate(np.clip(her(tf).T, 0.0, 1.0), axis=1)
    pf = None if light else her(tf, 1).T / dx[:, None]
    xf = x[:, :1] + tf[None] * dx[:, None]
    return xf, pf, cf, mean, sd


def _node_weights(N: int, dz: np.ndarray, at_zero: np.ndarray) -> np.ndarray:
    """log of the per-node weights (R, N): dz, with Gregory's end weights at an η = 0 start."""
    w = np.repeat(dz[:, None], N, 1)
    m = min(3, N)
    w[at_zero, :m] *= _GREGORY[:m]
    return np.log(w)


@dataclass
class _GridSummary:
    margs: dict              # name → (x, pdf, cdf, mean, sd) arrays over the block's rows
    ok: np.ndarray


def _summarise(lf, lw, lo, dz, c, nat, beta_m, beta_v, names, fixed_names, light: bool = False
               ) -> tuple[_GridSummary, np.ndarray]:
    """Normalised weights and every marginal of one (sub)grid, for all rows; returns (summary, weights).
    ``light``: the subgrid of the accuracy check (CDFs and SDs of the compared parameters only)."""
    R = lf.shape[0]
    lwt = lf + lw[0][:, :, None] + lw[1][:, None, :]
    flat = lwt.reshape(R, -1)
    with np.errstate(invalid="ignore"):
        wn = np.exp(flat - flat.max(1, keepdims=True))
    wn = wn / wn.sum(1, keepdims=True)
    margs, ok = _psi_margs(lf, lw, lo, dz, c, wn, nat.reshape(R, -1, 2), names, light)
    for j, name in enumerate(fixed_names):
        margs[name] = _mixture_margs(wn, beta_m.reshape(R, -1, beta_m.shape[-1])[..., j],
                                     beta_v.reshape(R, -1, beta_v.shape[-1])[..., j], light=light)
    return _GridSummary(margs, ok & np.isfinite(wn).all(1)), wn


def _compared(gs: _GridSummary, level: float) -> tuple[np.ndarray, np.ndarray]:
    """The quantiles the accuracy check compares (ETI ends and median of every non-variance parameter)
    and their posterior SDs, (R, 3·parameters) each."""
    a = (1 - level) / 2
    qs, sds = [], []
    for name, (x, pdf, cdf, mean, sd) in gs.margs.items():
        if name.startswith("var_") or name == "sigma2":
            continue
        qs.append(_rows_quantile(cdf, x, (a, 0.5, 1 - a)))
        sds.append(np.repeat(sd[:, None], 3, 1))
    return np.concatenate(qs, 1), np.concatenate(sds, 1)
