"""The statsmodels backend ("statsmodels"): ``statsmodels.regression.mixed_linear_model.MixedLM``.

The model is built from the Design's arrays (``endog`` = y, ``exog`` = X named by ``fixed_names``,
``groups``/``exog_re``/``exog_vc`` as :mod:`~compare_mm.backends.statsmodels.layout` explains); no
formula is parsed here.  REML or ML follows ``design.spec.method``.

What comes back is statsmodels' answer, translated into the common :class:`FitResult`:

- ``loglik`` is ``MixedLMResults.llf``.  Its REML form (``MixedLM.loglike``) is
  −½[log|V₀| + log|X'V₀⁻¹X| + (n−p)(1 + log(2π r'V₀⁻¹r/(n−p)))], which is lme4's REML ``logLik``
  (−½ d_R(θ) of Bates et al. 2015, eq. 41) term for term — neither includes log|X'X| — so no constant is
  added; on the sleepstudy fits the two agree to 1e-9.  ``criterion`` = −2 loglik; AIC and BIC are lme4's
  (k = p + number of covariance parameters + 1, computed from the REML loglik for REML fits, as lme4 does;
  statsmodels itself gives NaN for REML).
- ``fixef`` SEs and ``vcov`` are statsmodels' (``bse_fe``, ``cov_params``): the inverse of the joint
  observed information of β and the covariance parameters.  lme4 and our fitter report σ²(X'V₀⁻¹X)⁻¹,
  conditional on the variance estimates; the two agree for balanced designs like sleepstudy (4e-5) but
  not in general (0.6% for a slope in a nested design).  The conditional SEs, from statsmodels' own
  Hessian, are in ``diagnostics["se_conditional"]``.
- ``theta`` is lme4's θ: the column-wise lower triangle of chol(G_term/σ²) for ``|`` terms, the ratios
  σ_k/σ for ``||`` terms and variance components.  ``singular`` is lme4's rule: a diagonal element of
  Λ_θ below 1e-4.
- ``ranef`` are statsmodels' ``random_effects`` with conditional SDs from ``random_effects_cov``
  (E[u | y] and Var[u | y] at the estimates, lme4's condVar).  When statsmodels refuses (a singular
  ``cov_re``), the same formulas are evaluated directly from its estimates and a warning says so.
- ``warnings`` holds every warning statsmodels emitted during the fit, prefixed by its category, and
  exceptions it raised (then the result has NaN estimates and ``converged=False``).  statsmodels' known
  silent failure (issue statsmodels#10239: when Var(RE)/σ² falls below 1e-10, ``get_fe_params`` inverts
  the covariance as if it were infinite and returns every fixed effect that is constant within a cluster
  as exactly 0.0, with ``converged=True``) is flagged by a warning starting ``"statsmodels silent
  failure:"`` and ``converged=False``; so is a fit with any non-finite estimate.  Every converged fit is
  cross-checked against our fitter's criterion (:mod:`.crosscheck`): when statsmodels' (θ, σ) leave the
  REML criterion or deviance more than 1e-3 above our optimum, a warning starting ``"statsmodels not at
  optimum:"`` names the gap and ``converged=False``.

Options: ``level`` (Wald intervals, default 0.95), ``optimizer`` (a scipy method name or a list tried in
turn; default statsmodels' own ``["bfgs", "lbfgs", "cg"]``), ``maxiter``, ``gtol`` (scipy's gradient
tolerance for bfgs and cg; statsmodels passes it to every optimiser in the list and warns, recorded in
``warnings``, when lbfgs is reached, which ignores it).
"""

from __future__ import annotations

import math
import time
import warnings as _warnings
from typing import Any, Mapping

import numpy as np
import pandas as pd

from ...model.design import Design
from ...errors import OptionError
from ...results.schema import FitResult, FixefRow, Optimisation, VarCorrRow, term_varcorr_rows, wald_intervals
from ...model.spec import ModelSpec
from ..base import BackendBase, merge_options
from .crosscheck import not_at_optimum
from .layout import MixedLMLayout, plan_layout, unsupported_reason
from .ranef import lme4_order, lme4_theta, ranef_rows

DEFAULT_OPTIMIZERS: tuple[str, ...] = ("bfgs", "lbfgs", "cg")
GRADIENT_OPTIMIZERS: tuple[str, ...] = ("bfgs", "lbfgs", "cg")
KNOWN_OPTIMIZERS: tuple[str, ...] = ("bfgs", "lbfgs", "cg", "powell", "nm")
OPTIONS: dict[str, Any] = {"level": 0.95, "optimizer": DEFAULT_OPTIMIZERS, "maxiter": None, "gtol": None}
SILENT_FAILURE = "statsmodels silent failure:"
SINGULAR_TOL = 1e-4


