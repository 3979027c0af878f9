"""Test and interval rows of study fits that request inference (``tests``, ``intervals``).

Row types (schema in :mod:`compare_mm.study.row_schema`):

* ``"test"`` — one row per (replicate, fit, test, tested parameter): ``test`` the test's name,
  ``parameter`` the canonical variance tested (``sigma_a2`` for the intercept effects, ``sigma_b2`` for the
  slope), ``estimate`` the statistic, ``p_value``;
* ``"interval"`` — one row per (replicate, fit, interval kind other than the fit's primary one, canonical
  parameter): ``lower``, ``upper``, ``interval_kind`` (``profile-sd2`` etc. when a variance interval is
  an SD interval squared — exact for profile and percentile intervals, both equivariant under s → s²).
  The ``exact`` kind adds the parameters ``gamma`` (σ_A²/σ_e²) and ``icc`` (σ_A²/(σ_A² + σ_e²)), whose
  ``truth`` and ``estimate`` are computed from the true and estimated variances.

Two routes, as for the param rows (:mod:`compare_mm.study.rows`):

* balanced one-way fits on the closed-form fast path: F test, χ² and χ̄² LRTs and the exact RLRT in closed
  form, vectorised over the chunk (:func:`compare_mm.oneway.htests.oneway_test_statistics`; the
  exact RLRT's p-value is exact there, no simulation); the interval kinds wald, t, ``exact`` (μ by t,
  σ_e² by χ², γ = σ_A²/σ_e² and the ICC by F), ``mls`` (σ_A², Graybill & Wang) and ``profile`` vectorised
  too (:mod:`compare_mm.oneway.intervals`, :mod:`compare_mm.oneway.profile`); the bootstrap LRT and
  bootstrap intervals per replicate by the inference code (:func:`replicate_inference`);
* every other fit: :func:`replicate_inference` on the replicate's design.

Random streams (exact RLRT simulation, bootstrap) come from :func:`inference_seed` — a function of (study
seed, condition, replicate, fit index) only — so rows do not depend on chunking, workers or resume.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..results.schema import Interval, TestResult
from .rows import _SD_OF, CANONICAL, NAN, Part, _interval, _posterior_values, canonical_names, parameters
from ..inference.run import infer, optimum
from ..oneway.htests import oneway_test_statistics

#: random-effect term → canonical variance it tests
TEST_PARAMETER = {"(Intercept)": "sigma_a2", "x": "sigma_b2"}
#: grouping factor → canonical variance it tests, where the factor decides it (two-way: two intercepts)
TEST_GROUP_PARAMETER = {"block": "sigma_b2", "block:trt": "sigma_ab2"}
CLOSED_FORM_TESTS = ("f_test", "lrt_chi2", "lrt_chibar2", "exact_rlrt")


def inference_seed(seed: int, condition: int, replicate: int, fit_index: int) -> int:
    """A 128-bit seed for the inference of fit ``fit_index`` on one replicate:
    ``SeedSequence(seed, spawn_key=(condition, replicate, 1 + fit_index, 1))`` (the fit's own sampler
    seed uses the key without the trailing 1, :func:`compare_mm.study.generate.fit_seed`)."""
    words = np.random.SeedSequence(seed, spawn_key=(condition, replicate, 1 + fit_index, 1)).generate_state(2, np.uint64)
    return (int(words[0]) << 64) | int(words[1])


def tested_parameters(model: str, covariance: str | None) -> list[str]:
    """Canonical variances the tests of a model's components are about (formula order)."""
    if model == "oneway":
        return ["sigma_a2"]
    if model == "two_way":
        return ["sigma_b2", "sigma_ab2"]
    return ["sigma_a2", "sigma_b2"] if covariance == "diagonal" else ["sigma_b2"]


