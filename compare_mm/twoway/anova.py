"""Closed forms of the balanced two-way mixed model, vectorised over replicates.

    y_ijk = μ + α_i + B_j + (αB)_ij + ε_ijk,   i = 1..t (fixed treatments), j = 1..b (random blocks),
    k = 1..n,   B_j ~ N(0, σ_B²),   (αB)_ij ~ N(0, σ_AB²),   ε_ijk ~ N(0, σ_E²),

fitted as ``y ~ trt + (1 | block) + (1 | block:trt)``.  The ANOVA table's residual strata (Searle, Casella
& McCulloch 1992, *Variance Components*, sec. 4.6; the "mixed model" with unrestricted interaction) are

    stratum   df                 SS                                   E[MS]
    B         d_B = b − 1        tn Σ_j (ȳ_.j. − ȳ)²                  λ_B  = σ_E² + nσ_AB² + tnσ_B²
    AB        d_AB = (t−1)(b−1)  n Σ_ij (ȳ_ij. − ȳ_i.. − ȳ_.j. + ȳ)²  λ_AB = σ_E² + nσ_AB²
    E         d_E = tb(n − 1)    Σ_ijk (y_ijk − ȳ_ij.)²               λ_E  = σ_E²

and SS_k/λ_k are independent χ²_{d_k}, independent of the treatment means ȳ_i.. .  V has the eigenvalue
λ_B on the grand mean and block contrasts, λ_AB on the treatment and interaction contrasts, λ_E on the
within-cell contrasts, and X (intercept + treatments) spans the grand mean and the treatment contrasts, so

    REML:  ℓ_R(λ) = −½ Σ_k [d_k log λ_k + SS_k/λ_k],                 weights w = (b − 1, (t−1)(b−1), tb(n−1))
    ML:    ℓ(λ)   = −½ Σ_k [w_k log λ_k + SS_k/λ_k] (β at β̂),        weights w = (b, (t−1)b, tb(n−1)).

Each is a sum of gamma log-likelihoods in λ_k with means v_k = SS_k/w_k and weights w_k, and σ_B², σ_AB² ≥ 0
is the order λ_B ≥ λ_AB ≥ λ_E, so the estimate is the weighted antitonic regression of (v_B, v_AB, v_E)
(Robertson, Wright & Dykstra 1988, *Order Restricted Statistical Inference*, Thm 1.5.1 and sec. 1.5 on
ordered scale parameters), computed here by the max–min formula λ̂_k = min_{i≤k} max_{j≥k} Av(i..j).
Consequences (stated and tested in ``tests/twoway``):

* REML equals the truncated ANOVA estimates exactly when both ANOVA estimates are ≥ 0 (MS_B ≥ MS_AB ≥ MS_E):
  then no pooling happens and λ̂ = MS.  When MS_AB < MS_E, REML pools AB with E, so σ̂_E² =
  (SS_AB + SS_E)/(d_AB + d_E) ≠ MS_E; when MS_B < MS_AB, REML pools B with AB, so σ̂_AB² =
  ((SS_B + SS_AB)/(d_B + d_AB) − MS_E)/n ≠ (MS_AB − MS_E)/n — a component on its boundary changes the other.
* The treatment contrasts' GLS estimates are ȳ_i.. − ȳ_1.. whatever the variances (balanced design), with
  variance 2λ_AB/(bn): the exact t interval uses MS_AB with d_AB degrees of freedom.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import special


@dataclass(frozen=True, eq=False)
class TwowayStats:
    """Sufficient statistics of R balanced two-way replicates (arrays over replicates, shape (R,) or (R, t))."""

    t: int
    b: int
    n: int
    grand_mean: np.ndarray
    trt_means: np.ndarray
    ss_b: np.ndarray
    ss_ab: np.ndarray
    ss_e: np.ndarray

    @property
    def df(self) -> tuple[int, int, int]:
        """(d_B, d_AB, d_E)."""
        return self.b - 1, (self.t - 1) * (self.b - 1), self.t * self.b * (self.n - 1)

    @property
    def ms_b(self) -> np.ndarray:
        return self.ss_b / self.df[0]

    @property
    def ms_ab(self) -> np.ndarray:
        return self.ss_ab / self.df[1]

    @property
    def ms_e(self) -> np.ndarray:
        return self.ss_e / self.df[2]


def twoway_stats(Y: np.ndarray) -> TwowayStats:
    """Statistics of responses ``Y`` of shape (R, t, b, n) (treatment, block, replicate within cell)."""
    Y = np.asarray(Y, dtype=float)
    if Y.ndim != 4:
        raise ValueError("Y must have shape (replicates, treatments, blocks, per_cell).")
    R, t, b, n = Y.shape
    cell = Y.mean(axis=3)
    grand = cell.mean(axis=(1, 2))
    trt = cell.mean(axis=2)
    blk = cell.mean(axis=1)
    inter = cell - trt[:, :, None] - blk[:, None, :] + grand[:, None, None]
    ss_b = t * n * ((blk - grand[:, None]) ** 2).sum(axis=1)
    ss_ab = n * (inter**2).sum(axis=(1, 2))
    ss_e = ((Y - cell[..., None]) ** 2).sum(axis=(1, 2, 3))
    return TwowayStats(t=t, b=b, n=n, grand_mean=grand, trt_means=trt, ss_b=ss_b, ss_ab=ss_ab, ss_e=ss_e)


def take(st: TwowayStats, idx: np.ndarray) -> TwowayStats:
    """The statistics of replicates ``idx`` only."""
    return TwowayStats(t=st.t, b=st.b, n=st.n, grand_mean=st.grand_mean[idx], trt_means=st.trt_means[idx],
                       ss_b=st.ss_b[idx], ss_ab=st.ss_ab[idx], ss_e=st.ss_e[idx])


def weights(t: int, b: int, n: int, method: str) -> tuple[float, float, float]:
    """The stratum weights w_k of the REML or ML criterion (module docstring)."""
    if method == "REML":
        return float(b - 1), float((t - 1) * (b - 1)), float(t * b * (n - 1))
    if method == "ML":
        return float(b), float((t - 1) * b), float(t * b * (n - 1))
    raise ValueError(f"method must be REML or ML, got {method!r}.")


def antitonic3(v: tuple[np.ndarray, np.ndarray, np.ndarray], w: tuple[float, float, float]
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Weighted antitonic (non-increasing) regression of three values per replicate:
    λ̂_k = min_{i≤k} max_{j≥k} Av(i..j), Av the weighted average (Robertson, Wright & Dykstra 1988, Thm 1.4.4).
    Pooled strata get the same floating-point value, so their differences are exactly 0."""
    v1, v2, v3 = (np.asarray(x, dtype=float) for x in v)
    w1, w2, w3 = w
    a12 = (w1 * v1 + w2 * v2) / (w1 + w2)
    a23 = (w2 * v2 + w3 * v3) / (w2 + w3)
    a13 = (w1 * v1 + w2 * v2 + w3 * v3) / (w1 + w2 + w3)
    l1 = np.maximum(np.maximum(v1, a12), a13)
    l2 = np.minimum(np.maximum(v2, a23), np.maximum(a12, a13))
    l3 = np.minimum(np.minimum(v3, a23), a13)
    return l1, l2, l3