def check_options(options: Mapping[str, Any] | None) -> dict[str, Any]:
    """Validated options with defaults filled in; :class:`OptionError` names a bad key."""
    hints = {"method": " (REML/ML is the fit's method; statsmodels' optimisers are 'optimizer')"}
    out = merge_options(options, OPTIONS, "statsmodels", hints)
    opt = out["optimizer"]
    opt = [opt] if isinstance(opt, str) else list(opt) if isinstance(opt, (list, tuple)) else None
    if not opt or any(not isinstance(o, str) or o.lower() not in KNOWN_OPTIMIZERS for o in opt):
        raise OptionError(f"Option 'optimizer' must be one of {', '.join(KNOWN_OPTIMIZERS)} or a list of them, "
                          f"got {out['optimizer']!r}.")
    out["optimizer"] = tuple(o.lower() for o in opt)
    for key, kind in (("maxiter", int), ("gtol", float)):
        if out[key] is None:
            continue
        try:
            val = kind(out[key])
        except (TypeError, ValueError):
            val = None
        if val is None or isinstance(out[key], bool) or val <= 0:
            raise OptionError(f"Option {key!r} must be a positive number, got {out[key]!r}.")
        out[key] = val
    return out


class StatsmodelsBackend(BackendBase):
    """statsmodels MixedLM behind the Backend contract (module docstring)."""

    name = "statsmodels"
    relative_cost = 8.0
    title = "Linear mixed model fit by {method} (statsmodels MixedLM)"

    def check_options(self, design: Design, options: Mapping[str, Any]) -> None:
        """Validate ``options`` (:func:`check_options`) before the first fit of a prepared design."""
        check_options(options)

    def supports(self, spec: ModelSpec) -> str | None:
        """None if MixedLM can express ``spec``, else one sentence why not."""
        return unsupported_reason(spec)

    def fit(self, design: Design, options: Mapping[str, Any]) -> FitResult:
        """Fit ``design`` with MixedLM by ``design.spec.method`` and translate the result."""
        t0 = time.perf_counter()
        opts = check_options(options)
        layout = plan_layout(design)
        if layout.free is not None:
            bad = [o for o in opts["optimizer"] if o not in GRADIENT_OPTIMIZERS]
            if bad:
                raise OptionError(
                    f"Option 'optimizer' {bad[0]!r} ignores the mask that keeps independent random effects "
                    f"uncorrelated; use {', '.join(GRADIENT_OPTIMIZERS)} for this model.")
        reml = design.spec.method == "REML"
        with _warnings.catch_warnings(record=True) as caught:
            _warnings.simplefilter("always")
            try:
                res, retvals = _run(design, layout, opts, reml)
                error = None
            except (np.linalg.LinAlgError, ValueError, FloatingPointError, ZeroDivisionError) as exc:
                res, retvals, error = None, {}, f"statsmodels error: {type(exc).__name__}: {exc}"
        messages = _dedupe(f"{w.category.__name__}: {w.message}" for w in caught)
        if res is None:
            messages.append(error)
            return self.attach(_failed(design, opts, messages, time.perf_counter() - t0), design)
        return self.attach(_translate(design, layout, res, retvals, opts, messages, time.perf_counter() - t0),
                           design)


def _run(design: Design, layout: MixedLMLayout, opts: dict[str, Any], reml: bool):
    """Build and fit the MixedLM; returns the results and the last optimiser's ``mle_retvals``."""
    # deferred: statsmodels is heavy; imported on the first statsmodels fit
    from statsmodels.regression.mixed_linear_model import MixedLM

    exog = pd.DataFrame(design.X, columns=list(design.fixed_names))
    exog_re = None if layout.exog_re is None else pd.DataFrame(layout.exog_re, columns=list(layout.re_names))
    model = MixedLM(design.y, exog, groups=layout.groups, exog_re=exog_re, exog_vc=layout.exog_vc)
    kwargs: dict[str, Any] = {}
    if opts["maxiter"] is not None:
        kwargs["maxiter"] = opts["maxiter"]
    if opts["gtol"] is not None:
        kwargs["gtol"] = opts["gtol"]
    res = model.fit(reml=reml, free=layout.free, method=list(opts["optimizer"]), full_output=True, **kwargs)
    retvals = res.hist[-1] if getattr(res, "hist", None) else {}
    return res, retvals


def _dedupe(messages) -> list[str]:
    return list(dict.fromkeys(messages))


