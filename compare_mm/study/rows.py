"""Turn fits into the per-replicate rows of a study (columns in :mod:`compare_mm.study.row_schema`).

Two routes:

* :func:`oneway_fast_rows` — REML/ML/ANOVA of a balanced one-way design by the closed forms of
  :func:`compare_mm.oneway.closed_forms.fit_oneway`, vectorised over all replicates of a chunk;
* :func:`result_rows` — any backend's :class:`~compare_mm.results.schema.FitResult`, mapping lme4 ``confint``
  names to the study's canonical names (:data:`CANONICAL`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..results.schema import FitResult
from ..oneway.closed_forms import f_test, fit_oneway
from . import generate_twoway

#: canonical name → lme4 confint name, per model
CANONICAL: dict[str, dict[str, str]] = {
    "oneway": {"mu": "(Intercept)", "sigma_a2": "var_(Intercept)|g", "sigma_e2": "sigma2"},
    "random_slope": {"beta0": "(Intercept)", "beta1": "x", "sigma_a2": "var_(Intercept)|g",
                     "sigma_b2": "var_x|g", "rho": "cor_x.(Intercept)|g", "sigma_e2": "sigma2"},
}
#: variance name → the SD name whose square it is
_SD_OF = {"var_(Intercept)|g": "sd_(Intercept)|g", "var_x|g": "sd_x|g", "sigma2": "sigma",
          "var_(Intercept)|block": "sd_(Intercept)|block", "var_(Intercept)|block:trt": "sd_(Intercept)|block:trt"}
#: the variance components whose boundary sets a row's ``boundary`` flag, per model
BOUNDARY_COMPONENTS = {"two_way": ("sigma_b2", "sigma_ab2")}
_EFFECT = {"(Intercept)": "u_a", "x": "u_b"}
NAN = float("nan")


def canonical_names(model: str, cond: dict[str, Any] | None = None) -> dict[str, str]:
    """Canonical name → lme4 confint name for ``model`` (two-way: per condition, its treatment contrasts)."""
    if model == "two_way":
        return generate_twoway.canonical(cond or {})
    return CANONICAL[model]


def parameters(model: str, covariance: str | None, cond: dict[str, Any] | None = None) -> list[str]:
    """Canonical parameters a fit of ``model`` reports (no ``rho`` for a diagonal random slope; two-way:
    ``cond`` gives the number of treatment contrasts)."""
    names = list(canonical_names(model, cond))
    if model == "random_slope" and covariance == "diagonal":
        names.remove("rho")
    return names


def status(ok: bool = True, error: str = "", converged: bool = True, boundary: bool = False,
           divergences: float = NAN, max_rhat: float = NAN, elapsed_s: float = NAN,
           singular: bool = False, min_ess: float = NAN, integration_error: float = NAN) -> dict[str, Any]:
    """Per-fit status columns."""
    return dict(ok=ok, error=error, converged=converged, boundary=boundary, singular=singular,
                divergences=divergences, max_rhat=max_rhat, min_ess=min_ess, integration_error=integration_error,
                elapsed_s=elapsed_s)


def failed_rows(head: dict[str, Any], params: list[str], truth: dict[str, float], error: str,
                elapsed: float) -> list[dict[str, Any]]:
    """Rows of a fit that raised: one per expected parameter, estimates NaN, ``ok`` False."""
    st = status(ok=False, error=error, converged=False, elapsed_s=elapsed)
    return [dict(head, row_type="param", parameter=p, truth=truth[p], **st) for p in params]


# ---------------------------------------------------------------------------- generic FitResult
def _posterior_values(result: FitResult, name: str) -> dict[str, float] | None:
    """mean, sd, median, mode, eti, hdi of one parameter (variances from SDs by squaring if needed)."""
    post = {p.parameter: p for p in result.posterior}
    if name in post:
        p = post[name]
        return dict(mean=p.mean, sd=p.sd, median=p.median, mode=p.mode, eti_lower=p.eti_lower,
                    eti_upper=p.eti_upper, hdi_lower=p.hdi_lower, hdi_upper=p.hdi_upper)
    sd_name = _SD_OF.get(name)
    if sd_name in post:  # quantiles transform under the monotone map s → s²; the HDI only approximately
        p = post[sd_name]
        return dict(mean=NAN, sd=NAN, median=p.median**2, mode=NAN, eti_lower=max(p.eti_lower, 0) ** 2,
                    eti_upper=p.eti_upper**2, hdi_lower=max(p.hdi_lower, 0) ** 2, hdi_upper=p.hdi_upper**2)
    return None


def _clipped_square(x):
    """max(x, 0)² of a limit or an array of limits (an SD interval's limit as a variance's)."""
    return max(x, 0.0) ** 2 if np.ndim(x) == 0 else np.maximum(x, 0.0) ** 2


def interval_of(find, name: str, kind: str, estimate, se, level: float,
                post: dict[str, float] | None) -> tuple[Any, Any, Any]:
    """(lower, upper, kind) of lme4-named parameter ``name`` for the row's interval kind ``kind``.

    ``find(parameter, kind)`` gives a fit's (lower, upper) or None.  In order: the parameter's own
    interval; a variance from its SD's interval squared (kind ``<kind>-sd2``); a posterior's ETI / HDI; a
    Wald interval estimate ± z·SE for a fixed effect with a finite SE; else NaN and ``""``.  Scalars for
    one fit, or arrays over replicates whose fits carry the same intervals (the column path,
    :mod:`compare_mm.study.rows_columns`) — the same operations either way.
    """
    from scipy import stats  # deferred: scipy.stats is a heavy import that summarise/report never need
    iv = find(name, kind)
    if iv is not None:
        return iv[0], iv[1], kind
    sd_name = _SD_OF.get(name)
    if sd_name is not None:
        iv = find(sd_name, kind)
        if iv is not None:
            return _clipped_square(iv[0]), iv[1] ** 2, f"{kind}-sd2"
    if post is not None and kind in ("eti", "hdi"):
        return post[f"{kind}_lower"], post[f"{kind}_upper"], kind
    if kind == "wald" and not name.startswith(("var_", "sd_", "cor_", "sigma")):
        z = float(stats.norm.ppf(0.5 + level / 2))
        if np.ndim(se) == 0:
            if math.isfinite(se):
                return estimate - z * se, estimate + z * se, "wald"
        else:
            fin = np.isfinite(se)
            return (np.where(fin, estimate - z * se, NAN), np.where(fin, estimate + z * se, NAN),
                    np.where(fin, "wald", "").astype(object))
    if np.ndim(estimate):
        nan = np.full(np.shape(estimate), NAN)
        return nan, nan, ""
    return NAN, NAN, ""


def _interval(result: FitResult, name: str, kind: str, estimate: float, se: float, level: float,
              post: dict[str, float] | None) -> tuple[float, float, str]:
    """:func:`interval_of` for one fit's own intervals."""
    def find(parameter, k):
        iv = result.interval(parameter, k)
        return None if iv is None else (iv.lower, iv.upper)
    return interval_of(find, name, kind, estimate, se, level, post)


