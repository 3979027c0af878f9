"""Exact results for the balanced one-way model, shown beside Monte Carlo figures.

Model and notation as in :mod:`compare_mm.oneway.closed_forms`: a groups of n, γ = σ_A²/σ_e², λ = σ_e² + nσ_A²,
N = an, ν₁ = a − 1, ν₂ = a(n − 1).  Everything below follows from three independent pivots

    SSA/λ ~ χ²_{ν₁},   SSE/σ_e² ~ χ²_{ν₂},   (ȳ − μ)/sqrt(λ/N) ~ N(0, 1),

so MSA/MSE ~ (1 + nγ) F_{ν₁,ν₂}.  Functions broadcast over array arguments.  Results marked "closed
form" are distribution functions evaluated directly; those marked "quadrature" are one- or
two-dimensional integrals of such functions by a fixed 256-point Gauss–Legendre rule in log scale
(accurate to ~1e-12, checked against adaptive quadrature in the tests) — not simulations.
"""

from __future__ import annotations

import functools

import numpy as np
from scipy import special

from ..errors import NoExactValueError
from .closed_forms import ONEWAY_METHODS, f_test_power
from .gauss_legendre import NODES, legendre_rule

def _method(method: str) -> str:
    m = str(method).upper()
    if m not in ONEWAY_METHODS:
        raise NoExactValueError(f"Unknown one-way method {method!r}; choose one of {', '.join(ONEWAY_METHODS)}.")
    return m


def _gamma(sigma_a2, sigma_e2) -> np.ndarray:
    return np.asarray(sigma_a2, dtype=float) / np.asarray(sigma_e2, dtype=float)


def _ml_factor(a) -> np.ndarray:
    """k with σ̂_A²(ML) = (k·MSA − MSE)/n: k = (a − 1)/a (ML) — ((1 − 1/a)MSA = SSA/a)."""
    a = np.asarray(a, dtype=float)
    return (a - 1.0) / a


# ----------------------------------------------------------------------------- closed forms
def boundary_probability(a, n, sigma_a2, sigma_e2, method: str) -> np.ndarray:
    """P(σ̂_A² = 0) (REML, ML) or P(σ̂_A² ≤ 0) (ANOVA) — closed form.

    REML: σ̂_A² = 0 ⟺ MSA ≤ MSE ⟺ F_{ν₁,ν₂} ≤ 1/(1 + nγ)                → cdf at 1/(1 + nγ).
    ML:   σ̂_A² = 0 ⟺ SSA/a ≤ MSE ⟺ F_{ν₁,ν₂} ≤ a/((a − 1)(1 + nγ))    → cdf at a/((a − 1)(1 + nγ)).
    ANOVA: (MSA − MSE)/n ≤ 0 is the REML event (equality has probability 0).
    """
    m = _method(method)
    a, n = np.asarray(a), np.asarray(n)
    x = 1.0 / (1.0 + n * _gamma(sigma_a2, sigma_e2))
    if m == "ML":
        x = x / _ml_factor(a)
    return special.fdtr(a - 1, a * (n - 1), x)  # = scipy.stats.f.cdf(x, a − 1, a(n − 1)), bit for bit


def shrinkage_factor(n, sigma_a2, sigma_e2) -> np.ndarray:
    """The BLUP shrinkage factor w = nσ_A²/(σ_e² + nσ_A²) at the true variances — closed form.

    E[a_i | ȳ_i − μ] = w(ȳ_i − μ): the regression slope of the group effect on the group-mean deviation.
    """
    n = np.asarray(n, dtype=float)
    sa2 = np.asarray(sigma_a2, dtype=float)
    return n * sa2 / (np.asarray(sigma_e2, dtype=float) + n * sa2)


def mu_t_interval_coverage(level) -> np.ndarray:
    """Coverage of the t interval ȳ ± t_{a−1,(1+level)/2} sqrt(MSA/(an)): exactly ``level``.

    (ȳ − μ)/sqrt(λ/N) ~ N(0, 1) is independent of SSA/λ ~ χ²_{a−1}, so
    (ȳ − μ)/sqrt(MSA/N) = Z / sqrt(χ²_{a−1}/(a − 1)) ~ t_{a−1} for every σ_A², σ_e² — the interval is
    exact whatever the variance components are (including σ_A² = 0).
    """
    return np.asarray(level, dtype=float).copy()


