"""The one inference orchestrator: the tests and intervals of one fit, for the CLI and for studies.

:func:`infer` computes what is requested of a fit on its design; :func:`run_inference` (``compare-mm fit
--tests/--profile/--bootstrap``) and the study rows (:mod:`compare_mm.study.rows_inference`) both call it,
so they share the seeding, the test order and the rules below.

Tests (per variance component, see :mod:`compare_mm.inference.components`):

- ``f_test`` — the exact F test, balanced one-way model only;
- ``lrt_chi2`` and ``lrt_chibar2`` — from the fit's own criterion (ML deviance or REML criterion);
- ``exact_rlrt`` — ``nsim`` simulations; exact when the component is the model's only variance component,
  RLRsim's approximation ``exactRLRT(m, mA, m0)`` otherwise;
- ``bootstrap_lrt`` — ``bootstrap`` refits.

**One rule for the exact RLRT**: it tests a single variance.  ``tests="all"`` (the CLI's ``--tests``, a
study's ``tests: all``) includes it for every component that is a single variance and leaves it out for
the others (e.g. the slope of ``(1 + x | g)``, which carries a covariance), in a model with both kinds
too (``(x | s) + (1 | i)``: the exact RLRT of ``i`` only); naming it explicitly for a model with no
component that is a single variance is an error (an :class:`OptionError` here, a ``ConfigError``
naming the YAML key in a study).  The same holds for ``f_test`` outside the balanced one-way model.

Order: ``f_test``, then per component its LRTs, exact RLRT and bootstrap LRT.  Random streams derive from
one ``entropy`` (128 bits): the exact RLRT of component k from ``SeedSequence(entropy, spawn_key=(100 + k,))``,
the bootstrap from ``entropy`` with stream 0 (intervals) and 1 + k (LRT of component k).

**No refit to reconstruct the optimum.**  The tests need the full model's optimum in compare_mm's
profiled deviance for the design's method.  When the fit is frequentist, of that method, and its backend
has ``profiled_optimum`` (our fitter), θ̂ is taken from the result and σ̂, β̂ and the criterion are read off
the profiled deviance at θ̂ (one evaluation, no optimisation).  A refit is needed only for another
method or another optimiser: a posterior fit (its tests use REML), an ML fit's exact RLRT (REML), or a
statsmodels fit (our optimiser is polished from its θ̂ as a warm start).
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any, Sequence

import numpy as np

from ..backends.base import capability
from ..model.design import Design
from ..errors import OptionError
from ..fitter.extended import ThetaFit, fit_design, surface
from ..fitter.theta import make_layout
from ..results.schema import FitResult, FixefRow, Interval, TestResult
from .bootstrap import ModelParams, bootstrap_intervals, bootstrap_lrt
from .components import components
from ..parallel import single_threaded_blas
from .ftest import f_test_design, is_balanced_oneway
from .lrt import _lrt_for
from .profile import profile_intervals
from .rlrt import exact_rlrt
from .satterthwaite import satterthwaite

FREQUENTIST = ("REML", "ML")
TESTS = ("f_test", "lrt_chi2", "lrt_chibar2", "exact_rlrt", "bootstrap_lrt")


def applicable_tests(design: Design, bootstrap: int = 0) -> tuple[str, ...]:
    """What ``tests="all"`` means for ``design`` (module docstring; ``bootstrap_lrt`` with refits only)."""
    out = ["f_test"] if is_balanced_oneway(design) is not None else []
    out += ["lrt_chi2", "lrt_chibar2"]
    if any(c.single_variance for c in components(design)):
        out.append("exact_rlrt")
    if bootstrap:
        out.append("bootstrap_lrt")
    return tuple(out)


def optimum(design: Design, result: FitResult | None) -> ThetaFit:
    """The full model's optimum for ``design.spec.method`` (module docstring: no refit when ``result``
    already holds it)."""
    reml = design.spec.method == "REML"
    n_theta = make_layout(design.blocks).n_theta
    theta = np.asarray(result.theta, float) if result is not None else np.zeros(0)
    usable = result is not None and result.method == design.spec.method and len(theta) == n_theta
    if usable and capability(result.backend, "profiled_optimum", False):
        prof = surface(design).at(theta, reml)
        if math.isfinite(prof.deviance):
            return ThetaFit(theta=theta, sigma=math.sqrt(prof.r2 / prof.nu), beta=prof.beta,
                            deviance=float(prof.deviance), reml=reml, converged=bool(result.converged))
    return fit_design(design, reml, start=theta if usable else None)


def infer(design: Design, full: ThetaFit | None, *, tests: Sequence[str] = (), intervals: Sequence[str] = (),
          profile: str = "ml", bootstrap: int = 0, nsim: int = 10_000, entropy: int, level: float = 0.95,
          workers: int | None = None, scheduler: str | None = None
          ) -> tuple[list[TestResult], list[Interval], ThetaFit | None]:
    """The requested ``tests`` (names, module docstring order) and ``intervals`` (``"profile"``,
    ``"bootstrap"``) of the fit of ``design`` whose optimum is ``full`` (:func:`optimum`; computed here when
    None and needed).  Returns ``(tests, intervals, full)``."""
    tests, kinds = list(tests), set(intervals)
    unknown = [t for t in tests if t not in TESTS]
    if unknown:
        raise OptionError(f"Unknown test {unknown[0]!r}; choose from {', '.join(TESTS)}.")
    if (tests or "bootstrap" in kinds) and full is None:
        full = optimum(design, None)
    method = design.spec.method
    out_t: list[TestResult] = []
    out_i: list[Interval] = []
    if "f_test" in tests:
        if is_balanced_oneway(design) is None:
            raise OptionError("The F test needs the balanced one-way model y ~ 1 + (1 | g).")
        out_t.append(f_test_design(design))
    comps = components(design)
    if "exact_rlrt" in tests and comps and not any(c.single_variance for c in comps):
        c = comps[0]
        raise OptionError(f"The exact RLRT tests a single variance, and the {c.term} effect of {c.group} "
                          "carries a covariance; use lrt_chibar2.")
    for k, c in enumerate(comps):
        if "lrt_chi2" in tests or "lrt_chibar2" in tests:
            out_t.extend(r for r in _lrt_for(design, c, method, full).results() if r.name in tests)
        if "exact_rlrt" in tests and c.single_variance:
            out_t.append(exact_rlrt(design, c.group, c.term, nsim=nsim, full=full if method == "REML" else None,
                                    seed=np.random.SeedSequence(entropy, spawn_key=(100 + k,))))
        if "bootstrap_lrt" in tests:
            out_t.append(bootstrap_lrt(design, c.group, c.term, nsim=int(bootstrap), seed=entropy, stream=1 + k,
                                       workers=workers, scheduler=scheduler))
    if "profile" in kinds:
        out_i.extend(profile_intervals(design, mode=profile, level=level))
    if "bootstrap" in kinds:
        params = ModelParams(full.theta, full.sigma, full.beta)
        out_i.extend(bootstrap_intervals(design, nsim=int(bootstrap), seed=entropy, level=level, params=params,
                                         workers=workers, scheduler=scheduler))
    return out_t, out_i, full


def _check(profile, bootstrap, level, nsim) -> tuple[str | None, int]:
    if profile is not None and str(profile).lower() not in ("ml", "reml"):
        raise OptionError(f"--profile mode must be 'ml' or 'reml', not {profile!r}.")
    try:
        nboot = int(bootstrap)
    except (TypeError, ValueError):
        raise OptionError(f"--bootstrap must be a whole number of replicates, not {bootstrap!r}.") from None
    if nboot < 0:
        raise OptionError(f"--bootstrap must be ≥ 0 replicates, not {bootstrap}.")
    if not 0.0 < float(level) < 1.0:
        raise OptionError(f"The interval level must lie strictly between 0 and 1, not {level}.")
    if int(nsim) < 1:
        raise OptionError(f"The exact RLRT needs nsim ≥ 1 simulations, not {nsim}.")
    return (None if profile is None else str(profile).lower()), nboot


def run_inference(*args: Any, tests: bool = True, profile: str | None = None, bootstrap: int = 0,
                  seed: int | None = None, level: float = 0.95, nsim: int = 10_000, workers: int | None = None,
                  scheduler: str | None = None) -> FitResult:
    """A copy of the fit with ``tests``, ``intervals`` and fixed-effect ``df``/``p_value`` filled.

    Called as ``run_inference(result, …)``; the older ``run_inference(model, data, result, …)`` is
    accepted and works from ``result.design`` as well (the design is never rebuilt).

    Parameters
    ----------
    result
        The fit (any backend) from :func:`compare_mm.fit` or a backend's ``fit``, carrying its design.
        For a posterior fit the tests use REML and the fixed-effect rows are left alone.
    tests
        Add every test that applies (:func:`applicable_tests`), Satterthwaite df and t-based p-values in
        the fixed-effect rows of a frequentist fit, and Wald intervals when the fit carries none.
    profile
        ``None``, ``"ml"`` (lme4's convention) or ``"reml"``: profile intervals.
    bootstrap
        Number of parametric-bootstrap replicates (0: none): percentile intervals and a ``bootstrap_lrt``
        per component.
    seed
        Seed of the exact RLRT and bootstrap simulations (a fresh one is drawn and recorded in
        ``options["inference_seed"]`` when None).
    level
        Level of the intervals.
    nsim
        Simulations of the exact RLRT null distribution.
    workers, scheduler
        Where bootstrap chunks run (see :mod:`compare_mm.parallel`).
    """
    if len(args) not in (1, 3):
        raise OptionError("run_inference takes the fit (or the model, the data and the fit).")
    result = args[-1]
    design = getattr(result, "design", None)
    if design is None:
        raise OptionError("This FitResult carries no design; make it with compare_mm.fit, or call "
                          "inference_for_design(design, result).")
    method = result.method if result.method in FREQUENTIST else "REML"
    if design.spec.method != method:
        design = replace(design, spec=design.spec.with_method(method))
    return inference_for_design(design, result, tests=tests, profile=profile, bootstrap=bootstrap, seed=seed,
                                level=level, nsim=nsim, workers=workers, scheduler=scheduler)


def inference_for_design(design: Design, result: FitResult, *, tests: bool = True, profile: str | None = None,
                         bootstrap: int = 0, seed: int | None = None, level: float = 0.95,
                         nsim: int = 10_000, workers: int | None = None,
                         scheduler: str | None = None) -> FitResult:
    """:func:`run_inference` on a given design (its ``spec.method`` is the method the tests use)."""
    from scipy import stats  # deferred: scipy.stats is a heavy import that summarise/report never need
    profile, nboot = _check(profile, bootstrap, level, nsim)
    if not (tests or profile or nboot):
        return result
    entropy = int(np.random.SeedSequence(seed).entropy)
    frequentist = result.method in FREQUENTIST
    fixef = result.fixef
    wanted = list(applicable_tests(design)) if tests else []
    if nboot > 0:
        wanted.append("bootstrap_lrt")
    kinds = (["profile"] if profile is not None else []) + (["bootstrap"] if nboot > 0 else [])
    new_intervals: list[Interval] = []
    with single_threaded_blas():
        full = optimum(design, result) if (tests or nboot) else None
        if tests and frequentist:
            fixef = _satterthwaite_rows(design, result, full)
            if not any(iv.kind == "wald" for iv in result.intervals):
                z = float(stats.norm.ppf(0.5 + level / 2.0))
                new_intervals.extend(Interval(r.term, "wald", r.estimate - z * r.se, r.estimate + z * r.se,
                                              level) for r in fixef)
        new_tests, more, _ = infer(design, full, tests=wanted, intervals=kinds, profile=profile or "ml",
                                   bootstrap=nboot, nsim=int(nsim), entropy=entropy, level=level, workers=workers,
                                   scheduler=scheduler)
    new_intervals.extend(more)
    kinds_new = {iv.kind for iv in new_intervals}
    kept = tuple(iv for iv in result.intervals if iv.kind not in kinds_new)
    options: dict[str, Any] = dict(result.options)
    options.update(inference_seed=entropy, inference_nsim=int(nsim), inference_bootstrap=nboot,
                   inference_profile=profile)
    return replace(result, tests=tuple(result.tests) + tuple(new_tests), intervals=kept + tuple(new_intervals),
                   fixef=fixef, options=options)


def _satterthwaite_rows(design: Design, result: FitResult, full) -> tuple[FixefRow, ...]:
    sat = satterthwaite(design, full.theta, full.sigma, design.spec.method)
    by_name = {nm: (float(df), float(p)) for nm, df, p in zip(sat.names, sat.df, sat.p_value)}
    return tuple(replace(r, df=by_name.get(r.term, (None, None))[0], p_value=by_name.get(r.term, (None, None))[1])
                 for r in result.fixef)


__all__ = ["TESTS", "applicable_tests", "infer", "inference_for_design", "optimum", "run_inference"]
