"""Metrics of test and interval rows (:mod:`compare_mm.study.rows_inference`), each with its MCSE.

Per (condition, fit, test, tested parameter):

* ``size_<test>`` when the true variance tested is 0, else ``power_<test>`` — the rejection rate
  P(p < α), α = 1 − level, over the replicates whose test gave a p-value; MCSE sqrt(p(1 − p)/n)
  (Morris, White & Crowther 2019, Table 6).  ``exact`` on balanced one-way conditions for ``f_test``,
  ``exact_rlrt`` (= the F test's, see :mod:`compare_mm.oneway.htests`) and ``lrt_chi2`` /
  ``lrt_chibar2`` of REML and ML fits (exact finite-sample rejection probabilities through the F
  distribution, :func:`compare_mm.oneway.htests.oneway_rejection_probability`); on unbalanced one-way
  conditions for ``lrt_chi2``, ``lrt_chibar2`` and ``exact_rlrt`` by the spectral simulation of
  :mod:`compare_mm.inference.onevc` (:mod:`compare_mm.study.exact_general`).

Per (condition, fit, parameter, interval kind other than the fit's primary one):

* ``coverage_<kind>`` and ``mean_width_<kind>`` (as ``coverage``/``mean_width`` for the primary interval;
  a posterior fit's HDI is ``coverage``/``mean_width`` with interval_kind ``hdi``), over the replicates with a finite interval;
  ``exact`` where :mod:`compare_mm.study.exact` has one (Wald and t intervals for μ; the ``exact`` kind;
  ``mls`` and ``profile`` intervals of σ_A² at σ_A² = 0).

``n_ok`` / ``n_failed`` of these rows count replicates with / without a p-value or finite interval among
the replicates the fit ran on.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import numpy as np
import pandas as pd

from ..errors import NoExactValueError
from ..oneway.htests import oneway_rejection_probability
from .exact import exact_value
from .exact_general import general_exact_rejection
from .mcse import mean_mcse, proportion

NAN = float("nan")
#: parameters that are 0 on the boundary of the parameter space (σ_A² = 0)
ZERO_AT_BOUNDARY = ("sigma_a2", "sigma_b2", "gamma", "icc")
CLOSED_AT_0 = ("true value 0 on the boundary: the interval is closed at 0 (lower limit exactly 0 when the data "
               "are compatible with 0), so it can cover it; an interval inside (0, ∞), such as a posterior's, "
               "cannot")


@lru_cache(maxsize=4096)
def _exact_rejection(test: str, method: str, a: int, n: int, sa2: float, se2: float, alpha: float) -> float:
    if test in ("lrt_chi2", "lrt_chibar2") and method not in ("REML", "ML"):
        return NAN
    return oneway_rejection_probability(test, a, n, sa2, se2, alpha, method)


def exact_rejection(test: str, model: str, cond: dict[str, Any], method: str, parameter: str,
                    level: float) -> float:
    """Exact rejection probability of ``test`` in a one-way condition (NaN elsewhere): closed forms when
    balanced, spectral simulation when not (:mod:`compare_mm.study.exact_general`)."""
    general = general_exact_rejection(test, model, cond, method, parameter, level)
    if general is not None:
        return general
    if (model != "oneway" or parameter != "sigma_a2" or "per_group" not in cond
            or isinstance(cond.get("per_group"), list)
            or test not in ("f_test", "exact_rlrt", "lrt_chi2", "lrt_chibar2")):
        return NAN
    try:
        return _exact_rejection(test, str(method).upper(), int(cond["groups"]), int(cond["per_group"]),
                                float(cond["sigma_a2"]), float(cond["sigma_e2"]), round(1.0 - float(level), 12))
    except NoExactValueError:  # the theory has no value here; any other exception is a bug and propagates
        return NAN


def test_metrics(g: pd.DataFrame, n_reps: int, model: str, cond: dict[str, Any], method: str,
                 level: float) -> list[dict[str, Any]]:
    """Size or power of every test in the test rows ``g`` of one (condition, fit)."""
    alpha = round(1.0 - level, 12)  # 1 − 0.95 is 0.05000000000000004: a bootstrap p of exactly 1/20 must not reject
    out = []
    for (test, parameter), gt in g.groupby(["test", "parameter"], sort=False, observed=True):
        p = gt["p_value"].to_numpy(float)
        ok = gt["ok"].to_numpy(bool) & np.isfinite(p)
        truth = float(gt["truth"].iloc[0])
        kind = "size" if truth == 0 else "power"
        value, mcse = proportion(p[ok] < alpha)
        n_ok = int(ok.sum())
        note = (f"{test} of {parameter} = 0 at alpha = {alpha:g}: rejection rate "
                f"({'true ' + parameter + ' = 0' if kind == 'size' else 'true ' + parameter + f' = {truth:g}'})")
        errors = gt.loc[~gt["ok"].to_numpy(bool), "error"].astype(str)
        if len(errors):
            note += f"; {len(errors)} failed, most common: {errors.value_counts().index[0]}"
        out.append(dict(parameter=str(parameter), metric=f"{kind}_{test}", value=value, mcse=mcse,
                        exact=exact_rejection(str(test), model, cond, method, str(parameter), level),
                        note=note, interval_kind="", n_ok=n_ok, n_failed=max(n_reps - n_ok, 0)))
    return out


def exact_kind(kind: str, profile_mode: str | None) -> str:
    """The interval kind under which :func:`compare_mm.study.exact.exact_value` files a coverage: a profile
    interval's exact coverage depends on its mode (``profile-reml`` / ``profile-ml``)."""
    base = str(kind).split("-")[0]
    return f"profile-{profile_mode or 'ml'}" if base == "profile" else base


def interval_metrics(g: pd.DataFrame, n_reps: int, model: str, cond: dict[str, Any], posterior: bool, method: str,
                     level: float, profile_mode: str | None = None) -> list[dict[str, Any]]:
    """Coverage and mean width of every extra interval kind in the interval rows ``g`` of one (condition, fit)."""
    out = []
    kinds = g["interval_kind"].astype(str).str.split("-").str[0]
    for (kind, parameter), gi in g.groupby([kinds, "parameter"], sort=False, observed=True):
        if not kind:
            continue
        lo, hi = gi["lower"].to_numpy(float), gi["upper"].to_numpy(float)
        fin = np.isfinite(lo) & np.isfinite(hi) & gi["ok"].to_numpy(bool)
        if not fin.any():
            continue
        truth = float(gi["truth"].iloc[0])
        stored = gi.loc[fin, "interval_kind"].astype(str)
        ikind = str(stored.mode().iloc[0])
        note = f"{kind} interval" + (" (variance limits: squared SD limits)" if ikind.endswith("-sd2") else "")
        if truth == 0 and parameter in ZERO_AT_BOUNDARY:
            note += f"; {CLOSED_AT_0}"
        n_ok = int(fin.sum())
        common = dict(parameter=str(parameter), interval_kind=ikind, note=note, n_ok=n_ok,
                      n_failed=max(n_reps - n_ok, 0))
        cov, cov_se = proportion((lo[fin] <= truth) & (truth <= hi[fin]))
        out.append(dict(common, metric=f"coverage_{kind}", value=cov, mcse=cov_se,
                        exact=exact_value(model, cond, posterior, method, str(parameter), "coverage", level,
                                          exact_kind(kind, profile_mode))))
        width, width_se = mean_mcse(hi[fin] - lo[fin])
        out.append(dict(common, metric=f"mean_width_{kind}", value=width, mcse=width_se, exact=NAN))
    return out


__all__ = ["exact_kind", "exact_rejection", "interval_metrics", "test_metrics"]
