"""One chunk of a study: simulate its replicates and fit them with every configured fit (SimDesign's shape).

For each replicate: ``simulate`` (seeded per (condition, replicate), see :mod:`compare_mm.study.generate`)
→ every configured fit → rows (:mod:`compare_mm.study.rows`, tests and intervals in
:mod:`compare_mm.study.rows_inference`).  :func:`run_chunk` is a pure function of (config, chunk): workers
run it and the client writes what it returns, so results are identical whatever the executor or worker count.
"""

from __future__ import annotations

from dataclasses import replace
from itertools import chain
import logging
import time
import warnings
from typing import Any

import numpy as np
import pandas as pd

from .config.schema import StudyConfig
from .generate import (Replicate, fit_seed, is_balanced, model_spec, simulate_many, simulate_oneway_balanced,
                       simulate_twoway_balanced, template_frame, truths)
from .generate_twoway import is_balanced as twoway_balanced
from .rows_twoway import anova_parts, ftest_parts
from ..twoway.anova import take, twoway_stats
from .plan import Chunk, per_replicate_inference, uses_fast_path
from .rows import Part, failed_rows, ftest_rows, oneway_fast_rows, parameters, result_rows
from .row_schema import BOOL_COLUMNS, DEFAULTS, INT_COLUMNS, PARAM_COLUMNS, STRING_COLUMNS, condition_label
from ..api import make_design
from ..backends.base import get_backend
from ..fitter.batch_fit import BatchFitter
from ..fitter.theta import make_layout
from ..inference.batch_lrt import lrt_many
from ..inference.batch_profile import profile_many, profiled_in_batch
from ..oneway.closed_forms import OnewayStats, fit_oneway, oneway_stats
from ..parallel import single_threaded_blas
from .rows_columns import column_path_applies, column_rows, profile_columns, ready
from .rows_inference import (closed_form_test_parts, failed_inference_rows, fast_inference, inference_rows,
                             inference_seed, replicate_inference)



_DESIGNS: dict[tuple, Any] = {}


def _cov(fit, cond: dict[str, Any]) -> str | None:
    """The fit's random-effects covariance for this condition's model (None for one-way)."""
    return (fit.covariance or "unstructured") if cond["model"] == "random_slope" else None


def _design(cfg: StudyConfig, index: int, cond: dict[str, Any], fit):
    """One Design per (condition, model form) per process; replicates swap y (compiled-model reuse)."""
    key = (cfg.config_hash, index, _cov(fit, cond), fit.method if fit.method in ("REML", "ML") else "REML")
    if key not in _DESIGNS:
        spec = model_spec(cond["model"], key[2], key[-1])
        _DESIGNS[key] = make_design(spec, template_frame(cond["model"], cond))
    return _DESIGNS[key]


def _assemble(parts: list[Part], cfg: StudyConfig, cond: dict[str, Any]) -> pd.DataFrame:
    """Parts → one DataFrame with every column of :mod:`.row_schema`, string columns categorical."""
    n_total = sum(p.n for p in parts)
    grid = {k: condition_label(cond.get(k)) for k in cfg.grid_keys}
    cols = list(PARAM_COLUMNS)
    at = cols.index("replicate") + 1
    out: dict[str, Any] = {}
    for col in cols:
        pieces = [p.cols.get(col, DEFAULTS.get(col, np.nan)) for p in parts]
        if col in STRING_COLUMNS:
            if all(np.ndim(v) == 0 for v in pieces):
                cats = list(dict.fromkeys(str(v) for v in pieces))
                codes = np.repeat([cats.index(str(v)) for v in pieces], [p.n for p in parts]).astype(np.int32)
                out[col] = pd.Categorical.from_codes(codes, categories=cats)
            else:
                vals = np.concatenate([np.asarray(v, dtype=object) if np.ndim(v) else np.repeat(str(v), p.n)
                                       for v, p in zip(pieces, parts)]) if parts else np.array([], dtype=object)
                out[col] = pd.Categorical(vals.astype(str))
            continue
        dtype = bool if col in BOOL_COLUMNS else (np.int64 if col in INT_COLUMNS else float)
        out[col] = np.concatenate([np.broadcast_to(np.asarray(v, dtype=dtype), (p.n,))
                                   for v, p in zip(pieces, parts)]) if parts else np.array([], dtype=dtype)
    frame = pd.DataFrame(out)
    for j, (k, v) in enumerate(grid.items()):
        frame.insert(at + j, k, np.repeat(np.asarray(v, dtype=object if isinstance(v, str) else None), n_total)
                     if n_total else pd.Series([], dtype=object))
    return frame


