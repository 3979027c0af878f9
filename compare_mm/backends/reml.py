"""The hand-written REML/ML/BLUP backend ("reml"): lme4's profiled deviance, minimised over θ.

See :mod:`compare_mm.fitter` for the numerics (Bates, Mächler, Bolker & Walker 2015, J. Stat. Softw.
67(1), sec. 3).  Options:

``level``
    Level of the Wald intervals of the fixed effects (default 0.95).
``path``
    ``"auto"`` (default: the one-factor fast path when every term uses one grouping factor; else the
    blocked Cholesky when the terms after the first hold at most ``fitter.blocked.REST_MAX`` random
    effects; else the dense general path up to ``fitter.general.DENSE_MAX`` random effects in total,
    and the sparse path beyond), ``"onefactor"``, ``"blocked"``, ``"general"`` or ``"sparse"``.
"""

from __future__ import annotations

import math
import time
from typing import Any, Mapping

import numpy as np

from ..model.design import Design
from ..errors import OptionError, UnsupportedModelError
from ..fitter import onefactor
from ..fitter.batch_fit import BatchArrays, BatchFitter, batchable
from .base import BackendBase, merge_options
from ..fitter.extended import surface
from ..fitter.conditional import Estimates, estimates_general, estimates_one_factor
from ..fitter.optimize import Counter, is_singular, optimise_theta, singular_rows
from ..fitter.theta import Layout, make_layout
from ..results.summary import SINGULAR_NOTE
from ..results.columns import FitColumns, RanefColumns
from ..results.schema import (FitResult, FixefRow, Optimisation, RanefRow, VarCorrRow, term_varcorr_columns,
                              term_varcorr_rows, wald_intervals, wald_z)
from ..model.spec import ModelSpec
from ..parallel import blas_single_thread

OPTIONS: dict[str, Any] = {"level": 0.95, "path": "auto"}
PATHS = ("auto", "onefactor", "blocked", "general", "sparse")
SINGULAR_WARNING = SINGULAR_NOTE     # what a singular fit means, in one sentence (results.summary)


def _check_options(options: Mapping[str, Any]) -> dict[str, Any]:
    out = merge_options(options, OPTIONS, "reml")
    if out["path"] not in PATHS:
        raise OptionError(f"Option 'path' must be one of {', '.join(PATHS)}, got {out['path']!r}.")
    return out


class RemlBackend(BackendBase):
    """lme4-style REML/ML fitter with BLUPs (see module docstring)."""

    name = "reml"
    relative_cost = 1.0
    interval_kinds = ("wald", "t", "profile", "bootstrap", "exact", "mls")
    tests = ("f_test", "lrt_chi2", "lrt_chibar2", "exact_rlrt", "bootstrap_lrt")
    fast_path = ("REML", "ML", "ANOVA")
    profiled_optimum = True
    title = "Linear mixed model fit by {method} (compare_mm)"

    def check_options(self, design: Design, options: Mapping[str, Any]) -> None:
        """A one-sentence OptionError for an unknown or invalid option (what :meth:`fit` would raise)."""
        _check_options(options)

    def supports(self, spec: ModelSpec) -> str | None:
        """None for every linear mixed model with at least one random-effects term."""
        if not spec.random:
            return "the model has no random-effects term."
        return None

    def fit_label(self, method: str | None) -> str:
        """A study fit of our fitter is named by its method (``reml``, ``ml``, ``anova``)."""
        return str(method).lower()

    def prepare(self, design: Design, options: Mapping[str, Any]) -> "PreparedReml":
        """Options validated, the θ layout built and the numerical path chosen, once per design."""
        return PreparedReml(design, options)

    def fit(self, design: Design, options: Mapping[str, Any]) -> FitResult:
        """Fit ``design`` by ``design.spec.method`` (REML or ML) and return the common schema."""
        t0 = time.perf_counter()
        return PreparedReml(design, options).fit_design(design, t0)


