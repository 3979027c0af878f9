"""The study progress bar, advanced by the estimated cost of each chunk's fits rather than its replicates.

A replicate-count bar is useless when fits differ a thousandfold in cost: a study with PyMC fits on the
first replicates and REML fits on all of them sat at 0 % during the PyMC chunks and then extrapolated
from them ("27 minutes") while the cheap chunks finished in seconds.  Here each chunk weighs

    Σ_fits (replicates of the chunk the fit runs on) · 5 / tier(fit)   (+ COMPILE_WEIGHT per PyMC fit
                                                                        in a condition's first chunk)

in units of one PyMC fit, with tier the replicates-per-chunk that :func:`.plan._cost_tier` assigns to the
fit (pymc 5, statsmodels / per-replicate inference 25, our fitter 200, closed forms 2500), so the
percentage and the ETA follow the expected time.  The replicate count is shown in the description.
"""

from __future__ import annotations

from typing import Any, Sequence

from .config.schema import StudyConfig
from .plan import Chunk, _cost_tier

COMPILE_WEIGHT = 10.0  # a PyMC compile (a few seconds from the disk cache, ~25 s cold) in PyMC-fit units


def chunk_cost(cfg: StudyConfig, chunk: Chunk, tiers: dict[str, int] | None = None) -> float:
    """Estimated cost of ``chunk``, in units of one PyMC fit."""
    tiers = tiers if tiers is not None else {f.name: _cost_tier(cfg, f) for f in cfg.fits}
    cost = 0.0
    for fit in cfg.fits:
        stop = min(chunk.stop, fit.replicates or chunk.stop)
        n = max(0, stop - chunk.start)
        cost += n * 5.0 / tiers[fit.name]
        if fit.backend == "pymc" and n and chunk.start == 0:
            cost += COMPILE_WEIGHT
    return cost


class CostBar:
    """A tqdm bar over the chunks' costs, with the replicates done in its description."""

    def __init__(self, cfg: StudyConfig, chunks: Sequence[Chunk], done: set[str]):
        from tqdm.auto import tqdm  # deferred: tqdm only with a progress bar

        tiers = {f.name: _cost_tier(cfg, f) for f in cfg.fits}
        self._cost = {c.name: chunk_cost(cfg, c, tiers) for c in chunks}
        self._reps_total = sum(c.size for c in chunks)
        self._reps = sum(c.size for c in chunks if c.name in done)
        self._name = cfg.name
        self._bar: Any = tqdm(total=sum(self._cost.values()),
                              initial=sum(self._cost[c.name] for c in chunks if c.name in done),
                              desc=self._desc(), dynamic_ncols=True,
                              bar_format="{desc}: {percentage:3.0f}%|{bar}| [{elapsed}<{remaining}]")

    def _desc(self) -> str:
        return f"{self._name} ({self._reps}/{self._reps_total} rep)"

    def update(self, chunk: Chunk) -> None:
        """Count ``chunk`` as finished."""
        self._reps += chunk.size
        self._bar.set_description_str(self._desc(), refresh=False)
        self._bar.update(self._cost.get(chunk.name, 0.0))

    def close(self) -> None:
        self._bar.close()
