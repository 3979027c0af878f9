"""Exact values beside the Monte Carlo figures of balanced two-way conditions, from :mod:`compare_mm.twoway.theory`.

=================  ===========================  =====================================================
metric             fits                         exact value
=================  ===========================  =====================================================
rejection_rate     F-test (sigma_ab2, sigma_b2) size α at 0, power otherwise (scaled central F)
boundary_rate      ANOVA                        P(σ̂ < 0) of sigma_b2, sigma_ab2 (F cdf)
boundary_rate      REML, ML                     P(σ̂ = 0) of sigma_b2, sigma_ab2 (antitonic regression;
                                                two-dimensional quadrature)
bias               every frequentist fit        0 for mu and the contrasts (ȳ_i.. − ȳ_1.. whatever the
                                                variances); ANOVA: 0 for every variance component
coverage           ANOVA, contrasts             t: the level (exact pivot); wald: 2 T_{d_AB}(z) − 1
=================  ===========================  =====================================================

REML and ML moments of the variances and coverage of intervals built on them have no exact value here
(a component on its boundary changes the other estimates): the cell is left empty.  So are unbalanced
conditions and posteriors.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from ..errors import NoExactValueError
from ..twoway import theory

NAN = float("nan")
_VARIANCES = ("sigma_b2", "sigma_ab2", "sigma_e2")


@lru_cache(maxsize=4096)
def _cached(metric: str, parameter: str, method: str, t: int, b: int, n: int, sb2: float, sab2: float,
            se2: float, level: float, ikind: str) -> float:
    args = (t, b, n, sb2, sab2, se2)
    if metric == "rejection_rate" and method == "F" and parameter in ("sigma_b2", "sigma_ab2"):
        return theory.f_test_power(parameter, *args, alpha=1 - level)
    if method not in ("REML", "ML", "ANOVA"):
        return NAN
    if metric == "boundary_rate" and parameter in ("sigma_b2", "sigma_ab2"):
        if method == "ANOVA":
            return theory.anova_negative_probability(parameter, *args)
        return theory.likelihood_zero_probability(parameter, method, *args)
    if metric == "bias":
        if parameter == "mu" or parameter.startswith("trt"):
            return 0.0
        if parameter in _VARIANCES:
            if method == "ANOVA":
                return 0.0
            raise theory.likelihood_moments_unavailable(parameter, method)
    if metric == "coverage" and parameter.startswith("trt"):
        if method == "ANOVA":
            return theory.contrast_coverage(ikind, t, b, n, level)
        raise theory.likelihood_moments_unavailable(parameter, method)
    return NAN


def exact_value(cond: dict[str, Any], posterior: bool, method: str, parameter: str, metric: str, level: float,
                ikind: str = "") -> float:
    """The exact value of ``metric`` for one (balanced two-way condition, fit, parameter), or NaN."""
    if posterior or isinstance(cond.get("per_cell"), list) or "per_cell" not in cond:
        return NAN
    try:
        return _cached(metric, parameter, str(method).upper(), int(cond["treatments"]), int(cond["blocks"]),
                       int(cond["per_cell"]), float(cond["sigma_b2"]), float(cond["sigma_ab2"]),
                       float(cond["sigma_e2"]), float(level), ikind)
    except NoExactValueError:
        return NAN


__all__ = ["exact_value"]
