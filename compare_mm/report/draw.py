"""Drawing the report's figures: each one in turn, or several at once in forked worker processes.

A figure is independent of the others (its own data view, its own file), and matplotlib's text layout is
most of a report's time, so ``compare-mm report`` draws them in parallel where the platform can fork: the
workers inherit the loaded study, the rc settings and the shared mathtext parses, and send back only the
:class:`~compare_mm.report.marks.FigureOut` records.  The files written are the same either way.
"""

from __future__ import annotations

import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any, Callable, Sequence

from .marks import FigureOut

#: (name, title, make, study, style, path) of each figure, for the forked workers (set while they run)
_JOBS: Sequence[tuple] = ()


def draw_one(name: str, title: str, make: Callable[..., FigureOut], study: Any, style: Any, path) -> FigureOut:
    """One figure; a figure that cannot be drawn must not sink the report: it is listed as skipped, why."""
    import matplotlib.pyplot as plt  # deferred: matplotlib is heavy

    try:
        return make(study, style, path)
    except Exception as exc:  # noqa: BLE001
        plt.close("all")
        return FigureOut(name, title, "", skipped=f"drawing it failed ({type(exc).__name__}: {exc}).")


def _draw(i: int) -> FigureOut:
    return draw_one(*_JOBS[i])


def draw_all(jobs: Sequence[tuple], workers: int | None = None) -> list[FigureOut]:
    """Every figure of ``jobs`` ((name, title, make, study, style, path) each), in order.

    ``workers`` processes (default: the usable cores, at most one per figure) draw them at once where the
    platform can fork; with one worker, or no fork, or when a worker dies, they are drawn here in turn."""
    global _JOBS
    if workers is None:
        workers = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    workers = min(int(workers), len(jobs))
    if workers < 2 or "fork" not in multiprocessing.get_all_start_methods():
        return [draw_one(*j) for j in jobs]
    _JOBS = jobs
    try:
        with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork")) as pool:
            return list(pool.map(_draw, range(len(jobs))))
    except BrokenProcessPool:  # a worker was killed (out of memory, a signal): draw them here instead
        return [draw_one(*j) for j in jobs]
    finally:
        _JOBS = ()
