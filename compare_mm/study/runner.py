"""Run a study: plan chunks (:mod:`.plan`), run each chunk (:mod:`.chunk`) on an executor
(:mod:`.executors`), store its rows (:mod:`.store`), summarise (:mod:`.summarise`).
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import pandas as pd
import yaml

from .clusters import check_cluster_usable, study_cluster
from .config.load import load_config
from .config.schema import StudyConfig
from .executors import run_tasks
from .plan import Chunk, plan_chunks
from .progress import CostBar
from .store import finished_chunks, new_manifest, prepare_out_dir, remove_temporaries, write_chunk, write_manifest
from .summarise import write_summary


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
    manifest["fits"] = [f.model_dump(mode="json") for f in cfg.fits]  # summary policies (exclude_nonconverged)
    # are outside the config hash: a resumed run takes the current ones
    manifest["status"] = "running"
    write_manifest(out, manifest)
    remove_temporaries(out)
    done = finished_chunks(out)
    pending = [c for c in chunks if c.name not in done]
    payload = cfg.model_dump(mode="json")

    bar = CostBar(cfg, chunks, done) if progress else None  # advanced by fit cost (progress.py)

    def store(chunk: Chunk, rows: pd.DataFrame) -> None:
        write_chunk(out, chunk.name, rows)
        if bar is not None:
            bar.update(chunk)
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


__all__ = ["RunResult", "run_study"]
