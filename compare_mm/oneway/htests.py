"""Tests of σ_A² = 0 in the balanced one-way model in closed form, vectorised over replicates (for studies),
and their exact rejection probabilities.

Model and notation as in :mod:`compare_mm.oneway.closed_forms`: a groups of n, N = an, ν₁ = a − 1, ν₂ = a(n − 1),
F = MSA/MSE, γ = σ_A²/σ_e²; F/(1 + nγ) ~ F_{ν₁,ν₂} exactly.

Profiling the closed-form likelihoods (σ̂₀² = SST/(N − 1) under H₀ for REML, SST/N for ML) and writing
SSA = ν₁F·MSE, SSE = ν₂MSE, every scale factor cancels and the LRT statistics are functions of F alone:

    REML:  T_R(F) = (N − 1) log((ν₁F + ν₂)/(N − 1)) − ν₁ log F           for F > 1,           else 0,
    ML:    T_M(F) = N log((ν₁F + ν₂)/N) − a log(ν₁F/a)                     for F > a/ν₁,        else 0,

with dT_R/dF = ν₁ν₂(F − 1)/(F(ν₁F + ν₂)) > 0 and dT_M/dF = ν₂(ν₁F − a)/(F(ν₁F + ν₂)) > 0 on those
ranges.  Hence (i) the REML LRT (the RLRT) is a strictly increasing function of F where it is positive,
so its exact finite-sample null distribution — what :func:`compare_mm.inference.rlrt.exact_rlrt`
simulates after Crainiceanu & Ruppert (2004, J. R. Stat. Soc. B 66, 165–185), who note the restricted
likelihood depends on the data only through the F statistic in this model — gives the p-value
P(T_R ≥ t) = P(F_{ν₁,ν₂} ≥ F) exactly for t > 0 (and 1 for t = 0, RLRsim's convention); no simulation is
needed.  (ii) "reject when T > c" is "reject when F > F*(c)", F*(c) the root of T(F) = c, so its exact
rejection probability is P(F_{ν₁,ν₂} > F*(c)/(1 + nγ)) — size at γ = 0, power otherwise.  For the naive
χ²₁ test c is the χ²₁ quantile at 1 − α; for the ½χ²₀ + ½χ²₁ mixture (Self & Liang 1987) the χ²₁ quantile
at 1 − 2α.
"""

from __future__ import annotations

import numpy as np

from ..errors import NoExactValueError
from ..null_distributions import chi2_pvalue, chibar2_critical, chibar2_pvalue, lrt_method
from .closed_forms import OnewayStats, fit_oneway, oneway_loglik, oneway_stats

ONEWAY_TESTS = ("f_test", "lrt_chi2", "lrt_chibar2", "exact_rlrt")