def _dict_part(rows: list[dict[str, Any]]) -> Part:
    keys = list(dict.fromkeys(chain.from_iterable(rows)))
    cols = {}
    for k in keys:
        default = DEFAULTS.get(k, np.nan)
        vals = [r.get(k, default) for r in rows]
        cols[k] = np.asarray(vals, dtype=object) if k in STRING_COLUMNS else np.asarray(vals)
    return Part(len(rows), cols)


def run_chunk(cfg: StudyConfig | dict[str, Any], chunk: Chunk) -> pd.DataFrame:
    """Simulate and fit one chunk; return its rows (schema in :mod:`compare_mm.study.row_schema`).

    BLAS runs single-threaded: a chunk's fits are many small-matrix problems (the dense two-factor path of
    a two-way design ran 5.6× faster so, median of 3 interleaved runs of a 20-replicate REML + ML chunk on a
    loaded 2-core machine), and the executors parallelise over chunks instead."""
    with single_threaded_blas():
        return _run_chunk(cfg, chunk)


def _run_chunk(cfg: StudyConfig | dict[str, Any], chunk: Chunk) -> pd.DataFrame:
    if isinstance(cfg, dict):
        cfg = StudyConfig.model_validate(cfg)
    logging.getLogger("pymc").setLevel(logging.ERROR)
    cond = cfg.conditions()[chunk.condition]
    model = cond["model"]
    truth = truths(model, cond)
    reps = list(range(chunk.start, chunk.stop))
    parts: list[Part] = []
    tail: list[dict[str, Any] | Part] = []   # rows after the vectorised parts, in order: dicts and Parts
    balanced = is_balanced(model, cond)
    stats_ = None
    if balanced:
        Y, U, RAW = simulate_oneway_balanced(cond, cfg.seed, chunk.condition, reps)
        stats_ = oneway_stats(Y)
        parts.append(ftest_rows({"condition": chunk.condition}, stats_, truth, np.asarray(reps), cfg.level))
        generic = [f for f in cfg.fits if not uses_fast_path(cfg, cond, f)]
        data = [Replicate(y=Y[k].ravel(), u=U[k][:, None], raw=RAW[k][:, None]) for k in range(len(reps))] \
            if generic else []
    elif model == "two_way" and twoway_balanced(cond):  # exact F tests and ANOVA fits in closed form
        Y4, B = simulate_twoway_balanced(cond, cfg.seed, chunk.condition, reps)
        tw = twoway_stats(Y4)
        parts.extend(ftest_parts({"condition": chunk.condition}, tw, truth, np.asarray(reps), cfg.level))
        blk = Y4.mean(axis=(1, 3))
        data = [Replicate(y=Y4[k].ravel(), u=B[k][:, None], raw=(blk[k] - blk[k].mean())[:, None])
                for k in range(len(reps))]
    else:
        data = simulate_many(model, cond, cfg.seed, chunk.condition, reps)
    for k, fit in enumerate(cfg.fits):
        head = {"condition": chunk.condition, "fit": fit.name, "backend": fit.backend, "method": fit.method or ""}
        active = [i for i, r in enumerate(reps) if fit.replicates is None or r < fit.replicates]
        if not active:
            continue
        if model == "two_way" and uses_fast_path(cfg, cond, fit):
            idx = np.asarray(active)
            t0 = time.perf_counter()
            sub = tw if len(idx) == len(reps) else take(tw, idx)
            blocks = anova_parts(head, sub, fit.interval, fit.extra_intervals, cfg.level, truth,
                                 np.asarray(reps)[idx], 0.0)
            per = (time.perf_counter() - t0) / len(idx)
            for b in blocks:
                b.cols["elapsed_s"] = per
            parts.extend(blocks)
            continue
        if stats_ is not None and uses_fast_path(cfg, cond, fit):
            idx = np.asarray(active)
            sub = stats_ if len(idx) == len(reps) else OnewayStats(
                a=stats_.a, n=stats_.n, grand_mean=stats_.grand_mean[idx], group_means=stats_.group_means[idx],
                ssa=stats_.ssa[idx], sse=stats_.sse[idx], msa=stats_.msa[idx], mse=stats_.mse[idx])
            t0 = time.perf_counter()
            extra_rows, extra_parts, override, est = _fast_inference(cfg, chunk, cond, truth, fit, k, head, sub,
                                                                     Y[idx], np.asarray(reps)[idx])
            blocks = oneway_fast_rows(head, sub, fit.method, fit.interval, cfg.level, truth,
                                      np.asarray(reps)[idx], U[idx], RAW[idx], 0.0, override=override,
                                      estimates=est)
            per = (time.perf_counter() - t0) / len(idx)
            for b in blocks + extra_parts:
                b.cols["elapsed_s"] = per
            for row in extra_rows:
                row["elapsed_s"] = per
            parts.extend(blocks + extra_parts)
            tail.extend(extra_rows)
            continue
        tail.extend(_generic_fits(cfg, chunk, cond, truth, fit, k, [(reps[i], data[i]) for i in active], head))
    return _assemble(parts + _tail_parts(tail), cfg, cond)


