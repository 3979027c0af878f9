"""Fits of many responses of one one-factor design (Q ≤ 2): θ̂ batched, then everything at θ̂ in closed form.

:class:`BatchFitter` is built once per design (the y-free statistics); :meth:`BatchFitter.estimates` takes
R responses and returns, per replicate, the :class:`.conditional.Estimates` the per-replicate path
(:func:`.conditional.estimates_one_factor` at :func:`.optimize.optimise_theta`'s θ̂) would give — β̂,
vcov, σ̂², G_t, conditional modes and SDs (Bates et al. 2015, sec. 3.5) — or None for a replicate the
batch leaves to the per-replicate path (:mod:`.batch_optimize`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..model.design import Design
from . import onefactor
from .batch import BatchProblem, build_batch, design_arrays, evaluate_batch, modes
from .batch_optimize import canonical_batch, newton_batch, rectify_batch, scalar_batch
from .centring import beta_to_user, uncentre_estimates
from .conditional import Estimates
from .theta import Layout

#: the largest merged random-effects dimension the batch handles (closed-form 2 × 2 algebra)
MAX_Q = 2


def batchable(design: Design, layout: Layout) -> bool:
    """True for a design whose random-effects terms share one grouping factor with Q ≤ 2 effects."""
    return bool(design.blocks) and onefactor.is_one_factor(design) and sum(t.q for t in layout.terms) <= MAX_Q


@dataclass(frozen=True, eq=False)
class BatchOutcome:
    """Per replicate: the estimates (None: fit it by the per-replicate path) and the optimiser's name."""

    estimates: list
    optimizer: str


def moment_starts(bp: BatchProblem) -> np.ndarray | None:
    """:func:`.onefactor.moment_start` for every replicate (R, n_θ); rows without one are NaN; None when the
    design has none (too few residual degrees of freedom, or a singular Z_i'Z_i)."""
    G, Q = bp.G, bp.Q
    inv = onefactor.moment_inverses(bp.S, bp.n, bp.p)
    if inv is None:
        return None
    Si, dof = inv
    b = np.einsum("gab,mgb->mga", Si, bp.t)
    s2 = (bp.rr - np.einsum("mga,mga->m", b, bp.t)) / dof
    with np.errstate(divide="ignore", invalid="ignore"):
        D = np.einsum("mga,mgb->mab", b, b) / (G * s2)[:, None, None] - Si.mean(axis=0)
    mask = np.zeros((Q, Q), dtype=bool)
    mask[bp.rows, bp.cols] = True
    D = np.where(mask | mask.T, 0.5 * (D + np.swapaxes(D, 1, 2)), 0.0)
    dg = np.maximum(np.diagonal(D, axis1=1, axis2=2), 0.01)
    D[:, np.arange(Q), np.arange(Q)] = dg
    lam = np.zeros_like(D)
    lam[:, 0, 0] = np.sqrt(D[:, 0, 0])
    if Q == 2:
        l21 = D[:, 1, 0] / lam[:, 0, 0]
        rest = D[:, 1, 1] - l21 * l21
        chol = rest > 0.0
        lam[:, 1, 0] = np.where(chol, l21, 0.0)
        lam[:, 1, 1] = np.sqrt(np.where(chol, rest, D[:, 1, 1]))
    theta = lam[:, bp.rows, bp.cols]
    theta[~(s2 > 0) | ~np.all(np.isfinite(theta), axis=1)] = np.nan
    return theta