def _optimisation(opts: dict[str, Any], messages: list[str], retvals: Mapping[str, Any], converged: bool
                  ) -> Optimisation:
    tried = [opts["optimizer"][0]] + [m.rsplit(" ", 1)[-1] for m in messages
                                      if "Retrying MixedLM optimization with" in m]
    evals = int(retvals.get("fcalls", retvals.get("iterations", 0)) or 0)
    grads = int(retvals.get("gcalls", 0) or 0)
    msg = "statsmodels reports convergence" if converged else "statsmodels reports no convergence"
    if len(tried) > 1:
        msg += f" (tried {' → '.join(tried)})"
    return Optimisation(optimizer=f"statsmodels:{tried[-1]}", evaluations=evals, converged=bool(converged),
                        message=msg, gradient_evaluations=grads)


def silent_failure(fe_params: np.ndarray, cov_params: np.ndarray, fixed_names: tuple[str, ...],
                   converged: bool) -> str | None:
    """The warning for statsmodels' silent failure (statsmodels#10239), or None.

    A converged fit whose fixed effects include an exact 0.0 (what ``get_fe_params`` returns for every
    cluster-constant column once Var(RE)/σ² < 1e-10), or whose estimates are not finite.
    """
    if not converged:
        return None
    fe = np.asarray(fe_params, dtype=float)
    if not (np.all(np.isfinite(fe)) and np.all(np.isfinite(cov_params))):
        return f"{SILENT_FAILURE} non-finite estimates reported with converged=True."
    zero = [name for name, b in zip(fixed_names, fe) if b == 0.0]
    if zero:
        return (f"{SILENT_FAILURE} fixed effect(s) {', '.join(zero)} returned as exactly 0.0 with "
                f"converged=True (a variance estimate fell below statsmodels' 1e-10 tolerance; "
                f"statsmodels#10239); treat this fit as failed.")
    return None


def _translate(design: Design, layout: MixedLMLayout, res, retvals: Mapping[str, Any], opts: dict[str, Any],
               messages: list[str], elapsed: float) -> FitResult:
    """statsmodels' results → FitResult (conventions in the module docstring)."""
    p = design.p
    sigma2 = float(res.scale)
    sigma = math.sqrt(sigma2) if sigma2 >= 0 else math.nan
    fe = np.asarray(res.fe_params, dtype=float)
    vcov = np.asarray(res.cov_params(), dtype=float)[:p, :p] if np.isfinite(sigma2) else np.full((p, p), np.nan)
    se = np.sqrt(np.maximum(np.diagonal(vcov), 0.0))
    cov_re = np.asarray(res.cov_re, dtype=float).reshape(len(layout.re_effects), len(layout.re_effects))
    vcomp = np.asarray(res.vcomp, dtype=float).reshape(-1)
    converged = bool(res.converged)
    flag = silent_failure(fe, np.concatenate([cov_re.ravel(), vcomp, [sigma2]]), design.fixed_names, converged)
    if flag:
        messages.append(flag)
        converged = False
    covs = _term_covariances(design, layout, cov_re, vcomp)
    varcorr = _varcorr(design, covs, sigma2)
    theta = lme4_theta(design, covs, sigma2)
    if not _all_finite(fe, cov_re, vcomp, sigma2):
        messages.append(f"{SILENT_FAILURE} non-finite estimates; the fit failed.")
        converged = False
    elif converged:
        gap = not_at_optimum(design, [t for t, _ in theta], sigma)
        if gap:
            messages.append(gap)
            converged = False
    diag_theta = [t for t, is_diag in theta if is_diag]
    singular = bool(any(t < SINGULAR_TOL for t in diag_theta))
    ranef, note = ranef_rows(design, layout, res)
    if note:
        messages.append(note)
    fixef = tuple(FixefRow(term=n, estimate=float(b), se=float(s)) for n, b, s in zip(design.fixed_names, fe, se))
    intervals = wald_intervals(fixef, opts["level"])
    diagnostics = {"se_conditional": _conditional_se(design, res)}
    loglik = float(res.llf)
    n_cov = sum(b.n_theta for b in design.blocks)
    k = p + n_cov + 1
    optim = _optimisation(opts, messages, retvals, bool(res.converged))
    return FitResult(
        backend="statsmodels", method=design.spec.method, formula=design.spec.formula, nobs=design.n,
        converged=converged, singular=singular, loglik=loglik, criterion=-2.0 * loglik, sigma=sigma,
        fixef=fixef, varcorr=tuple(varcorr), ranef=tuple(ranef), theta=tuple(float(t) for t, _ in theta),
        vcov=vcov, aic=-2.0 * loglik + 2.0 * k, bic=-2.0 * loglik + k * math.log(design.n),
        ngroups={b.group: b.n_levels for b in design.blocks}, elapsed_s=elapsed, warnings=tuple(messages),
        optimisation=optim, intervals=intervals, diagnostics=diagnostics,
        options={"level": opts["level"], "optimizer": list(opts["optimizer"]), "maxiter": opts["maxiter"],
                 "gtol": opts["gtol"], "layout": layout.kind},
    )


