"""Everything that applies to one fit, in one call: :func:`run_inference` (``compare-mm fit --tests …``).

With ``tests=True``:

- ``f_test`` — the exact F test, when the model is the balanced one-way model;
- ``lrt_chi2`` and ``lrt_chibar2`` — for every variance component (see
  :mod:`compare_mm.inference.components`), from the fit's own criterion (ML deviance or REML criterion);
- ``exact_rlrt`` — for every component that is a single variance (``nsim`` simulations; exact when it
  is the model's only variance component, RLRsim's approximation ``exactRLRT(m, mA, m0)`` otherwise);
- Satterthwaite df and t-based p-values in the fixed-effect rows (frequentist fits only), and Wald
  intervals for the fixed effects when the fit carries none.

``profile="ml"`` (lme4's convention) or ``"reml"`` adds profile intervals; ``bootstrap=N`` adds
percentile intervals for every parameter and a ``bootstrap_lrt`` per component.  Every random stream is
derived from ``seed`` (a fresh one is drawn and recorded in ``options["inference_seed"]`` when None), so
the result is reproducible and does not depend on ``workers``.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from ..model.design import Design
from ..errors import OptionError
from ..fitter.extended import fit_design
from ..fitter.theta import make_layout
from ..results.schema import FitResult, FixefRow, Interval, TestResult
from ..model.spec import ModelSpec
from .bootstrap import ModelParams, bootstrap_intervals, bootstrap_lrt
from .components import components
from ..parallel import single_threaded_blas
from .ftest import f_test_design, is_balanced_oneway
from .lrt import _lrt_for
from .profile import profile_intervals
from .rlrt import exact_rlrt
from .satterthwaite import satterthwaite
from ..api import make_design

FREQUENTIST = ("REML", "ML")


def run_inference(model: str | ModelSpec, data: pd.DataFrame, result: FitResult, *, tests: bool = True,
                  profile: str | None = None, bootstrap: int = 0, seed: int | None = None,
                  level: float = 0.95, nsim: int = 10_000, workers: int | None = None,
                  scheduler: str | None = None) -> FitResult:
    """A copy of ``result`` with ``tests``, ``intervals`` and fixed-effect ``df``/``p_value`` filled.

    Parameters
    ----------
    model, data
        The model (lme4 formula or :class:`ModelSpec`) and data the fit was made from.
    result
        The fit (any backend; for posterior fits the tests use REML and the fixed-effect rows are left
        alone).
    tests
        Add every test that applies (module docstring) and Satterthwaite df.
    profile
        ``None``, ``"ml"`` or ``"reml"``.
    bootstrap
        Number of parametric-bootstrap replicates (0: none).
    seed
        Seed of the exact RLRT and bootstrap simulations.
    level
        Level of the intervals.
    nsim
        Simulations of the exact RLRT null distribution.
    workers, scheduler
        Where bootstrap chunks run (see :mod:`compare_mm.parallel`).
    """
    method = result.method if result.method in FREQUENTIST else "REML"
    design = make_design(model, data, method=method)
    return inference_for_design(design, result, tests=tests, profile=profile, bootstrap=bootstrap, seed=seed,
                                level=level, nsim=nsim, workers=workers, scheduler=scheduler)


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


def inference_for_design(design: Design, result: FitResult, *, tests: bool = True, profile: str | None = None,
                         bootstrap: int = 0, seed: int | None = None, level: float = 0.95,
                         nsim: int = 10_000, workers: int | None = None,
                         scheduler: str | None = None) -> FitResult:
    """:func:`run_inference` on an already built design (its ``spec.method`` is the fit's method)."""
    profile, nboot = _check(profile, bootstrap, level, nsim)
    if not (tests or profile or nboot):
        return result
    entropy = int(np.random.SeedSequence(seed).entropy)
    method = design.spec.method
    frequentist = result.method in FREQUENTIST
    new_tests: list[TestResult] = []
    new_intervals: list[Interval] = []
    fixef = result.fixef
    with single_threaded_blas():
        # FitResult.theta is in lme4 order, as the fitter's θ: a warm start for our own optimum
        n_theta = make_layout(design.blocks).n_theta
        start = np.asarray(result.theta, float) if len(result.theta) == n_theta and frequentist else None
        full = fit_design(design, method == "REML", start=start)
        comps = components(design)
        if tests:
            if is_balanced_oneway(design) is not None:
                new_tests.append(f_test_design(design))
            for k, c in enumerate(comps):
                new_tests.extend(_lrt_for(design, c, method, full).results())
                if c.single_variance:
                    reml_full = full if method == "REML" else None
                    new_tests.append(exact_rlrt(design, c.group, c.term, nsim=nsim, full=reml_full,
                                                seed=np.random.SeedSequence(entropy, spawn_key=(100 + k,))))
            if frequentist:
                fixef = _satterthwaite_rows(design, result, full)
                if not any(iv.kind == "wald" for iv in result.intervals):
                    z = float(stats.norm.ppf(0.5 + level / 2.0))
                    new_intervals.extend(Interval(r.term, "wald", r.estimate - z * r.se, r.estimate + z * r.se,
                                                  level) for r in fixef)
        if profile is not None:
            new_intervals.extend(profile_intervals(design, mode=profile, level=level))
    if nboot > 0:
        params = ModelParams(full.theta, full.sigma, full.beta)
        new_intervals.extend(bootstrap_intervals(design, nsim=nboot, seed=entropy, level=level, params=params,
                                                 workers=workers, scheduler=scheduler))
        for k, c in enumerate(comps):
            new_tests.append(bootstrap_lrt(design, c.group, c.term, nsim=nboot, seed=entropy, stream=1 + k,
                                           workers=workers, scheduler=scheduler))
    kinds = {iv.kind for iv in new_intervals}
    kept = tuple(iv for iv in result.intervals if iv.kind not in kinds)
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


__all__ = ["inference_for_design", "run_inference"]
