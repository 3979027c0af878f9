"""``sampler="quadrature"``: the exact posterior of the PyMC model by deterministic integration over ψ.

β and u are integrated analytically (:mod:`.quadrature_model`, equations (1)–(2)); the covariance
parameters ψ (group SDs, the correlation of a ``(x | g)`` term, σ; d ≤ 4) are integrated on a tensor grid
— INLA's grid strategy (Rue, Martino & Chopin 2009, J. R. Stat. Soc. B 71, sec. 3.1), exact here since
p(ψ | y) ∝ p(y | ψ) p(ψ) is known up to a constant and nothing is approximated by a Laplace step.

Coordinates.  Each SD s (and σ) becomes η = asinh(s / c) ≥ 0 with c a data scale (0.25 × the parameter's
data scale): linear near s = 0, logarithmic for s ≫ c.  Unlike log s, whose Jacobian s vanishes at 0,
ds/dη = c cosh η is bounded away from 0, so a posterior piled up at s = 0 (half-normal, half-t,
half-Cauchy and exponential priors put finite density there; σ̂²_A(REML) = 0) is a smooth density on
η ∈ [0, ∞) with a finite value at the boundary.  Under an inverse-gamma prior (on s², which vanishes to
all orders at s = 0) the axis is a log axis instead, z = log(s / c) ∈ ℝ with ds/dz = s: the η axis would
squeeze IG(0.001, 0.001)'s spike near s ~ √0.001 and the v⁻¹ shelf above it into a wall at η ≈ 0.1 that
needed h = 1/16 (~4 × 10⁴ nodes on a 10 × 5 one-way data set); in log s the same posterior is smooth
(~2 × 10³ nodes, h = ¼–½).  A correlation becomes ζ = atanh ρ.  The density in these
coordinates is f(z) = p(y | ψ) p(ψ) |∂ψ/∂z|.

Grid.  The mode z* of log f is found by projected Newton steps (η ≥ 0; gradient and Hessian from one
batched finite-difference stencil per step).  Each axis is scaled as a diagonal Hessian would scale it,
but measured by a line search: s⁻ and s⁺ are half the distances from z* at which log f has fallen by 2
(a Gaussian's SD), and the spacing uses s_k = min(s⁻, s⁺).  The grid is axis-aligned, so marginals are
sums over the other axes.  Nodes are z* + j·h·s_k, or 0 + j·h·s_k when the box reaches η = 0; the box
starts at [z* − 4s⁻, z* + 4s⁺] and each face moves out by 2 s_k while the largest log f on it is within
Δ of the maximum (Δ = max(12, ½χ²_d(1 − 1e-5)): 12, 12.9, 14.4 for d = 2, 3, 4); on every grid only
the connected region {log f > max − Δ − 2} around the mode and its face neighbours are evaluated (a
flood fill from the mode, :mod:`.quadrature_flood`; the other nodes hold < 1e-6 of the mass and get
log f = −inf — on the 18 × 10 random-slope bench design the box rule had evaluated 4–12 times as many
nodes as lie above max − Δ), and when a face moves out the nodes already evaluated keep their values.  A
tail check follows: an axis whose boundary layer holds more than 4e-4 of its parameter's posterior
variance (a heavy tail, where (s − m)²f falls more slowly than f) gets the superlevel set of its variance
integrand flooded too, with the same Δ + 2 and face rule (:func:`.quadrature_flood.tail_lift`; on an
(x || g) case with both SDs under exponential priors and 6 groups the SD of σ_A had been 1.4e-3
posterior SDs low, and is 7e-5 off a brute-force integration with it); on an axis whose prior has a
polynomial tail with a finite 4th posterior moment (:mod:`.tails`) the check covers the variance of s² too
(the SD of σ_A² under a half-Cauchy on 6 groups had been 3.8e-3 posterior SDs low).  E[β | ψ, y]
and Var[β_j | ψ, y] are kept from the same evaluation of (1)–(2) for the β mixtures.

Weights.  The trapezoid rule, with an end rule at an η = 0 face chosen by the axis's prior and the
symmetry of f (½ on an even axis, Euler–Maclaurin end terms on an exponential prior's tilted axis,
Gregory's weights otherwise): :mod:`.quadrature_weights`.

Refinement.  h = 1, ½, ¼, … in d ≤ 2, h = 1, 1/√2, ½, … in d = 3 and h = √2, 1, 1/√2, … in d = 4
(down to ``MIN_H[d]``); the reported quantiles (the ETI ends and the median: 2.5 %, 50 %, 97.5 % at
level 0.95), the mean and the SD of every parameter are compared between successive grids, and the
integration stops when the largest change, relative to the parameter's posterior SD, is below ``tol``
(default 1e-3).  The last change is reported as the integration error estimate.  (With the quantiles
alone, the mean and SD of a heavy-tailed σ_A — a (x || g) fit, 95 % interval 0.02–1.7 — were 1.1e-3
posterior SDs off a brute-force integration on a grid whose quantiles had settled to 7e-5.)

A sharper estimate from geometric convergence, err(h) ≈ |Q(h) − Q(h√2)|² / |Q(h√2) − Q(2h)| (per quantile,
or with the largest changes), was measured on four (x | g) data sets (the 10 × 10 test designs at σ_A² = 0
and 0.5, two 18 × 10 bench data sets) against a grid with h = ½, and does not bound the error: per
quantile it was exceeded in 4–12 of the 18 quantiles at every h, and with the largest changes in 3 of 6
cases (three data sets, h = 1 and 1/√2; 18 groups, h = 1: estimate 4.4e-5, error 1.6e-4 posterior SDs);
the successive changes are not monotone per quantile.  The plain change used here overestimated the
error 3.5–9× in every case.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .quadrature_flood import flood, lift_grid, tail_lift
from .quadrature_mode import axis_scales, find_mode
from .quadrature_model import QuadProblem, conditional, log_lkj2, log_prior, log_sd_prior
from .quadrature_weights import EVEN_FAMILIES, axis_tilt, end_factors

#: Δ per dimension d: max(12, ½ χ²_d quantile at 1 − 1e-5), so a Gaussian loses < 1e-5 of its mass
DELTA = {1: 12.0, 2: 12.0, 3: 12.9, 4: 14.4}
MIN_H = {1: 1 / 16, 2: 1 / 16, 3: 1 / 8, 4: 1 / 4}
#: spacing ratio between successive grids: halving in d ≤ 2; 1/√2 in d = 3, 4 (2.8× and 4× the points, not 8×, 16×)
RATIO = {3: 2 ** -0.5, 4: 2 ** -0.5}
#: first spacing: 1, except √2 in d = 4 (on sleepstudy's (Days | Subject) h = √2 → 1 already changes the
#: quantiles by < 1e-3 posterior SDs)
H0 = {4: 2 ** 0.5}
#: extensions of the box (2 s_k per face and step) before make_grid gives up and flags the grid
MAX_EXTENSIONS = 40
#: SD prior families integrated on a log axis s = c eᶻ (module docstring, "Coordinates")
LOG_FAMILIES = ("inverse_gamma",)


def axis_value(c, z: np.ndarray, log: bool) -> np.ndarray:
    """The SD (or σ) at z on an axis of scale c: c sinh z (η axis), or c eᶻ on a log axis."""
    return c * (np.exp(z) if log else np.sinh(z))


def axis_log_slope(c, z: np.ndarray, log: bool) -> np.ndarray:
    """log ds/dz of :func:`axis_value`: log(c cosh z), or log c + z on a log axis."""
    return np.log(c) + (z if log else np.log(np.cosh(z)))


@dataclass(frozen=True)
class Coordinates:
    """The unconstrained ψ coordinates z: ``sd`` axes η = asinh(s/c), an optional ζ = atanh ρ, then σ's η."""

    c: np.ndarray          # c of every η axis, in z order (NaN on the ζ axis)
    rho_axis: int | None
    sigma_axis: int
    #: True on the axes whose prior is an inverse gamma: there z = log(s/c) (module docstring,
    #: "Coordinates"); None: none
    log: np.ndarray | None = None
    #: per axis the a of f(−η) = f(η) e^(2a sinh η) (:func:`.quadrature_weights.axis_tilt`): 0 where f is
    #: even in η, c/scale on the exponential SD axes of uncorrelated terms, NaN elsewhere (Gregory's end
    #: weights); None: NaN everywhere
    tilt: np.ndarray | None = None

    @property
    def sd_axes(self) -> list[int]:
        """The axes of the SDs (all but the correlation's and σ's), in the order of the SD names."""
        return [k for k in range(self.c.size) if k not in (self.rho_axis, self.sigma_axis)]

    def tilt_of(self, k: int) -> float:
        """a on η axis k (:attr:`tilt`), NaN where Gregory's end weights apply."""
        if self.is_log(k) or self.tilt is None:
            return float("nan")
        return float(self.tilt[k])

    def is_log(self, k: int) -> bool:
        """True when axis k is a log axis s = c eᶻ (unbounded) instead of s = c sinh η (η ≥ 0)."""
        return bool(self.log is not None and self.log[k])

    @property
    def rho_symmetric(self) -> bool:
        """True when the ζ axis is anchored at 0 (nodes symmetric about ζ = 0): a correlated term with an
        even SD axis, whose ½ end weight folds the full-space rule under (sd, ζ) → (−sd, −ζ)."""
        return self.rho_axis is not None and any(self.is_even(k) for k in self.sd_axes)

    def is_even(self, k: int) -> bool:
        """True when axis k is an η axis on which f is even in η (plain trapezoid end weight ½ at 0)."""
        return self.tilt_of(k) == 0.0

    @property
    def bounded(self) -> np.ndarray:
        """True on the axes with the boundary η = 0."""
        out = np.ones(self.c.size, bool)
        if self.rho_axis is not None:
            out[self.rho_axis] = False
        if self.log is not None:
            out &= ~self.log
        return out

    def value(self, k: int, z: np.ndarray) -> np.ndarray:
        """The SD (or σ) of η axis k at z (:func:`axis_value`)."""
        return axis_value(self.c[k], z, self.is_log(k))

    def log_dvalue(self, k: int, z: np.ndarray) -> np.ndarray:
        """log ds/dz on η axis k (:func:`axis_log_slope`)."""
        return axis_log_slope(self.c[k], z, self.is_log(k))

    def natural(self, z: np.ndarray) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
        """(sds (P, k), ρ (P,) or None, σ (P,)) at the points z (P, d)."""
        rho = None
        if self.rho_axis is not None:
            rho = np.tanh(z[:, self.rho_axis])
        sds = np.stack([self.value(k, z[:, k]) for k in self.sd_axes], axis=1)
        return sds, rho, self.value(self.sigma_axis, z[:, self.sigma_axis])

    def log_jacobian(self, z: np.ndarray) -> np.ndarray:
        """log |∂ψ/∂z| = Σ log(ds/dz) + log(1 − ρ²)."""
        out = np.zeros(z.shape[0])
        for k in range(z.shape[1]):
            if k == self.rho_axis:
                out += np.log1p(-np.tanh(z[:, k]) ** 2)
            else:
                out += self.log_dvalue(k, z[:, k])
        return out


