"""Is statsmodels' answer at an optimum?  A cross-check against our profiled deviance.

statsmodels' MixedLM can stop far from the optimum and still report ``converged=True`` (at extreme
variance ratios σ_A/σ ≳ 10⁴ its σ̂² is off by 13 % and more).  Our fitter's criterion is the same
function (lme4's profiled deviance, Bates et al. 2015, J. Stat. Softw. 67(1), eqs. 34 and 41; statsmodels'
REML ``loglike`` is −½ of it term for term, see :mod:`.backend`), so its optimum is a certificate:

    gap = d(θ_sm, σ_sm) − min_θ d(θ),

with d(θ, σ) the deviance at statsmodels' θ and σ, profiled over β only (:meth:`..fitter.extended.Surface.
deviance_sigma`), and min_θ d(θ) our optimum (:func:`..fitter.extended.fit_theta`).  The gap is ≥ 0 up
to rounding; a fit with gap above :data:`GAP_TOL` is not at an optimum.  The cost is one of our fits,
an eighth of a statsmodels fit (the backends' ``relative_cost``).
"""

from __future__ import annotations

import math

import numpy as np

from ...fitter.extended import fit_theta, surface
from ...model.design import Design

#: a statsmodels fit whose deviance exceeds our optimum by more than this is not at an optimum
#: (−2 log-likelihood units: 1e-3 is far below any inferential difference, far above rounding and
#: statsmodels' gradient tolerance on well-posed fits, whose gap is below 1e-6)
GAP_TOL = 1e-3
NOT_AT_OPTIMUM = "statsmodels not at optimum:"


def deviance_gap(design: Design, theta, sigma: float) -> tuple[float, float]:
    """(gap, our optimum) for statsmodels' θ (lme4 order) and σ on ``design`` (module docstring).

    The gap is NaN when statsmodels' θ or σ is not finite.
    """
    reml = design.spec.method == "REML"
    surf = surface(design)
    ours = fit_theta(surf, reml)
    theta = np.asarray(theta, dtype=float)
    if theta.shape != ours.theta.shape or not (np.all(np.isfinite(theta)) and math.isfinite(sigma) and sigma > 0):
        return math.nan, ours.deviance
    return surf.deviance_sigma(theta, sigma, reml) - ours.deviance, ours.deviance


def not_at_optimum(design: Design, theta, sigma: float) -> str | None:
    """The warning for a statsmodels fit that is not at an optimum of the criterion, or None."""
    gap, best = deviance_gap(design, theta, sigma)
    if math.isnan(gap):
        return None
    if gap > GAP_TOL:
        crit = "REML criterion" if design.spec.method == "REML" else "deviance"
        return (f"{NOT_AT_OPTIMUM} its {crit} is {gap:.4g} above the optimum ({best:.6f}) found by compare_mm's "
                f"fitter on the same data; treat this fit as not converged.")
    return None
