"""Posterior summaries of a quadrature fit (:mod:`.quadrature`) in the NUTS path's result schema.

With normalised grid weights w_j at the points ψ_j (P points):

* ψ's marginals: the weights summed over the other axes give the marginal density at an axis's nodes
  (the correlation's with the end terms of the SD axes' ½ weights, :func:`rho_masses`);
  a cubic spline of its log, evaluated on 2,049 points and integrated by the trapezoid rule, gives the
  CDF, the quantiles (linear interpolation of the fine CDF), the mode (maximum of the density in the
  natural scale: s = c sinh η, s², ρ = tanh ζ) and the HDI (the shortest interval of probability level).
  On an axis where f is even in η, or even up to the exponential prior's e^(−a sinh η)
  (:mod:`.quadrature_weights`), the spline is fitted to the (even part at the) mirrored nodes.  Means and
  SDs are the grid sums Σ w_j g(ψ_j) over the evaluated nodes (no interpolation).
* β's marginal is the Gaussian mixture Σ w_j N(m_j, v_j) of equation (2) of :mod:`.quadrature_model`;
  its quantiles, mode and HDI are roots of explicit equations in its CDF and density
  (:mod:`.quadrature_mixture`); a mixture that is not unimodal is summarised on a fine grid instead (CDF
  and density exact on 257 points, the cubic Hermite spline on 4,097 points between them).  The moments m_j, v_j
  come from the grid evaluation; the smallest weights totalling ≤ 1e-10 are left out (:func:`support`).
* u: mean Σ w_j m_j and SD from Σ w_j (v_j + m_j²) − mean² (law of total variance).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import interpolate, special
from scipy.integrate import cumulative_trapezoid

from ...model.design import Design
from ...results.schema import FitResult, PosteriorSummary, RanefRow, VarCorrRow
from .quadrature import Grid, axis_terms, natural_at
from .quadrature_mixture import mixture_quantiles, mixture_summary
from .quadrature_model import QuadProblem, conditional
from .quadrature_ranef import group_moments
from .tails import unavailable_moments
from .quadrature_weights import EM_ALPHA, end_factors
from .summary import posterior_rows

PRUNE = 1e-14
#: the smallest weights whose total is ≤ TAIL are left out of the β mixtures and the group effects
TAIL = 1e-10


def support(w: np.ndarray, tail: float = TAIL) -> np.ndarray:
    """Indices of the weights that matter: all but the smallest ones whose sum is ≤ ``tail`` (and > PRUNE ×
    the largest).  Dropping mass ε changes a CDF by ≤ ε, so quantiles move by ≲ ε / density."""
    keep = w > PRUNE * w.max()
    small = np.flatnonzero(keep & (w <= tail))   # a weight > tail is never among those dropped: sort the rest
    order = np.argsort(w[small])
    drop = int(np.searchsorted(np.cumsum(w[small][order]), tail, side="right"))
    keep[small[order[:drop]]] = False
    return np.flatnonzero(keep)


def vertex(x0, x1, x2, y0, y1, y2):
    """The abscissa of the parabola's vertex through (x0, y0), (x1, y1), (x2, y2), x0 < x1 < x2, and where
    the parabola is concave (``ok``): x1 − ½[(x1 − x0)²(y1 − y2) − (x2 − x1)²(y1 − y0)] /
    [(x1 − x0)(y1 − y2) + (x2 − x1)(y1 − y0)] (three-point Lagrange interpolation; on equal spacing the
    familiar x1 + ½ h (y0 − y2)/(y0 − 2y1 + y2)).  With y1 the largest it lies in [x0, x2].  The
    equal-spacing formula, used before on every marginal, put a variance's mode at −8.8e-7 when the fine
    grid of σ_A² (the squares of an η grid that starts at 0, spacings 1 : 3 : 5 …) has its maximum at
    the second node."""
    with np.errstate(all="ignore"):      # inf values (a singular end) give NaN, and ok False
        d0, d2 = x1 - x0, x2 - x1
        a, b = y1 - y2, y1 - y0
        den = d0 * a + d2 * b
        out = x1 - 0.5 * (d0 * d0 * a - d2 * d2 * b) / den
    return out, den > 0


def density_mode(x: np.ndarray, pdf: np.ndarray) -> np.ndarray:
    """The mode of each row of a density on a fine grid (x, pdf: (R, F)): the largest value, refined by the
    parabola through it and its neighbours (:func:`vertex`); non-finite values count as +inf.

    A row whose density is +inf at x = 0 — a variance whose SD has positive density at 0, where the
    density of v = s² is f_s(√v)/(2√v) — has its supremum at 0 whatever the rest looks like; its mode is
    the highest interior local maximum, or 0 where the density falls from 0 on.  (The fine grid's value at
    0, f_s(0)/(2 x₁), used before, decided between the two by the grid's resolution.)"""
    R, F = pdf.shape
    p = np.where(np.isfinite(pdf), pdf, np.inf)
    r = np.arange(R)
    j = np.argmax(p, axis=1)
    singular = np.isinf(p[:, 0]) & (x[:, 0] == 0.0)
    if singular.any() and F > 2:
        inner = (p[:, 1:-1] > p[:, :-2]) & (p[:, 1:-1] >= p[:, 2:])
        jl = np.argmax(np.where(inner, p[:, 1:-1], -np.inf), axis=1) + 1
        j = np.where(singular & inner.any(1), jl, j)
    mode = x[r, j]
    jm, jp = np.clip(j - 1, 0, F - 1), np.clip(j + 1, 0, F - 1)
    y0, y1, y2 = p[r, jm], p[r, j], p[r, jp]
    ok = (j > 0) & (j < F - 1) & np.isfinite(y0) & np.isfinite(y1) & np.isfinite(y2)
    top, concave = vertex(x[r, jm], x[r, j], x[r, jp], y0, y1, y2)
    return np.where(ok & concave, top, mode)


@dataclass(frozen=True)
class Marginal:
    """A 1-D posterior on a fine grid: increasing x, density, CDF (0 → 1), and the exact mean and SD."""

    x: np.ndarray
    pdf: np.ndarray
    cdf: np.ndarray
    mean: float
    sd: float

    def quantile(self, a) -> np.ndarray:
        """Quantiles by linear interpolation of the fine CDF."""
        return np.interp(a, self.cdf, self.x)

    def summary(self, name: str, level: float) -> PosteriorSummary:
        """PosteriorSummary with mean, median, mode, SD, ETI and HDI; R-hat and ESS are NaN."""
        a = (1 - level) / 2
        lo, med, hi = self.quantile([a, 0.5, 1 - a])
        starts = np.linspace(0.0, 1.0 - level, 4001)
        los, his = self.quantile(starts), self.quantile(starts + level)
        i = int(np.argmin(his - los))
        mode = float(density_mode(self.x[None], self.pdf[None])[0])
        nan = float("nan")
        return PosteriorSummary(parameter=name, mean=self.mean, median=float(med), mode=mode, sd=self.sd,
                                eti_lower=float(lo), eti_upper=float(hi), hdi_lower=float(los[i]),
                                hdi_upper=float(his[i]), rhat=nan, ess_bulk=nan, ess_tail=nan, level=level)


def axis_mass(grid: Grid, w: np.ndarray, *axes: int) -> np.ndarray:
    """The weights w (C order) summed over every axis of ``grid`` but ``axes`` (kept in increasing order)."""
    shape = grid.logf.shape
    return w.reshape(shape).sum(axis=tuple(a for a in range(len(shape)) if a not in axes))


def _axis_marginal(grid: Grid, w: np.ndarray, k: int, tilt: float = float("nan"),
                   mass: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(fine z, density, CDF) of axis k: node masses (``mass``, default :func:`axis_mass`) / node weights →
    spline of the log density.

    On an axis with a finite ``tilt`` a (:meth:`.quadrature.Coordinates.tilt_of`) whose nodes start at
    η = 0 the log marginal is an even function minus a·sinh η: the spline is fitted to the even part at the
    mirrored nodes (−η, η), so it has the even part's zero slope at 0 instead of a not-a-knot end
    condition there (a = 0: an even density)."""
    mass = axis_mass(grid, w, k) if mass is None else mass
    nodes = grid.nodes[k]
    with np.errstate(divide="ignore"):
        logd = np.log(mass / grid.weights[k])
    ok = np.isfinite(logd) & (logd > logd.max() - 30)   # the run of nodes around the maximum (pruned
    top = int(np.argmax(logd))                           # nodes of the refined grid are −inf)
    i0 = top - int(np.argmin(ok[top::-1])) + 1 if not ok[:top + 1].all() else 0
    i1 = top + int(np.argmin(ok[top:])) if not ok[top:].all() else ok.size
    zn, ln = nodes[i0:i1], logd[i0:i1]
    zf = np.linspace(zn[0], zn[-1], 2049)
    if np.isfinite(tilt) and zn[0] == 0.0 and zn.size >= 2:
        le = ln + tilt * np.sinh(zn)
        even = interpolate.CubicSpline(np.concatenate([-zn[:0:-1], zn]), np.concatenate([le[:0:-1], le]))
        spl = lambda t: even(t) - tilt * np.sinh(t)            # noqa: E731
    else:
        spl = interpolate.CubicSpline(zn, ln) if zn.size >= 4 else (lambda t: np.interp(t, zn, ln))
    g = np.exp(spl(zf) - ln.max())
    cdf = cumulative_trapezoid(g, zf, initial=0.0)
    return zf, g / cdf[-1], cdf / cdf[-1]


def _odd_moment(grid: Grid, w: np.ndarray, k: int, c: float, tilt: float = 0.0) -> float:
    """E[s] = E[c sinh η_k] on an even (``tilt`` 0) or tilted axis whose nodes start at η = 0.

    The grid's ½ end weight at η = 0 is spectrally accurate for integrands even in η (the density, s²,
    s⁴) but only O(h²) for q = s·m (m the axis marginal), which is odd: its half-line integral gets the
    Euler–Maclaurin end terms of :func:`.quadrature_weights.euler_maclaurin_alpha` from the odd differences
    q(jh) − q(−jh) = 2q(jh), i.e. node weights h(1 + 2α_j) at j = 1…4 (error O(h¹⁰); Gregory's
    weights, used before, are O(h⁴) and left the mean of σ_A 2.5e-3 posterior SDs off on a one-way fit
    whose quantiles had converged at h = ½), normalised by the even rule's total.  On a tilted axis
    (exponential prior, :func:`.quadrature_weights.end_factors`) the odd differences are q(jh)(1 + r_j)."""
    mass = axis_mass(grid, w, k)
    nodes, wk = grid.nodes[k], grid.weights[k]
    if nodes[0] != 0.0:
        return float(mass @ (c * np.sinh(nodes)) / mass.sum())
    dens = np.where(wk > 0, mass / wk, 0.0)
    gw = (nodes[1] - nodes[0]) * end_factors(nodes.size, nodes[1] - nodes[0], tilt, odd=True)
    return float((gw * dens) @ (c * np.sinh(nodes)) / mass.sum())


def rho_masses(grid: Grid, w: np.ndarray, co) -> np.ndarray:
    """The correlation axis' node masses, with the end corrections of the even SD axes.

    With the ½ end weight at η = 0 on an even SD axis of a ``(x | g)`` term (:mod:`.quadrature`,
    "Weights"), a sum over the SD axes at *fixed* ζ is the trapezoid rule of a half-line integral whose
    integrand is not even in η (the symmetry flips ζ too), which is O(h²): the ρ marginal is the one
    quantity that the folded rule does not integrate spectrally.  Its Euler–Maclaurin end terms are
    supplied from the odd differences g(jh) − g(−jh), j ≤ 4 (:func:`.quadrature_weights.euler_maclaurin_alpha`), whose
    values at −jh are on the grid by the symmetry: f(−η_k, ζ) = f(η_k, −ζ) (the ζ lattice is symmetric
    about 0).  Per even axis the corrected rule is ω_k + c_k(I − R) (ω the trapezoid weights, c_k = Δz_k α_j
    at the j-th node, R: ζ → −ζ); their product over the even axes, with (I − R)^n = 2^(n−1)(I − R), is
    Σ ω + K (I − R) with K = Σ_{A ≠ ∅} 2^(|A|−1) Π_A c Π_rest ω.  The error is O(h¹⁰) instead of O(h²)."""
    kr = co.rho_axis
    base = axis_mass(grid, w, kr)
    shape = grid.logf.shape
    ev = [k for k in range(len(shape)) if k not in (kr, co.sigma_axis) and co.is_even(k)
          and grid.nodes[k][0] == 0.0 and grid.nodes[k].size > EM_ALPHA.size]
    if not ev or not co.rho_symmetric:
        return base
    z = grid.nodes[kr]
    idx = np.rint(z / (z[1] - z[0])).astype(np.int64)
    mir = np.searchsorted(idx, -idx)
    have = (mir < idx.size) & (idx[np.minimum(mir, idx.size - 1)] == -idx)

    def along(k, v):
        out = [1] * len(shape)
        out[k] = v.size
        return v.reshape(out)
    P = w.reshape(shape)
    omega, corr = {}, {}
    for k in ev:
        om = grid.weights[k]
        c = np.zeros(om.size)
        c[1:1 + EM_ALPHA.size] = (grid.nodes[k][1] - grid.nodes[k][0]) * EM_ALPHA
        omega[k], corr[k] = along(k, om), along(k, c)
        P = P / omega[k]
    RP = np.take(P, np.where(have, mir, 0), axis=kr) * along(kr, have.astype(float))
    D = P - RP
    K = 0.0
    for n in range(1, 2 ** len(ev)):
        A = [k for i, k in enumerate(ev) if n >> i & 1]
        term = 2.0 ** (len(A) - 1)
        for k in ev:
            term = term * (corr[k] if k in A else omega[k])
        K = K + term
    # in the far tails a corrected mass can come out a rounding-sized negative number (seen: −1e-9 × the
    # largest): zero there
    return np.maximum(base + (K * D).sum(axis=tuple(a for a in range(len(shape)) if a != kr)), 0.0)


def psi_marginals(grid: Grid, w: np.ndarray, co, names: list[str]) -> dict[str, Marginal]:
    """Marginals of every SD (and its variance), the correlation and σ (σ²), by canonical name."""
    out: dict[str, Marginal] = {}
    items = [(names[i], k) for i, k in enumerate(co.sd_axes)] + [("sigma", co.sigma_axis)]
    for name, k in items:
        tilt = co.tilt_of(k)
        zf, g, cdf = _axis_marginal(grid, w, k, tilt)
        x = co.value(k, zf)
        pdf = g / np.exp(co.log_dvalue(k, zf))
        # moments as sums over axis k's nodes of its masses (the grid sums Σ w_j g(ψ_j), regrouped)
        wn, val = axis_mass(grid, w, k), co.value(k, grid.nodes[k])
        m1, m2 = float(wn @ val), float(wn @ val**2)
        if np.isfinite(tilt):
            m1 = _odd_moment(grid, w, k, co.c[k], tilt)
        out[name] = Marginal(x, pdf, cdf, m1, float(np.sqrt(max(m2 - m1 * m1, 0.0))))
        with np.errstate(divide="ignore", invalid="ignore"):
            pv = np.where(x > 0, pdf / (2 * x), 0.0)
        if x[0] == 0.0:  # the density of s² is infinite at 0 when s's is not (density_mode)
            pv[0] = np.inf if pdf[0] > 0 else 0.0
        m4 = float(wn @ val**4)
        vname = "sigma2" if name == "sigma" else name.replace("sd_", "var_", 1)
        out[vname] = Marginal(x * x, pv, cdf, m2, float(np.sqrt(max(m4 - m2 * m2, 0.0))))
    if co.rho_axis is not None:
        wn = rho_masses(grid, w, co)
        zf, g, cdf = _axis_marginal(grid, w, co.rho_axis, mass=wn)
        x = np.tanh(zf)
        rho = np.tanh(grid.nodes[co.rho_axis])
        m1, m2 = float(wn @ rho), float(wn @ rho**2)
        out[names[-1]] = Marginal(x, g / (1 - x * x), cdf, m1, float(np.sqrt(max(m2 - m1 * m1, 0.0))))
    return out


def merge_components(w: np.ndarray, m: np.ndarray, v: np.ndarray, dm: float = 0.05, dlv: float = 0.05
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Merge mixture components sharing a cell of a (mean × log variance) histogram into one Gaussian with
    the cell's weight, mean and variance (moment matching).  Cells are dm = 0.05 of the smallest component
    SD wide in the mean and dlv = 0.05 in log variance.  The first two moments match, so the merged CDF
    differs through the cell's excess kurtosis only: ≤ dm⁴/120 from the means and ≤ 3 dlv²/12 from the
    variances, i.e. a CDF error ≲ 1e-5 and a quantile error ≲ 1e-4 posterior SDs (tolerance: 1e-3).
    Measured on an 18 × 10 (x | g) data set against an unmerged h = ½ grid: merging moved β's quantiles by
    ≤ 3e-5 SDs at every h; the β quantiles' error at h = 1 (up to 2.5e-4 SDs, the intercept's) is the ψ
    quadrature's, the same with and without merging and of the order of the SDs' own (3.5e-4)."""
    s_min = float(np.sqrt(v.min()))
    lv = np.log(v)
    nm = int((m.max() - m.min()) / (dm * s_min)) + 1
    nv = int((lv.max() - lv.min()) / dlv) + 1
    if nm * nv >= w.size or nm * nv > 4_000_000:
        return w, m, v
    cell = ((m - m.min()) / (dm * s_min)).astype(np.int64) * nv + ((lv - lv.min()) / dlv).astype(np.int64)
    # the cells are < nm·nv < w.size: dense bin sums (the same sums, in the same order, as over np.unique's
    # inverse, without its sort); the occupied cells in increasing order
    size = nm * nv
    used = np.bincount(cell, minlength=size) > 0
    Wd = np.bincount(cell, w, minlength=size)
    with np.errstate(invalid="ignore", divide="ignore"):
        Md = np.bincount(cell, w * m, minlength=size) / Wd
    V = np.bincount(cell, w * (v + (m - Md[cell]) ** 2), minlength=size)[used] / Wd[used]
    return Wd[used], Md[used], V


def mixture_marginal(w: np.ndarray, m: np.ndarray, v: np.ndarray) -> MixtureMarginal:
    """The Gaussian mixture Σ w_j N(m_j, v_j) with merged components (:func:`merge_components`)."""
    mean = float(w @ m)
    sd = float(np.sqrt(max(w @ (v + m * m) - mean * mean, 0.0)))
    w, m, v = merge_components(w, m, v)
    return MixtureMarginal(w, m, v, mean, sd)


def _fine_mixture(w: np.ndarray, m: np.ndarray, v: np.ndarray, mean: float, sd: float) -> Marginal:
    """The merged mixture on a fine grid: exact CDF and density at 257 points mean ± 9 SD, cubic Hermite
    (the CDF with its exact derivative) on 4,097 points between them."""
    s = np.sqrt(v)
    x = np.linspace(mean - 9 * sd, mean + 9 * sd, 257)
    t = (x[None, :] - m[:, None]) / s[:, None]
    cdf = w @ special.ndtr(t)
    pdf = w @ (np.exp(-0.5 * t * t) / (np.sqrt(2 * np.pi) * s[:, None]))
    her = interpolate.CubicHermiteSpline(x, cdf, pdf)
    xf = np.linspace(x[0], x[-1], 4097)
    cf = np.maximum.accumulate(np.clip(her(xf), 0.0, 1.0))
    return Marginal(xf, her(xf, 1), cf, mean, sd)


@dataclass(frozen=True, eq=False)
class MixtureMarginal:
    """β's marginal Σ w_j N(m_j, v_j) (merged components), lazily: :meth:`quantile` is exact (Newton on
    the mixture CDF, :func:`mixture_quantiles`), and the fine grid of :func:`mixture_marginal` is built
    only when :meth:`summary` is called (on the final grid), so refinement steps cost a few CDF sweeps."""

    w: np.ndarray
    m: np.ndarray
    v: np.ndarray
    mean: float
    sd: float

    def quantile(self, a) -> np.ndarray:
        """Exact quantiles of the merged mixture."""
        a = np.atleast_1d(np.asarray(a, float))
        return mixture_quantiles(np.zeros(self.w.size, np.int64), self.w, self.m, self.v, np.array([self.mean]),
                                 np.array([self.sd]), a)[0]

    def summary(self, name: str, level: float) -> PosteriorSummary:
        """Exact median, ETI, HDI and mode (:func:`.quadrature_mixture.mixture_summary`); a mixture failing
        its unimodality check is summarised on the fine grid (:meth:`Marginal.summary`)."""
        row = np.zeros(self.w.size, np.int64)
        arrs, bad = mixture_summary(row, self.w, self.m, self.v, np.array([self.mean]), np.array([self.sd]), level)
        if bad[0]:
            return _fine_mixture(self.w, self.m, self.v, self.mean, self.sd).summary(name, level)
        nan = float("nan")
        return PosteriorSummary(parameter=name, mean=self.mean, sd=self.sd, rhat=nan, ess_bulk=nan, ess_tail=nan,
                                level=level, **{k: float(v[0]) for k, v in arrs.items()})


@dataclass(frozen=True)
class QuadSummary:
    """Every marginal by canonical name and the group effects' means and SDs per level."""

    marginals: dict
    u_mean: np.ndarray
    u_sd: np.ndarray
    cov_mean: float = float("nan")   # E[sd₀ sd₁ ρ] of a (x | g) term


def group_effects(pb: QuadProblem, co, grid: Grid, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Posterior means and SDs of u per level (G, Q) on a grid: the Gaussian mixture's first two moments."""
    keep = support(w)
    wk = w[keep] / w[keep].sum()
    sds, rho, sigma, _ = natural_at(co, axis_terms(pb, co, grid.nodes), grid.logf.shape, keep)
    if pb.kind == "one":   # per design pattern, not per level (exact; quadrature_ranef)
        return group_moments(pb, sds, rho, sigma, wk)
    cond = conditional(pb, sds, rho, sigma, want_u=True)
    u_mean = np.einsum("p,pgq->gq", wk, cond.u_mean)
    u_sd = np.sqrt(np.maximum(np.einsum("p,pgq->gq", wk, cond.u_var + cond.u_mean**2) - u_mean**2, 0.0))
    return u_mean, u_sd


def summarise_grid(pb: QuadProblem, co, design: Design, level: float, grid: Grid, w: np.ndarray
                   ) -> tuple[np.ndarray, np.ndarray, QuadSummary]:
    """Marginals of ψ and β on one grid; returns (compared quantiles, their posterior SDs, summary without
    the group effects: :func:`group_effects` adds them on the final grid)."""
    names = [f"sd_{t}|{b.group}" for b in design.blocks for t in b.term_names]
    if pb.correlated:
        b = design.blocks[0]
        names.append(f"cor_{b.term_names[1]}.{b.term_names[0]}|{b.group}")
    margs = psi_marginals(grid, w, co, names)
    keep = support(w)
    wk = w[keep] / w[keep].sum()
    if getattr(grid, "beta_mean", None) is not None:
        bm, bv = grid.beta_mean[keep], grid.beta_var[keep]
    else:
        sds, rho, sigma = co.natural(grid.points_at(keep))
        cond = conditional(pb, sds, rho, sigma, want_u=False)
        bm, bv = cond.beta_mean, np.diagonal(cond.beta_cov, axis1=-2, axis2=-1)
    for j, n in enumerate(design.fixed_names):
        margs[n] = mixture_marginal(wk, bm[:, j], bv[:, j])
    a = (1 - level) / 2
    compared = [n for n in margs if not n.startswith("var_") and n != "sigma2"]
    # the ETI ends, the median, the mean and the SD of every parameter: every reported number is held to
    # the tolerance (the quantiles alone let a heavy-tailed σ_A's mean and SD move by 1.1e-3 posterior SDs
    # on a grid whose quantiles had settled to 7e-5)
    q = np.concatenate([np.concatenate([margs[n].quantile([a, 0.5, 1 - a]), [margs[n].mean, margs[n].sd]])
                        for n in compared])
    sd = np.repeat([margs[n].sd for n in compared], 5)
    cov = float("nan")
    if pb.correlated:
        k0, k1 = co.sd_axes
        m3 = axis_mass(grid, w, k0, co.rho_axis, k1)                  # axes in increasing order
        v = {k0: co.value(k0, grid.nodes[k0]), k1: co.value(k1, grid.nodes[k1]),
             co.rho_axis: np.tanh(grid.nodes[co.rho_axis])}
        a, b, c = (v[k] for k in sorted(v))
        cov = float(np.einsum("ijk,i,j,k->", m3, a, b, c))
    return q, sd, QuadSummary(margs, np.zeros(0), np.zeros(0), cov)


def _order(design: Design) -> list[str]:
    """Parameter order of the NUTS path's ``posterior`` (summary.canonical_draws)."""
    out = list(design.fixed_names)
    for b in design.blocks:
        out += [f"sd_{t}|{b.group}" for t in b.term_names]
        if b.covariance == "unstructured":
            out += [f"cor_{b.term_names[l]}.{t1}|{b.group}" for j, t1 in enumerate(b.term_names)
                    for l in range(j + 1, b.q)]
    out.append("sigma")
    out += [f"var_{t}|{b.group}" for b in design.blocks for t in b.term_names]
    return out + ["sigma2"]


def quad_result(qs: QuadSummary, design: Design, *, level: float, converged: bool, options: dict[str, Any],
                diagnostics: dict[str, Any], elapsed_s: float, warnings: tuple = (),
                summaries: dict[str, PosteriorSummary] | None = None, tails: dict | None = None) -> FitResult:
    """FitResult of a quadrature fit: the fields :func:`.summary.build_result` fills, from the marginals
    (or from ``summaries``, the PosteriorSummary of every parameter, computed by the caller); ``tails``
    (:func:`.tails.moment_orders`): the means and SDs that do not exist are reported as inf,
    with a warning."""
    if summaries is None:
        summaries = {n: qs.marginals[n].summary(n, level) for n in _order(design)}
    else:
        summaries = {n: summaries[n] for n in _order(design)}
    if tails:
        summaries, infinite = unavailable_moments(summaries, tails)
        warnings = tuple(warnings) + infinite
    intervals, fixef = posterior_rows(summaries, design, level)
    varcorr: list[VarCorrRow] = []
    ranef: list[RanefRow] = []
    one = len({b.group for b in design.blocks}) == 1
    offset = 0
    for b in design.blocks:
        for t in b.term_names:
            varcorr.append(VarCorrRow(b.group, t, None, variance=summaries[f"var_{t}|{b.group}"].mean,
                                      sd=summaries[f"sd_{t}|{b.group}"].mean))
        if b.covariance == "unstructured" and b.q == 2:
            name = f"cor_{b.term_names[1]}.{b.term_names[0]}|{b.group}"
            varcorr.append(VarCorrRow(b.group, b.term_names[0], b.term_names[1], corr=summaries[name].mean,
                                      cov=qs.cov_mean))
        for i, lev in enumerate(b.levels):
            for j, t in enumerate(b.term_names):
                g, c = (i, offset + j) if one else (offset + i, 0)
                ranef.append(RanefRow(b.group, lev, t, float(qs.u_mean[g, c]), float(qs.u_sd[g, c])))
        offset += b.q if one else b.n_levels
    varcorr.append(VarCorrRow("Residual", None, None, variance=summaries["sigma2"].mean,
                              sd=summaries["sigma"].mean))
    return FitResult(
        backend="pymc", method="Bayes", formula=design.spec.formula, nobs=design.n, converged=converged,
        singular=False, loglik=None, criterion=None, sigma=summaries["sigma"].mean, fixef=fixef,
        varcorr=tuple(varcorr), ranef=tuple(ranef), ngroups={b.group: b.n_levels for b in design.blocks},
        elapsed_s=elapsed_s, warnings=tuple(warnings), intervals=tuple(intervals),
        posterior=tuple(summaries.values()), diagnostics=diagnostics, options=options, idata=None)
