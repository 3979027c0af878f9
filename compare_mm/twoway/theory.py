"""Exact finite-sample theory of the balanced two-way mixed model (notation of :mod:`compare_mm.twoway.anova`).

With SS_k = λ_k X_k, X_B ~ χ²_{d_B}, X_AB ~ χ²_{d_AB}, X_E ~ χ²_{d_E} independent:

* F tests.  F_AB = MS_AB/MS_E = (λ_AB/λ_E) F_{d_AB, d_E} and F_B = MS_B/MS_AB = (λ_B/λ_AB) F_{d_B, d_AB}:
  at level α the test of σ_AB² = 0 rejects with probability 1 − F_{d_AB,d_E}(q λ_E/λ_AB), q the
  F_{d_AB,d_E} (1 − α) quantile (its size α at σ_AB² = 0), and likewise for σ_B² with (d_B, d_AB) and
  λ_AB/λ_B — a scaled central F, so size and power are closed forms (Searle, Casella & McCulloch 1992,
  sec. 4.6 f).
* ANOVA estimators σ̂_AB² = (MS_AB − MS_E)/n and σ̂_B² = (MS_B − MS_AB)/(tn) are unbiased and negative with
  probabilities F_{d_AB,d_E}(λ_E/λ_AB) and F_{d_B,d_AB}(λ_AB/λ_B).
* Treatment contrasts ȳ_i.. − ȳ_1.. ~ N(α_i − α_1, 2λ_AB/(bn)) independently of MS_AB, so the t interval
  with MS_AB on d_AB df covers exactly at its level, and the Wald (normal-quantile) interval with the same
  standard error covers with probability 2 T_{d_AB}(z_{1−α/2}) − 1.
* REML and ML estimates (antitonic regression, :mod:`compare_mm.twoway.anova`).  σ̂_AB² = 0 exactly when
  v_E > min(v_AB, Av(B, AB)) and σ̂_B² = 0 exactly when v_B < max(v_AB, Av(AB, E)), v_k = SS_k/w_k, Av the
  w-weighted average of the pooled strata.  Each probability is a two-dimensional integral over
  independent χ² variables, computed by adaptive quadrature over the outer variable (its probability scale)
  and Gauss–Legendre over a finite inner interval on which the integrand is smooth.  These are exact values
  (to the quadrature's ~1e-9), for every true (σ_B², σ_AB²).
* Where the REML/ML estimate is not the truncated ANOVA estimate (a component on its boundary pools two
  strata and so changes the other estimates), the moments of σ̂ (bias) and the coverage of intervals built
  on λ̂_AB are three-dimensional integrals over pooled strata that this module does not compute: it raises
  :class:`~compare_mm.errors.NoExactValueError` with that reason.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from scipy import special

from ..errors import NoExactValueError
from .anova import weights

_GL_X, _GL_W = np.polynomial.legendre.leggauss(64)


def strata(t: int, b: int, n: int, sigma_b2: float, sigma_ab2: float, sigma_e2: float
           ) -> tuple[tuple[int, int, int], tuple[float, float, float]]:
    """((d_B, d_AB, d_E), (λ_B, λ_AB, λ_E)): the degrees of freedom and expected mean squares."""
    lam_e = float(sigma_e2)
    lam_ab = lam_e + n * float(sigma_ab2)
    lam_b = lam_ab + t * n * float(sigma_b2)
    return (b - 1, (t - 1) * (b - 1), t * b * (n - 1)), (lam_b, lam_ab, lam_e)


def _check(component: str) -> None:
    if component not in ("sigma_b2", "sigma_ab2"):
        raise ValueError(f"component must be sigma_b2 or sigma_ab2, got {component!r}.")


def f_test_power(component: str, t: int, b: int, n: int, sigma_b2: float, sigma_ab2: float, sigma_e2: float,
                 alpha: float = 0.05) -> float:
    """P(the exact F test of ``component`` = 0 rejects at level α): its size at 0, its power otherwise."""
    _check(component)
    (d_b, d_ab, d_e), (l_b, l_ab, l_e) = strata(t, b, n, sigma_b2, sigma_ab2, sigma_e2)
    if component == "sigma_ab2":
        q = special.fdtri(d_ab, d_e, 1.0 - alpha)
        return float(special.fdtrc(d_ab, d_e, q * l_e / l_ab))
    q = special.fdtri(d_b, d_ab, 1.0 - alpha)
    return float(special.fdtrc(d_b, d_ab, q * l_ab / l_b))


def anova_negative_probability(component: str, t: int, b: int, n: int, sigma_b2: float, sigma_ab2: float,
                               sigma_e2: float) -> float:
    """P(the ANOVA estimate of ``component`` < 0) (= P(≤ 0): the mean squares are continuous)."""
    _check(component)
    (d_b, d_ab, d_e), (l_b, l_ab, l_e) = strata(t, b, n, sigma_b2, sigma_ab2, sigma_e2)
    if component == "sigma_ab2":
        return float(special.fdtr(d_ab, d_e, l_e / l_ab))
    return float(special.fdtr(d_b, d_ab, l_ab / l_b))


def contrast_coverage(kind: str, t: int, b: int, n: int, level: float) -> float:
    """Exact coverage of a treatment contrast's interval with standard error sqrt(2 MS_AB/(bn)): ``t`` (the
    t_{d_AB} quantile) covers at ``level``; ``wald`` (the normal quantile) with 2 T_{d_AB}(z) − 1."""
    d_ab = (t - 1) * (b - 1)
    if kind == "t":
        return float(level)
    if kind == "wald":
        z = float(special.ndtri(0.5 + level / 2))
        return float(2.0 * special.stdtr(d_ab, z) - 1.0)
    raise NoExactValueError(f"no exact coverage for interval kind {kind!r} of a treatment contrast.")


def _chi2_pdf(d: int):
    """The χ²_d density (scipy.special only: the study summary must not import scipy.stats)."""
    c = -0.5 * d * np.log(2.0) - special.gammaln(0.5 * d)

    def pdf(x):
        x = np.asarray(x, dtype=float)
        with np.errstate(divide="ignore", invalid="ignore"):
            out = np.exp(c + (0.5 * d - 1.0) * np.log(x) - 0.5 * x)
        return np.where(x > 0, out, 0.0 if d > 2 else (0.5 if d == 2 else np.inf))

    return pdf


def _inner(lo: np.ndarray, hi: np.ndarray, fn) -> np.ndarray:
    """∫_lo^hi fn(x) dx by 64-point Gauss–Legendre per row (lo, hi arrays of the same shape)."""
    half = 0.5 * (hi - lo)
    x = (lo + half)[..., None] + half[..., None] * _GL_X
    return half * (fn(x) * _GL_W).sum(-1)


@lru_cache(maxsize=4096)
def likelihood_zero_probability(component: str, method: str, t: int, b: int, n: int, sigma_b2: float,
                                sigma_ab2: float, sigma_e2: float) -> float:
    """P(the REML or ML estimate of ``component`` is exactly 0) (module docstring).

    σ_AB²: 1 − P(X_AB λ_AB > w_AB m, X_B λ_B + X_AB λ_AB > (w_B + w_AB) m) with m = λ_E X_E / w_E;
    σ_B²:  1 − P(X_AB λ_AB < w_AB m, X_AB λ_AB + X_E λ_E < (w_AB + w_E) m) with m = λ_B X_B / w_B.
    """
    from scipy import integrate  # deferred: scipy.integrate is a heavy import that summarise/report never need
    _check(component)
    (d_b, d_ab, d_e), (l_b, l_ab, l_e) = strata(t, b, n, sigma_b2, sigma_ab2, sigma_e2)
    w_b, w_ab, w_e = weights(t, b, n, method)
    pdf_ab = _chi2_pdf(d_ab)

    if component == "sigma_ab2":
        def given(u: float) -> float:  # P(σ̂_AB² > 0 | X_E at its u-quantile)
            m = l_e * special.chdtri(d_e, 1.0 - u) / w_e
            a_lo, a_hi = w_ab * m / l_ab, (w_b + w_ab) * m / l_ab   # X_AB range where the B condition binds
            tail = special.chdtrc(d_ab, a_hi)
            mid = _inner(np.asarray(a_lo), np.asarray(a_hi),
                         lambda a: pdf_ab(a) * special.chdtrc(d_b, np.maximum((w_b + w_ab) * m - l_ab * a, 0) / l_b))
            return float(tail + mid)
    else:
        def given(u: float) -> float:  # P(σ̂_B² > 0 | X_B at its u-quantile)
            m = l_b * special.chdtri(d_b, 1.0 - u) / w_b
            a_hi = w_ab * m / l_ab
            return float(_inner(np.asarray(0.0), np.asarray(a_hi),
                                lambda a: pdf_ab(a) * special.chdtr(d_e, np.maximum((w_ab + w_e) * m - l_ab * a, 0)
                                                                    / l_e)))
    val, _ = integrate.quad(given, 0.0, 1.0, epsabs=1e-12, epsrel=1e-10, limit=200)
    return float(min(max(1.0 - val, 0.0), 1.0))


def likelihood_moments_unavailable(parameter: str, method: str) -> NoExactValueError:
    """The reason a REML/ML moment or interval coverage has no exact value here (module docstring)."""
    return NoExactValueError(
        f"no exact {method} value for {parameter}: the {method} estimate is the truncated ANOVA estimate only "
        "while both ANOVA estimates are ≥ 0; a component on its boundary pools two strata and changes the "
        "other estimates, and that distribution is not computed here.")


__all__ = ["anova_negative_probability", "contrast_coverage", "f_test_power", "likelihood_moments_unavailable",
           "likelihood_zero_probability", "strata"]
