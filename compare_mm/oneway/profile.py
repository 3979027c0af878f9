"""Profile-likelihood intervals of the balanced one-way model, vectorised over replicates.

The same intervals as :func:`compare_mm.inference.profile.profile_intervals` (Bates et al. 2015, sec. 5.1:
{ v : D(v) − D̂ ≤ χ²_{1,level} }, D the deviance profiled over the other parameters), computed from the
sufficient statistics of :class:`~compare_mm.oneway.closed_forms.OnewayStats` for every replicate at once.
Profile intervals are invariant under monotone maps, so the variance limits here equal the squared SD
limits of the general routine (its ``profile-sd2`` rows).

With λ = σ_e² + nσ_A², s = σ_e², Q = SSA, ν₂ = a(n − 1), and c₁ = a − 1 (mode ``"reml"``: −2ℓ_REML) or
c₁ = a (mode ``"ml"``: −2ℓ_ML at μ = ȳ), both deviances are, up to constants,

    d(σ_A², s) = c₁ log λ + ν₂ log s + Q/λ + SSE/s           (module docstring of closed_forms)

(ML with μ free adds N(ȳ − μ)² to Q).  The profiles are

* σ_A² = v:  D_A(v) = min_{s>0} d(v, s).  The stationarity condition c₁/λ − Q/λ² + ν₂/s − SSE/s² = 0 times
  λ²s² is the cubic  (c₁ + ν₂)s³ + ((c₁ + 2ν₂)m − Q − SSE)s² + (ν₂m² − 2 SSE m)s − SSE m² = 0, m = nv;
  its roots come from the eigenvalues of the companion matrices (one batched ``eigvals``) and D_A is the
  least d over the positive real parts (d(v, s) ≥ D_A(v) at any s > 0, so spurious candidates are harmless);
* σ_e² = s:  λ* = max(Q/c₁, s) in closed form;
* μ (``"ml"`` only; REML has no μ):  λ* = (Q + N(ȳ − μ)²)/a, s* = SSE/ν₂, or λ* = s* = (Q + N(ȳ − μ)² + SSE)/N
  when λ* < s*.

D̂ is d at the estimates of the mode (:func:`compare_mm.oneway.closed_forms.variance_estimates`).  Limits are
found after bracketing by doubling: σ_A² by Newton steps on D_A (its derivative n(c₁/λ* − Q/λ*²) by
the envelope theorem) kept inside the bracket, σ_e² and μ by bisection (closed-form profiles).  **Closed at 0**: the lower limit of σ_A² is
exactly 0 when σ̂_A² = 0 or D_A(0) − D̂ ≤ χ²_{1,level} (the boundary lies inside the interval), so the
interval covers σ_A² = 0 with probability 1 − P(LRT of σ_A² = 0 rejects at 1 − level) — an exact value
(:func:`compare_mm.oneway.intervals.exact_interval_coverage`).
"""

from __future__ import annotations

import numpy as np

from ..errors import OptionError
from .closed_forms import OnewayStats, _as_stats, _check_level, variance_estimates
from .intervals import Limits

_ITER = 200


def _c1(s: OnewayStats, mode: str) -> int:
    return s.a - 1 if mode == "reml" else s.a


def _dev(c1, v2, lam, sig, q, sse):
    return c1 * np.log(lam) + v2 * np.log(sig) + q / lam + sse / sig


def _sub(s: OnewayStats, idx: np.ndarray) -> OnewayStats:
    """The statistics of the replicates ``idx`` (a flat index into a 1-d replicate axis)."""
    return OnewayStats(a=s.a, n=s.n, grand_mean=s.grand_mean[idx], group_means=s.group_means[idx],
                       ssa=s.ssa[idx], sse=s.sse[idx], msa=s.msa[idx], mse=s.mse[idx])


