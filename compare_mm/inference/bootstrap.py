"""Parametric bootstrap: LRT p-value (refit under the null) and percentile intervals for every parameter.

Replicate r draws y* = Xβ̂ + Σ_b Z_b u_b* + ε*, u* ~ N(0, Ĝ), ε* ~ N(0, σ̂²I), from its own
``SeedSequence(seed, spawn_key=(stream, r))`` and refits the model with our fitter
(:class:`compare_mm.fitter.extended.Refitter`: :func:`~compare_mm.fitter.extended.fit_design` with the
layout and path chosen once per chunk; the ``reml`` backend's optimiser and boundary rule, without
assembling a ``FitResult``; the design's method).  Because every replicate owns
its random stream and the chunks are fixed by ``chunk_size`` (not by the workers) and run with one BLAS
thread, results are identical whatever the number of workers; with the per-replicate fitter they are
identical whatever the chunking too, with the batched fitter (below) another ``chunk_size`` changes them
by rounding only (~1e-14 relative: its array kernels depend on the chunk's size).

- Percentile intervals (Davison & Hinkley 1997, sec. 5.3): y* from the fitted model, the α/2 and 1 − α/2
  empirical quantiles of each estimate (lme4 ``confint`` names: fixed effects, ``sd_*``, ``cor_*``,
  ``sigma``).
- Bootstrap LRT of a variance component: y* from the fitted null model, both models refitted,
  T* = crit(null) − crit(full) (ML deviances or REML criteria); p = (1 + #{T* ≥ T}) / (1 + N)
  (Davison & Hinkley 1997, eq. 4.11; pbkrtest's ``PBmodcomp``).

How a chunk's replicates are refitted (``refit``): ``"auto"`` refits balanced one-way designs
(``y ~ 1 + (1 | g)``) by the closed forms of :mod:`compare_mm.oneway.closed_forms` (vectorised over the
replicates of a chunk; equal to the fitter within 1e-7) and every other one-factor design with at most two
effects per level (random intercepts with covariates, ``(x || g)``, ``(x | g)``) by the batched fitter
(:func:`refit_all`; equal to the fitter within 1e-8); ``"fitter"`` calls the per-replicate fitter for
every replicate; ``"closed_form"`` insists on the closed forms.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import numpy as np

from ..model.design import Design
from ..errors import OptionError
from ..results.schema import FitResult, Interval, TestResult
from .components import drop_component, find_component
from ..fitter.batch_fit import BatchFitter, batchable
from ..fitter.extended import Refitter, fit_design
from ..fitter.theta import make_layout
from ..parallel import map_chunks, single_threaded_blas
from .lrt import lrt_statistic
from .profile import VarParamMap, var_params
from ..oneway.closed_forms import fit_oneway, is_balanced_oneway


@dataclass(frozen=True, eq=False)
class ModelParams:
    """Parameters to simulate from: θ (lme4 order, as ``FitResult.theta``; see
    :mod:`compare_mm.fitter.theta`), σ and β (in ``design.fixed_names`` order)."""

    theta: np.ndarray
    sigma: float
    beta: np.ndarray

    @classmethod
    def from_result(cls, result: FitResult) -> "ModelParams":
        return cls(np.asarray(result.theta, float), float(result.sigma),
                   np.array([r.estimate for r in result.fixef], dtype=float))

    @classmethod
    def from_design(cls, design: Design) -> "ModelParams":
        fit = fit_design(design)
        return cls(fit.theta, fit.sigma, fit.beta)


def simulate_y(design: Design, params: ModelParams, rng: np.random.Generator) -> np.ndarray:
    """One response vector from the model at ``params`` (u = σ Λ_t z per level, z ~ N(0, I)).

    θ is in lme4 order; the blocks draw their z in ``design.blocks`` order.
    """
    y = design.X @ params.beta
    theta = np.asarray(params.theta, dtype=float)
    factors = {t.block: t.factor(theta) for t in make_layout(design.blocks).terms}
    for k, b in enumerate(design.blocks):
        u = params.sigma * rng.standard_normal((b.n_levels, b.q)) @ factors[k].T
        y = y + np.einsum("nq,nq->n", np.asarray(b.Z), u[b.codes])
    return y + params.sigma * rng.standard_normal(design.n)


def _rng(entropy: int, stream: int, r: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence(entropy, spawn_key=(stream, r)))


def _oneway_ok(design: Design) -> bool:
    return is_balanced_oneway(design) is not None


def _closed_form(design: Design, ys: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(μ̂, σ̂_A, σ̂_e, criterion) by the one-way closed forms for the rows of ``ys``."""
    a, n = is_balanced_oneway(design)
    order = np.argsort(np.asarray(design.blocks[0].codes), kind="stable")
    Y = ys[:, order].reshape(len(ys), a, n)
    est = fit_oneway(Y, design.spec.method)
    return est.mu, np.sqrt(est.sigma_a2), np.sqrt(est.sigma_e2), -2.0 * est.loglik


