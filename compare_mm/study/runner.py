"""Run a study: plan chunks, simulate and fit each chunk, store rows, summarise (SimDesign's shape).

For each condition of the grid and each replicate: ``simulate`` (seeded per (condition, replicate), see
:mod:`compare_mm.study.simulate`) → every configured fit → rows (:mod:`compare_mm.study.rows`).  A chunk —
a range of replicates of one condition with all fits — is the unit of work of every executor and of
``--resume``.  :func:`run_chunk` is a pure function of (config, chunk): workers run it and the client
writes what it returns, so results are identical whatever the executor or worker count.
"""

from __future__ import annotations

import logging
import shutil
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd
import yaml

from .clusters import check_cluster_usable, study_cluster
from .config import StudyConfig, condition_label, load_config
from .rows import Part, failed_rows, ftest_rows, oneway_fast_rows, parameters, result_rows
from .simulate import (Replicate, fit_seed, is_balanced, model_spec, simulate_many, simulate_oneway_balanced,
                       template_frame, truths)
from .store import (PARAM_COLUMNS, chunk_name, finished_chunks, new_manifest, prepare_out_dir,
                    remove_temporaries, write_chunk, write_manifest)

FAST_METHODS = ("REML", "ML", "ANOVA")
_STR = ("row_type", "fit", "backend", "method", "parameter", "interval_kind", "error", "test")
_BOOL = ("ok", "converged", "boundary")
_INT = ("condition", "replicate")
_DEFAULT: dict[str, Any] = {**{c: "" for c in _STR}, "ok": True, "converged": True, "boundary": False}


@dataclass(frozen=True)
class Chunk:
    """Replicates ``start … stop − 1`` of condition ``condition``."""

    condition: int
    start: int
    stop: int

    @property
    def name(self) -> str:
        return chunk_name(self.condition, self.start)

    @property
    def size(self) -> int:
        return self.stop - self.start


def uses_fast_path(cfg: StudyConfig, cond: dict[str, Any], fit) -> bool:
    """A REML/ML/ANOVA fit by backend reml of a balanced one-way condition: closed forms, vectorised."""
    return fit.backend == "reml" and fit.method in FAST_METHODS and is_balanced(cond["model"], cond)


def _per_replicate_inference(fit) -> bool:
    """True if the fit's tests or intervals need refits per replicate (profile, bootstrap)."""
    kinds = set(fit.intervals or []) | {fit.interval}
    return "bootstrap_lrt" in fit.test_list or bool(kinds & {"profile", "bootstrap"})


def _cost_tier(cfg: StudyConfig, fit) -> int:
    """Replicates per chunk that suit one fit: pymc 5, statsmodels or per-replicate profile / bootstrap
    inference 25, our fitter 200, closed forms 2500."""
    if fit.backend == "pymc":
        return 5
    if fit.backend == "statsmodels" or _per_replicate_inference(fit):
        return 25
    return 2500 if all(uses_fast_path(cfg, c, fit) for c in cfg.conditions()) else 200


def default_chunk_size(cfg: StudyConfig) -> int:
    """Replicates per chunk for the most expensive fit (a function of the config only, for --resume)."""
    if cfg.chunk_size:
        return cfg.chunk_size
    return min(_cost_tier(cfg, f) for f in cfg.fits)


def plan_chunks(cfg: StudyConfig) -> list[Chunk]:
    """Every chunk of the study, condition-major.

    Replicates that expensive fits run on (below their ``replicates`` cap) are cut into small chunks
    sized for the most expensive fit; the rest, fitted by cheaper fits only, into larger chunks.  The
    plan depends on the config alone, so ``--resume`` finds the same chunks.
    """
    R = cfg.replicates
    if cfg.chunk_size:
        bounds = list(range(0, R, cfg.chunk_size)) + [R]
    else:
        tiers = {f.name: _cost_tier(cfg, f) for f in cfg.fits}
        small = min(tiers.values())
        cut = max(min(f.replicates or R, R) for f in cfg.fits if tiers[f.name] == small)
        rest = [t for f in cfg.fits if (f.replicates or R) > cut for t in [tiers[f.name]]]
        big = min(rest) if rest else small
        bounds = list(range(0, cut, small)) + list(range(cut, R, big)) + [R]
    return [Chunk(c, a, b) for c in range(len(cfg.conditions())) for a, b in zip(bounds[:-1], bounds[1:])]


