"""Profile-likelihood intervals of many responses of one scalar random-intercept design, vectorised.

The intervals of :func:`compare_mm.inference.profile.profile_intervals` (Bates et al. 2015, sec. 5.1:
{ v : d_k(v) − d̂ ≤ χ²_{1,level} }, d_k the deviance profiled over the other parameters) for a design with
one random-intercept term (θ scalar; unbalanced one-way, covariates), for R responses at once, from the
per-replicate statistics of the batched fitter (:mod:`compare_mm.fitter.batch`).

An interval of a function ψ of the parameters is the projection of the likelihood region
𝓡 = {(θ, σ, β) : d ≤ c}, c = d̂ + χ²_{1,level}, onto ψ (a connected profile: d_k(v) ≤ c ⟺ some point of 𝓡
has ψ = v).  With a(θ) = log|L_θ|² (+ log|R_X|² for REML), r²(θ) the penalised residual sum of squares,
ν = n (ML) or n − p (REML), d(θ, σ) = a + ν log(2πσ²) + r²/σ² (:meth:`.extended.Surface.deviance_sigma`),
so at fixed θ the σ in 𝓡 form the interval [σ₋(θ), σ₊(θ)] with x = r²/(νσ²) solving x − log x = T,

    T(θ) = (c − a − ν log 2π)/ν − log(r²/ν),   x = −W_k(−e^{−T})   (W₀: σ₊, W₋₁: σ₋; empty when T < 1),

W Lambert's function.  The limits are then one-dimensional extrema over the θ of 𝓡 (the interval
[θ₋, θ₊] where the σ-profiled deviance d̃(θ) ≤ c):

* σ_A = θσ: [min θσ₋(θ), max θσ₊(θ)], the lower limit exactly 0 when d̃(0) ≤ c (closed at 0, as the
  per-replicate routine's ζ(0) > −z);
* σ: [min σ₋(θ), max σ₊(θ)];
* β_j (mode ``"ml"``): the ML deviance with σ and β₋ⱼ profiled out is a + n log(2π(r² + (b − β̂_j(θ))²/V_jj)/n) + n,
  V = (X'V_θ⁻¹X)⁻¹ per unit σ², so b ∈ β̂_j(θ) ± sqrt(V_jj (n e^{(c − a − n)/n}/(2π) − r²)), and the limits
  are min / max of those ends over θ.

Each extremum is taken over a grid of :data:`GRID` points on [θ₋, θ₊] (θ± by bisection on d̃ − c) and
refined by golden-section search in the bracket around the best grid point; the extrema of a smooth
region's boundary lie inside (θ₋, θ₊) or at θ = 0, where the grid and the search reach them.  Replicates
the batched θ̂ leaves to the per-replicate path (:func:`.batch_optimize.scalar_batch`) get None.
"""

from __future__ import annotations

import numpy as np
from scipy import special

from ..errors import OptionError
from ..fitter.batch import BatchProblem, evaluate_batch
from ..fitter.batch_fit import BatchFitter
from ..fitter.batch_optimize import scalar_batch
from ..fitter.profiled import LOG_2PI
from ..results.schema import Interval
from .batch_profile_slope import profile_many_slope, slope_design
from .profile_params import var_params

#: grid points on [θ₋, θ₊] before the golden-section refinement
GRID = 33
#: bisection steps of θ± and golden-section steps of each extremum
BISECT, GOLDEN = 48, 40
_PHI = 0.5 * (np.sqrt(5.0) - 1.0)


def profiled_in_batch(fitter: BatchFitter) -> bool:
    """True for a design :func:`profile_many` handles: one scalar random intercept (here) or two random
    effects of one grouping factor (:mod:`.batch_profile_slope`)."""
    return scalar_intercept(fitter) or slope_design(fitter)


def scalar_intercept(fitter: BatchFitter) -> bool:
    """True for a design the batched profile handles: one scalar random-intercept θ."""
    layout = fitter.layout
    return layout.n_theta == 1 and bool(layout.diagonal[0]) and fitter.template.Q == 1