def variance_ratio_cdf(c, a, n, sigma_a2, sigma_e2, method: str) -> np.ndarray:
    """P(γ̂ ≤ c) for the estimated ratio γ̂ = σ̂_A²/σ̂_e² — closed form.

    With F = MSA/MSE ~ (1 + nγ)F_{ν₁,ν₂}:  REML γ̂ = max(0, (F − 1)/n), ANOVA γ̂ = (F − 1)/n,
    ML γ̂ = max(0, ((1 − 1/a)F − 1)/n).  Hence P(γ̂ ≤ c) = F_{ν₁,ν₂}.cdf((1 + nc)/(k(1 + nγ))), k = 1
    (REML, ANOVA) or (a − 1)/a (ML), for c ≥ 0 (ANOVA: c ≥ −1/n); 0 below.
    """
    m = _method(method)
    c, a, n = np.asarray(c, dtype=float), np.asarray(a), np.asarray(n)
    k = _ml_factor(a) if m == "ML" else 1.0
    x = np.maximum(1.0 + n * c, 0.0) / (k * (1.0 + n * _gamma(sigma_a2, sigma_e2)))
    p = special.fdtr(a - 1, a * (n - 1), x)  # = scipy.stats.f.cdf, bit for bit
    return p if m == "ANOVA" else np.where(c < 0, 0.0, p)


def anova_sigma_a2_moments(a, n, sigma_a2, sigma_e2) -> tuple[np.ndarray, np.ndarray]:
    """(E, Var) of the ANOVA estimator σ̂_A² = (MSA − MSE)/n — closed form.

    E = σ_A² (unbiased: E[MSA] = λ, E[MSE] = σ_e²);  Var = (2/n²)[λ²/(a − 1) + σ_e⁴/(a(n − 1))]
    (Var of a scaled χ²_ν with mean m is 2m²/ν).
    """
    a, n = np.asarray(a, dtype=float), np.asarray(n, dtype=float)
    sa2, se2 = np.asarray(sigma_a2, dtype=float), np.asarray(sigma_e2, dtype=float)
    lam = se2 + n * sa2
    var = 2.0 / n**2 * (lam**2 / (a - 1) + se2**2 / (a * (n - 1)))
    return np.broadcast_to(sa2, np.shape(var)).copy(), var


# ----------------------------------------------------------------------------- quadrature
_NODES = NODES  # 256
_TAIL = 1e-16


@functools.lru_cache(maxsize=1)
def _legendre01() -> tuple[np.ndarray, np.ndarray]:
    """Gauss–Legendre nodes and weights on [0, 1]."""
    g, gw = legendre_rule()  # = np.polynomial.legendre.leggauss(_NODES), stored (gauss_legendre.py)
    return (g + 1.0) / 2.0, gw / 2.0


