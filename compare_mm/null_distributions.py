"""Reference null distributions of likelihood-ratio statistics: the naive χ²_df and the boundary mixture
½χ²_{df−1} + ½χ²_df (χ²₀ a point mass at 0) that holds when one variance, with its df − 1 covariances,
is removed from the model (Self & Liang 1987, JASA 82, 605–610; Stram & Lee 1994, Biometrics 50,
1171–1177).  Used by the general LRT (:mod:`compare_mm.inference.lrt`) and by the one-way closed forms
(:mod:`compare_mm.oneway.htests`).
"""

from __future__ import annotations

import numpy as np

from .errors import OptionError


def chi2_pvalue(statistic, df: int):
    """Naive p-value P(χ²_df ≥ T) (vectorised)."""
    from scipy import stats  # deferred: heavy import

    t = np.asarray(statistic, dtype=float)
    return np.where(t <= 0.0, 1.0, stats.chi2.sf(np.maximum(t, 0.0), df)) if df > 0 else np.where(t <= 0, 1.0, 0.0)


def chibar2_pvalue(statistic, df: int):
    """Mixture p-value P(½χ²_{df−1} + ½χ²_df ≥ T) with χ²₀ a point mass at 0 (vectorised).

    For T ≤ 0 the p-value is 1 (T ≥ 0 always).
    """
    return 0.5 * chi2_pvalue(statistic, df - 1) + 0.5 * chi2_pvalue(statistic, df)


def chibar2_critical(alpha: float, df: int) -> float:
    """Critical value c with P(½χ²_{df−1} + ½χ²_df ≥ c) = α (α < ½)."""
    from scipy.optimize import brentq  # deferred: heavy import

    f = lambda c: float(chibar2_pvalue(c, df)) - alpha  # noqa: E731
    return float(brentq(f, 1e-12, 200.0, xtol=1e-12))


def lrt_method(method: str) -> str:
    """The likelihood a likelihood-ratio statistic compares: ``"REML"`` or ``"ML"`` (case-insensitive)."""
    m = str(method).upper()
    if m not in ("REML", "ML"):
        raise OptionError(f"The likelihood-ratio test needs method 'REML' or 'ML', not {method!r}.")
    return m


__all__ = ["chi2_pvalue", "chibar2_critical", "chibar2_pvalue", "lrt_method"]
