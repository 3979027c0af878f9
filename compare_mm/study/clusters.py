"""The study key ``cluster:`` (a preset of ``config/clusters/``): where the chunks run.

``--workers N`` and ``--scheduler ADDRESS`` (``run_study(workers=, scheduler=)``) win over it.  A
``local`` cluster is the same as ``--workers N``; a ``slurm`` cluster starts a
``dask_jobqueue.SLURMCluster`` with every key of the preset but ``kind``, ``name`` and ``jobs``, scales it
to ``jobs`` SLURM jobs and runs the chunks on its scheduler (then closes it).
"""

from __future__ import annotations

import contextlib
from typing import Any, Iterator, Mapping

from ..errors import ConfigError

#: keys of a cluster preset that are not SLURMCluster keyword arguments
_OWN_KEYS = ("kind", "name", "jobs")


def slurm_kwargs(cluster: Mapping[str, Any]) -> dict[str, Any]:
    """The keyword arguments of ``dask_jobqueue.SLURMCluster`` in a slurm cluster preset."""
    return {k: v for k, v in cluster.items() if k not in _OWN_KEYS}


def _jobqueue() -> Any:
    try:
        import dask_jobqueue  # deferred: optional dependency, needed only for SLURM
    except ImportError:
        raise ConfigError("cluster: a slurm cluster needs dask-jobqueue, which is not installed; "
                          "run `pip install dask-jobqueue`.") from None
    return dask_jobqueue


def check_cluster_usable(cluster: Mapping[str, Any] | None, workers: int | None, scheduler: str | None) -> None:
    """Fail before anything is written if the study's slurm cluster will be used but cannot be."""
    if workers is None and scheduler is None and cluster and cluster["kind"] == "slurm":
        _jobqueue()


@contextlib.contextmanager
def study_cluster(cluster: Mapping[str, Any] | None, workers: int | None,
                  scheduler: str | None) -> Iterator[tuple[int | None, str | None]]:
    """Yield the ``(workers, scheduler)`` to run on: the flags when either is given, else the study's
    cluster (a started SLURM cluster is closed on exit), else ``(None, None)`` (serial).

    Raises
    ------
    ConfigError
        A slurm cluster without dask-jobqueue installed, or a SLURMCluster that cannot be started.
    """
    if workers is not None or scheduler is not None or not cluster:
        yield workers, scheduler
        return
    if cluster["kind"] == "local":
        yield int(cluster["workers"]), None
        return
    try:
        slurm = _jobqueue().SLURMCluster(**slurm_kwargs(cluster))
    except Exception as exc:  # noqa: BLE001 — bad keywords or no sbatch: say so in one sentence
        raise ConfigError(f"cluster: cannot start the SLURM cluster ({type(exc).__name__}: {exc}).") from None
    try:
        slurm.scale(jobs=int(cluster["jobs"]))
        yield None, slurm.scheduler_address
    finally:
        slurm.close()


__all__ = ["check_cluster_usable", "slurm_kwargs", "study_cluster"]