def _profile_a(s: OnewayStats, v: np.ndarray, mode: str) -> tuple[np.ndarray, np.ndarray]:
    """(D_A(v), dD_A/dv) for every replicate; the derivative by the envelope theorem, n(c₁/λ* − Q/λ*²)."""
    c1, v2 = _c1(s, mode), s.a * (s.n - 1)
    q, sse = s.ssa, s.sse
    m = s.n * np.broadcast_to(np.asarray(v, dtype=float), np.shape(q))
    bad = ~np.isfinite(m)  # a NaN or infinite v gives NaN (eigvals refuses non-finite matrices)
    m = np.where(bad, 0.0, m)
    A3 = float(c1 + v2)
    b2 = ((c1 + 2 * v2) * m - q - sse) / A3
    b1 = (v2 * m ** 2 - 2 * sse * m) / A3
    b0 = -sse * m ** 2 / A3
    comp = np.zeros(np.shape(q) + (3, 3))
    comp[..., 0, 0], comp[..., 0, 1], comp[..., 0, 2] = -b2, -b1, -b0
    comp[..., 1, 0] = comp[..., 2, 1] = 1.0
    roots = np.linalg.eigvals(comp).real
    roots = np.where(roots > 0, roots, np.nan)
    qq, ee, mm = q[..., None], sse[..., None], m[..., None]
    with np.errstate(invalid="ignore", divide="ignore"):
        for _ in range(2):  # Newton polish of every candidate on the stationarity condition
            lam = roots + mm
            g = c1 / lam - qq / lam ** 2 + v2 / roots - ee / roots ** 2
            h = -c1 / lam ** 2 + 2 * qq / lam ** 3 - v2 / roots ** 2 + 2 * ee / roots ** 3
            new = roots - np.where(h > 0, g / h, 0.0)
            roots = np.where(new > 0, new, roots)
        d = _dev(c1, v2, roots + mm, roots, qq, ee)
        d = np.where(np.isnan(d), np.inf, d)
    k = np.argmin(d, axis=-1)[..., None]
    best = np.take_along_axis(d, k, axis=-1)[..., 0]
    lam = np.take_along_axis(roots, k, axis=-1)[..., 0] + m
    return np.where(bad, np.nan, best), np.where(bad, np.nan, s.n * (c1 / lam - q / lam ** 2))


def profile_sigma_a2(s: OnewayStats, v: np.ndarray, mode: str) -> np.ndarray:
    """D_A(v) = min over σ_e² of d(v, σ_e²), for every replicate (v broadcast to the replicate shape)."""
    return _profile_a(s, v, mode)[0]


def profile_sigma_e2(s: OnewayStats, sig: np.ndarray, mode: str) -> np.ndarray:
    """D_E(s) = min over λ ≥ s of d: λ* = max(Q/c₁, s)."""
    c1, v2 = _c1(s, mode), s.a * (s.n - 1)
    lam = np.maximum(s.ssa / c1, sig)
    return _dev(c1, v2, lam, sig, s.ssa, s.sse)


def profile_mu(s: OnewayStats, dist: np.ndarray) -> np.ndarray:
    """ML deviance profiled over (σ_A², σ_e²) at |μ − ȳ| = dist (mode ``"ml"``)."""
    a, v2, N = s.a, s.a * (s.n - 1), s.a * s.n
    q = s.ssa + N * dist ** 2
    lam, sig = q / a, s.sse / v2
    pooled = (q + s.sse) / N
    inside = lam >= sig
    lam, sig = np.where(inside, lam, pooled), np.where(inside, sig, pooled)
    return _dev(a, v2, lam, sig, q, s.sse)