class BatchFitter:
    """The batched fitter of one design (module docstring)."""

    def __init__(self, design: Design, layout: Layout):
        if not batchable(design, layout):
            raise ValueError("The batched fitter needs one grouping factor with at most two effects per level.")
        self.design, self.layout = design, layout
        self.template = onefactor.build_one_factor(design, layout)
        self.Zg, self.codes = design_arrays(design, layout)
        eterm = np.array(self.template.effect_term)
        self.effect_cols = [np.flatnonzero(eterm == k) for k in range(len(layout.terms))]

    def problem(self, Y: np.ndarray) -> BatchProblem:
        """The :class:`.batch.BatchProblem` of the responses ``Y`` (R, n)."""
        return build_batch(self.template, np.asarray(self.design.X_fit, float), self.Zg, self.codes, Y)

    def optimum(self, bp: BatchProblem, reml: bool) -> tuple[np.ndarray, np.ndarray, str]:
        """θ̂ (R, n_θ) and a mask of the replicates solved by the batch, and the optimiser's name."""
        layout = self.layout
        if layout.n_theta == 1 and bool(layout.diagonal[0]):
            t, _, ok = scalar_batch(bp, reml)
            return t[:, None], ok, "batched grid + root search"
        R = bp.R
        x0 = np.tile(layout.start(), (R, 1))
        warm = moment_starts(bp)
        if warm is not None:
            rep = np.arange(R)
            has = np.all(np.isfinite(warm), axis=1)
            wf = np.where(has[:, None], warm, x0)
            f = evaluate_batch(bp, np.r_[rep, rep], np.r_[x0, wf], reml, False).deviance
            better = has & (f[R:] < f[:R])
            x0[better] = warm[better]
        theta, f, conv = newton_batch(bp, x0, reml)
        theta = canonical_batch(bp, theta, layout.diagonal)
        theta, _, ok = rectify_batch(bp, theta, f, conv, layout.diagonal, reml)
        return theta, ok, "batched Newton"

    def arrays(self, Y: np.ndarray, reml: bool) -> "BatchArrays":
        """Everything at θ̂ of the responses ``Y`` (R, n) as arrays over replicates (:class:`BatchArrays`)."""
        bp = self.problem(Y)
        theta, ok, name = self.optimum(bp, reml)
        R, p, terms = bp.R, bp.p, self.layout.terms
        idx = np.flatnonzero(ok)
        nan = np.full(R, np.nan)
        deviance, sigma2 = nan.copy(), nan.copy()
        beta, vcov = np.full((R, p), np.nan), np.full((R, p, p), np.nan)
        G = self.template.G
        b, sd = np.full((R, G, bp.Q), np.nan), np.full((R, G, bp.Q), np.nan)
        condcov = {k: np.full((R, G, t.q, t.q), np.nan) for k, t in enumerate(terms) if t.centred}
        if idx.size:
            ev = evaluate_batch(bp, idx, theta[idx], reml, False)
            bm, P = modes(bp, ev, idx)
            nu = float(bp.n - p) if reml else float(bp.n)
            s2 = ev.r2 / nu
            deviance[idx], sigma2[idx] = ev.deviance, s2
            beta[idx] = ev.beta + bp.offset[idx]
            if p:
                vcov[idx] = s2[:, None, None] * np.linalg.inv(ev.XVX)
            if bp.beta_map is not None:                                  # centred X (:mod:`.centring`)
                beta[idx], vcov[idx] = beta_to_user(bp.beta_map, beta[idx], vcov[idx])
            b[idx] = bm
            sd[idx] = np.sqrt(np.maximum(s2[:, None, None] * np.diagonal(P, axis1=2, axis2=3), 0.0))
            for k, V in condcov.items():    # per-level conditional covariances, for the map back
                c = self.effect_cols[k]
                V[idx] = s2[:, None, None, None] * P[:, :, c][:, :, :, c]
        solved = ok & np.isfinite(deviance)
        covs = []
        for t in terms:   # G_t = σ² Λ_t Λ_t', the q_t × q_t product written out entry by entry
            lam = np.zeros((R, t.q, t.q))
            lam[:, t.rows, t.cols] = theta[:, t.start:t.stop]        # Λ_t (:meth:`.theta.Term.factor`)
            q = lam.shape[-1]
            lt = [[lam[:, i, j] for j in range(q)] for i in range(q)]
            cov = np.empty((R, q, q))
            for i in range(q):
                for j in range(q):
                    cov[:, i, j] = sigma2 * sum(lt[i][s] * lt[j][s] for s in range(q))
            covs.append(cov)
        arrays = BatchArrays(solved=solved, optimizer=name, theta=theta, deviance=deviance, beta=beta, vcov=vcov,
                             sigma2=sigma2, covs=tuple(covs), modes=tuple(b[:, :, c] for c in self.effect_cols),
                             condsd=tuple(sd[:, :, c] for c in self.effect_cols))
        return uncentre_estimates(arrays, self.layout, condcov)   # centred slopes: the one map back

    def estimates(self, Y: np.ndarray, reml: bool) -> BatchOutcome:
        """Per replicate of ``Y`` (R, n): the :class:`.conditional.Estimates` at θ̂, or None."""
        arr = self.arrays(Y, reml)
        return BatchOutcome([arr.estimate(m) if arr.solved[m] else None for m in range(arr.R)], arr.optimizer)


@dataclass(frozen=True, eq=False)
class BatchArrays:
    """The fits of R responses at θ̂, as arrays over replicates (NaN where ``solved`` is False: the batch
    leaves that replicate to the per-replicate path).  Per term in layout order: ``covs`` G_t (R, q_t, q_t),
    ``modes`` and ``condsd`` (R, levels, q_t); :meth:`estimate` is one replicate's
    :class:`.conditional.Estimates`."""

    solved: np.ndarray
    optimizer: str
    theta: np.ndarray
    deviance: np.ndarray
    beta: np.ndarray
    vcov: np.ndarray
    sigma2: np.ndarray
    covs: tuple
    modes: tuple
    condsd: tuple
    theta_fit: np.ndarray | None = None     # the batch's own θ when the design's slopes are centred

    @property
    def singular_theta(self) -> np.ndarray:
        """θ for the singular rule: the fitted problem's (:mod:`.centring`)."""
        return self.theta if self.theta_fit is None else self.theta_fit

    @property
    def R(self) -> int:
        return int(self.solved.shape[0])

    def estimate(self, m: int) -> Estimates:
        """Replicate m's :class:`.conditional.Estimates` (the same numbers, no recomputation)."""
        return Estimates(self.theta[m].copy(), float(self.deviance[m]), self.beta[m], self.vcov[m],
                         float(self.sigma2[m]), tuple(c[m] for c in self.covs), tuple(b[m] for b in self.modes),
                         tuple(s[m] for s in self.condsd),
                         None if self.theta_fit is None else self.theta_fit[m].copy())