class _Region:
    """The likelihood region of R replicates at threshold c (module docstring), evaluated at θ points."""

    def __init__(self, bp: BatchProblem, reml: bool, c: np.ndarray):
        self.bp, self.reml, self.c = bp, reml, c
        self.nu = float(bp.n - bp.p) if reml else float(bp.n)

    def dtilde(self, rep: np.ndarray, theta: np.ndarray) -> np.ndarray:
        return evaluate_batch(self.bp, rep, theta[:, None], self.reml, False).deviance

    def ends(self, rep: np.ndarray, theta: np.ndarray, which: np.ndarray) -> np.ndarray:
        """Per point: the value whose maximum over θ is limit ``which`` (0, 1: −σ_A lower, σ_A upper;
        2, 3: σ; 4 + 2j, 5 + 2j: β_j), −inf where the region is empty at θ."""
        bp, nu = self.bp, self.nu
        ev = evaluate_batch(bp, rep, theta[:, None], self.reml, False)
        r2 = ev.r2
        c = self.c[rep]
        with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
            a = ev.deviance - nu * (1.0 + LOG_2PI + np.log(r2 / nu))
            T = (c - a - nu * LOG_2PI) / nu - np.log(r2 / nu)
            feas = np.isfinite(ev.deviance) & (T >= 1.0)
            e = -np.exp(-np.where(feas, T, 1.0))
            x = np.full(rep.size, np.nan)
            for branch, rows in ((0, (which == 1) | (which == 3)), (-1, (which == 0) | (which == 2))):
                x[rows] = -special.lambertw(e[rows], branch).real   # W₀: x ≤ 1, σ₊; W₋₁: x ≥ 1, σ₋
            sd = np.sqrt(r2 / (nu * x))
            out = np.select([which == 0, which == 1, which == 2, which == 3], [-theta * sd, theta * sd, -sd, sd],
                            np.nan)
            if bp.p and np.any(which >= 4):
                j = np.maximum(which - 4, 0) // 2
                upper = (which - 4) % 2 == 1
                V = np.linalg.inv(ev.XVX)
                vjj = V[np.arange(V.shape[0]), j, j]
                n = float(bp.n)
                qmax = n * np.exp((c - a - n) / n) / (2.0 * np.pi)
                fe = qmax >= r2
                h = np.sqrt(np.where(fe, vjj * (qmax - r2), 0.0))
                b = (ev.beta + bp.offset[rep])[np.arange(rep.size), j]
                fix = np.where(upper, b + h, -(b - h))
                out = np.where(which >= 4, np.where(fe, fix, -np.inf), out)
                feas = np.where(which >= 4, np.isfinite(ev.deviance) & fe, feas)
        return np.where(feas & np.isfinite(out), out, -np.inf)


