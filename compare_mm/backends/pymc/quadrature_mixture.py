"""β's marginal posterior Σ_c W_c N(M_c, V_c) (a Gaussian mixture over the ψ nodes): exact summaries.

Given ψ, β is Gaussian (:mod:`.quadrature_model`, eq. 2), so its marginal is a mixture with one component
per grid node (merged by :func:`.quadrature_summary.merge_components`).  Its CDF F, density f and the
density's derivatives are sums of Φ and φ terms, so every summary is the root of an explicit equation,
solved by safeguarded Newton iterations vectorised over replicates (rows); components are stored flat and
sorted by row (``row[c]`` is component c's row):

* quantiles: F(x) = a (:func:`mixture_quantiles`);
* mode: f'(x) = 0 from the median, inside a bracket kept by the sign of f';
* HDI: the interval [a, b] with F(b) − F(a) = level and f(a) = f(b) — for a unimodal density the
  shortest interval of that probability (Box & Tiao 1973, sec. 2.8) — by Newton's method in (a, b)
  from the ETI.

Unimodality holds when the components share one mean, and is checked otherwise on 65 points over
mean ± 8 SD (the density rises to the mode found and falls after it);
:func:`mixture_summary` returns a mask of the rows where a check failed, for the caller's grid-based path.
"""

from __future__ import annotations

import numpy as np
from scipy import special

_SQRT2PI = np.sqrt(2.0 * np.pi)


def _terms(x: np.ndarray, row, W, M, s, starts):
    """F, f, f' of every row's mixture at the points x (R, K)."""
    t = (x[row] - M[:, None]) / s
    phi = W[:, None] * np.exp(-0.5 * t * t) / (_SQRT2PI * s)
    F = np.add.reduceat(W[:, None] * special.ndtr(t), starts, axis=0)
    f = np.add.reduceat(phi, starts, axis=0)
    d1 = np.add.reduceat(-phi * t / s, starts, axis=0)
    return F, f, d1


def _density(x: np.ndarray, row, W, M, s, starts) -> np.ndarray:
    """f of every row's mixture at the points x (R, K)."""
    t = (x[row] - M[:, None]) / s
    return np.add.reduceat(W[:, None] * np.exp(-0.5 * t * t) / (_SQRT2PI * s), starts, axis=0)


def mixture_quantiles(row, W, M, V, mean, sd, probs, iters: int = 40) -> np.ndarray:
    """Exact quantiles (R, K) of the mixtures Σ_c W_c N(M_c, V_c) (components of row ``row[c]``, sorted):
    Newton's method on F(x) − a from the Gaussian quantile of the mixture's mean and SD, kept inside a
    shrinking bracket (bisection when a step leaves it), to 1e-10 posterior SDs."""
    R = mean.size
    a = np.asarray(probs, float)
    a = np.broadcast_to(a if a.ndim == 2 else a[None, :], (R, a.shape[-1]))
    starts = np.searchsorted(row, np.arange(R))
    s = np.sqrt(V)[:, None]
    x = mean[:, None] + sd[:, None] * special.ndtri(a)
    lo, hi = mean[:, None] - 40 * sd[:, None], mean[:, None] + 40 * sd[:, None]
    for _ in range(iters):
        t = (x[row] - M[:, None]) / s
        F = np.add.reduceat(W[:, None] * special.ndtr(t), starts, axis=0) - a
        f = np.add.reduceat(W[:, None] * np.exp(-0.5 * t * t) / (_SQRT2PI * s), starts, axis=0)
        lo, hi = np.where(F < 0, x, lo), np.where(F < 0, hi, x)
        with np.errstate(all="ignore"):
            nx_ = x - F / f
        nx_ = np.where(np.isfinite(nx_) & (nx_ >= lo) & (nx_ <= hi), nx_, 0.5 * (lo + hi))
        done = np.abs(nx_ - x) <= 1e-10 * sd[:, None]
        x = nx_
        if done.all():
            break
    return x