class PreparedReml:
    """:meth:`RemlBackend.prepare`: what a fit of the design does before it reads y."""

    def __init__(self, design: Design, options: Mapping[str, Any]):
        self.opts = _check_options(options)
        if not design.blocks:
            raise UnsupportedModelError(f"Backend 'reml' cannot fit {design.spec.formula!r}: "
                                        "the model has no random-effects term.")
        if self.opts["path"] == "onefactor" and not onefactor.is_one_factor(design):
            raise OptionError("Option path='onefactor' needs every random-effects term on one grouping factor.")
        if self.opts["path"] == "blocked" and len(design.blocks) < 2:
            raise OptionError("Option path='blocked' needs at least two random-effects terms.")
        self.design = design
        self.layout = make_layout(design.blocks)
        self._batch: BatchFitter | None = None

    def fit(self, y: np.ndarray, seed: int | None = None) -> FitResult:
        """The fit of ``design.with_y(y)`` (``seed`` is ignored: the fit draws no random numbers)."""
        t0 = time.perf_counter()
        return self.fit_design(self.design.with_y(y), t0)

    def fit_many(self, Y: np.ndarray, seeds=None) -> list[FitResult]:
        """The fits of the rows of ``Y`` (R, n), equal replicate by replicate to :meth:`fit`.

        One grouping factor with at most two effects per level (``(1 | g)`` with or without covariates,
        ``(x || g)``, ``(x | g)``): θ̂ of every replicate by the batched fitter
        (:mod:`compare_mm.fitter.batch_fit`), the rest in closed form; a replicate the batch leaves
        undecided (:mod:`compare_mm.fitter.batch_optimize`), and every replicate of another design, is
        fitted by :meth:`fit`.  Each result's ``elapsed_s`` is the batch's time / R; ``seeds`` (the
        Prepared contract's) are ignored, the fit draws no random numbers.
        """
        t0 = time.perf_counter()
        Y = np.atleast_2d(np.asarray(Y, dtype=float))
        if not self.batches():
            return [self.fit(y) for y in Y]
        arr = self._batcher().arrays(Y, self.design.spec.method == "REML")
        per = (time.perf_counter() - t0) / max(1, Y.shape[0])
        return [self._result(arr, m, y, per) for m, y in enumerate(Y)]

    def batches(self) -> bool:
        """True when :meth:`fit_many` and :meth:`fit_columns` fit the design in one batch."""
        return self.opts["path"] in ("auto", "onefactor") and batchable(self.design, self.layout)

    def _batcher(self) -> BatchFitter:
        if self._batch is None:
            self._batch = BatchFitter(self.design, self.layout)
        return self._batch

    def _result(self, arr: BatchArrays, m: int, y: np.ndarray, elapsed: float) -> FitResult:
        """Replicate m's FitResult from the batch's arrays (:meth:`fit` when the batch left it)."""
        if not arr.solved[m]:
            return self.fit(y)
        optim = Optimisation(optimizer=arr.optimizer, evaluations=0, converged=True,
                             message="batched optimum (boundary rule of the per-replicate path)")
        return assemble(self.design.with_y(y), self.layout, arr.estimate(m), optim, self.opts, "onefactor", elapsed)

    def fit_columns(self, Y: np.ndarray) -> FitColumns | None:
        """The batched fits of the rows of ``Y`` (R, n) column-wise (:class:`FitColumns`), without a
        FitResult per replicate; None for a design :meth:`fit_many` does not batch.  Every value equals
        the one in :meth:`fit_many`'s FitResult of that replicate (:func:`assemble` on the same arrays);
        :meth:`result_at` builds that FitResult for one replicate."""
        if not self.batches():
            return None
        t0 = time.perf_counter()
        Y = np.atleast_2d(np.asarray(Y, dtype=float))
        arr = self._batcher().arrays(Y, self.design.spec.method == "REML")
        return assemble_columns(self.design, self.layout, arr, self.opts, (time.perf_counter() - t0) / max(1, len(Y)))

    def result_at(self, cols: FitColumns, m: int, y: np.ndarray) -> FitResult:
        """Replicate m of :meth:`fit_columns`'s batch as the FitResult :meth:`fit_many` gives for it."""
        return self._result(cols.source, m, y, cols.elapsed_s)

    @blas_single_thread   # small dense blocks: BLAS threads only contend (~20× slower on a loaded machine)
    def fit_design(self, design: Design, t0: float) -> FitResult:
        reml = design.spec.method == "REML"
        surf = surface(design, path=self.opts["path"], layout=self.layout)
        layout, path, pr = surf.layout, surf.path, surf.problem
        fun = Counter(surf.objective(reml))
        warm = onefactor.moment_start(pr) if path == "onefactor" and layout.n_theta > 1 else None
        opt = optimise_theta(fun, layout, has_grad=surf.has_grad, warm=warm,
                             fun_grid=surf.grid_objective(reml))
        if path == "onefactor":
            est = estimates_one_factor(pr, layout, opt.theta, reml)
        else:
            est = estimates_general(pr, layout, opt.theta, reml)
        optim = Optimisation(optimizer=opt.optimizer, evaluations=fun.evaluations, converged=opt.converged,
                             message=opt.message, gradient_evaluations=fun.gradients)
        return assemble(design, layout, est, optim, self.opts, path, time.perf_counter() - t0)