def replicate_inference(design, fit, level: float, seed: int, skip: tuple[str, ...] = (),
                        result=None, skip_intervals: tuple[str, ...] = ()) -> tuple[list[TestResult], list[Interval]]:
    """The tests and profile / bootstrap intervals ``fit`` requests, on one replicate's design.

    Runs the one orchestrator, :func:`compare_mm.inference.run.infer`, with the study's seed as its
    entropy (so the streams are the CLI's).  ``result`` is the replicate's fit when there is one (its
    optimum is re-used, :func:`compare_mm.inference.run.optimum`); the closed-form route passes None and
    the optimum is fitted once, shared by every test.  Tests in ``skip`` (computed in closed form
    elsewhere) are left out, and so are interval kinds in ``skip_intervals``.
    """
    tests = [t for t in fit.test_list if t not in skip]
    kinds = (set(fit.intervals or []) | {fit.interval}) - set(skip_intervals)
    full = optimum(design, result) if (tests or "bootstrap" in kinds) else None
    out_t, out_i, _ = infer(design, full, tests=tests, intervals=sorted(kinds & {"profile", "bootstrap"}),
                            profile=fit.profile or "ml", bootstrap=int(fit.bootstrap or 0), nsim=fit.nsim or 10_000,
                            entropy=seed, level=level)
    return out_t, out_i


def lookup_interval(intervals, name: str, kind: str) -> tuple[float, float, str]:
    """(lower, upper, kind) of lme4-named parameter ``name`` among ``intervals``; a variance from its SD's
    interval squared (kind ``<kind>-sd2``); NaNs and ``""`` when absent."""
    for iv in intervals:
        if iv.parameter == name and iv.kind == kind:
            return float(iv.lower), float(iv.upper), kind
    sd = _SD_OF.get(name)
    for iv in intervals:
        if sd is not None and iv.parameter == sd and iv.kind == kind:
            return max(float(iv.lower), 0.0) ** 2, float(iv.upper) ** 2, f"{kind}-sd2"
    return NAN, NAN, ""


def test_parameter(group, term) -> str:
    """The canonical variance a test of random effect ``term`` of ``group`` is about."""
    return TEST_GROUP_PARAMETER.get(str(group)) or TEST_PARAMETER.get(str(term), str(term))


def test_row(head: dict[str, Any], name: str, parameter: str, truth: dict[str, float], statistic, p_value,
             level: float, st: dict[str, Any]) -> dict[str, Any]:
    """The columns of a test row (scalars, or arrays over replicates)."""
    return dict(head, row_type="test", test=name, parameter=parameter, truth=truth.get(parameter, NAN),
                estimate=statistic, p_value=p_value, level=level, **st)


def interval_row(head: dict[str, Any], parameter: str, truth, estimate, lower, upper, interval_kind,
                 level: float, st: dict[str, Any]) -> dict[str, Any]:
    """The columns of an interval row (scalars, or arrays over replicates)."""
    return dict(head, row_type="interval", parameter=parameter, truth=truth, estimate=estimate, lower=lower,
                upper=upper, interval_kind=interval_kind, level=level, **st)


def _test_row(head: dict[str, Any], t: TestResult, truth: dict[str, float], level: float,
              st: dict[str, Any]) -> dict[str, Any]:
    return test_row(head, t.name, test_parameter(t.group, t.term), truth, float(t.statistic), float(t.p_value),
                    level, st)


