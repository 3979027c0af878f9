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
found by vectorised bisection after bracketing by doubling.  **Closed at 0**: the lower limit of σ_A² is
exactly 0 when σ̂_A² = 0 or D_A(0) − D̂ ≤ χ²_{1,level} (the boundary lies inside the interval), so the
interval covers σ_A² = 0 with probability 1 − P(LRT of σ_A² = 0 rejects at 1 − level) — an exact value
(:func:`compare_mm.oneway.intervals.exact_interval_coverage`).
"""

from __future__ import annotations

import numpy as np
from scipy import stats

from ..errors import OptionError
from .closed_forms import OnewayStats, _as_stats, _check_level, variance_estimates
from .intervals import Limits

_ITER = 200


def _c1(s: OnewayStats, mode: str) -> int:
    return s.a - 1 if mode == "reml" else s.a


def _dev(c1, v2, lam, sig, q, sse):
    return c1 * np.log(lam) + v2 * np.log(sig) + q / lam + sse / sig


def profile_sigma_a2(s: OnewayStats, v: np.ndarray, mode: str) -> np.ndarray:
    """D_A(v) = min over σ_e² of d(v, σ_e²), for every replicate (v broadcast to the replicate shape)."""
    c1, v2 = _c1(s, mode), s.a * (s.n - 1)
    q, sse = s.ssa, s.sse
    m = s.n * np.broadcast_to(np.asarray(v, dtype=float), np.shape(q))
    A3 = float(c1 + v2)
    b2 = ((c1 + 2 * v2) * m - q - sse) / A3
    b1 = (v2 * m ** 2 - 2 * sse * m) / A3
    b0 = -sse * m ** 2 / A3
    shape = np.shape(q)
    comp = np.zeros(shape + (3, 3))
    comp[..., 0, 0], comp[..., 0, 1], comp[..., 0, 2] = -b2, -b1, -b0
    comp[..., 1, 0] = comp[..., 2, 1] = 1.0
    roots = np.linalg.eigvals(comp).real
    roots = np.where(roots > 0, roots, np.nan)
    # Newton polish of every candidate on the stationarity condition (cheap, keeps D_A smooth for bisection)
    with np.errstate(invalid="ignore", divide="ignore"):
        for _ in range(2):
            lam = roots + m[..., None]
            g = c1 / lam - q[..., None] / lam ** 2 + v2 / roots - sse[..., None] / roots ** 2
            h = -c1 / lam ** 2 + 2 * q[..., None] / lam ** 3 - v2 / roots ** 2 + 2 * sse[..., None] / roots ** 3
            new = roots - np.where(h > 0, g / h, 0.0)
            roots = np.where(new > 0, new, roots)
    with np.errstate(invalid="ignore"):
        d = _dev(c1, v2, roots + m[..., None], roots, q[..., None], sse[..., None])
    return np.nanmin(d, axis=-1)


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
    """x with g(x) = 0 between lo (g < 0) and hi (g > 0), elementwise; NaN where lo or hi is NaN."""
    lo, hi = lo.astype(float).copy(), hi.astype(float).copy()
    for _ in range(_ITER):
        mid = 0.5 * (lo + hi)
        pos = g(mid) > 0
        hi = np.where(pos, mid, hi)
        lo = np.where(pos, lo, mid)
        if np.all(~np.isfinite(hi) | (np.abs(hi - lo) <= 1e-13 * np.abs(hi) + 1e-300)):
            break
    return 0.5 * (lo + hi)


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

    def ge(x):
        return profile_sigma_e2(s, x, mode) - dmin - crit

    zero = np.zeros_like(sa2)
    open_at_0 = (sa2 > 0) & (ga(zero) > 0)
    lo_a = np.zeros_like(sa2)
    if open_at_0.any():
        root = _bisect(lambda v: -ga(v), zero, sa2)
        lo_a = np.where(open_at_0, root, 0.0)
    scale = np.maximum(sa2, se2 / s.n)
    hi_start = _expand(ga, sa2 + scale, 2.0)
    hi_a = _bisect(lambda v: -ga(v), hi_start, sa2)  # g < 0 at sa2, > 0 at hi_start
    lo_e = _bisect(lambda x: -ge(x), _expand(ge, se2 / 2.0, 0.5), se2)
    hi_e = _bisect(lambda x: -ge(x), _expand(ge, se2 * 2.0, 2.0), se2)
    out = {"sigma_a2": Limits(lo_a, hi_a), "sigma_e2": Limits(lo_e, hi_e)}
    if mode == "ml":
        N = s.a * s.n

        def gm(d):
            return profile_mu(s, d) - dmin - crit

        se_mu = np.sqrt((se2 + s.n * sa2) / N)
        d = _bisect(lambda x: -gm(x), _expand(gm, 2.0 * np.sqrt(crit) * se_mu, 2.0), np.zeros_like(se_mu))
        out["mu"] = Limits(s.grand_mean - d, s.grand_mean + d)
    return out


__all__ = ["oneway_profile_intervals", "profile_mu", "profile_sigma_a2", "profile_sigma_e2"]