def _mode(row, W, M, s, starts, med, sd, iters: int = 60) -> np.ndarray:
    """The density's stationary point f'(x) = 0 nearest the median: Newton on f' (f'' from the components)
    inside the bracket [median − 6 SD, median + 6 SD] narrowed by the sign of f' (bisection otherwise), to
    1e-8 posterior SDs (the density is flat at its maximum: rounding moves the root by ~√ε SD)."""
    x, lo, hi = med.copy(), med - 6 * sd, med + 6 * sd
    for _ in range(iters):
        t = (x[row] - M) / s
        phi = W * np.exp(-0.5 * t * t) / (_SQRT2PI * s)
        d1 = np.add.reduceat(-phi * t / s, starts)
        d2 = np.add.reduceat(phi * (t * t - 1.0) / (s * s), starts)
        lo, hi = np.where(d1 > 0, x, lo), np.where(d1 > 0, hi, x)
        with np.errstate(all="ignore"):
            nx_ = x - d1 / d2
        nx_ = np.where(np.isfinite(nx_) & (d2 < 0) & (nx_ > lo) & (nx_ < hi), nx_, 0.5 * (lo + hi))
        done = np.abs(nx_ - x) <= 1e-8 * sd
        x = nx_
        if done.all():
            break
    return x


def _hdi(row, W, M, s, starts, lo0, hi0, sd, level: float, iters: int = 40):
    """Newton's method on (F(b) − F(a) − level, log f(a) − log f(b)) from the ETI (lo0, hi0); returns the
    ends and a mask of the rows that converged with a < b (Jacobian [[−f(a), f(b)], [f'(a)/f(a),
    −f'(b)/f(b)]])."""
    a, b = lo0.copy(), hi0.copy()
    conv = np.zeros(a.size, bool)
    for _ in range(iters):
        F, f, d1 = _terms(np.stack([a, b], 1), row, W, M, s, starts)
        with np.errstate(all="ignore"):
            r1 = F[:, 1] - F[:, 0] - level
            r2 = np.log(f[:, 0]) - np.log(f[:, 1])
            j11, j12 = -f[:, 0], f[:, 1]
            j21, j22 = d1[:, 0] / f[:, 0], -d1[:, 1] / f[:, 1]
            det = j11 * j22 - j12 * j21
            da = (r1 * j22 - r2 * j12) / det
            db = (j11 * r2 - j21 * r1) / det
        step = np.maximum(np.abs(da), np.abs(db))
        # damp steps longer than one posterior SD (the ETI start is within a fraction of one)
        scale = np.where(step > sd, sd / np.where(step > 0, step, 1.0), 1.0)
        a, b = a - scale * da, b - scale * db
        conv = np.isfinite(a) & np.isfinite(b) & (step <= 1e-11 * sd)
        if conv.all():
            break
    return a, b, conv & (a < b)


def mixture_summary(row, W, M, V, mean, sd, level: float) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Median, ETI, HDI and mode of every row's mixture, exactly (module docstring); returns (arrays by
    PosteriorSummary field, a mask of the rows where the unimodality check or the HDI iteration failed)."""
    R = mean.size
    starts = np.searchsorted(row, np.arange(R))
    s = np.sqrt(V)
    q = (1 - level) / 2
    lo, med, hi = mixture_quantiles(row, W, M, V, mean, sd, (q, 0.5, 1 - q)).T
    mode = _mode(row, W, M, s, starts, med, sd)
    hdi_lo, hdi_hi, conv = _hdi(row, W, M, s[:, None], starts, lo, hi, sd, level)
    # unimodality: a mixture of components with one common mean is (symmetric and) unimodal; otherwise,
    # on 65 points over mean ± 8 SD the density must rise up to the mode found and fall after it
    unimodal = np.ones(R, bool)
    spread = np.maximum.reduceat(M, starts) - np.minimum.reduceat(M, starts)
    check = np.flatnonzero(spread > 1e-12 * sd)
    if check.size:
        keep = np.isin(row, check)
        r2 = np.searchsorted(check, row[keep])
        st2 = np.searchsorted(r2, np.arange(check.size))
        xs = mean[check, None] + sd[check, None] * np.linspace(-8.0, 8.0, 65)[None]
        fc = _density(np.concatenate([mode[check, None], xs], 1), r2, W[keep], M[keep], s[keep, None], st2)
        top, fc = fc[:, :1], fc[:, 1:]
        rise = np.diff(fc, axis=1)
        m2 = mode[check, None]
        slack = 1e-12 * top
        unimodal[check] = (np.all(fc <= top * (1 + 1e-9), 1) & np.all(np.where(xs[:, 1:] <= m2, rise >= -slack, True), 1)
                           & np.all(np.where(xs[:, :-1] >= m2, rise <= slack, True), 1))
    bad = ~(conv & unimodal & (hdi_lo <= mode) & (mode <= hdi_hi) & np.isfinite(mode))
    return dict(median=med, mode=mode, eti_lower=lo, eti_upper=hi, hdi_lower=hdi_lo, hdi_upper=hdi_hi), bad


__all__ = ["mixture_quantiles", "mixture_summary"]