def coordinates(pb: QuadProblem, data_sd: np.ndarray, data_sigma: float) -> Coordinates:
    """Axes: the Q SDs (with ζ after the second one when correlated), then σ; c = 0.25 × data scale."""
    c = [0.25 * float(s) for s in data_sd]
    rho_axis = None
    if pb.correlated:
        c.append(np.nan)
        rho_axis = len(c) - 1
    c.append(0.25 * float(data_sigma))
    fams = [pr.family for pr in pb.sd_priors[:len(data_sd)]]
    if pb.correlated:
        fams.append(None)
    fams.append(pb.sigma_prior.family)
    # with a correlation the symmetry of an SD axis is the joint reflection (sd, ρ) → (−sd, −ρ): the ½ end
    # weight is then the folded full-space rule on a ζ lattice symmetric about 0 (module docstring, "Weights")
    log = np.array([f in LOG_FAMILIES for f in fams])
    scales = list(pb.sd_scales[:len(data_sd)]) + ([np.nan] if pb.correlated else []) + [pb.sigma_scale]
    # the correlated term's symmetry flips ζ too: only its even axes keep a tilt (0), its exponential ones
    # get Gregory's weights
    tilt = np.array([axis_tilt(f, ck, sk) if not pb.correlated or f in EVEN_FAMILIES else np.nan
                     for f, ck, sk in zip(fams, c, scales)])
    return Coordinates(np.asarray(c, float), rho_axis, len(c) - 1, log if log.any() else None, tilt)