@dataclass(frozen=True, eq=False)
class Refits:
    """The refits of R responses: θ̂ (R, n_θ), σ̂ (R,), β̂ (R, p) and the criterion (R,)."""

    theta: np.ndarray
    sigma: np.ndarray
    beta: np.ndarray
    deviance: np.ndarray


def refit_all(design: Design, ys: np.ndarray, batched: bool) -> Refits:
    """Refit ``design`` (its method) to every row of ``ys`` (R, n).

    ``batched``: a one-factor design with at most two effects per level goes through the batched fitter
    (:class:`compare_mm.fitter.batch_fit.BatchFitter`, what study chunks use; equal to the per-replicate
    fitter within its 1e-8 tests), a replicate the batch leaves unsolved through the per-replicate path.
    Otherwise, and for every other design, :class:`fitter.extended.Refitter` one response at a time (the
    design's layout and path chosen once).  The batch's arithmetic is row by row, so a replicate's refit
    does not depend on the other rows of its chunk."""
    reml = design.spec.method == "REML"
    R, layout = len(ys), make_layout(design.blocks)
    theta, sigma = np.full((R, layout.n_theta), np.nan), np.full(R, np.nan)
    beta, deviance = np.full((R, design.p), np.nan), np.full(R, np.nan)
    todo = np.arange(R)
    if batched and batchable(design, layout):
        arr = BatchFitter(design, layout).arrays(ys, reml)
        ok = arr.solved
        theta[ok], sigma[ok], beta[ok], deviance[ok] = arr.theta[ok], np.sqrt(arr.sigma2[ok]), arr.beta[ok], \
            arr.deviance[ok]
        todo = np.flatnonzero(~ok)
    if todo.size:
        refitter = Refitter(design)
        for m in todo:
            fit = refitter.fit(ys[m])
            theta[m], sigma[m], beta[m], deviance[m] = fit.theta, fit.sigma, fit.beta, fit.deviance
    return Refits(theta, sigma, beta, deviance)


def _ci_chunk(args, **kw) -> np.ndarray:
    with single_threaded_blas():     # the same kernels in this process and in any worker
        return _ci_rows(args, **kw)


def _ci_rows(args, *, design: Design, params: ModelParams, names: tuple[str, ...], entropy: int,
             refit: str) -> np.ndarray:
    start, stop = args
    ys = np.stack([simulate_y(design, params, _rng(entropy, 0, r)) for r in range(start, stop)])
    if refit == "oneway":
        mu, sa, se, _ = _closed_form(design, ys)
        b = design.blocks[0]
        cols = {design.fixed_names[0]: mu, f"sd_{b.term_names[0]}|{b.group}": sa, "sigma": se}
        return np.column_stack([cols[nm] for nm in names])
    pmap = VarParamMap(design)
    index = {nm: k for k, nm in enumerate(tuple(design.fixed_names) + tuple(pmap.names))}
    cols = [index.get(nm, -1) for nm in names]
    out = np.full((stop - start, len(names)), np.nan)
    fits = refit_all(design, ys, refit == "batched")
    for i in range(len(ys)):
        est = np.concatenate([fits.beta[i], pmap.from_theta(fits.theta[i], fits.sigma[i])])
        out[i] = [est[k] if k >= 0 else np.nan for k in cols]
    return out


def _lrt_chunk(args, **kw) -> np.ndarray:
    with single_threaded_blas():     # the same kernels in this process and in any worker
        return _lrt_rows(args, **kw)


def _lrt_rows(args, *, full: Design, null: Design, params: ModelParams, entropy: int, stream: int,
              refit: str) -> np.ndarray:
    start, stop = args
    ys = np.stack([simulate_y(null, params, _rng(entropy, stream, r)) for r in range(start, stop)])
    crit_null = refit_all(null, ys, refit == "batched").deviance
    if refit == "oneway":
        crit_full = _closed_form(full, ys)[3]
    else:
        crit_full = refit_all(full, ys, refit == "batched").deviance
    return np.array([lrt_statistic(cn, cf) for cn, cf in zip(crit_null, crit_full)])


