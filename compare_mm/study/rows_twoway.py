"""Rows of the balanced two-way closed forms (:mod:`compare_mm.twoway`), vectorised over a chunk's replicates.

* :func:`ftest_parts` — the exact F tests of σ_AB² = 0 (MS_AB/MS_E) and σ_B² = 0 (MS_B/MS_AB) of every
  replicate, as fit ``"F-test"`` param rows (``estimate`` the F statistic, ``p_value``), as for one-way;
* :func:`anova_parts` — a ``method: ANOVA`` fit: the unbiased ANOVA estimates (σ̂ may be negative;
  ``boundary`` when one is ≤ 0), treatment means and contrasts with their intervals.  A contrast
  ȳ_i.. − ȳ_1.. has SE sqrt(2 MS_AB/(bn)); its ``t`` interval uses t_{(t−1)(b−1)} (exact), its ``wald``
  interval the normal quantile.  μ (treatment 1's mean) has SE² = (MS_B + (t − 1) MS_AB)/(tbn), a sum of
  two mean squares: its ``t`` interval takes Satterthwaite's df (not exact).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .rows import NAN, Part, status
from ..twoway.anova import TwowayStats, estimates, f_tests


def ftest_parts(head: dict[str, Any], st: TwowayStats, truth: dict[str, float], reps: np.ndarray,
                level: float) -> list[Part]:
    """Two blocks of F-test rows (σ_AB², then σ_B²) for the replicates ``reps``."""
    ft = f_tests(st)
    common = dict(head, fit="F-test", backend="", method="F", row_type="param", replicate=reps, level=level,
                  interval_kind="", **status(elapsed_s=0.0))
    return [Part(len(reps), dict(common, parameter="sigma_ab2", truth=truth["sigma_ab2"], estimate=ft.f_ab,
                                 p_value=ft.p_ab)),
            Part(len(reps), dict(common, parameter="sigma_b2", truth=truth["sigma_b2"], estimate=ft.f_b,
                                 p_value=ft.p_b))]


def _intervals(st: TwowayStats, kind: str, level: float) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """canonical → (estimate, se, (lower, upper)) of μ and the contrasts for interval ``kind`` (wald | t)."""
    from scipy import stats  # deferred: scipy.stats is a heavy import that summarise/report never need
    t, b, n = st.t, st.b, st.n
    d_b, d_ab, _ = st.df
    a_b, a_ab = st.ms_b / (t * b * n), (t - 1) * st.ms_ab / (t * b * n)
    se_mu = np.sqrt(a_b + a_ab)
    se_c = np.sqrt(2.0 * st.ms_ab / (b * n))
    p = 0.5 + level / 2
    if kind == "t":
        df_mu = (a_b + a_ab) ** 2 / (a_b**2 / d_b + a_ab**2 / d_ab)
        q_mu, q_c = stats.t.ppf(p, df_mu), float(stats.t.ppf(p, d_ab))
    else:
        q_mu = q_c = float(stats.norm.ppf(p))
    m = st.trt_means
    out = {"mu": (m[:, 0], se_mu, q_mu)}
    for i in range(1, t):
        out[f"trt{i + 1}"] = (m[:, i] - m[:, 0], se_c, q_c)
    return out


def anova_parts(head: dict[str, Any], st: TwowayStats, kind: str, extra: list[str], level: float,
                truth: dict[str, float], reps: np.ndarray, elapsed_per_fit: float) -> list[Part]:
    """Param rows of an ANOVA fit of R balanced two-way replicates (primary interval ``kind``) and interval
    rows of each kind in ``extra`` (wald, t)."""
    e = estimates(st, "ANOVA")
    R = len(reps)
    bnd = (e.sigma_b2 <= 0) | (e.sigma_ab2 <= 0)
    st_cols = dict(ok=True, error="", converged=True, boundary=bnd, singular=bnd, divergences=NAN, max_rhat=NAN,
                   elapsed_s=elapsed_per_fit)
    common = dict(head, row_type="param", replicate=reps, level=level, **st_cols)
    prim = kind if kind in ("wald", "t") else "wald"
    out = []
    for canon, (est, se, q) in _intervals(st, prim, level).items():
        out.append(Part(R, dict(common, parameter=canon, truth=truth[canon], estimate=est, se=se, lower=est - q * se,
                                upper=est + q * se, interval_kind=prim)))
    for canon, est in (("sigma_b2", e.sigma_b2), ("sigma_ab2", e.sigma_ab2), ("sigma_e2", e.sigma_e2)):
        out.append(Part(R, dict(common, parameter=canon, truth=truth[canon], estimate=est, se=NAN, lower=NAN,
                                upper=NAN, interval_kind="")))
    for k in extra:
        if k not in ("wald", "t") or k == prim:
            continue
        for canon, (est, se, q) in _intervals(st, k, level).items():
            out.append(Part(R, dict(common, row_type="interval", parameter=canon, truth=truth[canon], estimate=est,
                                    lower=est - q * se, upper=est + q * se, interval_kind=k)))
    return out


__all__ = ["anova_parts", "ftest_parts"]