def assemble(design: Design, layout: Layout, est: Estimates, optim: Optimisation, opts: dict[str, Any],
             path: str, elapsed: float = 0.0) -> FitResult:
    """The :class:`FitResult` of a fit (lme4's conventions for logLik, AIC, BIC, VarCorr, ranef), carrying
    ``design`` and the backend's title (what :meth:`BackendBase.attach` adds)."""
    reml = design.spec.method == "REML"
    n, p = design.n, design.p
    dev = est.deviance
    k = p + layout.n_theta + 1
    se = np.sqrt(np.diagonal(est.vcov))
    fixef = tuple(FixefRow(term=name, estimate=float(b), se=float(s))
                  for name, b, s in zip(design.fixed_names, est.beta, se))
    intervals = wald_intervals(fixef, opts["level"])
    varcorr: list[VarCorrRow] = []
    ranef: list[RanefRow] = []
    ngroups: dict[str, int] = {}
    for t, cov, modes, csd in zip(layout.terms, est.covs, est.modes, est.condsd):
        block = design.blocks[t.block]
        ngroups.setdefault(t.group, t.n_levels)
        varcorr.extend(term_varcorr_rows(t.group, t.names, cov, t.covariance))
        levels = [str(lv) for lv in block.levels[:t.n_levels]]
        for j, name in enumerate(t.names):
            ranef.extend(RanefRow.many(t.group, levels, name, modes[:, j].tolist(), csd[:, j].tolist()))
    sigma = math.sqrt(est.sigma2)
    varcorr.append(VarCorrRow(group="Residual", term=None, variance=float(est.sigma2), sd=sigma))
    singular = is_singular(est.singular_theta, layout)      # the fitted problem's θ (fitter.centring)
    warnings = []
    if singular:
        warnings.append(SINGULAR_WARNING)
    if not optim.converged:
        warnings.append(f"Model failed to converge: {optim.message}")
    return FitResult(
        backend="reml", method="REML" if reml else "ML", formula=design.spec.formula, nobs=n,
        converged=optim.converged, singular=singular, loglik=-dev / 2.0, criterion=dev, sigma=sigma,
        fixef=fixef, varcorr=tuple(varcorr), ranef=tuple(ranef), theta=tuple(float(x) for x in est.theta),
        vcov=est.vcov, aic=dev + 2.0 * k, bic=dev + k * math.log(n), ngroups=ngroups,
        elapsed_s=elapsed, warnings=tuple(warnings), optimisation=optim, intervals=intervals,
        options={"level": opts["level"], "path": path}, design=design, title=RemlBackend.title,
    )


def assemble_columns(design: Design, layout: Layout, arr: BatchArrays, opts: dict[str, Any],
                     elapsed: float) -> FitColumns:
    """:func:`assemble` for every replicate of a batch at once, column-wise: the values its FitResults
    hold (estimates, SEs, Wald intervals, VarCorr, ranef, singular flag), from the same arrays by the same
    elementwise operations."""
    se = np.sqrt(np.diagonal(arr.vcov, axis1=1, axis2=2))
    z = wald_z(opts["level"])
    estimates: dict[str, np.ndarray] = {}
    ses: dict[str, np.ndarray] = {}
    intervals: dict[tuple[str, str], tuple[np.ndarray, np.ndarray]] = {}
    for j, name in enumerate(design.fixed_names):
        b, s = arr.beta[:, j], se[:, j]
        estimates[name], ses[name] = b, s
        intervals[(name, "wald")] = (b - z * s, b + z * s)
    ranef: list[RanefColumns] = []
    for t, cov, modes, csd in zip(layout.terms, arr.covs, arr.modes, arr.condsd):
        estimates.update(term_varcorr_columns(t.group, t.names, cov, t.covariance))
        levels = tuple(str(lv) for lv in design.blocks[t.block].levels[:t.n_levels])
        ranef.extend(RanefColumns(t.group, name, levels, modes[:, :, j], csd[:, :, j]) for j, name in enumerate(t.names))
    estimates["sigma"] = np.sqrt(arr.sigma2)
    estimates["sigma2"] = arr.sigma2
    singular = singular_rows(arr.singular_theta, layout)
    return FitColumns(solved=arr.solved, method=design.spec.method, criterion=arr.deviance, theta=arr.theta,
                      estimates=estimates, se=ses, intervals=intervals, converged=np.ones(arr.R, dtype=bool),
                      singular=singular, ranef=tuple(ranef), elapsed_s=elapsed, source=arr)


BACKEND = RemlBackend()
