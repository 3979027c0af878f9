"""Exact values beyond the balanced one-way closed forms: one variance component in general, oracle shrinkage.

Called by :func:`compare_mm.study.exact.exact_value` and
:func:`compare_mm.study.summarise_inference.exact_rejection` before their balanced one-way paths.

=================  ===============================  ==================================================
metric             conditions / fits                exact value
=================  ===============================  ==================================================
boundary_rate      unbalanced one-way; frequentist  P(σ̂_A² = 0) of the global maximiser:
                   REML / ML                        Imhof's P(score at 0 ≤ 0) minus a simulated
                                                    correction for a second interior maximum (MCSE
                                                    ~1e-4), :func:`compare_mm.inference.onevc.boundary_probability_global`
underestimation_   unbalanced one-way; frequentist  P(λ̂ < λ₀), λ̂ = σ̂_A²/σ̂_e², λ₀ = σ_A²/σ_e² > 0, of the
rate (sigma_a2)    REML / ML                        global maximiser: Imhof's P(score at λ₀ ≤ 0) plus a
                                                    simulated correction for draws with several local
                                                    maxima (0–4e-4, MCSE ≤ 6e-5 from the same 100,000
                                                    draws),
                                                    :func:`compare_mm.inference.onevc.underestimation_probability_global`
size_/power_       unbalanced one-way; lrt_chi2,    rejection probability at λ₀ = σ_A²/σ_e² from
<test>             lrt_chibar2 (fit's criterion),   100,000 spectral draws of the (R)LRT (MCSE ≤ 0.0016),
                   exact_rlrt (REML)                :func:`compare_mm.inference.onevc.rejection_probability`
shrinkage_factor,  every fit of a one-way           at the true G and σ²: the expected pooled slope, MSE
mse_blup,          (balanced or not) or random-     of the oracle BLUPs and of the raw effects, and their
mse_raw,           slope condition (u_a, u_b)       ratio (closed forms,
mse_ratio                                           :mod:`compare_mm.inference.oracle_shrinkage`)
=================  ===============================  ==================================================

The balanced one-way ``shrinkage_factor`` stays with :mod:`compare_mm.oneway.theory` (the same value).
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any


NAN = float("nan")
#: fits the one-component theory covers (compare_mm.inference.ONEVC_METHODS, kept here so the summary does not
#: import it — and scipy.stats — for studies that need none of it)
ONEVC_METHODS = ("REML", "ML")
GROUP_METRICS = ("shrinkage_factor", "mse_blup", "mse_raw", "mse_ratio")
EFFECTS = {"u_a": 0, "u_b": 1}
ONEVC_TESTS = ("lrt_chi2", "lrt_chibar2", "exact_rlrt")
#: spectral draws behind a simulated exact value (one simulation per condition and criterion, cached)
NSIM = 100_000


def _unbalanced(model: str, cond: dict[str, Any]) -> bool:
    return model == "oneway" and isinstance(cond.get("per_group"), list)


@lru_cache(maxsize=1024)
def _oneway_group(sizes: tuple, sa2: float, se2: float, metric: str) -> float:
    from ..inference.oracle_shrinkage import oneway_oracle  # deferred: compare_mm.inference loads scipy.stats

    o = oneway_oracle(sizes, sa2, se2)
    return float({"shrinkage_factor": o.slope, "mse_blup": o.mse_blup, "mse_raw": o.mse_raw,
                  "mse_ratio": o.mse_ratio}[metric][0])


@lru_cache(maxsize=1024)
def _slope_group(x: tuple, groups: int, sa2: float, sb2: float, rho: float, se2: float, metric: str,
                 k: int) -> float:
    from ..inference.oracle_shrinkage import random_slope_oracle  # deferred: as above

    o = random_slope_oracle(x, groups, sa2, sb2, rho, se2)
    return float({"shrinkage_factor": o.slope, "mse_blup": o.mse_blup, "mse_raw": o.mse_raw,
                  "mse_ratio": o.mse_ratio}[metric][k])


def _sizes(cond: dict[str, Any]) -> tuple:
    s = cond["per_group"]
    return tuple(int(v) for v in s) if isinstance(s, list) else (int(s),) * int(cond["groups"])


@lru_cache(maxsize=1024)
def _boundary(sizes: tuple, lam: float, method: str) -> float:
    from ..inference import onevc  # deferred: it imports scipy.stats, which the summary does not need otherwise

    return onevc.boundary_probability_global(onevc.oneway_spectrum(sizes), lam, method, NSIM).value


@lru_cache(maxsize=1024)
def _underestimation(sizes: tuple, lam: float, method: str) -> float:
    from ..inference import onevc  # deferred: as above

    return onevc.underestimation_probability_global(onevc.oneway_spectrum(sizes), lam, method, NSIM).value


def general_exact_value(model: str, cond: dict[str, Any], posterior: bool, method: str, parameter: str,
                        metric: str) -> float | None:
    """The exact value of the table above, or None where this module has none (the caller's path applies)."""
    if metric in GROUP_METRICS and parameter in EFFECTS:
        if model == "oneway" and parameter == "u_a":
            if metric == "shrinkage_factor" and not _unbalanced(model, cond):
                return None
            return _oneway_group(_sizes(cond), float(cond["sigma_a2"]), float(cond["sigma_e2"]), metric)
        if model == "random_slope":
            return _slope_group(tuple(float(v) for v in cond["x"]), int(cond["groups"]), float(cond["sigma_a2"]),
                                float(cond["sigma_b2"]), float(cond["rho"]), float(cond["sigma_e2"]), metric,
                                EFFECTS[parameter])
        return None
    if _unbalanced(model, cond) and metric in ("boundary_rate", "underestimation_rate") \
            and parameter == "sigma_a2":
        m = str(method).upper()
        if posterior or m not in ONEVC_METHODS:
            return NAN
        lam = float(cond["sigma_a2"]) / float(cond["sigma_e2"])
        if metric == "underestimation_rate":
            return _underestimation(_sizes(cond), lam, m) if lam > 0.0 else NAN
        return _boundary(_sizes(cond), lam, m)
    return None


def general_exact_rejection(test: str, model: str, cond: dict[str, Any], method: str, parameter: str,
                            level: float) -> float | None:
    """Exact rejection probability of a test of σ_A² = 0 in an unbalanced one-way condition (table above);
    None where this module has none."""
    if not _unbalanced(model, cond) or parameter != "sigma_a2":
        return None
    m = str(method).upper()
    if test not in ONEVC_TESTS or (test != "exact_rlrt" and m not in ONEVC_METHODS):
        return NAN
    return _rejection(test, _sizes(cond), float(cond["sigma_a2"]) / float(cond["sigma_e2"]),
                      m if m in ONEVC_METHODS else "REML", round(1.0 - float(level), 12))


@lru_cache(maxsize=1024)
def _rejection(test: str, sizes: tuple, lam: float, method: str, alpha: float) -> float:
    from ..inference import onevc  # deferred: it imports scipy.stats, which the summary does not need otherwise

    return onevc.rejection_probability(onevc.oneway_spectrum(sizes), lam, test, method, alpha, NSIM).value


__all__ = ["general_exact_rejection", "general_exact_value"]
