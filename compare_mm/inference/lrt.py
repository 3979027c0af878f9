"""Likelihood-ratio tests of variance components: naive χ² and the boundary-corrected χ̄² mixture.

Under H₀ a variance sits on the boundary of its parameter space, so the LRT statistic
T = d(null) − d(full) (difference of deviances, ML, or of REML criteria) is not χ²_df.  Its asymptotic
null distribution is the mixture ½χ²_{df−1} + ½χ²_df when one variance (with its df − 1 covariances to
the effects already in the model) is removed (Self & Liang 1987; Stram & Lee 1994): ½χ²₀ + ½χ²₁ for one
variance, ½χ²_q + ½χ²_{q+1} when a random slope with its covariances joins q correlated effects.
χ²₀ is a point mass at 0.  Both p-values are reported side by side.

REML criteria of two models are comparable only when their fixed effects are the same (the restricted
likelihood is that of the residual contrasts of X).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..model.design import Design
from ..errors import ModelSpecError
from ..results.schema import TestResult
from .components import Component, components, drop_component, find_component, same_fixed_effects
from ..fitter.extended import ThetaFit, fit_design
from ..null_distributions import chi2_pvalue, chibar2_critical, chibar2_pvalue, lrt_method
from ..oneway.htests import oneway_lrt
from ..parallel import blas_single_thread


def lrt_statistic(null_criterion: float, full_criterion: float) -> float:
    """T = crit(null) − crit(full), set to exactly 0 when within optimiser noise of 0.

    Differences below 1e-8·max(1, |crit(full)|) are rounding and optimisation error (the full model's
    optimum then lies on the boundary, where T = 0 exactly); without this a T of 1e-9 would move the
    χ̄² p-value from 1 to ½.
    """
    return float(lrt_statistics(float(null_criterion), float(full_criterion)))


def lrt_statistics(null_criterion, full_criterion) -> np.ndarray:
    """:func:`lrt_statistic` elementwise over arrays of criteria (the batched LRTs of a study chunk)."""
    full = np.asarray(full_criterion, dtype=float)
    d = np.asarray(null_criterion, dtype=float) - full
    return np.where(d > 1e-8 * np.maximum(1.0, np.abs(full)), d, 0.0)


@dataclass(frozen=True)
class LRT:
    """One likelihood-ratio test of a variance component."""

    group: str
    term: str
    method: str
    statistic: float
    df: int
    p_chi2: float
    p_chibar2: float

    def results(self) -> tuple[TestResult, TestResult]:
        """The two :class:`TestResult` rows ``lrt_chi2`` and ``lrt_chibar2``."""
        return (TestResult("lrt_chi2", self.group, self.term, self.statistic, self.p_chi2),
                TestResult("lrt_chibar2", self.group, self.term, self.statistic, self.p_chibar2))


@blas_single_thread
def component_lrt(design: Design, group: str | None = None, term: str | None = None, *,
                  method: str = "ML", full: ThetaFit | None = None) -> LRT:
    """LRT of one variance component of ``design`` against the design without it.

    Parameters
    ----------
    design
        The full model's design.
    group, term
        The random effect tested (see :func:`~compare_mm.inference.components.find_component`).
    method
        ``"ML"`` (deviances) or ``"REML"`` (REML criteria; the fixed effects are the same in both models
        by construction).
    full
        The full model's optimum if already known (saves one fit).
    """
    method = lrt_method(method)
    comp = find_component(design, group, term)
    return _lrt_for(design, comp, method, full)


def _lrt_for(design: Design, comp: Component, method: str, full: ThetaFit | None = None,
             null_design: Design | None = None) -> LRT:
    """The LRT of ``comp``: both models fitted by the fitter (the full one unless ``full`` is given), the
    null model ``null_design`` or ``design`` without the component."""
    null_design = drop_component(design, comp) if null_design is None else null_design
    reml = method == "REML"
    full = full if full is not None and full.reml == reml else fit_design(design, reml)
    null = fit_design(null_design, reml)
    stat = lrt_statistic(null.deviance, full.deviance)
    return LRT(comp.group, comp.term, method, stat, comp.df, float(chi2_pvalue(stat, comp.df)),
               float(chibar2_pvalue(stat, comp.df)))


@blas_single_thread
def compare_models(null_design: Design, full_design: Design, *, method: str = "ML") -> LRT:
    """LRT between two nested models given as designs (the full one has one more random effect).

    Raises
    ------
    ModelSpecError
        For a REML comparison of models with different fixed effects, or when the full model does not
        add exactly one random effect (with its covariances) to the null model.
    """
    method = lrt_method(method)
    if null_design.n != full_design.n:
        raise ModelSpecError("The two models were fitted to different numbers of observations "
                             f"({null_design.n} and {full_design.n}), so their likelihoods are not comparable.")
    if method == "REML" and not same_fixed_effects(null_design, full_design):
        raise ModelSpecError("A REML likelihood-ratio test needs the same fixed effects in both models "
                             f"({', '.join(null_design.fixed_names)} vs {', '.join(full_design.fixed_names)}); "
                             "refit both by ML.")
    if not same_fixed_effects(null_design, full_design):
        raise ModelSpecError("The two models differ in their fixed effects as well as their random effects; "
                             "the χ̄² mixture applies when only one random effect is added.")
    comp = None
    for c in components(full_design):
        reduced = drop_component(full_design, c)
        if _same_random(reduced, null_design):
            comp = c
            break
    if comp is None:
        raise ModelSpecError(f"The model {full_design.spec.formula!r} does not add exactly one random effect "
                             f"to {null_design.spec.formula!r}, so the χ̄² mixture does not apply.")
    return _lrt_for(full_design, comp, method, null_design=null_design)


def _same_random(a: Design, b: Design) -> bool:
    if len(a.blocks) != len(b.blocks):
        return False
    for x, y in zip(a.blocks, b.blocks):
        if (x.group, tuple(x.term_names), x.covariance if x.q > 1 else "") != \
                (y.group, tuple(y.term_names), y.covariance if y.q > 1 else ""):
            return False
        if not np.array_equal(x.codes, y.codes) or not np.allclose(x.Z, y.Z):
            return False
    return True


__all__ = ["LRT", "chi2_pvalue", "chibar2_critical", "chibar2_pvalue", "compare_models", "component_lrt",
           "lrt_statistic", "lrt_statistics", "oneway_lrt"]