# ---------------------------------------------------------------------------- one chunk
_DESIGNS: dict[tuple, Any] = {}


def _cov(fit, cond: dict[str, Any]) -> str | None:
    """The fit's random-effects covariance for this condition's model (None for one-way)."""
    return (fit.covariance or "unstructured") if cond["model"] == "random_slope" else None


def _design(cfg: StudyConfig, index: int, cond: dict[str, Any], fit):
    """One Design per (condition, model form) per process; replicates swap y (compiled-model reuse)."""
    from ..api import make_design

    key = (cfg.config_hash, index, _cov(fit, cond), fit.method if fit.method in ("REML", "ML") else "REML")
    if key not in _DESIGNS:
        spec = model_spec(cond["model"], key[2], key[-1])
        _DESIGNS[key] = make_design(spec, template_frame(cond["model"], cond))
    return _DESIGNS[key]


def _assemble(parts: list[Part], cfg: StudyConfig, cond: dict[str, Any]) -> pd.DataFrame:
    """Parts → one DataFrame with every column of the schema (store.py), string columns categorical."""
    n_total = sum(p.n for p in parts)
    grid = {k: condition_label(cond.get(k)) for k in cfg.grid_keys}
    cols = list(PARAM_COLUMNS)
    at = cols.index("replicate") + 1
    out: dict[str, Any] = {}
    for col in cols:
        pieces = [p.cols.get(col, _DEFAULT.get(col, np.nan)) for p in parts]
        if col in _STR:
            if all(np.ndim(v) == 0 for v in pieces):
                cats = list(dict.fromkeys(str(v) for v in pieces))
                codes = np.repeat([cats.index(str(v)) for v in pieces], [p.n for p in parts]).astype(np.int32)
                out[col] = pd.Categorical.from_codes(codes, categories=cats)
            else:
                vals = np.concatenate([np.asarray(v, dtype=object) if np.ndim(v) else np.repeat(str(v), p.n)
                                       for v, p in zip(pieces, parts)]) if parts else np.array([], dtype=object)
                out[col] = pd.Categorical(vals.astype(str))
            continue
        dtype = bool if col in _BOOL else (np.int64 if col in _INT else float)
        out[col] = np.concatenate([np.broadcast_to(np.asarray(v, dtype=dtype), (p.n,))
                                   for v, p in zip(pieces, parts)]) if parts else np.array([], dtype=dtype)
    frame = pd.DataFrame(out)
    for j, (k, v) in enumerate(grid.items()):
        frame.insert(at + j, k, np.repeat(np.asarray(v, dtype=object if isinstance(v, str) else None), n_total)
                     if n_total else pd.Series([], dtype=object))
    return frame


def _dict_part(rows: list[dict[str, Any]]) -> Part:
    keys = list(dict.fromkeys(k for r in rows for k in r))
    cols = {}
    for k in keys:
        vals = [r.get(k, _DEFAULT.get(k, np.nan)) for r in rows]
        cols[k] = np.asarray(vals, dtype=object) if k in _STR else np.asarray(vals)
    return Part(len(rows), cols)


def run_chunk(cfg: StudyConfig | dict[str, Any], chunk: Chunk) -> pd.DataFrame:
    """Simulate and fit one chunk; return its rows (schema in :mod:`compare_mm.study.store`)."""
    if isinstance(cfg, dict):
        cfg = StudyConfig.model_validate(cfg)
    logging.getLogger("pymc").setLevel(logging.ERROR)
    cond = cfg.conditions()[chunk.condition]
    model = cond["model"]
    truth = truths(model, cond)
    reps = list(range(chunk.start, chunk.stop))
    parts: list[Part] = []
    dict_rows: list[dict[str, Any]] = []
    balanced = is_balanced(model, cond)
    stats_ = None
    if balanced:
        from ..oneway import oneway_stats

        Y, U, RAW = simulate_oneway_balanced(cond, cfg.seed, chunk.condition, reps)
        stats_ = oneway_stats(Y)
        parts.append(ftest_rows({"condition": chunk.condition}, stats_, truth, np.asarray(reps), cfg.level))
        generic = [f for f in cfg.fits if not uses_fast_path(cfg, cond, f)]
        data = [Replicate(y=Y[k].ravel(), u=U[k][:, None], raw=RAW[k][:, None]) for k in range(len(reps))] \
            if generic else []
    else:
        data = simulate_many(model, cond, cfg.seed, chunk.condition, reps)
    for k, fit in enumerate(cfg.fits):
        head = {"condition": chunk.condition, "fit": fit.name, "backend": fit.backend, "method": fit.method or ""}
        active = [i for i, r in enumerate(reps) if fit.replicates is None or r < fit.replicates]
        if not active:
            continue
        if stats_ is not None and uses_fast_path(cfg, cond, fit):
            from ..oneway import OnewayStats

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
            dict_rows.extend(extra_rows)
            continue
        dict_rows.extend(_generic_fits(cfg, chunk, cond, truth, fit, k, [(reps[i], data[i]) for i in active], head))
    if dict_rows:
        parts.append(_dict_part(dict_rows))
    return _assemble(parts, cfg, cond)


