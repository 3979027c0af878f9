"""Validation of the inference keys of a study fit: ``tests``, ``intervals``, ``nsim``, ``bootstrap``,
``profile`` (meaning in :mod:`compare_mm.study.config.schema`).

A test or interval kind that cannot be computed for the study's model — the F test outside the balanced
one-way model, the exact RLRT of a slope that carries a covariance, a likelihood-ratio test of an ANOVA
fit, a profile interval of a posterior — is a :class:`~compare_mm.errors.ConfigError` naming the key path,
raised before anything runs.  (The REML LRTs here always compare models with the same fixed effects: the
null model drops one random effect only.)
"""

from __future__ import annotations

import difflib
from typing import Any

from ...backends.base import backend_names, capability, get_backend
from ...errors import ConfigError
from .schema import ONEWAY_INTERVAL_KINDS, TESTS, FitConfig, StudyConfig, balanced_oneway

FREQ_INTERVALS = ("wald", "t", "profile", "bootstrap", "exact", "mls")
#: closed-form interval kinds of the balanced one-way model (:mod:`compare_mm.oneway.intervals`)
ONEWAY_INTERVALS = ONEWAY_INTERVAL_KINDS
POSTERIOR_INTERVALS = ("eti", "hdi")
LIKELIHOOD_TESTS = ("lrt_chi2", "lrt_chibar2", "exact_rlrt", "bootstrap_lrt")
PROFILE_MODES = ("ml", "reml")


def _suggest(value: Any, choices: tuple[str, ...]) -> str:
    near = difflib.get_close_matches(str(value), list(choices), n=1, cutoff=0.5)
    return f"did you mean '{near[0]}'?" if near else f"choose from {', '.join(choices)}."


def _end(text: str) -> str:
    return text if text.endswith(("?", ".")) else text + "."


def _owners(attribute: str, value: str) -> str:
    """The registered backends whose capability ``attribute`` holds ``value`` (for messages)."""
    return " or ".join(n for n in backend_names() if value in capability(n, attribute, ()))


def _why_not(test: str, cfg: StudyConfig, fit: FitConfig, backend: str, method: str | None) -> str | None:
    """Why ``test`` cannot be computed for this fit in every condition (None if it can)."""
    if test not in get_backend(backend).tests:
        return (f"tests are computed by compare_mm's own fitter, so they belong to a fit with backend "
                f"{_owners('tests', test)}, not {backend}")
    if method == "ANOVA" and test != "f_test":
        return f"{test} needs a likelihood, and an ANOVA fit has none (ANOVA fits take f_test only)"
    if test == "f_test" and "two_way" in cfg.models:
        return ("f_test is the one-way F test; balanced two_way conditions get the exact F tests of sigma_ab2 "
                "and sigma_b2 as fit 'F-test' rows without asking")
    if test == "f_test" and not balanced_oneway(cfg):
        what = "model random_slope" if "random_slope" in cfg.models else "unbalanced group sizes"
        return f"f_test needs the balanced one-way model in every condition, and this study has {what}"
    if test == "exact_rlrt" and "random_slope" in cfg.models and (fit.covariance or "unstructured") != "diagonal":
        return ("exact_rlrt tests a single variance, but dropping the slope of (1 + x | g) also drops its "
                "covariance; use lrt_chibar2, or covariance: diagonal")
    if test == "bootstrap_lrt" and not fit.bootstrap:
        return "bootstrap_lrt needs the number of refits as `bootstrap: N` in the same fit"
    return None


def _tests(p: str, cfg: StudyConfig, fit: FitConfig, backend: str, method: str | None) -> list[str] | None:
    if fit.tests is None:
        return None
    if isinstance(fit.tests, list) and [str(t).strip().lower() for t in fit.tests] == ["all"]:
        fit = fit.model_copy(update={"tests": "all"})        # `tests: [all]` is `tests: all`
    if isinstance(fit.tests, str):
        if fit.tests.strip().lower() != "all":
            raise ConfigError(f"{p}.tests: expected a list of tests or 'all', got {fit.tests!r}; tests are "
                              f"{', '.join(TESTS)}.")
        if not get_backend(backend).tests:
            raise ConfigError(f"{p}.tests: {_why_not('lrt_chi2', cfg, fit, backend, method)}.")
        return [t for t in TESTS if _why_not(t, cfg, fit, backend, method) is None]
    if not fit.tests:
        raise ConfigError(f"{p}.tests: the list is empty; name at least one test or leave the key out.")
    out: list[str] = []
    for j, test in enumerate(fit.tests):
        if test not in TESTS:
            raise ConfigError(f"{p}.tests[{j}]: unknown test '{test}'; {_suggest(test, TESTS)}")
        if test in out:
            raise ConfigError(f"{p}.tests[{j}]: '{test}' is listed twice.")
        reason = _why_not(test, cfg, fit, backend, method)
        if reason:
            raise ConfigError(f"{p}.tests[{j}]: {reason}.")
        out.append(test)
    return out


def any_balanced_oneway(cfg: StudyConfig) -> bool:
    """True if some condition is a balanced one-way design (where ``exact`` and ``mls`` intervals exist; the
    other conditions of a mixed study get no rows of those kinds)."""
    return any(c["model"] == "oneway" and not isinstance(c.get("per_group"), list) for c in cfg.conditions())