def oneway_lrt(Y_or_stats, method: str = "REML") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Vectorised LRT of σ_A² = 0 for balanced one-way replicates (closed forms, for studies).

    Parameters
    ----------
    Y_or_stats
        Responses ``(..., a, n)`` or their :class:`compare_mm.oneway.closed_forms.OnewayStats`.
    method
        ``"ML"`` or ``"REML"``.

    Returns
    -------
    (statistic, p_chi2, p_chibar2)
        T = 2(ℓ(σ̂_A², σ̂_e²) − ℓ(0, σ̂₀²)), σ̂₀² = (SSE + SSA)/(N − 1) (REML) or /N (ML), floored
        at 0, and its naive χ²₁ and ½χ²₀ + ½χ²₁ p-values, arrays over the replicates.
    """
    method = lrt_method(method)
    s = Y_or_stats if isinstance(Y_or_stats, OnewayStats) else oneway_stats(Y_or_stats)
    full = fit_oneway(s, method)
    s0 = (s.sse + s.ssa) / (s.a * s.n - (1 if method == "REML" else 0))
    null = oneway_loglik(s, np.zeros(s.shape), s0, method)
    T = np.maximum(2.0 * (full.loglik - null), 0.0)
    return T, chi2_pvalue(T, 1), chibar2_pvalue(T, 1)


def oneway_test_statistics(stats_, method: str, tests) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """``{test: (statistic, p_value)}`` for the requested closed-form tests, arrays over replicates.

    Parameters
    ----------
    stats_
        :class:`compare_mm.oneway.closed_forms.OnewayStats` of the replicates.
    method
        The fit's method: ``"REML"`` or ``"ML"`` for the LRTs (the exact RLRT is always REML-based).
    tests
        Names among :data:`ONEWAY_TESTS`.

    Returns
    -------
    dict
        f_test: (F, P(F_{ν₁,ν₂} ≥ F)); lrt_chi2 / lrt_chibar2: (T, naive / mixture p) of the fit's
        criterion (:func:`compare_mm.inference.lrt.oneway_lrt`); exact_rlrt: (T_R, P(F_{ν₁,ν₂} ≥ F) if
        T_R > 0 else 1) — the exact p-value (module docstring).
    """
    from scipy import stats  # deferred: heavy import

    out: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    F = stats_.f
    p_f = stats.f.sf(F, stats_.a - 1, stats_.a * (stats_.n - 1))
    if "f_test" in tests:
        out["f_test"] = (F, p_f)
    if "lrt_chi2" in tests or "lrt_chibar2" in tests:
        T, p1, p2 = oneway_lrt(stats_, method)
        out["lrt_chi2"], out["lrt_chibar2"] = (T, p1), (T, p2)
    if "exact_rlrt" in tests:
        T = oneway_lrt(stats_, "REML")[0]
        out["exact_rlrt"] = (T, np.where(T > 0.0, p_f, 1.0))
    return {k: v for k, v in out.items() if k in tests}


def lrt_as_function_of_f(F, a: int, n: int, method: str) -> np.ndarray:
    """T_R(F) (``"REML"``) or T_M(F) (``"ML"``) from the module docstring, 0 below the boundary."""
    F = np.asarray(F, dtype=float)
    N, v1, v2 = a * n, a - 1, a * (n - 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        if method == "REML":
            T = (N - 1) * np.log((v1 * F + v2) / (N - 1)) - v1 * np.log(F)
            return np.where(F > 1.0, np.maximum(T, 0.0), 0.0)
        if method == "ML":
            T = N * np.log((v1 * F + v2) / N) - a * np.log(v1 * F / a)
            return np.where(F > a / v1, np.maximum(T, 0.0), 0.0)
    raise NoExactValueError(f"The likelihood-ratio test needs method 'REML' or 'ML', not {method!r}.")


def f_threshold(crit: float, a: int, n: int, method: str) -> float:
    """F*(c): the F above which T(F) > c (c > 0), by Brent's method on the increasing branch."""
    from scipy import optimize  # deferred: heavy import

    lo = 1.0 if method == "REML" else a / (a - 1)
    g = lambda F: float(lrt_as_function_of_f(F, a, n, method)) - crit  # noqa: E731
    hi = 2.0 * lo
    while g(hi) < 0:
        hi *= 2.0
    return float(optimize.brentq(g, lo, hi, xtol=1e-13, rtol=1e-13))


def oneway_rejection_probability(test: str, a: int, n: int, sigma_a2: float, sigma_e2: float, alpha: float,
                                 method: str = "REML") -> float:
    """Exact P(p-value < α) of a closed-form test of σ_A² = 0 (size at σ_A² = 0, power otherwise).

    ``f_test``: P(F_{ν₁,ν₂} > F_{1−α}/(1 + nγ)).  ``exact_rlrt``: rejects when F > max(F_{1−α}, 1) (its p-value
    is the F test's for T_R > 0, i.e. F > 1; 1 otherwise).  ``lrt_chi2`` / ``lrt_chibar2``: F* from
    :func:`f_threshold` at the χ²₁ quantile at 1 − α / 1 − 2α, with the fit's ``method``.
    """
    from scipy import special  # not scipy.stats (a heavy import): the same special functions

    v1, v2 = a - 1, a * (n - 1)
    scale = 1.0 + n * float(sigma_a2) / float(sigma_e2)
    f_crit = float(special.fdtri(v1, v2, 1.0 - alpha))  # scipy.stats.f.isf, bit for bit
    if test == "f_test":
        threshold = f_crit
    elif test == "exact_rlrt":
        threshold = max(f_crit, 1.0)
    elif test in ("lrt_chi2", "lrt_chibar2"):
        crit = float(special.chdtri(1, alpha)) if test == "lrt_chi2" else chibar2_critical(alpha, 1)  # chi2.isf
        threshold = f_threshold(crit, a, n, str(method).upper())
    else:
        raise NoExactValueError(f"No exact rejection probability for test {test!r}.")
    return float(special.fdtrc(v1, v2, threshold / scale))  # scipy.stats.f.sf, bit for bit


__all__ = ["ONEWAY_TESTS", "f_threshold", "lrt_as_function_of_f", "oneway_rejection_probability",
           "oneway_test_statistics"]
