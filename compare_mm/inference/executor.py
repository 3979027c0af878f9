"""Where bootstrap chunks run: in this process, or on a Dask cluster (local processes or a scheduler).

Results never depend on where a chunk runs: every replicate draws from its own
``SeedSequence(seed, spawn_key=(r,))`` (the r-th child of ``SeedSequence(seed).spawn``), so the chunking
and the number of workers change only the speed.  Same choices as the study executors
(:mod:`compare_mm.study.executors`): serial (default), ``workers=N`` (a Dask ``LocalCluster`` of N
single-threaded processes), ``scheduler="tcp://…"`` (an existing Dask cluster).
"""

from __future__ import annotations

import contextlib
from typing import Any, Callable, Sequence

from ..errors import OptionError


@contextlib.contextmanager
def single_threaded_blas():
    """Limit BLAS to one thread inside the block (small-matrix numerics get slower, not faster, with
    threads; on a loaded machine OpenBLAS thread contention costs up to 7×).  No-op without threadpoolctl."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - threadpoolctl ships with scipy's/pymc's stack
        yield
        return
    with threadpool_limits(limits=1, user_api="blas"):
        yield


def blas_single_thread(fn: Callable) -> Callable:
    """Decorator: run ``fn`` under :func:`single_threaded_blas`."""
    import functools

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        with single_threaded_blas():
            return fn(*args, **kwargs)

    return wrapper


def _call(fn: Callable, item: Any) -> Any:
    with single_threaded_blas():
        return fn(item)


def map_chunks(fn: Callable[[Any], Any], items: Sequence[Any], *, workers: int | None = None,
               scheduler: str | None = None) -> list[Any]:
    """``[fn(item) for item in items]``, serially or on Dask; results in input order.

    Parameters
    ----------
    fn
        A picklable (module-level) function of one item.
    items
        The chunks.
    workers
        Number of local worker processes (Dask ``LocalCluster``); ``None`` or 1 without ``scheduler``
        runs serially in this process.
    scheduler
        Address of an existing Dask scheduler.
    """
    if workers is not None and int(workers) < 1:
        raise OptionError(f"The number of bootstrap workers must be ≥ 1, got {workers}.")
    if scheduler is None and (workers is None or int(workers) == 1):
        return [_call(fn, it) for it in items]
    from ..study.executors import dask_client

    with dask_client(workers, scheduler, lambda msg: OptionError(f"Bootstrap scheduler: {msg}")) as client:
        futures = client.map(_call, [fn] * len(items), list(items), pure=False)
        return client.gather(futures)


__all__ = ["blas_single_thread", "map_chunks", "single_threaded_blas"]