@dataclass(frozen=True, eq=False)
class TwowayEstimates:
    """Variance-component estimates of R replicates (ANOVA: unconstrained, may be negative)."""

    sigma_b2: np.ndarray
    sigma_ab2: np.ndarray
    sigma_e2: np.ndarray
    #: λ̂_AB = σ̂_E² + nσ̂_AB², behind the contrasts' standard errors
    lam_ab: np.ndarray


def estimates(st: TwowayStats, method: str) -> TwowayEstimates:
    """ANOVA (method of moments), REML or ML estimates of (σ_B², σ_AB², σ_E²) (module docstring)."""
    t, n = st.t, st.n
    if method == "ANOVA":
        l1, l2, l3 = st.ms_b, st.ms_ab, st.ms_e
    else:
        w = weights(st.t, st.b, st.n, method)
        l1, l2, l3 = antitonic3((st.ss_b / w[0], st.ss_ab / w[1], st.ss_e / w[2]), w)
    return TwowayEstimates(sigma_b2=(l1 - l2) / (t * n), sigma_ab2=(l2 - l3) / n, sigma_e2=np.asarray(l3),
                           lam_ab=np.asarray(l2))


def truncated_anova(st: TwowayStats) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(max(0, σ̂_B²), max(0, σ̂_AB²), MS_E): the truncated ANOVA estimates."""
    a = estimates(st, "ANOVA")
    return np.maximum(a.sigma_b2, 0.0), np.maximum(a.sigma_ab2, 0.0), a.sigma_e2


@dataclass(frozen=True, eq=False)
class FTests:
    """Exact F tests of σ_AB² = 0 (MS_AB/MS_E) and σ_B² = 0 (MS_B/MS_AB), per replicate."""

    f_ab: np.ndarray
    p_ab: np.ndarray
    f_b: np.ndarray
    p_b: np.ndarray


def f_tests(st: TwowayStats) -> FTests:
    """F_AB = MS_AB/MS_E ~ F_{d_AB, d_E} under σ_AB² = 0; F_B = MS_B/MS_AB ~ F_{d_B, d_AB} under σ_B² = 0."""
    d_b, d_ab, d_e = st.df
    f_ab = st.ms_ab / st.ms_e
    f_b = st.ms_b / st.ms_ab
    return FTests(f_ab=f_ab, p_ab=special.fdtrc(d_ab, d_e, f_ab), f_b=f_b, p_b=special.fdtrc(d_b, d_ab, f_b))


__all__ = ["FTests", "TwowayEstimates", "TwowayStats", "antitonic3", "estimates", "f_tests", "take", "truncated_anova",
           "twoway_stats", "weights"]