def _fast_inference(cfg, chunk, cond, truth, fit, k, head, sub, Y, reps):
    """Test rows, extra interval rows and a primary-interval override of a fast-path fit
    (:mod:`compare_mm.study.rows_tests`); ``([], [], None, None)`` when the fit requests no inference."""
    if not (fit.test_list or fit.intervals or fit.interval in ("profile", "bootstrap")):
        return [], [], None, None
    from ..oneway import fit_oneway
    from .rows_tests import closed_form_test_parts, fast_inference, inference_seed

    est = fit_oneway(sub, fit.method, cfg.level)
    status = dict(ok=True, error="", converged=True, boundary=np.asarray(est.boundary, dtype=bool),
                  divergences=np.nan, max_rhat=np.nan)

    def st_of(i):
        return status if i is None else dict(status, boundary=bool(status["boundary"][i]))

    parts = closed_form_test_parts(head, fit, sub, cfg.level, truth, reps, status)
    seeds = [inference_seed(cfg.seed, chunk.condition, int(r), k) for r in reps]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rows, primary, iv_parts = fast_inference(head, fit, _design(cfg, chunk.condition, cond, fit), Y, reps, est,
                                                 cfg.level, truth, seeds, st_of)
    return rows, parts + iv_parts, (primary or None), est


def _generic_fits(cfg, chunk, cond, truth, fit, k, items, head) -> list[dict[str, Any]]:
    from ..backends.base import get_backend

    rows: list[dict[str, Any]] = []
    params = parameters(cond["model"], _cov(fit, cond))
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
    for r, rep in items:
        options = dict(base)
        if fit.backend == "pymc":
            options["seed"] = fit_seed(cfg.seed, chunk.condition, r, k)
        h = dict(head, replicate=r)
        t0 = time.perf_counter()
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                result = backend.fit(design.with_y(rep.y), options)
            elapsed = time.perf_counter() - t0
            inference_error = ""
            if fit.wants_inference:
                try:
                    result = _with_inference(cfg, chunk, fit, k, design.with_y(rep.y), r, result)
                except Exception as exc:  # noqa: BLE001 — the fit's rows stay; its tests are recorded failed
                    msg = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
                    inference_error = f"{type(exc).__name__}: {msg}"
            fit_rows = result_rows(h, result, cond["model"], _cov(fit, cond), fit.interval, cfg.level, truth,
                                   cfg.boundary_threshold, rep.u, rep.raw, level_index, elapsed)
            rows.extend(fit_rows)
            if fit.test_list or fit.extra_intervals:
                rows.extend(_inference_rows(cfg, cond, truth, fit, h, result, fit_rows, inference_error))
        except Exception as exc:  # noqa: BLE001 — a failing fit becomes a row with its error
            msg = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            rows.extend(failed_rows(h, params, truth, f"{type(exc).__name__}: {msg}", time.perf_counter() - t0))
    return rows


def _with_inference(cfg, chunk, fit, k, design, replicate, result):
    """``result`` with the tests and intervals ``fit`` requests attached (computed on ``design``)."""
    from dataclasses import replace

    from .rows_tests import inference_seed, replicate_inference

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tests, ivs = replicate_inference(design, fit, cfg.level, inference_seed(cfg.seed, chunk.condition,
                                                                               replicate, k))
    return replace(result, tests=tuple(result.tests) + tuple(tests), intervals=tuple(result.intervals) + tuple(ivs))


