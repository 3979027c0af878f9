"""Estimators of performance measures with their Monte Carlo standard errors (MCSE), after Morris, White &
Crowther (2019), Stat. Med. 38:2074–2102, Table 6 (the formulas are listed in :mod:`compare_mm.study.summarise`).
Every function returns ``(value, mcse)``; NaN where too few replicates are usable."""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np

NAN = float("nan")


def mean_mcse(x: np.ndarray) -> tuple[float, float]:
    """Mean and its MCSE S/sqrt(n)."""
    x = x[np.isfinite(x)]
    n = x.size
    if n == 0:
        return NAN, NAN
    return float(x.mean()), float(x.std(ddof=1) / math.sqrt(n)) if n > 1 else NAN


class Proportion(float):
    """A proportion that remembers its denominator ``n`` (so the summary can attach a Wilson interval)."""

    n: int

    def __new__(cls, value: float, n: int) -> "Proportion":
        obj = super().__new__(cls, value)
        obj.n = int(n)
        return obj


def proportion(hits: np.ndarray) -> tuple[float, float]:
    """Proportion and its binomial MCSE sqrt(p(1 − p)/n); the proportion is a :class:`Proportion` (a float
    carrying ``n``)."""
    n = hits.size
    if n == 0:
        return NAN, NAN
    p = float(np.mean(hits))
    return Proportion(p, n), math.sqrt(p * (1 - p) / n)


#: the level of the Wilson interval attached to every proportion in summary.csv (``ci_lower``/``ci_upper``)
WILSON_LEVEL = 0.95


@lru_cache(maxsize=64)
def _normal_quantile(q: float) -> float:
    """The standard normal quantile (computed once per level: thousands of proportions share it)."""
    from scipy.special import ndtri  # = scipy.stats.norm.ppf bit for bit, without importing scipy.stats

    return float(ndtri(q))


def wilson(p: float, n: int, level: float = WILSON_LEVEL) -> tuple[float, float]:
    """Wilson score interval of a binomial proportion p̂ = k/n (Wilson 1927):
    (p̂ + z²/2n ± z sqrt(p̂(1 − p̂)/n + z²/4n²)) / (1 + z²/n), z the normal (1 + level)/2 quantile.

    Unlike p̂ ± 2 MCSE it has nonzero width at p̂ = 0 or 1: at p̂ = 0 it is [0, z²/(n + z²)]."""
    if not n or not math.isfinite(p):
        return NAN, NAN
    z = _normal_quantile(0.5 + level / 2)
    z2 = z * z
    centre = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = z * math.sqrt(max(p * (1 - p) / n + z2 / (4 * n * n), 0.0)) / (1 + z2 / n)
    lo, hi = max(0.0, centre - half), min(1.0, centre + half)
    return (0.0 if p == 0 else lo), (1.0 if p == 1 else hi)  # exact ends (no 1e-17 rounding residue)


def bias(est: np.ndarray, truth: float) -> tuple[float, float]:
    """Bias and MCSE sqrt(S²/n) (Morris et al. 2019, Table 6)."""
    return mean_mcse(est - truth)


def empirical_se(est: np.ndarray) -> tuple[float, float]:
    """Empirical SE S and MCSE S/sqrt(2(n − 1))."""
    n = est.size
    if n < 2:
        return NAN, NAN
    s = float(est.std(ddof=1))
    return s, s / math.sqrt(2 * (n - 1))


def mse(est: np.ndarray, truth: float) -> tuple[float, float]:
    """MSE and MCSE sqrt(Σ((θ̂ − θ)² − MSE)²/(n(n − 1)))."""
    n = est.size
    if n < 2:
        return (float(np.mean((est - truth) ** 2)) if n else NAN), NAN
    sq = (est - truth) ** 2
    m = float(sq.mean())
    return m, math.sqrt(float(np.sum((sq - m) ** 2)) / (n * (n - 1)))


def rmse(est: np.ndarray, truth: float) -> tuple[float, float]:
    """RMSE = sqrt(MSE) and MCSE(MSE)/(2 RMSE) (delta method)."""
    m, se = mse(est, truth)
    r = math.sqrt(m) if math.isfinite(m) else NAN
    return r, (se / (2 * r) if r and math.isfinite(se) else NAN)


def ratio_of_means(A: np.ndarray, B: np.ndarray) -> tuple[float, float]:
    """ΣA/ΣB with the delta-method MCSE from replicate-level pairs (A_r, B_r)."""
    n = A.size
    if n == 0 or B.sum() == 0:
        return NAN, NAN
    R = float(A.sum() / B.sum())
    if n < 2:
        return R, NAN
    sa, sb = A.var(ddof=1), B.var(ddof=1)
    sab = float(np.cov(A, B, ddof=1)[0, 1])
    var = (sa - 2 * R * sab + R * R * sb) / (n * B.mean() ** 2)
    return R, math.sqrt(max(var, 0.0))


__all__ = ["Proportion", "WILSON_LEVEL", "bias", "empirical_se", "mean_mcse", "mse", "proportion", "ratio_of_means",
           "rmse", "wilson"]
