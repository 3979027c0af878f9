"""Confidence intervals for the variance components of the balanced one-way model, vectorised over replicates.

Model and notation as in :mod:`compare_mm.oneway.closed_forms`: a groups of n, ν₁ = a − 1, ν₂ = a(n − 1),
S₁² = MSA, S₂² = MSE, F = S₁²/S₂², γ = σ_A²/σ_e², ρ = σ_A²/(σ_A² + σ_e²) (the intraclass correlation),
θ₁ = E[MSA] = σ_e² + nσ_A², θ₂ = E[MSE] = σ_e².  Every function takes an
:class:`~compare_mm.oneway.closed_forms.OnewayStats` (or the responses ``(..., a, n)``) and returns arrays
of the replicate shape.  Quantiles: χ²_{ν,p} and F_{ν₁,ν₂,p} are lower-p quantiles; α = 1 − level.

Exact intervals (from the pivots SSE/σ_e² ~ χ²_{ν₂} and F/(1 + nγ) ~ F_{ν₁,ν₂}; Burdick & Graybill 1992,
*Confidence Intervals on Variance Components*, ch. 3, the one-fold nested design; Searle, Casella &
McCulloch 1992, *Variance Components*, sec. 3.5):

* σ_e²:  [SSE/χ²_{ν₂,1−α/2},  SSE/χ²_{ν₂,α/2}]                                   (coverage exactly 1 − α)
* γ:     [L, U] = [(F/F_{ν₁,ν₂,1−α/2} − 1)/n,  (F/F_{ν₁,ν₂,α/2} − 1)/n]
* ρ:     [L/(1 + L), U/(1 + U)]   (ρ = γ/(1 + γ) is increasing in γ)

Negative limits of γ and ρ are set to 0 (Burdick & Graybill's convention), so the interval is closed at 0
and never empty.  For a true γ > 0 this changes no coverage event, and the coverage is exactly 1 − α; at
γ = 0 the truncated interval covers 0 whenever L ≤ 0, i.e. F ≤ F_{ν₁,ν₂,1−α/2}, so its coverage is exactly
1 − α/2 (:func:`exact_interval_coverage`).

Modified large-sample (MLS) interval for σ_A² = (θ₁ − θ₂)/n (Graybill & Wang 1980, JASA 75:869–873, for
the constants G, H; the cross-product terms G₁₂, H₁₂ for a difference of mean squares are those of Ting,
Burdick, Graybill, Jeyaratnam & Lu 1990, J. Statist. Comput. Simul. 35:135–143, as given by Burdick &
Graybill 1992, ch. 3, for σ_A² in the one-fold nested design):

    G_q = 1 − ν_q/χ²_{ν_q,1−α/2},          H_q = ν_q/χ²_{ν_q,α/2} − 1            (q = 1, 2)
    F₁ = F_{ν₁,ν₂,1−α/2},                   F₂ = F_{ν₁,ν₂,α/2}
    G₁₂ = [(F₁ − 1)² − G₁²F₁² − H₂²]/F₁,     H₁₂ = [(1 − F₂)² − H₁²F₂² − G₂²]/F₂
    V_L = G₁²S₁⁴ + H₂²S₂⁴ + G₁₂S₁²S₂²,       V_U = H₁²S₁⁴ + G₂²S₂⁴ + H₁₂S₁²S₂²
    L = (S₁² − S₂² − sqrt(V_L))/n,          U = (S₁² − S₂² + sqrt(V_U))/n,

negative limits set to 0.  G₁₂ and H₁₂ make L = 0 exactly when F = F₁ and U = 0 exactly when F = F₂, so
the interval excludes 0 exactly when the level-α/2 one-sided F tests reject: at σ_A² = 0 its coverage is
exactly 1 − α/2; for σ_A² > 0 it is approximate (close to 1 − α, Burdick & Graybill 1992).  With
``cross_terms=False`` G₁₂ = H₁₂ = 0: the plain Graybill–Wang form, which does not have that property.

Why an open interval cannot cover σ_A² = 0: a posterior interval of σ_A² (its support is (0, ∞)) or any
interval with a strictly positive lower limit has coverage 0 at σ_A² = 0 by construction.  The
truncated intervals here, and profile intervals closed at 0 (:mod:`compare_mm.oneway.profile`), put the
boundary inside the interval when the data are compatible with it, which is why their coverage at
σ_A² = 0 is positive (and, for the F-based intervals, known exactly).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import NoExactValueError
from .closed_forms import OnewayStats, _as_stats, _check_level


@dataclass(frozen=True, eq=False)
class Limits:
    """Lower and upper limits of one interval, arrays over replicates."""

    lower: np.ndarray
    upper: np.ndarray


def _dfs(s: OnewayStats) -> tuple[int, int]:
    return s.a - 1, s.a * (s.n - 1)


def sigma_e2_interval(Y_or_stats, level: float = 0.95) -> Limits:
    """Exact interval for σ_e²: [SSE/χ²_{ν₂,1−α/2}, SSE/χ²_{ν₂,α/2}] (SSE/σ_e² ~ χ²_{ν₂}; module docstring)."""
    from scipy import stats  # deferred: heavy import

    s = _as_stats(Y_or_stats)
    alpha = 1.0 - _check_level(level)
    _, v2 = _dfs(s)
    return Limits(s.sse / stats.chi2.ppf(1 - alpha / 2, v2), s.sse / stats.chi2.ppf(alpha / 2, v2))


def variance_ratio_interval(Y_or_stats, level: float = 0.95) -> Limits:
    """Exact interval for γ = σ_A²/σ_e² from F/(1 + nγ) ~ F_{ν₁,ν₂}, negative limits set to 0:

    L = max(0, (F/F_{ν₁,ν₂,1−α/2} − 1)/n),  U = max(0, (F/F_{ν₁,ν₂,α/2} − 1)/n).

    Coverage exactly 1 − α for γ > 0, 1 − α/2 at γ = 0 (module docstring)."""
    from scipy import stats  # deferred: heavy import

    s = _as_stats(Y_or_stats)
    alpha = 1.0 - _check_level(level)
    v1, v2 = _dfs(s)
    f = s.f
    lo = (f / stats.f.ppf(1 - alpha / 2, v1, v2) - 1.0) / s.n
    hi = (f / stats.f.ppf(alpha / 2, v1, v2) - 1.0) / s.n
    return Limits(np.maximum(lo, 0.0), np.maximum(hi, 0.0))


def icc_interval(Y_or_stats, level: float = 0.95) -> Limits:
    """Exact interval for the intraclass correlation ρ = σ_A²/(σ_A² + σ_e²): the γ interval of
    :func:`variance_ratio_interval` mapped by γ ↦ γ/(1 + γ) (same coverage)."""
    g = variance_ratio_interval(Y_or_stats, level)
    return Limits(g.lower / (1.0 + g.lower), g.upper / (1.0 + g.upper))


def mls_constants(a: int, n: int, level: float = 0.95) -> dict[str, float]:
    """G₁, H₁, G₂, H₂, G₁₂, H₁₂ of the MLS interval for σ_A² (module docstring; Graybill & Wang 1980,
    Ting et al. 1990)."""
    from scipy import stats  # deferred: heavy import

    alpha = 1.0 - _check_level(level)
    v1, v2 = a - 1, a * (n - 1)
    G1 = 1.0 - v1 / stats.chi2.ppf(1 - alpha / 2, v1)
    H1 = v1 / stats.chi2.ppf(alpha / 2, v1) - 1.0
    G2 = 1.0 - v2 / stats.chi2.ppf(1 - alpha / 2, v2)
    H2 = v2 / stats.chi2.ppf(alpha / 2, v2) - 1.0
    F1 = stats.f.ppf(1 - alpha / 2, v1, v2)
    F2 = stats.f.ppf(alpha / 2, v1, v2)
    G12 = ((F1 - 1.0) ** 2 - G1 ** 2 * F1 ** 2 - H2 ** 2) / F1
    H12 = ((1.0 - F2) ** 2 - H1 ** 2 * F2 ** 2 - G2 ** 2) / F2
    return dict(G1=float(G1), H1=float(H1), G2=float(G2), H2=float(H2), G12=float(G12), H12=float(H12),
                F1=float(F1), F2=float(F2))


def mls_sigma_a2_interval(Y_or_stats, level: float = 0.95, cross_terms: bool = True) -> Limits:
    """Modified large-sample interval for σ_A² (module docstring), negative limits set to 0.

    Parameters
    ----------
    Y_or_stats
        Responses ``(..., a, n)`` or their :class:`OnewayStats`.
    level
        Confidence level 1 − α.
    cross_terms
        True (default): the interval with G₁₂, H₁₂ (Ting et al. 1990; Burdick & Graybill 1992, ch. 3);
        False: G₁₂ = H₁₂ = 0 (Graybill & Wang's 1980 form applied to the difference).
    """
    s = _as_stats(Y_or_stats)
    c = mls_constants(s.a, s.n, level)
    k = 1.0 if cross_terms else 0.0
    s1, s2 = s.msa, s.mse
    vl = c["G1"] ** 2 * s1 ** 2 + c["H2"] ** 2 * s2 ** 2 + k * c["G12"] * s1 * s2
    vu = c["H1"] ** 2 * s1 ** 2 + c["G2"] ** 2 * s2 ** 2 + k * c["H12"] * s1 * s2
    d = s1 - s2
    lo = (d - np.sqrt(np.maximum(vl, 0.0))) / s.n
    hi = (d + np.sqrt(np.maximum(vu, 0.0))) / s.n
    return Limits(np.maximum(lo, 0.0), np.maximum(hi, 0.0))


#: interval kind → canonical parameter → function (``mu``'s exact interval is the t interval of fit_oneway)
EXACT_KINDS = ("exact", "mls")
EXACT_PARAMETERS: dict[str, tuple[str, ...]] = {"exact": ("mu", "sigma_e2", "gamma", "icc"),
                                                "mls": ("sigma_a2",)}


def closed_form_intervals(Y_or_stats, kind: str, level: float = 0.95) -> dict[str, Limits]:
    """Every interval of ``kind`` (``"exact"`` or ``"mls"``) by canonical parameter (:data:`EXACT_PARAMETERS`).

    ``exact``: μ by the t interval ȳ ± t_{ν₁,1−α/2} sqrt(MSA/(an)) (exact), σ_e² by χ², γ = σ_A²/σ_e² and
    the ICC by F; ``mls``: σ_A² by the MLS interval.
    """
    from scipy import stats  # deferred: heavy import

    s = _as_stats(Y_or_stats)
    level = _check_level(level)
    if kind == "exact":
        half = stats.t.ppf(0.5 + level / 2, s.a - 1) * np.sqrt(s.msa / (s.a * s.n))
        return {"mu": Limits(s.grand_mean - half, s.grand_mean + half), "sigma_e2": sigma_e2_interval(s, level),
                "gamma": variance_ratio_interval(s, level), "icc": icc_interval(s, level)}
    if kind == "mls":
        return {"sigma_a2": mls_sigma_a2_interval(s, level)}
    raise ValueError(f"Unknown closed-form interval kind {kind!r}; choose exact or mls.")


def exact_interval_coverage(kind: str, parameter: str, a: int, n: int, sigma_a2: float, sigma_e2: float,
                            level: float = 0.95, profile: str = "ml") -> float:
    """Exact coverage probability of an interval, where one exists.

    * ``exact``: μ (t), σ_e² (χ²): 1 − α; γ and the ICC (F, truncated at 0): 1 − α for σ_A² > 0, 1 − α/2 at
      σ_A² = 0 (module docstring).
    * ``mls``, σ_A² = 0: 1 − α/2 (L = 0 ⟺ F ≤ F_{ν₁,ν₂,1−α/2}).
    * ``profile``, σ_A² = 0: the interval (closed at 0) covers 0 ⟺ the likelihood-ratio statistic of
      σ_A² = 0 in the profile's mode (``"reml"`` / ``"ml"``) is ≤ χ²_{1,1−α}, so the coverage is 1 − the
      exact rejection probability of the χ² LRT (:func:`compare_mm.oneway.htests.oneway_rejection_probability`).

    Raises :class:`~compare_mm.errors.NoExactValueError` elsewhere (MLS and profile at σ_A² > 0 are
    approximate).
    """
    level = _check_level(level)
    alpha = 1.0 - level
    zero = float(sigma_a2) == 0.0
    if kind == "exact" and parameter in ("mu", "sigma_e2"):
        return level
    if kind == "exact" and parameter in ("gamma", "icc"):
        return 1.0 - alpha / 2 if zero else level
    if kind == "mls" and parameter == "sigma_a2" and zero:
        return 1.0 - alpha / 2
    if kind == "profile" and parameter == "sigma_a2" and zero:
        from .htests import oneway_rejection_probability
        method = "REML" if str(profile).lower() == "reml" else "ML"
        return 1.0 - oneway_rejection_probability("lrt_chi2", a, n, 0.0, sigma_e2, alpha, method)
    raise NoExactValueError(f"No exact coverage for the {kind} interval of {parameter} here.")


__all__ = ["EXACT_KINDS", "EXACT_PARAMETERS", "Limits", "closed_form_intervals", "exact_interval_coverage",
           "icc_interval", "mls_constants", "mls_sigma_a2_interval", "sigma_e2_interval", "variance_ratio_interval"]