def _chunks(nsim: int, size: int) -> list[tuple[int, int]]:
    return [(s, min(s + size, nsim)) for s in range(0, nsim, size)]


def _entropy(seed) -> int:
    if isinstance(seed, np.random.SeedSequence):
        return int(seed.entropy)
    return int(np.random.SeedSequence(seed).entropy)


def _refit_mode(design: Design, refit: str) -> str:
    if refit not in ("auto", "fitter", "closed_form"):
        raise OptionError(f"The bootstrap refit option must be 'auto', 'fitter' or 'closed_form', not {refit!r}.")
    ok = _oneway_ok(design)
    if refit == "closed_form" and not ok:
        raise OptionError("The closed-form bootstrap refit needs a balanced one-way design y ~ 1 + (1 | g).")
    if refit == "fitter":
        return "fitter"
    return "oneway" if ok else "batched"


def _check_nsim(nsim: int) -> int:
    if int(nsim) < 1:
        raise OptionError(f"The bootstrap needs at least 1 replicate, got {nsim}.")
    return int(nsim)


def bootstrap_draws(design: Design, *, nsim: int, seed=None, params: ModelParams | None = None,
                    names: tuple[str, ...] | None = None, workers: int | None = None,
                    scheduler: str | None = None, chunk_size: int = 50, refit: str = "auto"
                    ) -> tuple[tuple[str, ...], np.ndarray]:
    """``(names, draws)``: ``draws[r, k]`` is parameter ``names[k]`` refitted on replicate r."""
    nsim = _check_nsim(nsim)
    params = params or ModelParams.from_design(design)
    if names is None:
        names = tuple(design.fixed_names) + tuple(p.name for p in var_params(design))
    mode = _refit_mode(design, refit)
    fn = partial(_ci_chunk, design=design, params=params, names=tuple(names), entropy=_entropy(seed), refit=mode)
    parts = map_chunks(fn, _chunks(nsim, chunk_size), workers=workers, scheduler=scheduler)
    return tuple(names), np.vstack(parts)


def bootstrap_intervals(design: Design, *, nsim: int, seed=None, level: float = 0.95,
                        params: ModelParams | None = None, workers: int | None = None,
                        scheduler: str | None = None, chunk_size: int = 50, refit: str = "auto"
                        ) -> tuple[Interval, ...]:
    """Percentile intervals (``kind="bootstrap"``) for every fixed effect, SD, correlation and σ."""
    names, draws = bootstrap_draws(design, nsim=nsim, seed=seed, params=params, workers=workers,
                                   scheduler=scheduler, chunk_size=chunk_size, refit=refit)
    a = (1.0 - level) / 2.0
    lo = np.nanquantile(draws, a, axis=0)
    hi = np.nanquantile(draws, 1.0 - a, axis=0)
    return tuple(Interval(nm, "bootstrap", float(l), float(h), level) for nm, l, h in zip(names, lo, hi))


def bootstrap_lrt(design: Design, group: str | None = None, term: str | None = None, *, nsim: int,
                  seed=None, statistic: float | None = None, workers: int | None = None,
                  scheduler: str | None = None, chunk_size: int = 50, refit: str = "auto",
                  stream: int = 1) -> TestResult:
    """Parametric-bootstrap LRT of one variance component (module docstring), method of the design."""
    nsim = _check_nsim(nsim)
    comp = find_component(design, group, term)
    null = drop_component(design, comp)
    method = design.spec.method
    null_fit = fit_design(null, method == "REML")
    if statistic is None:
        full_fit = fit_design(design, method == "REML")
        statistic = lrt_statistic(null_fit.deviance, full_fit.deviance)
    params = ModelParams(null_fit.theta, null_fit.sigma, null_fit.beta)
    mode = _refit_mode(design, refit)
    fn = partial(_lrt_chunk, full=design, null=null, params=params, entropy=_entropy(seed), stream=stream,
                 refit=mode)
    with single_threaded_blas():
        sims = np.concatenate(map_chunks(fn, _chunks(nsim, chunk_size), workers=workers, scheduler=scheduler))
    p = (1.0 + np.sum(sims >= statistic - 1e-10)) / (1.0 + nsim)
    return TestResult("bootstrap_lrt", comp.group, comp.term, float(statistic), float(p), nsim)


__all__ = ["ModelParams", "Refits", "bootstrap_draws", "bootstrap_intervals", "bootstrap_lrt", "refit_all", "simulate_y"]