def _chi2_rule(nu: float, lower: np.ndarray | float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Nodes x and weights w with Σ w·h(x) ≈ E[h(X); X > lower], X ~ χ²_ν.

    Gauss–Legendre (``_NODES`` points) in t = log x between ``max(lower, 1e-16 quantile)`` and the
    1 − 1e-16 quantile; the integrand h(eᵗ)·f(eᵗ)·eᵗ is smooth and decays fast, so the rule converges
    geometrically (checked against ``scipy.integrate.quad`` to ~1e-13).  ``lower`` may be an array;
    results get a trailing node axis.
    """
    g, gw = _legendre01()
    lo = np.log(2.0 * special.gammaincinv(nu / 2.0, _TAIL))
    hi = np.log(2.0 * special.gammainccinv(nu / 2.0, _TAIL))
    with np.errstate(divide="ignore"):
        start = np.clip(np.log(np.asarray(lower, dtype=float)), lo, hi)[..., None]
    t = start + (hi - start) * g
    x = np.exp(t)
    logpdf = (nu / 2.0 - 1.0) * t - x / 2.0 - (nu / 2.0) * np.log(2.0) - special.gammaln(nu / 2.0)
    return x, gw * (hi - start) * np.exp(logpdf + t)


def _sigma_a2_cdf_one(c, a, n, sa2, se2, method):
    if method != "ANOVA" and c < 0:
        return 0.0
    k = (a - 1.0) / a if method == "ML" else 1.0
    nu1, nu2 = a - 1, a * (n - 1)
    lam = se2 + n * sa2
    # kMSA = kλU/ν₁, MSE = σ_e²W/ν₂: P(kMSA − MSE ≤ nc) = E_W[χ²_{ν₁}.cdf(ν₁(σ_e²W/ν₂ + nc)/(kλ))],
    # the integrand being 0 for W ≤ −ncν₂/σ_e².
    W, w = _chi2_rule(nu2, max(0.0, -n * c * nu2 / se2))
    arg = np.maximum(nu1 * (se2 * W / nu2 + n * c) / (k * lam), 0.0)
    return float(np.clip(np.sum(w * special.chdtr(nu1, arg)), 0.0, 1.0))


def sigma_a2_cdf(c, a, n, sigma_a2, sigma_e2, method: str) -> np.ndarray:
    """P(σ̂_A² ≤ c) — quadrature.

    σ̂_A² = max(0, (k·MSA − MSE)/n) (REML k = 1, ML k = (a − 1)/a; ANOVA k = 1 without the max) is a
    difference of independent scaled χ² variables, not a scaled F, so
    P((kMSA − MSE)/n ≤ c) = E_MSE[P(kMSA ≤ MSE + nc)], a one-dimensional integral over MSE.
    At c = 0 this equals :func:`boundary_probability`.
    """
    m = _method(method)
    fn = np.vectorize(lambda *z: _sigma_a2_cdf_one(*z, m), otypes=[float])
    return fn(c, a, n, sigma_a2, sigma_e2)


def _expected_sigma_a2_one(a, n, sa2, se2, method):
    if method == "ANOVA":
        return float(sa2)
    k = (a - 1.0) / a if method == "ML" else 1.0
    nu1, nu2 = a - 1, a * (n - 1)
    shape, scale = nu1 / 2.0, 2.0 * k * (se2 + n * sa2) / nu1  # kMSA ~ Gamma(shape, scale)
    W, w = _chi2_rule(nu2)
    y = se2 * W / nu2  # MSE at the nodes
    # E[(X − y)⁺] = shape·scale·S_{shape+1}(y/scale) − y·S_{shape}(y/scale) for X ~ Gamma(shape, scale)
    excess = shape * scale * special.gammaincc(shape + 1.0, y / scale) - y * special.gammaincc(shape, y / scale)
    return float(np.sum(w * excess) / n)


def expected_sigma_a2(a, n, sigma_a2, sigma_e2, method: str) -> np.ndarray:
    """E[σ̂_A²] — ANOVA closed form (= σ_A²), REML/ML by quadrature.

    REML/ML: E[max(0, kMSA − MSE)]/n = E_MSE[E((kMSA − y)⁺)]/n with the Gamma identity
    E[(X − y)⁺] = shape·scale·S_{shape+1}(y/scale) − y·S_{shape}(y/scale).  Bias = this − σ_A².
    """
    m = _method(method)
    fn = np.vectorize(lambda *z: _expected_sigma_a2_one(*z, m), otypes=[float])
    return fn(a, n, sigma_a2, sigma_e2)


def _chi2_1_cdf(x: np.ndarray) -> np.ndarray:
    """P(χ²_1 ≤ x) = erf(√(x/2)) (χ²_1 is the square of a standard normal); equals ``special.chdtr(1, x)``
    to ~5e-15 at about a fourteenth of its cost, which is most of the μ-coverage quadrature's time."""
    return special.erf(np.sqrt(np.maximum(x, 0.0) / 2.0))


def _wald_coverage_one(a, n, sa2, se2, method, level):
    z2 = special.ndtri(0.5 + level / 2.0) ** 2  # = scipy.stats.norm.ppf, bit for bit
    nu1, nu2, N = a - 1, a * (n - 1), a * n
    if method == "ANOVA":  # λ̂ = MSA always: (ȳ − μ)/sqrt(MSA/N) ~ t_{a−1}
        return float(2.0 * special.stdtr(nu1, np.sqrt(z2)) - 1.0)  # stdtr = scipy.stats.t.cdf
    g1 = 1.0 + n * sa2 / se2  # λ/σ_e²
    # U = SSA/λ ~ χ²_{ν1}, W = SSE/σ_e² ~ χ²_{ν2}; interior iff W ≤ cut·U; se²·N/λ = U/d_in inside,
    # (W/g1 + U)/d_b on the boundary; coverage = E[P(χ²_1 ≤ z² se²N/λ)].
    d_in, d_b = (nu1, N - 1) if method == "REML" else (a, N)
    cut = g1 * nu2 / d_in
    U, wu = _chi2_rule(nu1)
    inside = np.sum(wu * special.chdtr(nu2, cut * U) * _chi2_1_cdf(z2 * U / d_in))
    W, ww = _chi2_rule(nu2, cut * U)  # (M, M): W > cut·U for each U
    outside = np.sum(wu * np.sum(ww * _chi2_1_cdf(z2 * (W / g1 + U[:, None]) / d_b), axis=1))
    return float(inside + outside)


def mu_wald_coverage(a, n, sigma_a2, sigma_e2, method: str, level=0.95) -> np.ndarray:
    """Coverage of the Wald interval ȳ ± z_{(1+level)/2} sqrt(λ̂/N) for μ — quadrature (REML, ML),
    closed form (ANOVA: λ̂ = MSA, so the coverage is 2·t_{a−1}.cdf(z) − 1).

    REML: λ̂ = MSA inside, (SSE + SSA)/(N − 1) on the boundary; ML: SSA/a inside, (SSE + SSA)/N on the
    boundary.  Conditional on (SSA, SSE) the interval covers with probability P(χ²_1 ≤ z²λ̂/λ); the
    expectation over SSA/λ ~ χ²_{a−1} and SSE/σ_e² ~ χ²_{a(n−1)} is a two-dimensional integral.
    """
    m = _method(method)
    fn = np.vectorize(lambda *z: _wald_coverage_one(*z[:4], m, z[4]), otypes=[float])
    return fn(a, n, sigma_a2, sigma_e2, level)


__all__ = [
    "anova_sigma_a2_moments", "boundary_probability", "expected_sigma_a2", "f_test_power",
    "mu_t_interval_coverage", "mu_wald_coverage", "shrinkage_factor", "sigma_a2_cdf", "variance_ratio_cdf",
]
