"""The vectorised summaries of :mod:`.quadrature_batch` (its step 4): R replicates' grids → marginals.

ψ's marginals by the cubic spline of the log marginal density in node-index coordinates (the spline is
affine-invariant and every replicate's nodes are equally spaced), β's Gaussian-mixture marginal with the
histogram merge of :mod:`.quadrature_summary`, the trapezoid node weights with Gregory's end weights at
η = 0, and the every-other-node subgrid comparison behind the accuracy contract.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import interpolate

from .quadrature import axis_value
from .quadrature_weights import end_factors
from .quadrature_mixture import mixture_quantiles, mixture_summary
from .quadrature_summary import PRUNE, _fine_mixture, density_mode

#: nodes of a marginal more than this below its maximum are raised to max − _TRIM (< e⁻³⁰ of the mass)
_TRIM = 30.0


def _shifted(cdf: np.ndarray) -> np.ndarray:
    """The rows of ``cdf`` (values in [0, 1]) shifted apart, row r by 2r, and flattened: one sorted array."""
    return (cdf + 2.0 * np.arange(cdf.shape[0])[:, None]).ravel()


def _rows_quantile(cdf: np.ndarray, x: np.ndarray, probs, shifted: np.ndarray | None = None) -> np.ndarray:
    """np.interp(probs[r], cdf[r], x[r]) for every row r of non-decreasing ``cdf`` (R, F) → (R, K).

    ``probs`` is (K,) or (R, K).  One binary search for all rows: the rows are shifted apart (cdf ∈ [0, 1],
    row r by 2r: ``shifted``, :func:`_shifted`) and searched as one sorted array; the interpolation uses
    the unshifted values.  Where
    ``cdf`` has ties the last node ≤ a is taken (np.interp leaves that case unspecified)."""
    R, F = cdf.shape
    a = np.broadcast_to(np.asarray(probs, float), (R, np.shape(probs)[-1]))
    off = 2.0 * np.arange(R)[:, None]
    flat = _shifted(cdf) if shifted is None else shifted
    j = np.searchsorted(flat, (a + off).ravel(), side="right").reshape(a.shape) - 1
    base = np.arange(R)[:, None] * F
    jc = np.clip(j - base, 0, F - 2) + base          # flat index of the left node, inside row r
    cf, xf = cdf.reshape(-1), x.reshape(-1)
    c0, c1, x0, x1 = cf[jc], cf[jc + 1], xf[jc], xf[jc + 1]
    with np.errstate(all="ignore"):
        t = np.clip(np.where(c1 > c0, (a - c0) / (c1 - c0), 0.0), 0.0, 1.0)
    out = x0 + t * (x1 - x0)
    out = np.where(a < cdf[:, :1], x[:, :1], out)
    return np.where(a >= cdf[:, -1:], x[:, -1:], out)


def _hdi(cdf: np.ndarray, x: np.ndarray, level: float, rounds: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """The shortest interval of probability ``level`` per row: the width q(s + level) − q(s) minimised over
    the start s ∈ [0, 1 − level] on 65 starts, then three times on 33 starts between the neighbours of the
    best one (final spacing (1 − level)/2¹⁴, finer than the 4,001 starts of
    :meth:`.quadrature_summary.Marginal.summary`, which it otherwise follows)."""
    R = cdf.shape[0]
    lo_s, hi_s = np.zeros(R), np.full(R, 1.0 - level)
    n, flat = 65, _shifted(cdf)
    for _ in range(rounds + 1):
        starts = lo_s[:, None] + (hi_s - lo_s)[:, None] * np.linspace(0.0, 1.0, n)[None]
        both = _rows_quantile(cdf, x, np.concatenate([starts, starts + level], 1), flat)
        los, his = both[:, :n], both[:, n:]
        i = np.argmin(his - los, axis=1)
        best_lo, best_hi = los[np.arange(R), i], his[np.arange(R), i]
        step = (hi_s - lo_s) / (n - 1)
        lo_s = np.maximum(starts[np.arange(R), i] - step, 0.0)
        hi_s = np.minimum(starts[np.arange(R), i] + step, 1.0 - level)
        n = 33
    return best_lo, best_hi


def posterior_arrays(x: np.ndarray, pdf: np.ndarray, cdf: np.ndarray, level: float) -> dict[str, np.ndarray]:
    """:meth:`.quadrature_summary.Marginal.summary` for every row at once: median, ETI, HDI (:func:`_hdi`)
    and mode (:func:`.quadrature_summary.density_mode`), as arrays over rows."""
    a = (1 - level) / 2
    lo, med, hi = _rows_quantile(cdf, x, (a, 0.5, 1 - a)).T
    hdi_lo, hdi_hi = _hdi(cdf, x, level)
    mode = density_mode(x, pdf)
    return dict(median=med, mode=mode, eti_lower=lo, eti_upper=hi,
                hdi_lower=hdi_lo, hdi_upper=hdi_hi)


#: the fine grid of every ψ marginal: 2,049 points between the first and the last node
_NF = 2049
_BASIS: dict[int, np.ndarray] = {}


def _spline_basis(N: int) -> np.ndarray:
    """(N, 2,049): the not-a-knot cubic spline through N equally spaced values, evaluated on the fine grid,
    as a linear map (the spline is linear in the values; cached per N)."""
    B = _BASIS.get(N)
    if B is None:
        tf = np.linspace(0.0, N - 1, _NF)
        B = interpolate.CubicSpline(np.arange(N, dtype=float), np.eye(N), axis=0)(tf).T.copy()
        _BASIS[N] = B
    return B


_EVEN_BASIS: dict[int, np.ndarray] = {}


def _even_spline_basis(N: int) -> np.ndarray:
    """(N, 2,049): the not-a-knot cubic spline through the mirrored values v_{|t|}, t = −(N − 1) … N − 1,
    evaluated on the fine grid over [0, N − 1]: an even function's spline with zero slope at 0, as
    quadrature_summary._axis_marginal fits an even axis that starts at η = 0 (cached per N)."""
    B = _EVEN_BASIS.get(N)
    if B is None:
        tf = np.linspace(0.0, N - 1, _NF)
        t = np.arange(-(N - 1), N, dtype=float)
        full = interpolate.CubicSpline(t, np.eye(t.size), axis=0)(tf)                 # (_NF, 2N − 1)
        mirror = np.zeros((t.size, N))
        mirror[np.arange(t.size), np.abs(t).astype(int)] = 1.0
        B = _EVEN_BASIS[N] = (full @ mirror).T.copy()
    return B


def _axis_marginals(wn: np.ndarray, lw: list, k: int, lo: np.ndarray, dz: np.ndarray,
                    tilt: np.ndarray | None = None):
    """(fine z, density in z, CDF) of axis k (R, 2049), and where the row's marginal is usable.

    The log marginal density on the nodes, log Σ_other f w_other = log Σ_other w_n − log w_k + const
    (w_n the normalised node weights, (R, N₀, N₁)), is interpolated by a cubic spline in node-index
    coordinates t (z = lo + t·dz per replicate), evaluated on 2,049 points and integrated by the
    trapezoid rule (quadrature_summary._axis_marginal); on the rows where ``tilt`` a (R,) is finite (an
    axis starting at η = 0 whose log marginal is an even function minus a·sinh η,
    :meth:`.quadrature.Coordinates.tilt_of`) the spline is the even one of :func:`_even_spline_basis`
    through the even part."""
    with np.errstate(divide="ignore"):
        logd = np.log(wn.sum(axis=2 - k)) - lw[k]                               # (R, N_k)
    top = logd.max(1, keepdims=True)
    # nodes below max − 30 (the per-replicate path trims them) are raised to max − 30: they hold < e⁻³⁰
    # of the mass; a node with log f = −inf (a density underflowing far out) is accepted only there
    deep = ~(logd > top - _TRIM)
    nb = np.zeros_like(deep)
    nb[:, 1:] |= ~deep[:, :-1]
    nb[:, :-1] |= ~deep[:, 1:]
    ok = np.isfinite(top[:, 0]) & ~np.any(~np.isfinite(logd) & nb, 1)
    logd = np.where(ok[:, None], np.maximum(logd, top - _TRIM), 0.0)
    N = logd.shape[1]
    logd = logd - logd.max(1, keepdims=True)
    spl = logd @ _spline_basis(N)
    mirror = None if tilt is None else np.isfinite(tilt)
    if mirror is not None and mirror.any():
        a, t = tilt[mirror][:, None], np.arange(N, dtype=float)
        odd_n = a * np.sinh(lo[mirror, None] + t[None] * dz[mirror, None])
        odd_f = a * np.sinh(lo[mirror, None] + _fine_t(N)[None] * dz[mirror, None])
        spl[mirror] = (logd[mirror] + odd_n) @ _even_spline_basis(N) - odd_f
    floor = spl < 1.0 - _TRIM          # where the spline runs along the raised nodes: no density there (the
    g = np.exp(spl, out=spl)           # floor's e⁻³⁰ times s⁴ far out had moved the SD of σ_A² by 4 %)
    g[floor] = 0.0
    cdf = np.empty_like(g)
    cdf[:, 0] = 0.0
    h = np.add(g[:, 1:], g[:, :-1])
    np.cumsum(h, axis=1, out=cdf[:, 1:])          # 2 × the trapezoid sums in units of the fine spacing
    tot = cdf[:, -1:].copy()
    cdf /= tot
    zf = lo[:, None] + _fine_t(N)[None] * dz[:, None]
    # density in z: g / ∫g dz, with ∫g dz = (tot / 2) × the fine spacing dz (N − 1)/(_NF − 1)
    g *= (2.0 * (_NF - 1) / (N - 1)) / (tot * dz[:, None])
    return zf, g, cdf, ok


_FINE_T: dict[int, np.ndarray] = {}


def _fine_t(N: int) -> np.ndarray:
    """The fine grid in node-index coordinates: 2,049 points over [0, N − 1] (cached per N)."""
    t = _FINE_T.get(N)
    if t is None:
        t = _FINE_T[N] = np.linspace(0.0, N - 1, _NF)
    return t


def _fine_moments(zf: np.ndarray, g: np.ndarray, x: np.ndarray, powers) -> list[np.ndarray]:
    """E[s^j] per row from the marginal's fine grid: the trapezoid rule of s(z)^j g(z) over z (g the
    density in z of :func:`_axis_marginals`, s = ``x``).  The node sums Σ w s^j with the grid's Gregory end
    weights at η = 0 are O(h⁴) for the odd power (the mean) and, on a 10-group unbalanced design, moved
    the mean of σ_A by 3.7e-3 posterior SDs between the grid and its every-other-node subgrid; on the fine
    grid the mean is as accurate as the spline the quantiles are read from."""
    step = zf[:, 1] - zf[:, 0]
    out = []
    for j in powers:
        f = g * x**j
        out.append(step * (f.sum(1) - 0.5 * (f[:, 0] + f[:, -1])))
    return out


def _psi_margs(lf, lw, lo, dz, c, wn, nat_pts, names, log_ax, light: bool = False, tilt=None):
    """Marginals of σ_A, σ_A², σ, σ² (quadrature_summary.psi_marginals) as arrays; returns (dict, ok).
    ``light``: only what the accuracy check reads (σ_A's and σ's CDF and SD; no density, no variances)."""
    out, ok_all = {}, np.ones(lf.shape[0], bool)
    w3 = wn.reshape(lf.shape)
    for k, name in ((0, names[0]), (1, "sigma")):
        zf, g, cdf, ok = _axis_marginals(w3, lw, k, lo[:, k], dz[:, k], None if tilt is None else tilt[:, k])
        ok_all &= ok
        val = nat_pts[..., k]
        if log_ax[k]:                                     # s = c eᶻ, ds/dz = s
            x = e = axis_value(c[:, k, None], zf, True)
        else:                                             # s = c sinh z, ds/dz = c cosh z
            hc = 0.5 * c[:, k, None]
            e = np.exp(zf)
            ie = np.divide(1.0, e)
            x = hc * (e - ie)
            e += ie
            e *= hc
        if light:
            m1, m2 = _fine_moments(zf, g, x, (1, 2))
            out[name] = (x, None, cdf, m1, np.sqrt(np.maximum(m2 - m1 * m1, 0.0)))
            continue
        m1, m2, m4 = _fine_moments(zf, g, x, (1, 2, 4))
        pdf = np.divide(g, e, out=g)
        out[name] = (x, pdf, cdf, m1, np.sqrt(np.maximum(m2 - m1 * m1, 0.0)))
        with np.errstate(divide="ignore", invalid="ignore"):
            pv = np.where(x > 0, pdf / (2 * x), 0.0)
        zero = x[:, 0] == 0.0
        pv[zero, 0] = np.where(pdf[zero, 0] > 0, np.inf, 0.0)   # s² has an infinite density at 0 (density_mode)
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
    wkk = wk[keep]
    if R * C <= 4 * code.size + 65536:
        # the codes' range is small: count into it directly (the same sorted order and sums as np.unique,
        # without its sort)
        Wd = np.bincount(code, wkk, minlength=R * C)
        uniq = np.flatnonzero(np.bincount(code, minlength=R * C))
        inv = np.searchsorted(uniq, code)
        W = Wd[uniq]
    else:
        uniq, inv = np.unique(code, return_inverse=True)
        W = np.bincount(inv, wkk)
    mk = m[keep]
    M = np.bincount(inv, wkk * mk) / W
    V = np.bincount(inv, wkk * (v[keep] + (mk - M[inv]) ** 2)) / W
    return uniq // C, W, M, V


def _mixture_margs(w, m, v, level: float, light: bool = False):
    """quadrature_summary.mixture_marginal per row (w, m, v: (R, P)): (None, None, None, mean, sd, the
    compared quantiles (ETI ends and median, exact: :func:`.quadrature_mixture.mixture_quantiles`) and,
    unless ``light`` (the accuracy check's subgrid), every summary (:func:`.quadrature_mixture.mixture_summary`;
    rows failing its unimodality check are summarised on the per-replicate path's fine grid instead)."""
    mean = np.einsum("rp,rp->r", w, m)
    sd = np.sqrt(np.maximum(np.einsum("rp,rp->r", w, v + m * m) - mean * mean, 0.0))
    row, W, M, V = _merge_rows(w, m, v)
    if light:
        return None, None, None, mean, sd, mixture_quantiles(row, W, M, V, mean, sd, _compared_probs(level))
    arrs, bad = mixture_summary(row, W, M, V, mean, sd, level)
    for r in np.flatnonzero(bad):     # the per-replicate path's fine grid (quadrature_summary._fine_mixture)
        c = row == r
        fine = _fine_mixture(W[c], M[c], V[c], float(mean[r]), float(sd[r])).summary("", level)
        for k in arrs:
            arrs[k][r] = getattr(fine, k)
    q = np.stack([arrs["eti_lower"], arrs["median"], arrs["eti_upper"]], 1)
    return None, None, None, mean, sd, q, arrs


def _node_weights(N: int, dz: np.ndarray, at_zero: np.ndarray, tilt: np.ndarray) -> np.ndarray:
    """log of the per-node weights (R, N): dz, with the end weights of :func:`.quadrature_weights.end_factors` at
    an η = 0 start (``tilt`` (R,): NaN for Gregory's)."""
    w = np.repeat(dz[:, None], N, 1)
    if at_zero.any():
        w[at_zero] *= end_factors(N, dz[at_zero], tilt[at_zero])
    return np.log(w)


@dataclass
class _GridSummary:
    margs: dict              # name → (x, pdf, cdf, mean, sd) arrays over the block's rows
    ok: np.ndarray


def _summarise(lf, lw, lo, dz, c, nat, beta_m, beta_v, names, fixed_names, log_ax, light: bool = False,
               level: float = 0.95, tilt=None) -> tuple[_GridSummary, np.ndarray]:
    """Normalised weights and every marginal of one (sub)grid, for all rows; returns (summary, weights).
    ``light``: the subgrid of the accuracy check (CDFs and SDs of the compared parameters only);
    ``tilt`` (R, 2): per row and axis the a of an η = 0 start whose marginal spline is fitted to the even
    part (:func:`_axis_marginals`), NaN elsewhere."""
    R = lf.shape[0]
    lwt = lf + lw[0][:, :, None] + lw[1][:, None, :]
    flat = lwt.reshape(R, -1)
    with np.errstate(invalid="ignore"):
        wn = np.exp(flat - flat.max(1, keepdims=True))
    wn = wn / wn.sum(1, keepdims=True)
    margs, ok = _psi_margs(lf, lw, lo, dz, c, wn, nat.reshape(R, -1, 2), names, log_ax, light, tilt)
    for j, name in enumerate(fixed_names):
        margs[name] = _mixture_margs(wn, beta_m.reshape(R, -1, beta_m.shape[-1])[..., j],
                                     beta_v.reshape(R, -1, beta_v.shape[-1])[..., j], level, light)
    return _GridSummary(margs, ok & np.isfinite(wn).all(1)), wn


def _compared_probs(level: float) -> tuple[float, float, float]:
    """The probabilities of the quantiles the accuracy check compares: the ETI ends and the median."""
    a = (1 - level) / 2
    return (a, 0.5, 1 - a)


def _compared(gs: _GridSummary, level: float) -> tuple[np.ndarray, np.ndarray]:
    """What the accuracy check compares — the ETI ends, the median, the mean and the SD of every
    non-variance parameter (quadrature_summary.summarise_grid) — and their posterior SDs, (R, 5·parameters)
    each."""
    qs, sds = [], []
    for name, marg in gs.margs.items():
        if name.startswith("var_") or name == "sigma2":
            continue
        x, pdf, cdf, mean, sd = marg[:5]
        qs.append(marg[5] if len(marg) > 5 else _rows_quantile(cdf, x, _compared_probs(level)))
        qs.append(np.stack([mean, sd], 1))
        sds.append(np.repeat(sd[:, None], 5, 1))
    return np.concatenate(qs, 1), np.concatenate(sds, 1)