def _tail_parts(tail: list[dict[str, Any] | Part]) -> list[Part]:
    """Runs of row dicts as one :class:`Part` each, the column-wise Parts between them kept in place."""
    out: list[Part] = []
    run: list[dict[str, Any]] = []
    for item in tail:
        if isinstance(item, Part):
            if run:
                out.append(_dict_part(run))
                run = []
            out.append(item)
        else:
            run.append(item)
    if run:
        out.append(_dict_part(run))
    return out


def _fast_inference(cfg, chunk, cond, truth, fit, k, head, sub, Y, reps):
    """Test rows, extra interval rows and a primary-interval override of a fast-path fit
    (:mod:`compare_mm.study.rows_inference`); ``([], [], None, None)`` when the fit requests no inference."""
    if not (fit.test_list or fit.intervals or fit.interval in ("profile", "bootstrap")):
        return [], [], None, None
    est = fit_oneway(sub, fit.method, cfg.level)
    status = dict(ok=True, error="", converged=True, boundary=np.asarray(est.boundary, dtype=bool),
                  singular=np.asarray(est.boundary, dtype=bool), divergences=np.nan, max_rhat=np.nan)

    def st_of(i):
        return status if i is None else dict(status, boundary=bool(status["boundary"][i]),
                                             singular=bool(status["singular"][i]))

    parts = closed_form_test_parts(head, fit, sub, cfg.level, truth, reps, status)
    per_replicate = per_replicate_inference(fit, fast=True)  # on the fast path: the bootstrap only
    # the design and the seeds serve per-replicate work only (the bootstrap); closed forms need neither
    seeds = [inference_seed(cfg.seed, chunk.condition, int(r), k) for r in reps] if per_replicate else []
    design = _design(cfg, chunk.condition, cond, fit) if per_replicate else None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rows, primary, iv_parts = fast_inference(head, fit, design, Y, reps, est,
                                                 cfg.level, truth, seeds, st_of, stats_=sub)
    return rows, parts + iv_parts, (primary or None), est


