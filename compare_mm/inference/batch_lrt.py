"""Likelihood-ratio tests of the variance components of many responses of one one-factor design at once.

The study counterpart of :func:`compare_mm.inference.lrt.component_lrt` for the designs the batched
fitter handles (:mod:`compare_mm.fitter.batch_fit`: one grouping factor, Q ≤ 2).  For each component
(:func:`compare_mm.inference.components.components`) the null model is the design without it
(:func:`~compare_mm.inference.components.drop_component`):

* no random effect left (``(1 | g)`` tested): a linear model, whose criterion is the full model's at
  θ = 0 (log|L_θ|² = 0, C = [X r]'[X r]; Bates et al. 2015, eq. 34), evaluated for every replicate in one
  batched call;
* one scalar effect left (``(x || g)``, the slope of ``(x | g)``): the batched fitter's exact scalar
  optimum (grid and root search, the per-replicate rule), and :func:`~compare_mm.fitter.extended.fit_design`
  for a replicate the batch leaves undecided.

T = crit(null) − crit(full) (:func:`~compare_mm.inference.lrt.lrt_statistics`, zero within 1e-8 relative)
with the naive χ²_df and the χ̄² mixture p-values (Self & Liang 1987; Stram & Lee 1994).  ``crit(full)``
is the batch's criterion at θ̂; the per-replicate route re-evaluates it from θ̂ on the replicate's own
design, so statistics agree to rounding (≤ 1e-9, ``tests/inference/test_batch_lrt.py``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..fitter.batch import evaluate_batch
from ..fitter.batch_fit import BatchFitter, batchable
from ..fitter.extended import fit_design
from ..fitter.theta import make_layout
from ..model.design import Design
from ..null_distributions import chi2_pvalue, chibar2_pvalue
from .components import components, drop_component
from .lrt import lrt_statistics


@dataclass(frozen=True, eq=False)
class LRTColumns:
    """The LRT of one component for R replicates: statistic and both p-values, arrays (R,)."""

    group: str
    term: str
    df: int
    statistic: np.ndarray
    p_chi2: np.ndarray
    p_chibar2: np.ndarray

    def p_value(self, name: str) -> np.ndarray:
        """The p-values of test ``name`` (``lrt_chi2`` or ``lrt_chibar2``)."""
        return self.p_chi2 if name == "lrt_chi2" else self.p_chibar2


def null_criteria(design: Design, null: Design, Y: np.ndarray, reml: bool) -> np.ndarray:
    """The null model's optimal criterion (deviance or REML criterion) for every row of ``Y`` (module
    docstring)."""
    R = Y.shape[0]
    if not null.blocks:
        fitter = BatchFitter(design, make_layout(design.blocks))
        bp = fitter.problem(Y)
        return evaluate_batch(bp, np.arange(R), np.zeros((R, fitter.layout.n_theta)), reml, False).deviance
    layout = make_layout(null.blocks)
    if not batchable(null, layout):
        return np.array([fit_design(null.with_y(y), reml).deviance for y in Y])
    fitter = BatchFitter(null, layout)
    bp = fitter.problem(Y)
    theta, ok, _ = fitter.optimum(bp, reml)
    out = np.full(R, np.nan)
    idx = np.flatnonzero(ok)
    if idx.size:
        out[idx] = evaluate_batch(bp, idx, theta[idx], reml, False).deviance
    for m in np.flatnonzero(~np.isfinite(out)):
        out[m] = fit_design(null.with_y(Y[m]), reml).deviance
    return out


def lrt_many(design: Design, Y: np.ndarray, full_criterion: np.ndarray, reml: bool) -> list[LRTColumns]:
    """The LRT of every component of ``design`` (formula order) for the responses ``Y`` (R, n) whose full
    model's criterion at θ̂ is ``full_criterion`` (R,), on the design's own method's likelihood."""
    Y = np.atleast_2d(np.asarray(Y, dtype=float))
    out = []
    for c in components(design):
        stat = lrt_statistics(null_criteria(design, drop_component(design, c), Y, reml), full_criterion)
        out.append(LRTColumns(c.group, c.term, c.df, stat, np.asarray(chi2_pvalue(stat, c.df), float),
                              np.asarray(chibar2_pvalue(stat, c.df), float)))
    return out


__all__ = ["LRTColumns", "lrt_many", "null_criteria"]
