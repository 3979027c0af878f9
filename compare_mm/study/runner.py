"""Run a study: plan chunks (:mod:`.plan`), run each chunk (:mod:`.chunk`) on an executor
(:mod:`.executors`), store its rows (:mod:`.store`), summarise (:mod:`.summarise`).
"""

from __future__ import annotations

import contextlib
import shutil
import signal
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import pandas as pd
import yaml

from .clusters import check_cluster_usable, study_cluster
from .config.load import load_config
from .config.schema import StudyConfig
from .executors import quiet_shutdown, run_tasks
from .plan import Chunk, plan_chunks
from .progress import CostBar
from .store import finished_chunks, new_manifest, prepare_out_dir, remove_temporaries, write_chunk, write_manifest
from .summarise import write_summary


class StudyInterrupted(KeyboardInterrupt):
    """Raised by :func:`run_study` after Ctrl-C (SIGINT) or SIGTERM, once the manifest says
    ``"status": "interrupted"``; ``str()`` is the one line the command line prints."""

    def __init__(self, out_dir: Path, stored: int, total: int, resume_command: str):
        self.out_dir, self.stored, self.total, self.resume_command = out_dir, stored, total, resume_command
        super().__init__(f"interrupted: {stored} of {total} chunks are stored in {out_dir}; "
                         f"continue with `{resume_command}`")

    def __str__(self) -> str:
        return str(self.args[0])


@contextlib.contextmanager
def _sigterm_as_interrupt():
    """SIGTERM raises KeyboardInterrupt in the main thread (as SIGINT does) for the block's duration."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):  # noqa: ARG001
        raise KeyboardInterrupt

    old = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)


def resume_command(study: Any, out_dir: Path, workers: int | None, scheduler: str | None) -> str:
    """The ``compare-mm run … --resume`` command that continues a run."""
    import shlex

    src = str(study) if isinstance(study, (str, Path)) else str(Path(out_dir) / "config.yaml")
    parts = ["compare-mm", "run", src, "--out", str(out_dir), "--resume"]
    if workers:
        parts += ["--workers", str(workers)]
    if scheduler:
        parts += ["--scheduler", scheduler]
    return " ".join(shlex.quote(p) for p in parts)


def _session(manifest: dict[str, Any], started: str, t_start: float, status: str, executor: str) -> None:
    """Append this session to ``manifest["sessions"]``; ``elapsed_s`` is the sum over all sessions."""
    sessions = manifest.setdefault("sessions", [])
    if not sessions and manifest.get("elapsed_s"):  # a run stored before sessions were recorded
        sessions.append({"started": manifest.get("started"), "finished": manifest.get("finished"),
                         "elapsed_s": float(manifest["elapsed_s"]), "status": "complete"})
    sessions.append({"started": started, "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                     "elapsed_s": round(time.perf_counter() - t_start, 3), "status": status,
                     "executor": executor})
    manifest["elapsed_s"] = round(sum(float(s.get("elapsed_s") or 0.0) for s in sessions), 3)
    manifest["sessions_count"] = len(sessions)


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

    Raises
    ------
    StudyInterrupted
        On Ctrl-C (SIGINT) or SIGTERM: the chunks finished so far are stored, the manifest is marked
        ``"status": "interrupted"`` with this session's time, and ``--resume`` continues the run.
    """
    t_start = time.perf_counter()
    started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
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

    executor = ("dask:" + scheduler) if scheduler else (f"local:{workers}" if workers else "serial")
    try:
        with _sigterm_as_interrupt():
            with study_cluster(cfg.cluster if pending else None, workers, scheduler) as (w, sch):
                executor = ("dask:" + sch) if sch else (f"local:{w}" if w else "serial")
                run_tasks(payload, pending, store, workers=w, scheduler=sch)
    except KeyboardInterrupt:
        with quiet_shutdown():
            if bar is not None:
                bar.close()
                bar = None
            remove_temporaries(out)
            manifest["status"] = "interrupted"
            _session(manifest, started, t_start, "interrupted", executor)
            write_manifest(out, manifest)
        raise StudyInterrupted(out, len(finished_chunks(out)), len(chunks),
                               resume_command(study, out, workers, scheduler)) from None
    finally:
        if bar is not None:
            bar.close()
    summary = write_summary(out)
    manifest["status"] = "complete"
    manifest["finished"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    manifest["executor"] = executor
    _session(manifest, started, t_start, "complete", executor)
    write_manifest(out, manifest)
    return RunResult(out_dir=out, chunks_total=len(chunks), chunks_run=len(pending),
                     elapsed_s=time.perf_counter() - t_start, summary=summary)


__all__ = ["RunResult", "StudyInterrupted", "resume_command", "run_study"]