def _generic_fits(cfg, chunk, cond, truth, fit, k, items, head) -> list[dict[str, Any] | Part]:
    """The rows of one fit of the chunk's replicates ``items``, in replicate order: row dicts, and Parts for
    the runs of replicates whose rows the column path built (:mod:`compare_mm.study.rows_columns`)."""
    rows: list[dict[str, Any] | Part] = []
    params = parameters(cond["model"], _cov(fit, cond), cond)
    try:
        backend = get_backend(fit.backend)
        design = _design(cfg, chunk.condition, cond, fit)
    except Exception as exc:  # noqa: BLE001 — recorded, the study goes on
        err = f"{type(exc).__name__}: {exc}"
        for r, _ in items:
            rows.extend(failed_rows(dict(head, replicate=r), params, truth, err, 0.0))
        return rows
    level_index = {lab: i for i, lab in enumerate(design.blocks[0].levels)}
    base = fit.backend_options(cfg.level)
    seeds = [fit_seed(cfg.seed, chunk.condition, r, k) if backend.needs_seed else None for r, _ in items]
    prepared = _prepare(backend, design, base, seeds)
    cols = _column_fits(prepared, fit, backend, items)
    batched = _fit_many(prepared, items, seeds) if cols is None else {}
    profiles = _batched_profiles(cfg, fit, design, items)
    done: dict[int, tuple] = {}
    if cols is not None:
        done, batched = _column_blocks(cfg, cond, truth, fit, head, design, prepared, cols, items, profiles,
                                       level_index)
    for i, ((r, rep), seed) in enumerate(zip(items, seeds)):
        if i in done:
            block, a = done[i]
            if a is not None:
                rows.append(block.part(*a))
            continue
        h = dict(head, replicate=r)
        t0 = time.perf_counter()
        try:
            if r in batched:
                result, elapsed = batched[r]
            else:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    if prepared is None:  # per-design work once per chunk; an error in it is every replicate's
                        prepared = backend.prepare(design, dict(base, seed=seed) if backend.needs_seed else base)
                    result = prepared.fit(rep.y, seed=seed)
                elapsed = time.perf_counter() - t0
            inference_error = ""
            if fit.wants_inference:
                try:
                    result = _with_inference(cfg, chunk, fit, k, _own_design(result, design, rep.y), r,
                                             result, profiles.get(r))
                except Exception as exc:  # noqa: BLE001 — the fit's rows stay; its tests are recorded failed
                    msg = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
                    inference_error = f"{type(exc).__name__}: {msg}"
            fit_rows = result_rows(h, result, cond["model"], _cov(fit, cond), fit.interval, cfg.level, truth,
                                   cfg.boundary_threshold, rep.u, rep.raw, level_index, elapsed, cond=cond)
            rows.extend(fit_rows)
            if fit.test_list or fit.extra_intervals:
                rows.extend(_inference_rows(cfg, cond, truth, fit, h, result, fit_rows, inference_error))
        except Exception as exc:  # noqa: BLE001 — a failing fit becomes a row with its error
            msg = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            rows.extend(failed_rows(h, params, truth, f"{type(exc).__name__}: {msg}", time.perf_counter() - t0))
    return rows


def _prepare(backend, design, base, seeds):
    """The prepared design (once per chunk and fit), or None when ``prepare`` raises: the per-replicate
    loop then prepares again and records the error on every replicate."""
    if not seeds:
        return None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return backend.prepare(design, dict(base, seed=seeds[0]) if backend.needs_seed else base)
    except Exception:  # noqa: BLE001 — the per-replicate loop records it on every replicate
        return None


def _column_fits(prepared, fit, backend, items):
    """The batch of the chunk's fits column-wise (:class:`~compare_mm.results.columns.FitColumns`) when the
    prepared design has ``fit_columns`` and the fit needs only rows it gives
    (:func:`compare_mm.study.rows_columns.column_path_applies`); None otherwise or on any error."""
    fit_columns = getattr(prepared, "fit_columns", None)
    if fit_columns is None or not items or not column_path_applies(fit, backend):
        return None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            cols = fit_columns(np.stack([np.asarray(rep.y, float) for _, rep in items]))
    except Exception:  # noqa: BLE001 — the FitResult route fits them instead
        return None
    return cols if cols is not None and cols.R == len(items) else None


def _column_blocks(cfg, cond, truth, fit, head, design, prepared, cols, items, profiles, level_index):
    """({item position: (ColumnRows, (a, b) or None)}, {replicate: (FitResult, elapsed)}): the rows of the
    replicates the column path builds — a run of consecutive positions is one Part, stored at its first
    position, (a, b) its range in the block — and, for the other replicates the batch solved, the FitResult
    ``fit_many`` would give (their rows then follow the per-replicate route)."""
    model, cov = cond["model"], _cov(fit, cond)
    use = ready(cols, model, cov, cond)
    wants_profile = "profile" in (set(fit.intervals or []) | {fit.interval})
    if wants_profile:
        use &= np.array([r in profiles for r, _ in items], dtype=bool)
    pos = np.flatnonzero(use)
    prof = None
    if wants_profile and pos.size:
        prof = profile_columns([profiles[items[i][0]] for i in pos])
        if prof is None:
            pos = pos[:0]
    lrts = None
    if pos.size and fit.test_list:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                lrts = lrt_many(design, np.stack([np.asarray(items[i][1].y, float) for i in pos]),
                                cols.criterion[pos], design.spec.method == "REML")
        except Exception:  # noqa: BLE001 — every replicate's tests are computed alone
            pos = pos[:0]
    taken = set(pos.tolist())
    batched = {r: (prepared.result_at(cols, i, rep.y), cols.elapsed_s) for i, (r, rep) in enumerate(items)
               if cols.solved[i] and i not in taken}
    if not pos.size:
        return {}, batched
    block = column_rows(head, cols, pos, np.array([items[i][0] for i in pos]), fit, model, cov, cfg.level, truth,
                        np.stack([items[i][1].u for i in pos]), np.stack([items[i][1].raw for i in pos]),
                        level_index, cond, profile=prof, lrts=lrts)
    done: dict[int, tuple] = {}
    start = 0
    for b in range(1, pos.size + 1):
        if b == pos.size or pos[b] != pos[b - 1] + 1:
            done[int(pos[start])] = (block, (start, b))
            for j in range(start + 1, b):
                done[int(pos[j])] = (block, None)
            start = b
    return done, batched