def failed_inference_rows(head: dict[str, Any], fit, model: str, covariance: str | None, truth: dict[str, float],
                          level: float, st: dict[str, Any], error: str,
                          skip: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    """Rows of a replicate whose inference raised: each test NaN with ``ok`` False and the error."""
    bad = dict(st, ok=False, error=error)
    return [dict(head, row_type="test", test=name, parameter=p, truth=truth.get(p, NAN), estimate=NAN,
                 p_value=NAN, level=level, **bad)
            for name in fit.test_list if name not in skip for p in tested_parameters(model, covariance)]


def inference_rows(head: dict[str, Any], result, param_rows: list[dict[str, Any]], fit, model: str,
                   covariance: str | None, level: float, truth: dict[str, float],
                   st: dict[str, Any], cond: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """Test rows (``result.tests`` that the fit requested) and interval rows (every extra kind) of one
    successful fit whose result carries its inference (generic route; ``cond`` names two-way's parameters)."""
    rows = [_test_row(head, t, truth, level, st) for t in result.tests if t.name in fit.test_list]
    names = canonical_names(model, cond)
    by_param = {r["parameter"]: r for r in param_rows}
    posterior = bool(result.posterior)
    for kind in fit.extra_intervals:
        if kind in ("exact", "mls"):
            continue  # balanced one-way only (fast path); no rows in the other conditions of a mixed study
        if posterior and kind == "hdi":
            continue  # the HDI is stored in the param rows' hdi_lower/hdi_upper (metric coverage, interval_kind hdi)
        for canon in parameters(model, covariance, cond):
            pr = by_param.get(canon, {})
            est, se = pr.get("estimate", NAN), pr.get("se", NAN)
            post = _posterior_values(result, names[canon]) if posterior else None
            lo, hi, ik = _interval(result, names[canon], kind, est, se, level, post)
            rows.append(interval_row(head, canon, truth[canon], est, lo, hi, ik, level, st))
    return rows


# ---------------------------------------------------------------------------- closed-form route
def closed_form_test_parts(head: dict[str, Any], fit, stats_, level: float, truth: dict[str, float],
                           reps: np.ndarray, st: dict[str, Any]) -> list[Part]:
    """One block of test rows per closed-form test the fit requests (balanced one-way, vectorised)."""
    wanted = [t for t in fit.test_list if t in CLOSED_FORM_TESTS]
    if not wanted:
        return []
    res = oneway_test_statistics(stats_, fit.method if fit.method in ("REML", "ML") else "REML", wanted)
    return [Part(len(reps), dict(head, row_type="test", replicate=reps, test=name, parameter="sigma_a2",
                                 truth=truth["sigma_a2"], estimate=np.asarray(res[name][0], float),
                                 p_value=np.asarray(res[name][1], float), level=level, **st))
            for name in wanted]


def closed_form_interval(est, kind: str, canon: str) -> tuple[np.ndarray, np.ndarray, str]:
    """μ's Wald or t interval from :class:`compare_mm.oneway.closed_forms.OnewayEstimates`; NaN for variances and
    for other kinds (the fast path has no other interval)."""
    if canon == "mu" and kind == "wald":
        return est.mu_wald_lower, est.mu_wald_upper, "wald"
    if canon == "mu" and kind == "t":
        return est.mu_lower, est.mu_upper, "t"
    nan = np.full(np.shape(est.mu), NAN)
    return nan, nan, ""


def _derived(values: dict[str, Any]) -> dict[str, Any]:
    """``values`` (mu, sigma_a2, sigma_e2) with γ = σ_A²/σ_e² and the ICC σ_A²/(σ_A² + σ_e²) added."""
    sa2, se2 = values["sigma_a2"], values["sigma_e2"]
    with np.errstate(divide="ignore", invalid="ignore"):
        return dict(values, gamma=sa2 / se2, icc=sa2 / (sa2 + se2))


def fast_inference(head: dict[str, Any], fit, design, Y: np.ndarray, reps: np.ndarray, est, level: float,
                   truth: dict[str, float], seeds: list[int], st_of, stats_=None,
                   ) -> tuple[list[dict[str, Any]], dict, list[Part]]:
    """Inference of a fast-path fit: closed-form interval kinds vectorised, the bootstrap per replicate.

    Vectorised over the chunk (``stats_``, the replicates' :class:`~compare_mm.oneway.closed_forms.OnewayStats`):
    wald and t (μ), ``exact`` and ``mls`` (:mod:`compare_mm.oneway.intervals`: rows for the parameters each
    defines — exact: mu, sigma_e2, gamma = σ_A²/σ_e², icc; mls: sigma_a2) and ``profile``
    (:func:`compare_mm.oneway.profile.oneway_profile_intervals`, kind ``profile``: variance limits profiled
    directly, equal to the squared SD limits of the general routine).  Per replicate
    (:func:`replicate_inference`): bootstrap intervals and the bootstrap LRT.

    Returns ``(dict_rows, primary, parts)``: per-replicate test and interval rows as dicts, the primary
    interval per canonical parameter ``{canon: (lower, upper, kind)}`` (arrays over ``reps``) when the
    primary kind is profile or bootstrap, and the vectorised interval blocks.  ``st_of(i)`` gives the status
    columns of replicate i (``st_of(None)``: all of them).
    """
    from ..oneway.closed_forms import oneway_stats
    from ..oneway.intervals import closed_form_intervals
    from ..oneway.profile import oneway_profile_intervals

    params = parameters("oneway", None)
    names = CANONICAL["oneway"]
    kinds = list(fit.extra_intervals)
    per_rep = [k for k in kinds if k == "bootstrap"]
    need = fit.interval == "bootstrap" or bool(per_rep) or "bootstrap_lrt" in fit.test_list
    R = len(reps)
    rows: list[dict[str, Any]] = []
    primary: dict[str, tuple] = {}
    estimates = _derived({"mu": est.mu, "sigma_a2": est.sigma_a2, "sigma_e2": est.sigma_e2})
    truths = _derived({c: truth[c] for c in params})
    parts: list[Part] = []

    def block(c, lo, hi, ik):
        return Part(R, dict(head, row_type="interval", replicate=reps, parameter=c, truth=truths[c],
                            estimate=estimates[c], lower=lo, upper=hi, interval_kind=ik, level=level,
                            **st_of(None)))

    stats_ = stats_ if stats_ is not None else oneway_stats(Y)
    prof = None
    if fit.interval == "profile" or "profile" in kinds:
        prof = oneway_profile_intervals(stats_, fit.profile or "ml", level)
    if fit.interval == "profile":
        nan = np.full(R, NAN)
        primary = {c: (prof[c].lower, prof[c].upper, "profile") if c in prof else (nan, nan, "") for c in params}
    elif fit.interval == "bootstrap":
        primary = {c: (np.full(R, NAN), np.full(R, NAN), np.full(R, "", dtype=object)) for c in params}
    for kind in kinds:
        if kind in ("wald", "t"):
            for c in params:
                parts.append(block(c, *closed_form_interval(est, kind, c)))
        elif kind in ("exact", "mls"):
            for c, lim in closed_form_intervals(stats_, kind, level).items():
                parts.append(block(c, lim.lower, lim.upper, kind))
        elif kind == "profile":
            for c in params:
                if c in prof:
                    parts.append(block(c, prof[c].lower, prof[c].upper, "profile"))
    if not need:
        return rows, primary, parts
    for i, r in enumerate(reps):
        h = dict(head, replicate=int(r))
        st = st_of(i)
        try:
            tests, ivs = replicate_inference(design.with_y(Y[i].ravel()), fit, level, seeds[i], skip=CLOSED_FORM_TESTS,
                                             skip_intervals=("profile",))
        except Exception as exc:  # noqa: BLE001 — recorded, the study goes on
            msg = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            rows.extend(failed_inference_rows(h, fit, "oneway", None, truth, level, st,
                                              f"{type(exc).__name__}: {msg}", skip=CLOSED_FORM_TESTS))
            continue
        rows.extend(_test_row(h, t, truth, level, st) for t in tests)
        for c in params:
            if fit.interval == "bootstrap":
                lo, hi, ik = lookup_interval(ivs, names[c], fit.interval)
                primary[c][0][i], primary[c][1][i], primary[c][2][i] = lo, hi, ik
            for kind in per_rep:
                lo, hi, ik = lookup_interval(ivs, names[c], kind)
                rows.append(dict(h, row_type="interval", parameter=c, truth=truth[c],
                                 estimate=float(estimates[c][i]), lower=lo, upper=hi, interval_kind=ik,
                                 level=level, **st))
    return rows, primary, parts


__all__ = ["CLOSED_FORM_TESTS", "TEST_PARAMETER", "closed_form_interval", "closed_form_test_parts",
           "failed_inference_rows", "fast_inference", "inference_rows", "inference_seed", "lookup_interval",
           "replicate_inference", "tested_parameters"]
