"""Exact values beside Monte Carlo figures: from :mod:`compare_mm.oneway.theory` for balanced one-way conditions
(the table below), from :mod:`compare_mm.study.exact_general` for unbalanced one-way boundary
probabilities and the oracle shrinkage and MSE of every one-way and random-slope condition, and from
:mod:`compare_mm.study.exact_twoway` for balanced two-way conditions.

=================  ==================================  =============================================
metric             fits                                 exact value
=================  ==================================  =============================================
boundary_rate      non-posterior REML / ML / ANOVA      P(σ̂_A² = 0) (ANOVA: P(σ̂_A² ≤ 0))
bias (sigma_a2)    non-posterior REML / ML / ANOVA      E[σ̂_A²] − σ_A² (quadrature; ANOVA: 0)
bias (mu)          non-posterior REML / ML / ANOVA      0 (ȳ is unbiased)
coverage (mu)      t interval (any method)              the nominal level (exact t pivot)
coverage (mu)      Wald interval, REML / ML / ANOVA     quadrature of P(χ²₁ ≤ z²λ̂/λ)
coverage           ``exact`` kind (mu, sigma_e2)        the nominal level (t and χ² pivots)
coverage           ``exact`` kind (gamma, icc)          the nominal level; 1 − α/2 at σ_A² = 0 (closed at 0)
coverage (σ_A²)    ``mls`` kind, at σ_A² = 0            1 − α/2
coverage (σ_A²)    ``profile`` kind, at σ_A² = 0        1 − P(χ² LRT of σ_A² = 0 rejects), the profile's
                                                        mode (``profile-reml`` / ``profile-ml`` here)
underestimation_   non-posterior REML / ML / ANOVA      P(γ̂ < γ), γ̂ = σ̂_A²/σ̂_ε², γ = σ_A²/σ_ε² > 0: the
rate (sigma_a2)                                         F cdf at 1/k (k = 1 REML / ANOVA, (a − 1)/a ML)
shrinkage_factor   every fit (u_a)                      nσ_A²/(σ_e² + nσ_A²) at the true variances
rejection_rate     F-test                               size α at σ_A² = 0, power otherwise
=================  ==================================  =============================================
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any
from ..errors import NoExactValueError
from ..oneway import theory
from ..oneway.intervals import exact_interval_coverage
from . import exact_twoway
from .exact_general import general_exact_value

NAN = float("nan")
_FREQ = ("REML", "ML", "ANOVA")


@lru_cache(maxsize=4096)
def _cached(metric: str, parameter: str, method: str, a: int, n: int, sa2: float, se2: float, level: float,
            ikind: str) -> float:
    if metric == "rejection_rate":
        return float(theory.f_test_power(a, n, sa2, se2, alpha=1 - level))
    if metric == "shrinkage_factor" and parameter == "u_a":
        return float(theory.shrinkage_factor(n, sa2, se2))
    if method not in _FREQ:
        return NAN
    if metric == "coverage" and (ikind in ("exact", "mls") or ikind.startswith("profile-")):
        kind, _, mode = ikind.partition("-")
        return float(exact_interval_coverage(kind, parameter, a, n, sa2, se2, level, profile=mode or "ml"))
    if metric == "boundary_rate" and parameter == "sigma_a2":
        return float(theory.boundary_probability(a, n, sa2, se2, method))
    if metric == "underestimation_rate" and parameter == "sigma_a2":
        if sa2 <= 0.0:
            return NAN
        return float(theory.variance_ratio_cdf(sa2 / se2, a, n, sa2, se2, method))
    if metric == "bias" and parameter == "sigma_a2":
        return float(theory.expected_sigma_a2(a, n, sa2, se2, method)) - sa2
    if metric == "bias" and parameter == "mu":
        return 0.0
    if metric == "coverage" and parameter == "mu":
        if ikind == "t":
            return float(theory.mu_t_interval_coverage(level))
        if ikind == "wald":
            return float(theory.mu_wald_coverage(a, n, sa2, se2, method, level))
    return NAN


def exact_value(model: str, cond: dict[str, Any], posterior: bool, method: str, parameter: str, metric: str,
                level: float, ikind: str = "") -> float:
    """The exact value of ``metric`` for one (condition, fit, parameter), or NaN where none exists.

    ``posterior`` is the fit's backend capability (a posterior has an exact shrinkage factor only).  The
    theory's :class:`~compare_mm.errors.NoExactValueError` leaves the cell NaN; any other exception is a
    bug in the theory and propagates.  Two-way conditions: :mod:`compare_mm.study.exact_twoway`.
    """
    if model == "two_way":
        return exact_twoway.exact_value(cond, posterior, method, parameter, metric, level, ikind)
    general = general_exact_value(model, cond, posterior, method, parameter, metric)
    if general is not None:
        return general
    if model != "oneway" or isinstance(cond.get("per_group"), list) or "per_group" not in cond:
        return NAN
    if posterior and metric != "shrinkage_factor":
        return NAN
    try:
        return _cached(metric, parameter, str(method).upper(), int(cond["groups"]), int(cond["per_group"]),
                       float(cond["sigma_a2"]), float(cond["sigma_e2"]), float(level), ikind)
    except NoExactValueError:
        return NAN


__all__ = ["exact_value"]
