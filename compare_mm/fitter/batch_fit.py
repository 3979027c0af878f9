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
        return build_batch(self.template, np.asarray(self.design.X, float), self.Zg, self.codes, Y)

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

    def estimates(self, Y: np.ndarray, reml: bool) -> BatchOutcome:
        """Per replicate of ``Y`` (R, n): the :class:`.conditional.Estimates` at θ̂, or None."""
        bp = self.problem(Y)
        theta, ok, name = self.optimum(bp, reml)
        idx = np.flatnonzero(ok)
        out: list = [None] * bp.R
        if idx.size == 0:
            return BatchOutcome(out, name)
        ev = evaluate_batch(bp, idx, theta[idx], reml, False)
        b, Pd = modes(bp, ev, idx)
        nu = float(bp.n - bp.p) if reml else float(bp.n)
        sigma2 = ev.r2 / nu
        beta = ev.beta + bp.offset[idx]
        p = bp.p
        vcov = sigma2[:, None, None] * np.linalg.inv(ev.XVX) if p else np.zeros((idx.size, 0, 0))
        sd = np.sqrt(np.maximum(sigma2[:, None, None] * Pd, 0.0))
        for j, m in enumerate(idx):
            if not np.isfinite(ev.deviance[j]):
                continue
            covs = []
            for t in self.layout.terms:
                lt = t.factor(theta[m])
                covs.append(sigma2[j] * (lt @ lt.T))
            out[m] = Estimates(theta[m].copy(), float(ev.deviance[j]), beta[j], vcov[j], float(sigma2[j]),
                               tuple(covs), tuple(b[j][:, c] for c in self.effect_cols),
                               tuple(sd[j][:, c] for c in self.effect_cols))
        return BatchOutcome(out, name)