def log_density(pb: QuadProblem, co: Coordinates, z: np.ndarray) -> np.ndarray:
    """log f(z) = log p(y | ψ) + log p(ψ) + log |∂ψ/∂z| at the points z (P, d); −inf outside the support."""
    return log_density_beta(pb, co, z)[0]


def log_density_beta(pb: QuadProblem, co: Coordinates, z: np.ndarray
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(log f, E[β | ψ, y] (P, p), Var[β_j | ψ, y] (P, p)) at the points z: one evaluation of (1)–(2)."""
    z = np.atleast_2d(z)
    sds, rho, sigma = co.natural(z)
    with np.errstate(all="ignore"):
        sep = log_prior(pb, sds, rho, sigma) + co.log_jacobian(z)
    return _density(pb, sds, rho, sigma, sep)


def _density(pb: QuadProblem, sds, rho, sigma, sep: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """log f = log p(y | ψ) + ``sep`` (log prior + log Jacobian) and the β moments of (2)."""
    with np.errstate(all="ignore"):
        cond = conditional(pb, sds, rho, sigma, want_u=False)
        out = cond.loglik + sep
    bvar = np.diagonal(cond.beta_cov, axis1=-2, axis2=-1)
    return np.where(np.isfinite(out), out, -np.inf), cond.beta_mean, bvar


def axis_terms(pb: QuadProblem, co: Coordinates, nodes: tuple) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per axis k of a tensor grid: (natural value at its nodes: s = c sinh η or ρ = tanh ζ, the axis'
    term of log p(ψ) + log |∂ψ/∂z|).  The prior is a product over the ψ coordinates and the Jacobian is
    diagonal, so both are sums of one term per axis, evaluated on the 1-D nodes instead of every point."""
    sd_axes = co.sd_axes
    out = []
    with np.errstate(all="ignore"):
        for k, zk in enumerate(nodes):
            if k == co.rho_axis:
                nat = np.tanh(zk)
                out.append((nat, np.log1p(-nat ** 2) + log_lkj2(pb.eta, nat)))
                continue
            nat = co.value(k, zk)
            if k == co.sigma_axis:
                lp = log_sd_prior(pb.sigma_prior, pb.sigma_scale, nat)
            else:
                i = sd_axes.index(k)
                lp = log_sd_prior(pb.sd_priors[i], pb.sd_scales[i], nat)
            out.append((nat, lp + co.log_dvalue(k, zk)))
    return out


def natural_at(co: Coordinates, terms: list, shape: tuple, flat: np.ndarray):
    """(sds (P, k), ρ or None, σ, the separable log terms) at the C-order nodes ``flat`` of a tensor grid of
    ``shape`` from :func:`axis_terms` (indexing 1-D arrays: no sinh, log or prior at every point)."""
    idx = np.unravel_index(flat, shape)
    sep = np.zeros(flat.size)
    for (_, t), i in zip(terms, idx):
        sep += t[i]
    sds = np.stack([terms[k][0][idx[k]] for k in co.sd_axes], axis=1)
    rho = None if co.rho_axis is None else terms[co.rho_axis][0][idx[co.rho_axis]]
    return sds, rho, terms[co.sigma_axis][0][idx[co.sigma_axis]], sep


@dataclass(frozen=True)
class Grid:
    """A tensor grid: ``nodes[k]`` (axis k's node values), ``weights[k]`` (quadrature weights) and log f
    on every node (shape ``tuple(len(n) for n in nodes)``; −inf on nodes that were not evaluated).

    ``beta_mean`` / ``beta_var`` (P, p), when present, hold E[β_j | ψ, y] and Var[β_j | ψ, y] of
    equation (2) at every node in C order (NaN where log f was not evaluated), so the summaries need not
    evaluate (2) again."""

    nodes: tuple
    weights: tuple
    logf: np.ndarray
    beta_mean: np.ndarray | None = None
    beta_var: np.ndarray | None = None
    open_faces: bool = False     # the box was still growing after MAX_EXTENSIONS extensions (make_grid)

    @property
    def size(self) -> int:
        """Number of grid points."""
        return int(self.logf.size)

    def points(self) -> np.ndarray:
        """All nodes as (P, d) in C order."""
        mesh = np.meshgrid(*self.nodes, indexing="ij")
        return np.stack([m.ravel() for m in mesh], axis=1)

    def points_at(self, flat: np.ndarray) -> np.ndarray:
        """The nodes with C-order indices ``flat`` as (len(flat), d)."""
        idx = np.unravel_index(flat, self.logf.shape)
        return np.stack([n[i] for n, i in zip(self.nodes, idx)], axis=1)

    def log_weights_at(self, flat: np.ndarray) -> np.ndarray:
        """log(f × the product weight) at the C-order nodes ``flat`` (:meth:`log_weights` there)."""
        idx = np.unravel_index(flat, self.logf.shape)
        return self.logf.reshape(-1)[flat] + sum(np.log(w)[i] for w, i in zip(self.weights, idx))

    def log_weights(self) -> np.ndarray:
        """log(f × the product weight) at every point, flattened in C order."""
        lw = self.logf.copy()
        for k, w in enumerate(self.weights):
            shape = [1] * lw.ndim
            shape[k] = w.size
            lw = lw + np.log(w).reshape(shape)
        return lw.ravel()


def _axis(z0: float, s: float, h: float, lo: float, hi: float, bounded: bool, tilt: float = float("nan")
          ) -> tuple[np.ndarray, np.ndarray]:
    """Nodes covering [lo, hi] (z units) with spacing h·s, anchored at 0 when the axis meets its bound,
    with the end weights of :func:`end_factors` there (``tilt``: :meth:`Coordinates.tilt_of`)."""
    dz = h * s
    if bounded and lo <= 0.0:
        nodes = np.arange(0, int(np.ceil(hi / dz)) + 1) * dz
        return nodes, dz * end_factors(nodes.size, dz, tilt)
    j0, j1 = int(np.floor((lo - z0) / dz)), int(np.ceil((hi - z0) / dz))
    nodes = z0 + np.arange(j0, j1 + 1) * dz
    return nodes, np.full(nodes.size, dz)


def _coarse_max(prev: Grid, nodes: tuple) -> np.ndarray:
    """Largest log f of the previous grid over the 2^d coarse nodes around each node of the tensor grid
    ``nodes`` (−inf → +inf outside the previous box, so that points there are always evaluated); returned in
    the new grid's shape.  A running maximum of adjacent coarse values along each axis (padded with −inf),
    indexed per axis: no (P, d) point array."""
    D = prev.logf
    for k in range(D.ndim):
        pad = [(0, 0)] * D.ndim
        pad[k] = (1, 1)
        Dp = np.pad(D, pad, constant_values=-np.inf)
        D = np.maximum(np.take(Dp, np.arange(Dp.shape[k] - 1), axis=k), np.take(Dp, np.arange(1, Dp.shape[k]), axis=k))
    idx, outside = [], np.zeros(tuple(n.size for n in nodes), bool)
    for k, (new, old) in enumerate(zip(nodes, prev.nodes)):
        idx.append(np.searchsorted(old, new))
        out_k = (new < old[0] - 1e-12) | (new > old[-1] + 1e-12)
        shape = [1] * len(nodes)
        shape[k] = new.size
        outside |= out_k.reshape(shape)
    out = D[np.ix_(*idx)]
    out[outside] = np.inf
    return out


def _carry(old: Grid | None, nodes: tuple, p: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(log f, known mask, β means, β variances) on ``nodes`` with the values of ``old`` (the same lattice
    on a smaller box) copied in, so that a box extension evaluates only the new nodes."""
    shape = tuple(n.size for n in nodes)
    logf, known = np.full(shape, -np.inf), np.zeros(shape, bool)
    bm, bv = np.full(shape + (p,), np.nan), np.full(shape + (p,), np.nan)
    if old is None:
        return logf, known, bm, bv
    sl = []
    for new, o in zip(nodes, old.nodes):
        i0 = int(np.argmin(np.abs(new - o[0])))
        if abs(new[i0] - o[0]) > 1e-9 * max(1.0, abs(o[0])) or i0 + o.size > new.size \
                or not np.allclose(new[i0:i0 + o.size], o, rtol=0, atol=1e-9):
            return logf, known, bm, bv
        sl.append(slice(i0, i0 + o.size))
    sl = tuple(sl)
    logf[sl], known[sl] = old.logf, old._known
    bm[sl], bv[sl] = old.beta_mean.reshape(old.logf.shape + (p,)), old.beta_var.reshape(old.logf.shape + (p,))
    return logf, known, bm, bv


def make_grid(pb: QuadProblem, co: Coordinates, z0: np.ndarray, s: np.ndarray, h: float,
              box: np.ndarray, lmax: float, delta: float, prev: Grid | None = None,
              flood_fill: bool = False, powers: tuple[int, ...] | None = None) -> tuple[Grid, np.ndarray]:
    """The grid of spacing h over ``box`` (d, 2), extended until every face is below lmax − Δ.

    With ``prev`` (the grid of the previous, coarser spacing), a point is evaluated only where a
    surrounding coarse node has log f > lmax − Δ − 2; the others get log f = −inf (they lie outside the
    region that holds all but ~1e-5 of the mass; INLA's grid exploration keeps the same region).  With
    ``flood_fill`` (what :func:`integrate` uses) ``prev`` is not needed: only the connected region
    {log f > max − Δ − 2} around the mode and its boundary layer are evaluated
    (:func:`.quadrature_flood.flood`; ``powers[k]``: the highest power of axis k's parameter whose variance
    the tail check covers, :func:`.quadrature_flood.tail_lift` — default 1 on every axis but the
    correlation's).  When a face moves out, the nodes already evaluated keep their
    values (the lattice does not move).  E[β | ψ, y] and Var[β_j | ψ, y] are kept from the same
    evaluation (:class:`Grid`).
    """
    box = box.copy()
    bounded = co.bounded
    p = pb.p
    cur, tails = None, {}
    for _ in range(MAX_EXTENSIONS):
        anchor = np.where(np.arange(z0.size) == (co.rho_axis if co.rho_symmetric else -1), 0.0, z0)
        axes = [_axis(anchor[k], s[k], h, box[k, 0], box[k, 1], bounded[k], co.tilt_of(k)) for k in range(z0.size)]
        nodes = tuple(a[0] for a in axes)
        logf, known, bm, bv = _carry(cur, nodes, p)
        cur = Grid(nodes, tuple(a[1] for a in axes), logf, bm.reshape(-1, p), bv.reshape(-1, p))
        terms = axis_terms(pb, co, nodes)

        def evaluate(flat, cur=cur, terms=terms, shape=logf.shape):
            lf, m_, v_ = _density(pb, *natural_at(co, terms, shape, flat))
            cur.beta_mean[flat], cur.beta_var[flat] = m_, v_
            return lf

        if flood_fill:
            seed = np.ravel_multi_index(tuple(int(np.argmin(np.abs(n - z0[k]))) for k, n in enumerate(nodes)),
                                        logf.shape)
            lift = lift_grid({k: co.value(k, nodes[k]) for k in tails}, logf.shape, tails) if tails else None
            flood(logf, known, int(seed), lmax, delta + 2.0, evaluate,
                  None if lift is None else (lambda flat, L=lift: L.reshape(-1)[flat]))
        else:
            todo = np.ones(logf.shape, bool) if prev is None else _coarse_max(prev, nodes) > lmax - delta - 2.0
            flat = np.flatnonzero(todo & ~known)
            if flat.size:
                logf.reshape(-1)[flat] = evaluate(flat)
            known |= todo
        object.__setattr__(cur, "_known", known)
        out = np.zeros((z0.size, 2), bool)        # faces within Δ of the top: of log f, and of log f + lift
        for score, top in [(logf, max(lmax, float(logf.max())))] + (
                [(logf + lift, float(np.max(logf + lift)))] if flood_fill and tails else []):
            for k in range(z0.size):
                out[k, 0] |= np.take(score, 0, axis=k).max() > top - delta
                out[k, 1] |= np.take(score, -1, axis=k).max() > top - delta
        out[:, 0] &= ~(bounded & (box[:, 0] <= 0.0))
        box[:, 0] -= 2 * s * out[:, 0]
        box[:, 1] += 2 * s * out[:, 1]
        moved = bool(out.any())
        if not moved and flood_fill and not tails:
            # the tail check (quadrature_flood.tail_lift): an axis whose variance the flood cut short gets
            # its variance integrand's superlevel set flooded too, on this lattice (its values are kept)
            kn = np.flatnonzero(known)
            pw = powers if powers is not None else tuple(int(k != co.rho_axis) for k in range(z0.size))
            values = {k: co.value(k, nodes[k]) for k in range(z0.size) if pw[k] > 0}
            tails = tail_lift(cur.log_weights_at(kn), logf.reshape(-1)[kn], np.unravel_index(kn, logf.shape),
                              delta + 2.0, values, tuple(k for k in values if pw[k] > 1))
            moved = bool(tails)
        if not moved:
            break
    else:   # the posterior (or a tail check's moment) still reaches past the box: say so, do not truncate silently
        object.__setattr__(cur, "open_faces", True)
    return cur, box


@dataclass(frozen=True)
class Integration:
    """The result of the adaptive integration: final grid, normalised weights, refinement record."""

    grid: Grid
    weights: np.ndarray          # (P,) normalised, C order
    coords: Coordinates
    h: float
    steps: tuple                 # (h, grid size, change) per refinement level
    error: float                 # change of the reported summaries at the last refinement (in posterior SDs)
    converged: bool
    mode: np.ndarray


def normalised(grid: Grid) -> np.ndarray:
    """Normalised quadrature weights w_j ∝ f(z_j) Π_k w_k(z_j)."""
    lw = grid.log_weights()
    w = np.exp(lw - lw.max())
    return w / w.sum()


def integrate(pb: QuadProblem, co: Coordinates, start: np.ndarray, summarise, tol: float = 1e-3,
              powers: tuple[int, ...] | None = None) -> tuple[Integration, object]:
    """Mode → scales → grids with h = 1, ½, … until ``summarise(grid, w)`` changes < tol (module docstring;
    ``powers``: :func:`make_grid`).

    ``summarise`` returns ``(quantiles, sds, payload)``: arrays of the reported quantiles and of the
    posterior SDs they are compared in; the payload of the last grid is returned with the integration.
    """
    logf = lambda z: log_density(pb, co, z)  # noqa: E731
    z0, lmax = find_mode(logf, co.bounded, start)
    s_lo, s_hi = axis_scales(logf, co.bounded, z0, lmax)
    s = np.minimum(s_lo, s_hi)
    box = np.stack([z0 - 4 * s_lo, z0 + 4 * s_hi], axis=1)
    box[co.bounded, 0] = np.where(box[co.bounded, 0] < 0, 0.0, box[co.bounded, 0])
    h, prev, steps, change, grid = H0.get(z0.size, 1.0), None, [], np.inf, None
    floor = MIN_H.get(z0.size, 1 / 4)
    while True:
        grid, box = make_grid(pb, co, z0, s, h, box, lmax, DELTA.get(z0.size, 14.4), grid, flood_fill=True,
                              powers=powers)
        w = normalised(grid)
        q, sd, payload = summarise(grid, w)
        if prev is not None:
            change = float(np.max(np.abs(q - prev) / np.maximum(sd, 1e-300)))
        steps.append((h, grid.size, change))
        if change < tol or h <= floor * (1 + 1e-9):
            break
        prev, h = q, h * RATIO.get(z0.size, 0.5)
    return Integration(grid, w, co, h, tuple(steps), change, bool(change < tol and not grid.open_faces), z0), payload