def param_row(head: dict[str, Any], parameter: str, truth, estimate, se, lower, upper, interval_kind,
              level: float) -> dict[str, Any]:
    """The columns of a param row other than the status ones (scalars, or arrays over replicates)."""
    return dict(head, row_type="param", parameter=parameter, truth=truth, estimate=estimate, se=se,
                lower=lower, upper=upper, interval_kind=interval_kind, level=level)


def group_row(head: dict[str, Any], parameter: str, group, truth, raw, estimate, se,
              st: dict[str, Any]) -> dict[str, Any]:
    """The columns of a group row (one group's predicted effect ``parameter``, ``u_a`` or ``u_b``)."""
    return dict(head, row_type="group", parameter=parameter, group=group, truth=truth, raw=raw,
                estimate=estimate, se=se, **st)


def _min_ess(result: FitResult) -> float:
    """Smallest bulk or tail ESS over the posterior summaries (NaN if none is finite; the row schema's
    ``min_ess``, behind the summary's low-ESS rate)."""
    ess = [e for p in result.posterior for e in (p.ess_bulk, p.ess_tail) if e is not None and math.isfinite(e)]
    return float(min(ess)) if ess else NAN


def _integration_error(diag: dict[str, Any]) -> float:
    """A quadrature posterior's estimated integration error (``diagnostics["integration_error"]``, in
    posterior SDs; the row schema's ``integration_error``), NaN for a sampled posterior."""
    err = diag.get("integration_error") if diag.get("sampler") == "quadrature" else None
    return float(err) if err is not None else NAN


