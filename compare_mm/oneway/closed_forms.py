"""Closed forms for the balanced one-way random-effects model, vectorised over replicates.

Model: y_ij = μ + a_i + e_ij,  i = 1..a groups, j = 1..n per group, a_i ~ N(0, σ_A²), e_ij ~ N(0, σ_e²).

Every function takes responses of shape ``(..., a, n)``; leading axes are replicates, so a study fits
thousands of data sets in one call.  The data enter only through the sufficient statistics

    ȳ_i = mean_j y_ij,   ȳ = mean_i ȳ_i,
    SSA = n Σ_i (ȳ_i − ȳ)²   (a − 1 df),   SSE = Σ_ij (y_ij − ȳ_i)²   (a(n − 1) df),
    MSA = SSA / (a − 1),     MSE = SSE / (a(n − 1)).

With λ = σ_e² + nσ_A² (the eigenvalue of each group's covariance block along 1_n; σ_e² is the other
n − 1 eigenvalues), N = an and r = y − μ1 the (restricted) log-likelihoods are

    ℓ_ML   = −½[N log 2π + a log λ + a(n−1) log σ_e² + SSE/σ_e² + (SSA + N(ȳ − μ)²)/λ],
    ℓ_REML = −½[(N−1) log 2π + (a−1) log λ + a(n−1) log σ_e² + log N + SSE/σ_e² + SSA/λ],

the latter being lme4's REML criterion −½[(N−p) log 2π + log|V| + log|X'V⁻¹X| + r'V⁻¹r] with X = 1
(log|X'V⁻¹X| = log N − log λ; no log|X'X| correction).  Both are strictly concave in (1/λ, 1/σ_e²) and
the parameter space is the convex set λ ≥ σ_e², so the maximiser is the unconstrained one when it is
feasible and lies on λ = σ_e² (σ_A² = 0) otherwise.  This gives the estimators in :func:`fit_oneway`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from ..errors import DataError, OptionError, UnsupportedModelError

OnewayMethod = Literal["REML", "ML", "ANOVA"]
ONEWAY_METHODS: tuple[str, ...] = ("REML", "ML", "ANOVA")
_LOG2PI = float(np.log(2.0 * np.pi))


@dataclass(frozen=True, eq=False)
class OnewayStats:
    """Sufficient statistics of balanced one-way data, arrays over replicates.

    Attributes
    ----------
    a, n
        Number of groups and observations per group.
    grand_mean
        ``(...,)`` ȳ.
    group_means
        ``(..., a)`` ȳ_i.
    ssa, sse
        ``(...,)`` SSA = n Σ_i (ȳ_i − ȳ)², SSE = Σ_ij (y_ij − ȳ_i)².
    msa, mse
        ``(...,)`` SSA/(a − 1), SSE/(a(n − 1)).
    """

    a: int
    n: int
    grand_mean: np.ndarray
    group_means: np.ndarray
    ssa: np.ndarray
    sse: np.ndarray
    msa: np.ndarray
    mse: np.ndarray

    @property
    def f(self) -> np.ndarray:
        """The F statistic MSA/MSE."""
        with np.errstate(divide="ignore", invalid="ignore"):
            return self.msa / self.mse

    @property
    def shape(self) -> tuple[int, ...]:
        """The replicate shape (leading axes of the data)."""
        return tuple(np.shape(self.grand_mean))


@dataclass(frozen=True, eq=False)
class OnewayEstimates:
    """Estimates of (μ, σ_A², σ_e²) and derived quantities, arrays over replicates.

    Attributes
    ----------
    method, level, a, n
        Estimation method, interval level, design size.
    mu, se_mu
        μ̂ = ȳ (the GLS estimate in a balanced design) and its model-based standard error
        sqrt(λ̂/(an)), λ̂ = σ̂_e² + nσ̂_A² (lme4's ``vcov``: (X'V̂⁻¹X)⁻¹ = λ̂/N).
    sigma_a2, sigma_e2
        Variance estimates (the ANOVA σ̂_A² may be negative).
    loglik
        ℓ_REML for REML, ℓ_ML for ML (lme4's ``logLik`` conventions), NaN for ANOVA.
    boundary
        REML/ML: σ̂_A² == 0; ANOVA: σ̂_A² ≤ 0.
    blup, blup_condsd
        ``(..., a)`` predicted group effects â_i = ŵ(ȳ_i − μ̂), and their conditional SD
        sqrt(σ̂_A² σ̂_e² / λ̂) (lme4's ``condVar``), identical for every group.
    shrinkage
        ŵ = nσ̂_A²/(σ̂_e² + nσ̂_A²); for ANOVA computed with σ̂_A² truncated at 0 (as the BLUP is).
    mu_lower, mu_upper
        Exact t interval ȳ ± t_{a−1,(1+level)/2} sqrt(MSA/(an)) (same for every method).
    mu_wald_lower, mu_wald_upper
        Wald interval μ̂ ± z_{(1+level)/2} se_mu (lme4's ``confint(method = "Wald")``).
    """

    method: str
    level: float
    a: int
    n: int
    mu: np.ndarray
    se_mu: np.ndarray
    sigma_a2: np.ndarray
    sigma_e2: np.ndarray
    loglik: np.ndarray
    boundary: np.ndarray
    blup: np.ndarray
    blup_condsd: np.ndarray
    shrinkage: np.ndarray
    mu_lower: np.ndarray
    mu_upper: np.ndarray
    mu_wald_lower: np.ndarray
    mu_wald_upper: np.ndarray

    @property
    def gamma(self) -> np.ndarray:
        """Estimated variance ratio σ̂_A²/σ̂_e²."""
        return self.sigma_a2 / self.sigma_e2


@dataclass(frozen=True, eq=False)
class FTest:
    """The exact F test of H0: σ_A² = 0 (MSA/MSE ~ F_{a−1, a(n−1)} under H0)."""

    statistic: np.ndarray
    df1: int
    df2: int
    p_value: np.ndarray


# ----------------------------------------------------------------------------- statistics
def oneway_stats(Y: np.ndarray) -> OnewayStats:
    """Sufficient statistics of balanced one-way data.

    Parameters
    ----------
    Y
        Responses of shape ``(..., a, n)``: axis −2 indexes groups, axis −1 observations within a group.

    Returns
    -------
    OnewayStats
        ȳ_i, ȳ, SSA = n Σ_i (ȳ_i − ȳ)², SSE = Σ_ij (y_ij − ȳ_i)², MSA, MSE (see module docstring).
    """
    Y = np.asarray(Y, dtype=float)
    if Y.ndim < 2:
        raise DataError(f"One-way data must have shape (..., a, n); got an array of shape {Y.shape}.")
    a, n = int(Y.shape[-2]), int(Y.shape[-1])
    if a < 2 or n < 2:
        raise DataError(f"The balanced one-way closed forms need at least 2 groups of at least 2 "
                        f"observations; got a = {a}, n = {n}.")
    if not np.all(np.isfinite(Y)):
        raise DataError("One-way data contain NaN or infinite values.")
    gm = Y.mean(axis=-1)
    grand = gm.mean(axis=-1)
    ssa = n * np.sum((gm - grand[..., None]) ** 2, axis=-1)
    D = (Y - gm[..., None]).reshape(Y.shape[:-2] + (a * n,))
    sse = np.einsum("...k,...k->...", D, D)
    return OnewayStats(a=a, n=n, grand_mean=grand, group_means=gm, ssa=ssa, sse=sse,
                       msa=ssa / (a - 1), mse=sse / (a * (n - 1)))


def _as_stats(Y_or_stats: np.ndarray | OnewayStats) -> OnewayStats:
    return Y_or_stats if isinstance(Y_or_stats, OnewayStats) else oneway_stats(Y_or_stats)


def _check_level(level: float) -> float:
    level = float(level)
    if not 0.0 < level < 1.0:
        raise OptionError(f"The interval level must lie strictly between 0 and 1; got {level}.")
    return level


# ----------------------------------------------------------------------------- estimators
def variance_estimates(s: OnewayStats, method: str) -> tuple[np.ndarray, np.ndarray]:
    """(σ̂_A², σ̂_e²) by the closed forms.

    REML (maximise ℓ_REML): unconstrained λ̂ = MSA, σ̂_e² = MSE, so
        σ̂_A² = (MSA − MSE)/n,  σ̂_e² = MSE                    if MSA ≥ MSE,
        σ̂_A² = 0,              σ̂_e² = (SSE + SSA)/(an − 1)    otherwise.
    ML (maximise ℓ_ML at μ̂ = ȳ): unconstrained λ̂ = SSA/a, σ̂_e² = MSE, so
        σ̂_A² = ((1 − 1/a)MSA − MSE)/n,  σ̂_e² = MSE            if SSA/a ≥ MSE,
        σ̂_A² = 0,                       σ̂_e² = (SSE + SSA)/(an) otherwise.
    ANOVA (method of moments, E[MSA] = σ_e² + nσ_A², E[MSE] = σ_e²):
        σ̂_A² = (MSA − MSE)/n (may be negative),  σ̂_e² = MSE.
    """
    a, n = s.a, s.n
    N = a * n
    if method == "ANOVA":
        return (s.msa - s.mse) / n, s.mse.copy()
    if method == "REML":
        lam, pooled = s.msa, (s.sse + s.ssa) / (N - 1)
    elif method == "ML":
        lam, pooled = s.ssa / a, (s.sse + s.ssa) / N
    else:
        raise OptionError(f"Unknown one-way method {method!r}; choose one of {', '.join(ONEWAY_METHODS)}.")
    inside = lam >= s.mse
    sigma_a2 = np.where(inside, (lam - s.mse) / n, 0.0)
    sigma_e2 = np.where(inside, s.mse, pooled)
    return sigma_a2, sigma_e2


def oneway_loglik(s: OnewayStats, sigma_a2: np.ndarray, sigma_e2: np.ndarray, method: str,
                  mu: np.ndarray | None = None) -> np.ndarray:
    """ℓ_ML (at ``mu``, default ȳ) or ℓ_REML at given variances (equations in the module docstring).

    These equal lme4's ``logLik`` for ``y ~ 1 + (1 | g)``: ML = log N(y; μ1, V); REML =
    −½[(N−1) log 2π + log|V| + log|1'V⁻¹1| + r'V⁻¹r] with r = y − ȳ1.
    """
    a, n = s.a, s.n
    N = a * n
    lam = sigma_e2 + n * sigma_a2
    with np.errstate(divide="ignore", invalid="ignore"):
        if method == "REML":
            return -0.5 * ((N - 1) * _LOG2PI + (a - 1) * np.log(lam) + a * (n - 1) * np.log(sigma_e2)
                           + np.log(N) + s.sse / sigma_e2 + s.ssa / lam)
        if method == "ML":
            dev = 0.0 if mu is None else N * (s.grand_mean - mu) ** 2
            return -0.5 * (N * _LOG2PI + a * np.log(lam) + a * (n - 1) * np.log(sigma_e2)
                           + s.sse / sigma_e2 + (s.ssa + dev) / lam)
    raise OptionError(f"A log-likelihood exists for REML and ML only, not {method!r}.")


def fit_oneway(Y_or_stats: np.ndarray | OnewayStats, method: str = "REML",
               level: float = 0.95) -> OnewayEstimates:
    """Fit the balanced one-way model by REML, ML or ANOVA, for every replicate at once.

    Parameters
    ----------
    Y_or_stats
        Responses ``(..., a, n)`` or their :class:`OnewayStats`.
    method
        ``"REML"``, ``"ML"`` or ``"ANOVA"`` (case-insensitive).
    level
        Level of the intervals for μ.

    Returns
    -------
    OnewayEstimates
        Variances from :func:`variance_estimates`; then, with λ̂ = σ̂_e² + nσ̂_A² and N = an,
          μ̂ = ȳ,  se(μ̂) = sqrt(λ̂/N),
          t interval  ȳ ± t_{a−1,(1+level)/2} sqrt(MSA/N)  (exact: (ȳ − μ)/sqrt(MSA/N) ~ t_{a−1}),
          Wald interval ȳ ± z_{(1+level)/2} se(μ̂),
          ŵ = nσ̂_A⁺²/(σ̂_e² + nσ̂_A⁺²),  â_i = ŵ(ȳ_i − ȳ),  condsd = sqrt(σ̂_A⁺² σ̂_e² / (σ̂_e² + nσ̂_A⁺²)),
        where σ̂_A⁺² = max(σ̂_A², 0) (differs from σ̂_A² for ANOVA only), and loglik from
        :func:`oneway_loglik` (NaN for ANOVA).
    """
    from scipy import stats  # deferred: heavy import

    s = _as_stats(Y_or_stats)
    method = str(method).upper()
    if method not in ONEWAY_METHODS:
        raise OptionError(f"Unknown one-way method {method!r}; choose one of {', '.join(ONEWAY_METHODS)}.")
    level = _check_level(level)
    a, n = s.a, s.n
    N = a * n
    sigma_a2, sigma_e2 = variance_estimates(s, method)
    if method == "ANOVA":
        boundary = sigma_a2 <= 0
        loglik = np.full(s.shape, np.nan)
    else:
        boundary = sigma_a2 == 0
        loglik = oneway_loglik(s, sigma_a2, sigma_e2, method)
    sa2_plus = np.maximum(sigma_a2, 0.0)
    lam = sigma_e2 + n * sigma_a2
    lam_plus = sigma_e2 + n * sa2_plus
    with np.errstate(divide="ignore", invalid="ignore"):
        shrinkage = n * sa2_plus / lam_plus
        condsd = np.sqrt(sa2_plus * sigma_e2 / lam_plus)
    mu = s.grand_mean
    se_mu = np.sqrt(lam / N)
    blup = shrinkage[..., None] * (s.group_means - mu[..., None])
    tq = float(stats.t.ppf(0.5 + level / 2, a - 1))
    zq = float(stats.norm.ppf(0.5 + level / 2))
    half_t = tq * np.sqrt(s.msa / N)
    return OnewayEstimates(
        method=method, level=level, a=a, n=n, mu=mu, se_mu=se_mu, sigma_a2=sigma_a2, sigma_e2=sigma_e2,
        loglik=loglik, boundary=np.asarray(boundary), blup=blup, blup_condsd=condsd, shrinkage=shrinkage,
        mu_lower=mu - half_t, mu_upper=mu + half_t,
        mu_wald_lower=mu - zq * se_mu, mu_wald_upper=mu + zq * se_mu,
    )


# ----------------------------------------------------------------------------- F test
def f_test(Y_or_stats: np.ndarray | OnewayStats) -> FTest:
    """Exact F test of H0: σ_A² = 0.

    F = MSA/MSE; MSA/MSE ~ (1 + nγ) F_{a−1, a(n−1)} with γ = σ_A²/σ_e², so under H0 the p-value
    P(F_{a−1,a(n−1)} > F) is exact.
    """
    from scipy import stats  # deferred: heavy import

    s = _as_stats(Y_or_stats)
    df1, df2 = s.a - 1, s.a * (s.n - 1)
    F = s.f
    return FTest(statistic=F, df1=df1, df2=df2, p_value=stats.f.sf(F, df1, df2))


def f_test_power(a, n, sigma_a2, sigma_e2, alpha=0.05) -> np.ndarray:
    """Exact power of the level-α F test of σ_A² = 0 (broadcast over array arguments).

    power = P(F_{a−1,a(n−1)} > F_crit/(1 + nγ)),  F_crit = F_{a−1,a(n−1)} quantile at 1 − α,
    γ = σ_A²/σ_e², because MSA/MSE ~ (1 + nγ) F_{a−1,a(n−1)}.  Equals α at σ_A² = 0.
    """
    a, n = np.asarray(a), np.asarray(n)
    df1, df2 = a - 1, a * (n - 1)
    gamma = np.asarray(sigma_a2, dtype=float) / np.asarray(sigma_e2, dtype=float)
    from scipy import special  # scipy.stats (a heavy import) computes f.isf and f.sf as these, bit for bit

    crit = special.fdtri(df1, df2, 1.0 - alpha)
    return special.fdtrc(df1, df2, crit / (1.0 + n * gamma))


# ----------------------------------------------------------------------------- simulation
def simulate_oneway(rng: np.random.Generator, a: int, n: int, mu: float, sigma_a2: float, sigma_e2: float,
                    size: int | tuple[int, ...] | None = None) -> np.ndarray:
    """Draw balanced one-way data y_ij = μ + a_i + e_ij; shape ``(a, n)`` or ``(*size, a, n)``."""
    lead = () if size is None else ((size,) if np.ndim(size) == 0 else tuple(size))
    u = rng.standard_normal(lead + (a, 1)) * np.sqrt(sigma_a2)
    e = rng.standard_normal(lead + (a, n)) * np.sqrt(sigma_e2)
    return mu + u + e


# ----------------------------------------------------------------------------- designs
def is_balanced_oneway(design) -> tuple[int, int] | None:
    """(a, n) if ``design`` is ``y ~ 1 + (1 | g)`` with a ≥ 2 groups of equal size n ≥ 2, else None.

    Checked on the numbers, not the formula: X is a single column of ones, there is one random block
    with q = 1 whose Z column is all ones.  n = 1 returns None (σ_A² and σ_e² are then not separately
    identifiable and the closed forms do not apply).
    """
    X = np.asarray(design.X)
    if X.ndim != 2 or X.shape[1] != 1 or not np.all(X[:, 0] == 1.0):
        return None
    if len(design.blocks) != 1:
        return None
    b = design.blocks[0]
    if b.q != 1 or not np.all(np.asarray(b.Z)[:, 0] == 1.0):
        return None
    counts = np.bincount(np.asarray(b.codes), minlength=b.n_levels)
    if counts.size < 2 or counts[0] < 2 or np.any(counts != counts[0]):
        return None
    return int(counts.size), int(counts[0])


def design_to_array(design) -> np.ndarray:
    """The response of a balanced one-way design as an ``(a, n)`` array; row i is level i of the group
    (``design.blocks[0].levels[i]``), observations in data order within a group."""
    shape = is_balanced_oneway(design)
    if shape is None:
        raise UnsupportedModelError("The balanced one-way closed forms need y ~ 1 + (1 | g) with equal "
                                    "group sizes of at least 2.")
    order = np.argsort(np.asarray(design.blocks[0].codes), kind="stable")
    return np.asarray(design.y, dtype=float)[order].reshape(shape)


__all__ = [
    "FTest", "ONEWAY_METHODS", "OnewayEstimates", "OnewayStats", "design_to_array", "f_test", "f_test_power",
    "fit_oneway", "is_balanced_oneway", "oneway_loglik", "oneway_stats", "simulate_oneway",
    "variance_estimates",
]