def _fit_many(prepared, items, seeds) -> dict[int, tuple[Any, float]]:
    """{replicate: (result, elapsed_s)} of the fits done in one batch.

    When the prepared design has ``fit_many`` (base.Prepared), the chunk's responses are fitted by one
    call and each replicate's elapsed time is the batch's time / R.  Any error in ``fit_many``, or a
    result count that does not match, gives no batched results: the caller then fits (and records
    failures) replicate by replicate, so a failing replicate becomes its own failed row.
    """
    fit_many = getattr(prepared, "fit_many", None)
    if fit_many is None or not items:
        return {}
    t0 = time.perf_counter()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            results = list(fit_many(np.stack([np.asarray(rep.y, float) for _, rep in items]), list(seeds)))
    except Exception:  # noqa: BLE001 — every replicate is refitted alone
        return {}
    if len(results) != len(items):
        return {}
    per = (time.perf_counter() - t0) / len(items)
    return {r: (res, per) for (r, _), res in zip(items, results) if res is not None}


def _own_design(result, design, y):
    """The design ``result`` was fitted to (a backend outside this package may not attach it)."""
    return result.design if result.design is not None else design.with_y(y)


def _batched_profiles(cfg, fit, design, items) -> dict[int, tuple]:
    """{replicate: profile intervals} of the chunk's responses computed in one batch
    (:func:`compare_mm.inference.batch_profile.profile_many`: designs with one scalar random intercept,
    e.g. unbalanced one-way, or two random effects of one grouping factor, ``(x | g)``, ``(x || g)``); empty when the fit requests no profile intervals, for other designs, or on
    any error — the replicates missing here are profiled one by one."""
    if not items or "profile" not in (set(fit.intervals or []) | {fit.interval}):
        return {}
    try:
        fitter = BatchFitter(design, make_layout(design.blocks))
        if not profiled_in_batch(fitter):
            return {}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            got = profile_many(fitter, np.stack([np.asarray(rep.y, float) for _, rep in items]),
                               mode=fit.profile or "ml", level=cfg.level)
    except Exception:  # noqa: BLE001 — every replicate is profiled alone
        return {}
    return {r: ivs for (r, _), ivs in zip(items, got) if ivs is not None}


def _with_inference(cfg, chunk, fit, k, design, replicate, result, profile=None):
    """``result`` with the tests and intervals ``fit`` requests attached (computed on ``design``; the
    profile intervals are ``profile`` when the batch computed them)."""
    skip = ("profile",) if profile is not None else ()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tests, ivs = replicate_inference(design, fit, cfg.level, inference_seed(cfg.seed, chunk.condition,
                                                                               replicate, k), result=result,
                                         skip_intervals=skip)
    ivs = tuple(profile or ()) + tuple(ivs)  # the per-replicate order: profile, then bootstrap
    return replace(result, tests=tuple(result.tests) + tuple(tests), intervals=tuple(result.intervals) + ivs)


def _inference_rows(cfg, cond, truth, fit, head, result, fit_rows, error):
    params = [r for r in fit_rows if r["row_type"] == "param"]
    st = {c: params[0][c] for c in ("ok", "error", "converged", "boundary", "singular", "divergences",
                                    "max_rhat", "min_ess", "integration_error", "elapsed_s")}
    out = inference_rows(head, result, params, fit, cond["model"], _cov(fit, cond), cfg.level, truth, st, cond=cond)
    if error:
        out.extend(failed_inference_rows(head, fit, cond["model"], _cov(fit, cond), truth, cfg.level, st, error))
    return out


__all__ = ["run_chunk"]
