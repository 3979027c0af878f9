"""Executors: where chunks run.  Chunks are the unit of work; results come back to the client, which
writes them (so workers need no shared file system).

* serial (default) — in this process, in plan order;
* ``workers=N`` — a Dask ``LocalCluster(processes=True, n_workers=N, threads_per_worker=1)``;
* ``scheduler="tcp://host:8786"`` — an existing Dask cluster.  On SLURM, start one with dask-jobqueue::

      from dask_jobqueue import SLURMCluster
      cluster = SLURMCluster(cores=1, memory="4GB", walltime="02:00:00"); cluster.scale(jobs=20)
      print(cluster.scheduler_address)   # pass this to compare-mm run --scheduler

  (every worker needs compare_mm installed; PyMC compiles once per worker process and condition).
"""

from __future__ import annotations

import contextlib
import uuid
from functools import partial
from typing import Any, Callable, Sequence

import pandas as pd

from ..errors import ConfigError


def run_tasks(payload: dict[str, Any], chunks: Sequence, store: Callable[[Any, pd.DataFrame], None], *,
              workers: int | None = None, scheduler: str | None = None) -> None:
    """Run every chunk and call ``store(chunk, rows)`` as each finishes."""
    from .runner import run_chunk

    if not chunks:
        return
    if workers is not None and workers < 1:
        raise ConfigError(f"--workers: must be ≥ 1, got {workers}.")
    if scheduler is None and workers is None:
        for chunk in chunks:
            store(chunk, run_chunk(payload, chunk))
        return
    _run_dask(partial(run_chunk, payload), chunks, store, workers=workers, scheduler=scheduler)


@contextlib.contextmanager
def dask_client(workers: int | None, scheduler: str | None, error: Callable[[str], Exception]):
    """A Dask client on an existing scheduler, or on a new ``LocalCluster`` of ``workers`` single-threaded
    processes; both closed on exit.  ``error(message)`` builds the exception raised when the scheduler
    cannot be reached (a ConfigError for studies, an OptionError for the bootstrap)."""
    import dask
    from dask.distributed import Client, LocalCluster

    cluster = None
    try:
        if scheduler:
            try:
                client = Client(scheduler, timeout="20s")
            except (OSError, TimeoutError) as exc:
                raise error(f"cannot connect to the Dask scheduler at '{scheduler}' ({exc}).") from None
        else:
            with dask.config.set({"distributed.worker.daemon": False}):
                cluster = LocalCluster(n_workers=int(workers), threads_per_worker=1, processes=True,
                                       dashboard_address=None, silence_logs=40, memory_limit=0)
            client = Client(cluster)
        try:
            yield client
        finally:
            client.close()
    finally:
        if cluster is not None:
            cluster.close()


def _run_dask(fn: Callable, chunks: Sequence, store: Callable, *, workers: int | None,
              scheduler: str | None) -> None:
    from dask.distributed import as_completed

    with dask_client(workers, scheduler, lambda msg: ConfigError(f"--scheduler: {msg}")) as client:
        run_id = uuid.uuid4().hex[:8]
        futures = {client.submit(fn, c, pure=False, key=f"compare-mm-{run_id}-{c.name}"): c for c in chunks}
        for fut in as_completed(futures):
            store(futures[fut], fut.result())


__all__ = ["dask_client", "run_tasks"]
