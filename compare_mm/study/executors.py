"""Executors: where chunks run.  Chunks are the unit of work; results come back to the client, which
writes them (so workers need no shared file system).

* serial (default) — in this process, in plan order;
* ``workers=N`` — a Dask ``LocalCluster(processes=True, n_workers=N, threads_per_worker=1)``;
* ``scheduler="tcp://host:8786"`` — an existing Dask cluster.  On SLURM, start one with dask-jobqueue::

      from dask_jobqueue import SLURMCluster
      cluster = SLURMCluster(cores=1, memory="4GB", walltime="02:00:00"); cluster.scale(jobs=20)
      print(cluster.scheduler_address)   # pass this to compare-mm run --scheduler

  (every worker needs compare_mm installed; PyMC compiles once per worker process and condition).

Compile once for all local workers: on platforms with ``fork`` (Linux, macOS), when a study has PyMC fits
and runs on a ``LocalCluster``, the client compiles each condition's PyMC model first
(:func:`warm_pymc`, through the backend's ``prepare``) and the workers are started with the ``fork`` method, so they inherit the compiled
models instead of compiling their own (~25–40 s each on 2 cores, with nutpie's numba callbacks).  Remote
workers (``scheduler=``) compile their own.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import signal
import threading
import uuid
from functools import partial
from typing import Any, Callable, Sequence

import pandas as pd

from ..errors import ConfigError
from ..parallel import dask_client
from ..backends.base import get_backend
from .config.schema import StudyConfig
from .chunk import _design, run_chunk


def run_tasks(payload: dict[str, Any], chunks: Sequence, store: Callable[[Any, pd.DataFrame], None], *,
              workers: int | None = None, scheduler: str | None = None) -> None:
    """Run every chunk and call ``store(chunk, rows)`` as each finishes."""
    if not chunks:
        return
    if workers is not None and workers < 1:
        raise ConfigError(f"--workers: must be ≥ 1, got {workers}.")
    if scheduler is None and workers is None:
        for chunk in chunks:
            store(chunk, run_chunk(payload, chunk))
        return
    fork = scheduler is None and warm_pymc(payload, chunks)
    _run_dask(partial(run_chunk, payload), chunks, store, workers=workers, scheduler=scheduler, fork=fork)


def warm_pymc(payload: dict[str, Any], chunks: Sequence) -> bool:
    """Prepare, in this process, every (condition, fit) the chunks need whose backend ``compiles`` (PyMC:
    build and compile its model, cached per design shape).

    Returns True when something was compiled and ``fork`` is available (then local workers are forked
    and share the compiled models); False otherwise (nothing to share, or no ``fork`` on this platform).
    """
    if "fork" not in multiprocessing.get_all_start_methods():
        return False
    cfg = StudyConfig.model_validate(payload)  # a validated config's dump (as run_chunk reads it)
    conditions = cfg.conditions()
    compiled = [f for f in cfg.fits if get_backend(f.backend).compiles]
    if not compiled:
        return False
    for index in sorted({c.condition for c in chunks}):
        for fit in compiled:
            be = get_backend(fit.backend)
            options = fit.backend_options(cfg.level)
            if be.needs_seed:
                options["seed"] = 0  # the compiled model does not depend on the seed
            be.prepare(_design(cfg, index, conditions[index], fit), options)
    return True


@contextlib.contextmanager
def quiet_shutdown():
    """While an interrupted run winds down: ignore further SIGINT/SIGTERM and silence Dask's logging of
    the futures and connections the interrupt cancelled (tracebacks a user cannot act on)."""
    main = threading.current_thread() is threading.main_thread()
    old = {s: signal.signal(s, signal.SIG_IGN) for s in (signal.SIGINT, signal.SIGTERM)} if main else {}
    loggers = [logging.getLogger(n) for n in ("distributed", "tornado", "asyncio")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.CRITICAL + 1)
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)
        for lg, lv in zip(loggers, levels):
            lg.setLevel(lv)


def _run_dask(fn: Callable, chunks: Sequence, store: Callable, *, workers: int | None,
              scheduler: str | None, fork: bool = False) -> None:
    # deferred: dask.distributed is heavy; imported only with workers or a scheduler
    from dask.distributed import as_completed

    with contextlib.ExitStack() as interrupted:  # exits after the client and cluster are closed
        with dask_client(workers, scheduler, lambda msg: ConfigError(f"--scheduler: {msg}"), fork) as client:
            run_id = uuid.uuid4().hex[:8]
            futures = {client.submit(fn, c, pure=False, key=f"compare-mm-{run_id}-{c.name}"): c for c in chunks}
            try:
                for fut in as_completed(futures):
                    store(futures[fut], fut.result())
            except KeyboardInterrupt:  # wind down quietly: the caller reports the interrupt in one line
                interrupted.enter_context(quiet_shutdown())
                with contextlib.suppress(Exception):
                    client.cancel(list(futures), force=True)
                raise


__all__ = ["quiet_shutdown", "run_tasks", "warm_pymc"]