def result_rows(head: dict[str, Any], result: FitResult, model: str, covariance: str | None, kind: str,
                level: float, truth: dict[str, float], boundary_threshold: float,
                u_true: np.ndarray, raw: np.ndarray, level_index: dict[str, int],
                elapsed: float, cond: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """Param and group rows of one successful fit (``cond``: the condition, for two-way's parameter names)."""
    est = result.estimates()
    se_fix = {r.term: r.se for r in result.fixef}
    names = canonical_names(model, cond)
    rows: list[dict[str, Any]] = []
    posterior = bool(result.posterior)
    diag = result.diagnostics or {}
    rhats = [p.rhat for p in result.posterior if p.rhat is not None and math.isfinite(p.rhat)]
    div = diag.get("divergences", diag.get("n_divergences", NAN)) if posterior else NAN
    st = status(converged=bool(result.converged), singular=bool(getattr(result, "singular", False)),
                divergences=float(div) if div is not None else NAN,
                max_rhat=max(rhats) if rhats else NAN, min_ess=_min_ess(result) if posterior else NAN,
                integration_error=_integration_error(diag) if posterior else NAN,
                elapsed_s=result.elapsed_s or elapsed)
    param_rows = []
    for canon in parameters(model, covariance, cond):
        name = names[canon]
        estimate = est.get(name, NAN)
        estimate = NAN if estimate is None else float(estimate)
        post = _posterior_values(result, name) if posterior else None
        se = se_fix.get(name, NAN)
        if post is not None:
            se = post["sd"] if not math.isnan(post["sd"]) else se   # inf: the posterior has no finite SD
            if not math.isfinite(estimate) and math.isfinite(post["mean"]):
                estimate = post["mean"]
        se = NAN if se is None else float(se)
        lower, upper, ikind = _interval(result, name, kind, estimate, se, level, post)
        row = param_row(head, canon, truth[canon], estimate, se, lower, upper, ikind, level)
        if post is not None:
            row.update(median=post["median"], mode=post["mode"], hdi_lower=post["hdi_lower"],
                       hdi_upper=post["hdi_upper"])
        param_rows.append(row)
    comps = [r for r in param_rows if r["parameter"] in BOUNDARY_COMPONENTS.get(model, ("sigma_a2",))]
    if posterior:  # the fit's own interval (ETI by default, HDI with `interval: hdi`)
        boundary = any(math.isfinite(r["lower"]) and r["lower"] < boundary_threshold * truth["sigma_e2"]
                       for r in comps)
    else:
        boundary = any(r["estimate"] == 0.0 for r in comps)
    st["boundary"] = boundary
    bad = [r["parameter"] for r in param_rows if not math.isfinite(r["estimate"])]
    if bad:  # a NaN estimate is a failed fit, whatever the backend reported
        why = result.warnings[-1] if result.warnings else "no reason given"
        st.update(ok=False, converged=False,
                  error=f"non-finite estimate of {', '.join(bad)} ({why})")
    for row in param_rows:
        row.update(st)
        rows.append(row)
    for r in result.ranef:
        effect = _EFFECT.get(r.term)
        i = level_index.get(str(r.level))
        if effect is None or i is None or r.group != "g":
            continue
        j = 0 if effect == "u_a" else 1
        rows.append(group_row(head, effect, float(i), float(u_true[i, j]), float(raw[i, j]), float(r.value),
                              float(r.condsd) if r.condsd is not None else NAN, st))
    return rows


# ---------------------------------------------------------------------------- closed forms
@dataclass(frozen=True, eq=False)
class Part:
    """A block of ``n`` rows held column-wise: arrays of length n, or scalars repeated n times (cheap for
    the string columns of the vectorised path; :func:`compare_mm.study.runner.run_chunk` assembles them)."""

    n: int
    cols: dict[str, Any]


def _block(n: int, **cols: Any) -> Part:
    return Part(n, cols)


def oneway_fast_rows(head: dict[str, Any], stats_, method: str, kind: str, level: float,
                     truth: dict[str, float], reps: np.ndarray, U: np.ndarray, RAW: np.ndarray,
                     elapsed_per_fit: float, override: dict[str, tuple] | None = None,
                     estimates=None) -> list[Part]:
    """Param and group rows of a closed-form REML/ML/ANOVA fit of R balanced one-way replicates.

    ``stats_`` is the :class:`~compare_mm.oneway.closed_forms.OnewayStats` of the R replicates (in ``reps`` order);
    ``U`` and ``RAW`` are ``(R, a)`` realised effects and raw group-mean deviations.  ``override`` maps
    canonical parameters to ``(lower, upper, kind)`` arrays computed per replicate (a primary interval the
    closed forms do not give: profile, bootstrap); ``estimates`` is ``fit_oneway``'s result if known.
    """
    e = estimates if estimates is not None else fit_oneway(stats_, method, level)
    R, a = U.shape
    st = dict(ok=True, error="", converged=True, boundary=np.asarray(e.boundary, dtype=bool),
              singular=np.asarray(e.boundary, dtype=bool), divergences=NAN, max_rhat=NAN, elapsed_s=elapsed_per_fit)
    if kind == "t":
        lo, hi, ik = e.mu_lower, e.mu_upper, "t"
    else:
        lo, hi, ik = e.mu_wald_lower, e.mu_wald_upper, "wald"
    common = dict(head, row_type="param", replicate=reps, level=level, **st)
    ivs = {"mu": (lo, hi, ik), "sigma_a2": (NAN, NAN, ""), "sigma_e2": (NAN, NAN, "")}
    ivs.update(override or {})
    out = [
        _block(R, **common, parameter="mu", truth=truth["mu"], estimate=e.mu, se=e.se_mu, lower=ivs["mu"][0],
               upper=ivs["mu"][1], interval_kind=ivs["mu"][2]),
        _block(R, **common, parameter="sigma_a2", truth=truth["sigma_a2"], estimate=e.sigma_a2, se=NAN,
               lower=ivs["sigma_a2"][0], upper=ivs["sigma_a2"][1], interval_kind=ivs["sigma_a2"][2]),
        _block(R, **common, parameter="sigma_e2", truth=truth["sigma_e2"], estimate=e.sigma_e2, se=NAN,
               lower=ivs["sigma_e2"][0], upper=ivs["sigma_e2"][1], interval_kind=ivs["sigma_e2"][2]),
    ]
    gst = {k: (np.repeat(v, a) if np.ndim(v) else v) for k, v in st.items()}
    out.append(_block(R * a, **dict(head, row_type="group", replicate=np.repeat(reps, a), **gst),
                      parameter="u_a", group=np.tile(np.arange(a, dtype=float), R), truth=U.ravel(),
                      raw=RAW.ravel(), estimate=np.asarray(e.blup).ravel(),
                      se=np.repeat(np.asarray(e.blup_condsd), a)))
    return out


def ftest_rows(head: dict[str, Any], stats_, truth: dict[str, float], reps: np.ndarray,
               level: float) -> Part:
    """The exact F test of σ_A² = 0 for every replicate (fit ``"F-test"``)."""
    t = f_test(stats_)
    return _block(len(reps), **dict(head, fit="F-test", backend="", method="F", row_type="param",
                                    replicate=reps, parameter="sigma_a2", truth=truth["sigma_a2"],
                                    estimate=t.statistic, p_value=t.p_value, level=level,
                                    interval_kind=""),
                  **status(elapsed_s=0.0))