def _all_finite(*arrays) -> bool:
    return all(bool(np.all(np.isfinite(np.asarray(a, dtype=float)))) for a in arrays)


def _conditional_se(design: Design, res) -> dict[str, float]:
    """lme4's SEs, sqrt(diag(σ²(X'V₀⁻¹X)⁻¹)), from statsmodels' own Hessian H (its β block, inverted alone).

    statsmodels' ``bse_fe`` inverts the whole observed information −H of (β, covariance parameters), whose
    β–variance cross terms are not 0 away from balanced designs; lme4 and our fitter condition on the
    variance estimates.  −H is recovered from statsmodels' ``cov_params`` = (−H)⁻¹ on the free parameters
    (no second Hessian evaluation), and (−H_ββ)⁻¹ is kept in ``diagnostics["se_conditional"]``.
    """
    p = design.p
    try:
        cov = np.asarray(res.cov_params(), dtype=float)
        free = np.ones(cov.shape[0], dtype=bool)
        if getattr(res, "freepat", None) is not None:
            free = res.freepat.get_packed(use_sqrt=False, has_fe=True) != 0
        idx = np.flatnonzero(free)
        info = np.linalg.inv(cov[np.ix_(idx, idx)])
        se = np.sqrt(np.diagonal(np.linalg.inv(info[:p, :p])))
    except (np.linalg.LinAlgError, ValueError, FloatingPointError):
        se = np.full(p, np.nan)
    return {name: float(v) for name, v in zip(design.fixed_names, se)}


def _term_covariances(design: Design, layout: MixedLMLayout, cov_re: np.ndarray, vcomp: np.ndarray
                      ) -> list[np.ndarray]:
    """G of every random-effects term (block), in block order, from ``cov_re`` and the components."""
    covs = [np.zeros((b.q, b.q)) for b in design.blocks]
    pos = {e: i for i, e in enumerate(layout.re_effects)}
    for e1, i in pos.items():
        for e2, j in pos.items():
            if e1.block == e2.block:
                covs[e1.block][e1.index, e2.index] = cov_re[i, j]
    for k, e in enumerate(layout.vc_effects):
        covs[e.block][e.index, e.index] = vcomp[k]
    for b, g in zip(design.blocks, covs):
        if b.covariance == "diagonal":  # the free mask holds these at 0; make it exact
            g[~np.eye(b.q, dtype=bool)] = 0.0
    return covs


def _varcorr(design: Design, covs: list[np.ndarray], sigma2: float) -> list[VarCorrRow]:
    """lme4's VarCorr rows: per term (lme4 order) its variances, then its correlations; then the residual."""
    rows: list[VarCorrRow] = []
    for i in lme4_order(design):
        b = design.blocks[i]
        rows.extend(term_varcorr_rows(b.group, b.term_names, covs[i], b.covariance))
    rows.append(VarCorrRow(group="Residual", term=None, variance=sigma2, sd=math.sqrt(max(sigma2, 0.0))))
    return rows


def _failed(design: Design, opts: dict[str, Any], messages: list[str], elapsed: float) -> FitResult:
    """The result of a fit statsmodels aborted with an exception: NaN estimates, converged=False."""
    nan = math.nan
    fixef = tuple(FixefRow(term=n, estimate=nan, se=nan) for n in design.fixed_names)
    covs = [np.full((b.q, b.q), nan) for b in design.blocks]
    return FitResult(
        backend="statsmodels", method=design.spec.method, formula=design.spec.formula, nobs=design.n,
        converged=False, singular=False, loglik=None, criterion=None, sigma=nan, fixef=fixef,
        varcorr=tuple(_varcorr(design, covs, nan)), ngroups={b.group: b.n_levels for b in design.blocks},
        elapsed_s=elapsed, warnings=tuple(messages),
        optimisation=Optimisation(optimizer=f"statsmodels:{opts['optimizer'][0]}", evaluations=0,
                                  converged=False, message=messages[-1]),
        options={"level": opts["level"], "optimizer": list(opts["optimizer"])},
    )


BACKEND = StatsmodelsBackend()