def _kind_problem(kind: str, backend: str, method: str | None, cfg: StudyConfig | None = None) -> str | None:
    be = get_backend(backend)
    if kind in ONEWAY_INTERVALS:
        what = "the F and χ² distributions" if kind == "exact" else "the ANOVA mean squares (Graybill & Wang)"
        if kind not in be.interval_kinds:
            return (f"{kind} intervals come from {what} of the balanced one-way model, computed by compare_mm's "
                    f"own fitter, so they belong to a fit with backend {_owners('interval_kinds', kind)}, "
                    f"not {backend}")
        if cfg is not None and not any_balanced_oneway(cfg):
            found = (f"model {cfg.models[0]}" if len(cfg.models) == 1 and cfg.models[0] != "oneway"
                     else "unbalanced group sizes")
            return (f"{kind} intervals exist for the balanced one-way model only, and every condition of this "
                    f"study has {found}")
        return None
    allowed = POSTERIOR_INTERVALS if be.posterior else FREQ_INTERVALS
    if kind not in allowed:
        if kind in POSTERIOR_INTERVALS + FREQ_INTERVALS:
            return (f"'{kind}' is not an interval of a {backend} fit; choose from {', '.join(allowed)}")
        return f"unknown interval kind '{kind}'; {_suggest(kind, allowed)}"
    if kind in ("profile", "bootstrap"):
        if kind not in be.interval_kinds:
            return (f"{kind} intervals are computed by compare_mm's own fitter, so they belong to a fit with "
                    f"backend {_owners('interval_kinds', kind)}, not {backend}")
        if method == "ANOVA":
            return f"{kind} intervals need a likelihood, and an ANOVA fit has none"
    return None


def check_inference(cfg: StudyConfig, i: int, fit: FitConfig, backend: str, method: str | None) -> FitConfig:
    """Validate and normalise the inference keys of ``fits[i]`` (``tests: all`` expanded)."""
    p = f"fits[{i}]"
    if fit.interval in ONEWAY_INTERVALS:
        raise ConfigError(f"{p}.interval: {fit.interval} intervals exist for some parameters only (exact: mu, "
                          f"sigma_e2, gamma, icc; mls: sigma_a2), so they cannot be the fit's primary interval; "
                          f"list them under intervals.")
    if fit.interval is not None:  # hdi on a reml fit is an error, not a silent Wald interval
        problem = _kind_problem(fit.interval, backend, method)
        if problem:
            raise ConfigError(f"{p}.interval: {_end(problem)}")
    kinds: list[str] = []
    if fit.intervals is not None:
        if not fit.intervals:
            raise ConfigError(f"{p}.intervals: the list is empty; name at least one interval kind or leave "
                              f"the key out.")
        for j, kind in enumerate(fit.intervals):
            problem = _kind_problem(kind, backend, method, cfg)
            if problem:
                raise ConfigError(f"{p}.intervals[{j}]: {_end(problem)}")
            if kind in kinds:
                raise ConfigError(f"{p}.intervals[{j}]: '{kind}' is listed twice.")
            kinds.append(kind)
    all_kinds = set(kinds) | ({fit.interval} if fit.interval else set())
    tests = _tests(p, cfg, fit, backend, method)
    if fit.nsim is not None:
        if fit.nsim < 1:
            raise ConfigError(f"{p}.nsim: must be ≥ 1, got {fit.nsim}.")
        if "exact_rlrt" not in (tests or []):
            raise ConfigError(f"{p}.nsim: only the exact_rlrt test takes nsim, and this fit does not request it.")
    if fit.bootstrap is not None:
        if fit.bootstrap < 1:
            raise ConfigError(f"{p}.bootstrap: must be ≥ 1 refits, got {fit.bootstrap}.")
        if "bootstrap_lrt" not in (tests or []) and "bootstrap" not in all_kinds:
            raise ConfigError(f"{p}.bootstrap: neither tests (bootstrap_lrt) nor intervals (bootstrap) of this "
                              f"fit use the bootstrap.")
        alpha = round(1.0 - cfg.level, 12)
        if "bootstrap_lrt" in (tests or []) and 1.0 / (fit.bootstrap + 1) >= alpha:
            need = int(1.0 / alpha + 1e-9)
            raise ConfigError(f"{p}.bootstrap: with {fit.bootstrap} refits the smallest bootstrap p-value is "
                              f"1/{fit.bootstrap + 1}, so bootstrap_lrt can never reject at alpha = {alpha:g}; "
                              f"use at least {need}.")
    elif "bootstrap" in all_kinds:
        raise ConfigError(f"{p}.bootstrap: bootstrap intervals need the number of refits as `bootstrap: N`.")
    profile = fit.profile
    if profile is not None:
        profile = str(profile).lower()
        if profile not in PROFILE_MODES:
            raise ConfigError(f"{p}.profile: unknown profile mode '{fit.profile}'; choose ml (lme4's "
                              f"convention) or reml.")
        if "profile" not in all_kinds:
            raise ConfigError(f"{p}.profile: set, but the fit requests no profile interval.")
    return fit.model_copy(update={"tests": tests, "intervals": kinds or None, "profile": profile})


__all__ = ["FREQ_INTERVALS", "ONEWAY_INTERVALS", "POSTERIOR_INTERVALS", "check_inference"]