def _inference_rows(cfg, cond, truth, fit, head, result, fit_rows, error):
    from .rows_tests import failed_inference_rows, inference_rows

    params = [r for r in fit_rows if r["row_type"] == "param"]
    st = {c: params[0][c] for c in ("ok", "error", "converged", "boundary", "divergences", "max_rhat",
                                    "elapsed_s")}
    out = inference_rows(head, result, params, fit, cond["model"], _cov(fit, cond), cfg.level, truth, st)
    if error:
        out.extend(failed_inference_rows(head, fit, cond["model"], _cov(fit, cond), truth, cfg.level, st, error))
    return out


# ---------------------------------------------------------------------------- whole study
@dataclass(frozen=True)
class RunResult:
    """What :func:`run_study` did."""

    out_dir: Path
    chunks_total: int
    chunks_run: int
    elapsed_s: float
    summary: pd.DataFrame


def run_study(study: str | Path | dict[str, Any] | StudyConfig, out_dir: str | Path, *, workers: int | None = None,
              scheduler: str | None = None, resume: bool = False, progress: bool = True,
              on_chunk: Callable[[Chunk], None] | None = None) -> RunResult:
    """Run (or resume) a study and write ``out_dir`` (layout in :mod:`compare_mm.study.store`).

    Parameters
    ----------
    study
        Path of a YAML study file, a mapping, or a validated :class:`StudyConfig`.
    workers, scheduler
        ``None`` → serial; ``workers=N`` → a Dask ``LocalCluster`` of N single-threaded processes;
        ``scheduler="tcp://…"`` → an existing Dask cluster; both ``None`` → the study's ``cluster:``, if any.
    resume
        Skip chunks already stored; refuse if the config changed.
    """
    from .executors import run_tasks
    from .metrics import write_summary

    t_start = time.perf_counter()
    cfg = study if isinstance(study, StudyConfig) else load_config(study)
    check_cluster_usable(cfg.cluster, workers, scheduler)
    out = Path(out_dir)
    old = prepare_out_dir(out, cfg, resume)
    out.mkdir(parents=True, exist_ok=True)
    if old is None:
        if isinstance(study, (str, Path)):
            shutil.copyfile(study, out / "config.yaml")
        else:
            (out / "config.yaml").write_text(yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False))
    chunks = plan_chunks(cfg)
    conditions = cfg.conditions()
    manifest = old or new_manifest(cfg, conditions, [{"name": c.name, "condition": c.condition,
                                                      "start": c.start, "stop": c.stop} for c in chunks])
    manifest["status"] = "running"
    write_manifest(out, manifest)
    remove_temporaries(out)
    done = finished_chunks(out)
    pending = [c for c in chunks if c.name not in done]
    payload = cfg.model_dump(mode="json")

    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=sum(c.size for c in chunks), initial=sum(c.size for c in chunks if c.name in done),
                   unit="rep", desc=cfg.name, dynamic_ncols=True)

    def store(chunk: Chunk, rows: pd.DataFrame) -> None:
        write_chunk(out, chunk.name, rows)
        if bar is not None:
            bar.update(chunk.size)
        if on_chunk is not None:
            on_chunk(chunk)

    try:
        with study_cluster(cfg.cluster if pending else None, workers, scheduler) as (workers, scheduler):
            run_tasks(payload, pending, store, workers=workers, scheduler=scheduler)
    finally:
        if bar is not None:
            bar.close()
    summary = write_summary(out)
    manifest["status"] = "complete"
    manifest["finished"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    manifest["elapsed_s"] = manifest.get("elapsed_s", 0.0) + (time.perf_counter() - t_start)
    manifest["executor"] = ("dask:" + scheduler) if scheduler else (f"local:{workers}" if workers else "serial")
    write_manifest(out, manifest)
    return RunResult(out_dir=out, chunks_total=len(chunks), chunks_run=len(pending),
                     elapsed_s=time.perf_counter() - t_start, summary=summary)


__all__ = ["Chunk", "RunResult", "default_chunk_size", "plan_chunks", "run_chunk", "run_study", "uses_fast_path"]
