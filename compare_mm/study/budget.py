"""The size of a study before it starts: stored rows, disk and run time, estimated from the config alone,
and the ``--yes`` a run needs above :data:`LIMITS`.

Rows: per condition, replicate and fit, one row per reported parameter
(:func:`compare_mm.study.rows.parameters`), one per group and random effect, and one for the fit.
Disk: :data:`BYTES_PER_ROW` (measured: 28 bytes a row in 2,500-replicate Parquet chunks of a one-way
study).  Time: the progress bar's cost model
(:mod:`.progress`: a fit costs 5 / tier PyMC fits, tier the replicates per chunk of :func:`.plan._cost_tier`)
at :data:`SECONDS_PER_UNIT` seconds per PyMC fit.  All three are rough, within a factor of a few; they
guard against a typo such as ``replicates: 1000000000``, not a budget to plan by.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import ConfigError
from .config.schema import StudyConfig
from .generate import group_sizes
from .plan import _cost_tier
from .rows import parameters

BYTES_PER_ROW = 40.0
SECONDS_PER_UNIT = 2.0
#: a run estimated above any of these needs ``--yes``: rows, bytes, seconds
LIMITS = {"rows": 50e6, "bytes": 5e9, "seconds": 24 * 3600.0}


@dataclass(frozen=True)
class Estimate:
    """Estimated stored rows, bytes on disk and run time (seconds) of a study."""

    rows: float
    bytes: float
    seconds: float

    def over(self) -> bool:
        return self.rows > LIMITS["rows"] or self.bytes > LIMITS["bytes"] or self.seconds > LIMITS["seconds"]


def _groups(cond) -> int:
    try:
        return len(group_sizes(cond))
    except (KeyError, TypeError, ValueError):
        return int(cond.get("groups") or 10)


def estimate(cfg: StudyConfig) -> Estimate:
    """The rows, disk and time of ``cfg`` (see the module)."""
    rows = seconds = 0.0
    tiers = {f.name: _cost_tier(cfg, f) for f in cfg.fits}
    for cond in cfg.conditions():
        model = cond["model"]
        effects = 2 if model == "random_slope" else 1
        for fit in cfg.fits:
            reps = min(cfg.replicates, fit.replicates or cfg.replicates)
            rows += reps * (len(parameters(model, fit.covariance, cond)) + 1 + _groups(cond) * effects)
            seconds += reps * 5.0 / tiers[fit.name] * SECONDS_PER_UNIT
    return Estimate(rows, rows * BYTES_PER_ROW, seconds)


def _size(n: float) -> str:
    for unit, scale in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6)):
        if n >= scale:
            return f"{n / scale:.3g} {unit}"
    return f"{n / 1e3:.3g} kB"


def _duration(s: float) -> str:
    for unit, scale in (("days", 86400.0), ("hours", 3600.0), ("minutes", 60.0)):
        if s >= scale:
            return f"{s / scale:.3g} {unit}"
    return f"{s:.3g} s"


def check_budget(cfg: StudyConfig, yes: bool) -> Estimate:
    """The estimate of ``cfg``; without ``yes``, a ConfigError when it is above :data:`LIMITS`."""
    est = estimate(cfg)
    if est.over() and not yes:
        n_cond, n_fit = len(cfg.conditions()), len(cfg.fits)
        raise ConfigError(
            f"replicates: {cfg.replicates} ({n_cond} condition{'s' if n_cond > 1 else ''} × {n_fit} "
            f"fit{'s' if n_fit > 1 else ''}) would store ~{est.rows:.2g} rows, ~{_size(est.bytes)} on disk and "
            f"take ~{_duration(est.seconds)} by a rough estimate; pass --yes to run it anyway, or lower "
            f"replicates.")
    return est


__all__ = ["BYTES_PER_ROW", "Estimate", "LIMITS", "SECONDS_PER_UNIT", "check_budget", "estimate"]
