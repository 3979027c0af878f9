"""Parallel execution shared by the bootstrap and by studies: a Dask client (:func:`dask_client`), an
order-preserving map over chunks (:func:`map_chunks`), and a BLAS thread limiter.

Where chunks run: in this process, or on a Dask cluster (local processes or a scheduler).
Results never depend on where a chunk runs: every replicate draws from its own
``SeedSequence(seed, spawn_key=(r,))`` (the r-th child of ``SeedSequence(seed).spawn``), so the chunking
and the number of workers change only the speed.  Same choices as the study executors
(:mod:`compare_mm.study.executors`): serial (default), ``workers=N`` (a Dask ``LocalCluster`` of N
single-threaded processes), ``scheduler="tcp://…"`` (an existing Dask cluster).
"""

from __future__ import annotations

import contextlib
import functools
from typing import Any, Callable, Sequence

from .errors import OptionError


_BLAS: dict[str, Any] = {"depth": 0, "controller": None}


@contextlib.contextmanager
def single_threaded_blas():
    """Limit BLAS to one thread inside the block (small-matrix numerics get slower, not faster, with
    threads; on a loaded machine OpenBLAS thread contention costs up to 7×).  No-op without threadpoolctl.

    threadpoolctl's library discovery (~1.4 ms) runs once per process (one cached controller), and a block
    nested in another (a fit inside a study chunk) changes nothing."""
    if _BLAS["depth"]:
        _BLAS["depth"] += 1
        try:
            yield
        finally:
            _BLAS["depth"] -= 1
        return
    try:
        from threadpoolctl import ThreadpoolController  # deferred: optional dependency
    except ImportError:  # pragma: no cover - threadpoolctl ships with scipy's/pymc's stack
        yield
        return
    if _BLAS["controller"] is None:
        _BLAS["controller"] = ThreadpoolController()
    _BLAS["depth"] += 1
    try:
        with _BLAS["controller"].limit(limits=1, user_api="blas"):
            yield
    finally:
        _BLAS["depth"] -= 1


def blas_single_thread(fn: Callable) -> Callable:
    """Decorator: run ``fn`` under :func:`single_threaded_blas`."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        with single_threaded_blas():
            return fn(*args, **kwargs)

    return wrapper


@contextlib.contextmanager
def _workers_ignore_sigint():
    """Ignore SIGINT while local worker processes start, so they inherit the disposition (fork and exec
    keep SIG_IGN, and Python then installs no KeyboardInterrupt handler): Ctrl-C in a terminal signals the
    whole process group, and only this process should handle it — it stops the run and closes the
    cluster, which ends the workers; a worker hit by it would die printing its asyncio traceback."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    old = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, old)


def check_scheduler_address(address: str, error: Callable[[str], Exception]) -> None:
    """Refuse, before anything starts, a scheduler address Dask cannot parse (``tcp://host:8786``,
    ``host:8786``, ``inproc://…``); ``error(message)`` builds the exception."""
    from distributed.comm.addressing import parse_address, parse_host_port  # deferred: dask is heavy

    try:
        scheme, loc = parse_address(address)
        if scheme in ("tcp", "tls", "ws", "wss"):
            parse_host_port(loc)
    except (ValueError, TypeError) as exc:
        raise error(f"'{address}' is not a Dask scheduler address ({exc}); give one such as "
                    f"tcp://host:8786.") from None


@contextlib.contextmanager
def dask_client(workers: int | None, scheduler: str | None, error: Callable[[str], Exception],
                fork: bool = False):
    """A Dask client on an existing scheduler, or on a new ``LocalCluster`` of ``workers`` single-threaded
    processes (started by ``fork`` when asked: they then share this process's compiled models); both
    closed on exit.  ``error(message)`` builds the exception raised when the scheduler
    cannot be reached (a ConfigError for studies, an OptionError for the bootstrap)."""
    import dask  # deferred: dask.distributed is heavy and only needed with workers
    from dask.distributed import Client, LocalCluster

    cluster = None
    try:
        if scheduler:
            check_scheduler_address(scheduler, error)
            try:
                client = Client(scheduler, timeout="20s")
            except (OSError, TimeoutError, ValueError) as exc:
                raise error(f"cannot connect to the Dask scheduler at '{scheduler}' ({exc}).") from None
        else:
            settings: dict[str, Any] = {"distributed.worker.daemon": False}
            if fork:
                settings["distributed.worker.multiprocessing-method"] = "fork"
            # dashboard on a free port: the default 8787, taken by another run's cluster, printed a
            # three-line "Perhaps you already have a cluster running?" warning into every run
            with dask.config.set(settings), _workers_ignore_sigint():
                cluster = LocalCluster(n_workers=int(workers), threads_per_worker=1, processes=True,
                                       dashboard_address=":0", silence_logs=40, memory_limit=0)
            client = Client(cluster)
        try:
            yield client
        finally:
            client.close()
    finally:
        if cluster is not None:
            cluster.close()


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
    with dask_client(workers, scheduler, lambda msg: OptionError(f"Bootstrap scheduler: {msg}")) as client:
        futures = client.map(_call, [fn] * len(items), list(items), pure=False)
        return client.gather(futures)


__all__ = ["blas_single_thread", "check_scheduler_address", "dask_client", "map_chunks", "single_threaded_blas"]