def _bisect(g, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """x with g(x) = 0 between lo (g < 0) and hi (g > 0), elementwise (``g`` is cheap: closed forms)."""
    lo, hi = lo.astype(float).copy(), hi.astype(float).copy()
    for _ in range(_ITER):
        mid = 0.5 * (lo + hi)
        pos = g(mid) > 0
        hi = np.where(pos, mid, hi)
        lo = np.where(pos, lo, mid)
        if np.all(~np.isfinite(hi) | (np.abs(hi - lo) <= 1e-13 * np.abs(hi) + 1e-300)):
            break
    return 0.5 * (lo + hi)


def _newton(fg, lo: np.ndarray, hi: np.ndarray, active: np.ndarray) -> np.ndarray:
    """Root of f between lo (f < 0) and hi (f > 0) where ``active``, by Newton steps kept inside the bracket
    (bisection otherwise); ``fg(x, idx)`` returns (f, f') at x for the replicates idx.  NaN elsewhere."""
    out = np.full(lo.shape, np.nan)
    idx = np.flatnonzero(active & np.isfinite(lo) & np.isfinite(hi))
    a, b = lo[idx].astype(float), hi[idx].astype(float)
    x = 0.5 * (a + b)
    for _ in range(_ITER):
        if idx.size == 0:
            break
        f, d = fg(x, idx)
        pos = f > 0
        b = np.where(pos, x, b)
        a = np.where(pos, a, x)
        with np.errstate(divide="ignore", invalid="ignore"):
            step = x - f / d
        inside = np.isfinite(step) & ((step - a) * (step - b) <= 0)
        new = np.where(f == 0, x, np.where(inside, step, 0.5 * (a + b)))
        done = np.abs(new - x) <= 1e-12 * np.abs(new) + 1e-300
        out[idx[done]] = new[done]
        keep = ~done
        idx, a, b, x = idx[keep], a[keep], b[keep], new[keep]
    out[idx] = x
    return out


def _expand(g, start: np.ndarray, factor: float) -> np.ndarray:
    """Multiply ``start`` by ``factor`` until g > 0 (NaN where that fails in 2000 steps)."""
    x = start.astype(float).copy()
    todo = ~(g(x) > 0)
    for _ in range(2000):
        if not todo.any():
            return x
        x = np.where(todo, x * factor, x)
        todo = todo & ~(g(x) > 0)
    return np.where(todo, np.nan, x)


def oneway_profile_intervals(Y_or_stats, mode: str = "ml", level: float = 0.95) -> dict[str, Limits]:
    """Profile intervals of σ_A², σ_e² and (mode ``"ml"``) μ for every replicate (module docstring).

    Parameters
    ----------
    Y_or_stats
        Responses ``(..., a, n)`` or their :class:`OnewayStats`.
    mode
        ``"ml"`` (lme4's ``confint`` convention: the ML deviance around the ML estimates) or ``"reml"``.
    level
        Confidence level.

    Returns
    -------
    dict
        ``{"sigma_a2": Limits, "sigma_e2": Limits[, "mu": Limits]}``; the σ_A² lower limit is exactly 0
        when the boundary lies inside the interval.
    """
    from scipy import stats  # deferred: scipy.stats is a heavy import that summarise/report never need
    s = _as_stats(Y_or_stats)
    mode = str(mode).lower()
    if mode not in ("ml", "reml"):
        raise OptionError(f"The profile mode must be 'ml' or 'reml', not {mode!r}.")
    crit = float(stats.chi2.ppf(_check_level(level), 1))
    sa2, se2 = variance_estimates(s, "REML" if mode == "reml" else "ML")
    sa2, se2 = np.asarray(sa2, float), np.asarray(se2, float)
    c1, v2 = _c1(s, mode), s.a * (s.n - 1)
    dmin = _dev(c1, v2, se2 + s.n * sa2, se2, s.ssa, s.sse)

    def ga(v):
        return profile_sigma_a2(s, v, mode) - dmin - crit

    def fa(v, idx, sign):  # sign · (D_A(v) − D̂ − crit) and its derivative, on replicates idx
        d, dd = _profile_a(_sub(s, idx), v, mode)
        return sign * (d - dmin[idx] - crit), sign * dd

    def ge(x):
        return profile_sigma_e2(s, x, mode) - dmin - crit

    shape = np.shape(sa2)
    s, sa2, se2, dmin = _flat(s), sa2.ravel(), se2.ravel(), dmin.ravel()
    zero = np.zeros_like(sa2)
    open_at_0 = (sa2 > 0) & (ga(zero) > 0)
    lo_a = np.zeros_like(sa2)
    if open_at_0.any():  # −(D_A − D̂ − crit) < 0 at 0, > 0 at σ̂_A²
        lo_a = np.where(open_at_0, _newton(lambda v, i: fa(v, i, -1.0), zero, sa2, open_at_0), 0.0)
    scale = np.maximum(sa2, se2 / s.n)
    hi_start = _expand(ga, sa2 + scale, 2.0)
    hi_a = _newton(lambda v, i: fa(v, i, 1.0), sa2, hi_start, np.ones(sa2.shape, bool))
    lo_e = _bisect(lambda x: -ge(x), _expand(ge, se2 / 2.0, 0.5), se2)
    hi_e = _bisect(lambda x: -ge(x), _expand(ge, se2 * 2.0, 2.0), se2)
    out = {"sigma_a2": (lo_a, hi_a), "sigma_e2": (lo_e, hi_e)}
    if mode == "ml":
        N = s.a * s.n

        def gm(d):
            return profile_mu(s, d) - dmin - crit

        se_mu = np.sqrt((se2 + s.n * sa2) / N)
        d = _bisect(lambda x: -gm(x), _expand(gm, 2.0 * np.sqrt(crit) * se_mu, 2.0), np.zeros_like(se_mu))
        out["mu"] = (s.grand_mean - d, s.grand_mean + d)
    return {k: Limits(lo.reshape(shape), hi.reshape(shape)) for k, (lo, hi) in out.items()}


def _flat(s: OnewayStats) -> OnewayStats:
    """``s`` with its replicate axes flattened to one (0-d becomes length 1)."""
    R = int(np.prod(s.shape, dtype=int))
    return OnewayStats(a=s.a, n=s.n, grand_mean=np.reshape(s.grand_mean, R),
                       group_means=np.reshape(s.group_means, (R, s.a)), ssa=np.reshape(s.ssa, R),
                       sse=np.reshape(s.sse, R), msa=np.reshape(s.msa, R), mse=np.reshape(s.mse, R))


__all__ = ["oneway_profile_intervals", "profile_mu", "profile_sigma_a2", "profile_sigma_e2"]