def _bisect(f, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """The boundary between f ≤ 0 at ``lo`` and f > 0 at ``hi`` (either order), elementwise: the last
    point known to satisfy f ≤ 0."""
    a, b = lo.copy(), hi.copy()
    for _ in range(BISECT):
        m = 0.5 * (a + b)
        inside = f(m) <= 0.0
        a, b = np.where(inside, m, a), np.where(inside, b, m)
    return a


def _theta_range(reg: _Region, rep: np.ndarray, that: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(θ₋, θ₊, d̃(0) ≤ c) per replicate: the θ of the region, bracketing θ₊ by quadrupling."""
    c = reg.c[rep]
    R = rep.size
    at0 = reg.dtilde(rep, np.zeros(R)) <= c
    hi = np.maximum(2.0 * that, 1.0)
    for _ in range(40):
        inside = reg.dtilde(rep, hi) <= c
        if not inside.any():
            break
        hi = np.where(inside, 4.0 * hi, hi)
    low = np.flatnonzero(~at0)                           # θ₋ > 0: bisected with θ₊, in one evaluation
    both, cc = np.r_[rep, rep[low]], np.r_[c, c[low]]
    ends = _bisect(lambda t: reg.dtilde(both, t) - cc, np.r_[that, that[low]], np.r_[hi, np.zeros(low.size)])
    lo = np.zeros(R)
    lo[low] = ends[R:]
    return lo, ends[:R], at0


def _maximise(reg: _Region, rep: np.ndarray, which: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """max over θ ∈ [lo, hi] of ``reg.ends(·, which)`` per row: grid, then golden section."""
    M = rep.size
    frac = np.linspace(0.0, 1.0, GRID)
    grid = lo[:, None] + (hi - lo)[:, None] * frac[None, :]
    vals = reg.ends(np.repeat(rep, GRID), grid.ravel(), np.repeat(which, GRID)).reshape(M, GRID)
    i = np.argmax(vals, axis=1)
    best = vals[np.arange(M), i]
    a = grid[np.arange(M), np.maximum(i - 1, 0)]
    b = grid[np.arange(M), np.minimum(i + 1, GRID - 1)]
    x1, x2 = b - _PHI * (b - a), a + _PHI * (b - a)
    f = reg.ends(np.r_[rep, rep], np.r_[x1, x2], np.r_[which, which])
    f1, f2 = f[:M], f[M:]
    for _ in range(GOLDEN):
        left = f1 >= f2                                  # the maximum lies in [a, x2]
        b = np.where(left, x2, b)
        a = np.where(left, a, x1)
        nx = np.where(left, b - _PHI * (b - a), a + _PHI * (b - a))
        fn = reg.ends(rep, nx, which)
        x1, x2, f1, f2 = (np.where(left, nx, x2), np.where(left, x1, nx),
                          np.where(left, fn, f2), np.where(left, f1, fn))
    return np.maximum(best, np.maximum(f1, f2))


def profile_many(fitter: BatchFitter, Y: np.ndarray, *, mode: str = "ml",
                 level: float = 0.95) -> list[tuple[Interval, ...] | None]:
    """Per response of ``Y`` (R, n): the intervals :func:`.profile.profile_intervals` gives for the design
    with that response (same names, order and ``kind="profile"``), or None for a replicate left to it.

    Parameters
    ----------
    fitter
        The batched fitter of a scalar random-intercept design (:func:`scalar_intercept`) or of two random
        effects of one grouping factor (:func:`.batch_profile_slope.slope_design`, profiled there).
    mode
        ``"ml"`` (lme4's convention: ML profile, fixed effects included) or ``"reml"`` (variance parameters).
    level
        Confidence level.
    """
    from scipy import stats  # deferred: scipy.stats is a heavy import that summarise/report never need
    mode = str(mode).lower()
    if mode not in ("ml", "reml"):
        raise OptionError(f"The profile mode must be 'ml' or 'reml', not {mode!r}.")
    if slope_design(fitter):
        return profile_many_slope(fitter, Y, mode=mode, level=level)
    if not scalar_intercept(fitter):
        raise ValueError("The batched profile needs one scalar random-intercept term or two random effects "
                         "of one grouping factor.")
    reml = mode == "reml"
    bp = fitter.problem(Y)
    that, dmin, ok = scalar_batch(bp, reml)
    out: list[tuple[Interval, ...] | None] = [None] * bp.R
    idx = np.flatnonzero(ok)
    if idx.size == 0:
        return out
    c = np.full(bp.R, np.inf)
    c[idx] = dmin[idx] + stats.chi2.ppf(level, 1)
    reg = _Region(bp, reml, c)
    lo, hi, at0 = _theta_range(reg, idx, that[idx])
    n_lim = 4 + (0 if reml else 2 * bp.p)
    rep = np.repeat(idx, n_lim)
    which = np.tile(np.arange(n_lim), idx.size)
    val = _maximise(reg, rep, which, np.repeat(lo, n_lim), np.repeat(hi, n_lim)).reshape(idx.size, n_lim)
    val[:, 0::2] *= -1.0                                 # lower limits were maximised as −value
    val[at0, 0] = 0.0
    names = [p.name for p in var_params(fitter.design)]
    names += [] if reml else list(fitter.design.fixed_names)
    for k, m in enumerate(idx):
        v = val[k]
        if not np.all(np.isfinite(v)):
            continue
        out[m] = tuple(Interval(nm, "profile", float(v[2 * i]), float(v[2 * i + 1]), level)
                       for i, nm in enumerate(names))
    return out


__all__ = ["profile_many", "profiled_in_batch", "scalar_intercept"]
