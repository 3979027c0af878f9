"""Run a study: plan chunks (:mod:`.plan`), run each chunk (:mod:`.chunk`) on an executor
(:mod:`.executors`), store its rows (:mod:`.store`), summarise (:mod:`.summarise`).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import pandas as pd
import yaml

from ..errors import ConfigError, EnvironmentFailure
from ..parallel import check_scheduler_address
from .budget import check_budget
from .clusters import check_cluster_usable, study_cluster
from .config.load import load_config
from .config.schema import StudyConfig
from .executors import quiet_shutdown, run_tasks
from .plan import Chunk, plan_chunks
from .progress import CostBar
from .integrity import merge_records, quarantine
from .lock import locked_out_dir
from .store import (new_manifest, prepare_out_dir, remove_temporaries, stored_chunks, write_chunk,
                    write_manifest)
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


def resume_command(study: Any, out_dir: Path, workers: int | None, scheduler: str | None, yes: bool = False) -> str:
    """The ``compare-mm run … --resume`` command that continues a run."""
    import shlex

    src = str(study) if isinstance(study, (str, Path)) else str(Path(out_dir) / "config.yaml")
    parts = ["compare-mm", "run", src, "--out", str(out_dir), "--resume"]
    if workers:
        parts += ["--workers", str(workers)]
    if scheduler:
        parts += ["--scheduler", scheduler]
    if yes:
        parts.append("--yes")
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


def _note_to_stderr(message: str) -> None:
    print(f"note: {message}", file=sys.stderr, flush=True)


def run_study(study: str | Path | dict[str, Any] | StudyConfig, out_dir: str | Path, *, workers: int | None = None,
              scheduler: str | None = None, resume: bool = False, progress: bool = True,
              on_chunk: Callable[[Chunk], None] | None = None, yes: bool = False,
              note: Callable[[str], None] = _note_to_stderr) -> RunResult:
    """Run (or resume) a study and write ``out_dir`` (layout in :mod:`compare_mm.study.store`).

    Parameters
    ----------
    study
        Path of a YAML study file, a mapping, or a validated :class:`StudyConfig`.
    workers, scheduler
        ``None`` → serial; ``workers=N`` → a Dask ``LocalCluster`` of N single-threaded processes (at most
        one per chunk to run); ``scheduler="tcp://…"`` → an existing Dask cluster; both ``None`` → the
        study's ``cluster:``, if any.
    resume
        Skip chunks already stored and verified (a damaged chunk is quarantined and rerun); refuse if the
        config changed.
    yes
        Run a study whose estimated size (:mod:`.budget`) is above the threshold.
    note
        Called with each one-line notice (capped workers, quarantined or ignored chunk files).

    Raises
    ------
    StudyInterrupted
        On Ctrl-C (SIGINT) or SIGTERM: the chunks finished so far are stored, the manifest is marked
        ``"status": "interrupted"`` with this session's time, and ``--resume`` continues the run.
    EnvironmentFailure
        When the folder cannot be written (a full disk, permissions): the chunks stored so far are kept,
        the manifest says ``"status": "failed"`` and ``--resume`` continues the run.
    ConfigError
        Another run holds ``out_dir``, it holds another study, or the study is too large without ``yes``.
    """
    t_start = time.perf_counter()
    started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    cfg = study if isinstance(study, StudyConfig) else load_config(study)
    check_cluster_usable(cfg.cluster, workers, scheduler)
    if scheduler:
        check_scheduler_address(scheduler, lambda msg: ConfigError(f"--scheduler: {msg}"))
    check_budget(cfg, yes)
    out = Path(out_dir)
    with locked_out_dir(out):  # refuses a file in the way, an unwritable folder or another run's folder
        return _run_locked(study, cfg, out, workers=workers, scheduler=scheduler, resume=resume,
                           progress=progress, on_chunk=on_chunk, yes=yes, note=note, t_start=t_start,
                           started=started)


def _run_locked(study, cfg: StudyConfig, out: Path, *, workers, scheduler, resume, progress, on_chunk, yes,
                note, t_start: float, started: str) -> RunResult:
    old = prepare_out_dir(out, cfg, resume)
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
    stored = stored_chunks(out, manifest)
    if stored.bad:
        where = quarantine(out, [name for name, _ in stored.bad])
        for name, why in stored.bad:
            note(f"{name} is damaged ({why}); moved it to {where} and will rerun it.")
    for name, why in stored.foreign:
        note(f"ignored replicates/{name} ({why}).")
    done = stored.names
    pending = [c for c in chunks if c.name not in done]
    payload = cfg.model_dump(mode="json")
    again = resume_command(study, out, workers, scheduler, yes)

    bar = CostBar(cfg, chunks, done) if progress else None  # advanced by fit cost (progress.py)

    def store(chunk: Chunk, rows: pd.DataFrame) -> None:
        write_chunk(out, chunk.name, rows, {"condition": chunk.condition, "start": chunk.start,
                                            "stop": chunk.stop, "config_hash": cfg.config_hash})
        if bar is not None:
            bar.update(chunk)
        if on_chunk is not None:
            on_chunk(chunk)

    def wind_down(status: str) -> int:
        nonlocal bar
        with quiet_shutdown():
            if bar is not None:
                bar.close()
                bar = None
            with contextlib.suppress(OSError):  # the disk may still be full
                remove_temporaries(out)
                merge_records(out, manifest)
                manifest["status"] = status
                _session(manifest, started, t_start, status, executor)
                write_manifest(out, manifest)
        return len(stored_chunks(out, manifest).files)

    executor = ("dask:" + scheduler) if scheduler else (f"local:{workers}" if workers else "serial")
    try:
        with _sigterm_as_interrupt():
            with study_cluster(cfg.cluster if pending else None, workers, scheduler) as (w, sch):
                w = fit_workers(w, len(pending), note) if w and not sch and pending else w
                executor = ("dask:" + sch) if sch else (f"local:{w}" if w else "serial")
                run_tasks(payload, pending, store, workers=w, scheduler=sch)
    except KeyboardInterrupt:
        n_stored = wind_down("interrupted")
        raise StudyInterrupted(out, n_stored, len(chunks), again) from None
    except OSError as exc:  # the folder cannot be written (a full disk, a read-only mount)
        n_stored = wind_down("failed")
        where = f"'{exc.filename}'" if exc.filename else f"'{out}'"
        raise EnvironmentFailure(f"cannot write {where} ({exc.strerror or exc}); {n_stored} of {len(chunks)} "
                                 f"chunks are stored in {out} — free space or fix the folder, then continue "
                                 f"with `{again}`.") from None
    finally:
        if bar is not None:
            bar.close()
    merge_records(out, manifest)
    summary = write_summary(out, stored_chunks(out, manifest))
    manifest["status"] = "complete"
    manifest["finished"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    manifest["executor"] = executor
    _session(manifest, started, t_start, "complete", executor)
    write_manifest(out, manifest)
    return RunResult(out_dir=out, chunks_total=len(chunks), chunks_run=len(pending),
                     elapsed_s=time.perf_counter() - t_start, summary=summary)


def fit_workers(workers: int, n_chunks: int, note: Callable[[str], None]) -> int:
    """Local workers to start: at most one per chunk to run, with a note above this machine's cores."""
    used = max(1, min(int(workers), n_chunks))
    if used < workers:
        note(f"--workers {workers}: starting {used}, one per chunk to run.")
    cores = usable_cores()
    if used > cores:
        note(f"--workers {used} is more than the {cores} CPU core{'s' if cores > 1 else ''} here; the workers "
             f"will share them (each takes memory for its own process).")
    return used


def usable_cores() -> int:
    """CPU cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


__all__ = ["RunResult", "StudyInterrupted", "fit_workers", "resume_command", "run_study", "usable_cores"]
