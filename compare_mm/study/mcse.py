"""Estimators of performance measures with their Monte Carlo standard errors (MCSE), after Morris, White &
Crowther (2019), Stat. Med. 38:2074–2102, Table 6 (the formulas are listed in :mod:`compare_mm.study.summarise`).
Every function returns ``(value, mcse)``; NaN where too few replicates are usable."""

from __future__ import annotations

import math

import numpy as np

NAN = float("nan")


def mean_mcse(x: np.ndarray) -> tuple[float, float]:
    """Mean and its MCSE S/sqrt(n)."""
    x = x[np.isfinite(x)]
    n = x.size
    if n == 0:
        return NAN, NAN
    return float(x.mean()), float(x.std(ddof=1) / math.sqrt(n)) if n > 1 else NAN


def proportion(hits: np.ndarray) -> tuple[float, float]:
    """Proportion and its binomial MCSE sqrt(p(1 − p)/n)."""
    n = hits.size
    if n == 0:
        return NAN, NAN
    p = float(np.mean(hits))
    return p, math.sqrt(p * (1 - p) / n)


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


__all__ = ["bias", "empirical_se", "mean_mcse", "mse", "proportion", "ratio_of_means", "rmse"]
