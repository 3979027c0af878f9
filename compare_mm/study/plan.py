"""The plan of a study: its chunks.  A chunk — a range of replicates of one condition with all fits — is
the unit of work of every executor and of ``--resume``; chunk sizes follow the cost of the fits."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..backends.base import get_backend
from .config.schema import StudyConfig
from .generate import is_balanced
from .generate_twoway import is_balanced as twoway_balanced
from .store import chunk_name

#: replicates per chunk of a fit whose backend costs ``relative_cost`` 1 (our fitter); a backend of
#: relative cost c gets ``round(CHUNK_UNIT / c)`` (statsmodels 8 → 25, pymc 40 → 5)
CHUNK_UNIT = 200


@dataclass(frozen=True)
class Chunk:
    """Replicates ``start … stop − 1`` of condition ``condition``."""

    condition: int
    start: int
    stop: int

    @property
    def name(self) -> str:
        return chunk_name(self.condition, self.start)

    @property
    def size(self) -> int:
        return self.stop - self.start


def uses_fast_path(cfg: StudyConfig, cond: dict[str, Any], fit) -> bool:
    """A fit whose backend lists its method in ``fast_path`` (our fitter: REML, ML, ANOVA), on a balanced
    one-way condition: closed forms, vectorised; on a balanced two-way condition ANOVA fits only
    (:mod:`compare_mm.twoway`; its REML and ML fits are our fitter's)."""
    if cond["model"] == "two_way":
        return fit.method == "ANOVA" and "ANOVA" in get_backend(fit.backend).fast_path and twoway_balanced(cond)
    return fit.method in get_backend(fit.backend).fast_path and is_balanced(cond["model"], cond)


def per_replicate_inference(fit, fast: bool = False) -> bool:
    """True if the fit's tests or intervals need refits per replicate (profile, bootstrap; on the one-way
    fast path, ``fast``, profile intervals are vectorised and only the bootstrap is per replicate)."""
    kinds = set(fit.intervals or []) | {fit.interval}
    slow = {"bootstrap"} if fast else {"profile", "bootstrap"}
    return "bootstrap_lrt" in fit.test_list or bool(kinds & slow)


def batched_profile(cfg: StudyConfig) -> bool:
    """True when every condition's model is one whose profile intervals a chunk computes in one batch
    (:mod:`compare_mm.inference.batch_profile`): one scalar random intercept (one-way, balanced or not) or
    a random slope, ``(x | g)`` / ``(x || g)`` (:mod:`compare_mm.inference.batch_profile_slope`)."""
    return all(c["model"] in ("oneway", "random_slope") for c in cfg.conditions())


def _cost_tier(cfg: StudyConfig, fit) -> int:
    """Replicates per chunk that suit one fit: :data:`CHUNK_UNIT` over the backend's ``relative_cost``
    (pymc 5, statsmodels 25, our fitter 200; a backend's optional ``cost_of(options)`` overrides it: pymc
    with ``sampler: quadrature`` 0.5 → 400, batched by ``fit_many``), at most 25 with per-replicate profile / bootstrap
    inference (profile intervals are batched in one-way and random-slope studies, :func:`batched_profile`),
    closed forms 2500."""
    backend = get_backend(fit.backend)
    cost_of = getattr(backend, "cost_of", None)  # optional: the cost of these options (pymc quadrature)
    cost = float(cost_of(fit.backend_options(cfg.level))) if cost_of is not None else float(backend.relative_cost)
    tier = max(1, int(round(CHUNK_UNIT / cost)))
    fast = all(uses_fast_path(cfg, c, fit) for c in cfg.conditions())
    if per_replicate_inference(fit, fast or batched_profile(cfg)):
        return min(tier, 25)
    if tier < CHUNK_UNIT:
        return tier
    return 2500 if fast else tier


def default_chunk_size(cfg: StudyConfig) -> int:
    """Replicates per chunk for the most expensive fit (a function of the config only, for --resume)."""
    if cfg.chunk_size:
        return cfg.chunk_size
    return min(_cost_tier(cfg, f) for f in cfg.fits)


def plan_chunks(cfg: StudyConfig) -> list[Chunk]:
    """Every chunk of the study, condition-major.

    Replicates that expensive fits run on (below their ``replicates`` cap) are cut into small chunks
    sized for the most expensive fit; the rest, fitted by cheaper fits only, into larger chunks.  The
    plan depends on the config alone, so ``--resume`` finds the same chunks.
    """
    R = cfg.replicates
    if cfg.chunk_size:
        bounds = list(range(0, R, cfg.chunk_size)) + [R]
    else:
        tiers = {f.name: _cost_tier(cfg, f) for f in cfg.fits}
        small = min(tiers.values())
        cut = max(min(f.replicates or R, R) for f in cfg.fits if tiers[f.name] == small)
        rest = [t for f in cfg.fits if (f.replicates or R) > cut for t in [tiers[f.name]]]
        big = min(rest) if rest else small
        bounds = list(range(0, cut, small)) + list(range(cut, R, big)) + [R]
    return [Chunk(c, a, b) for c in range(len(cfg.conditions())) for a, b in zip(bounds[:-1], bounds[1:])]


__all__ = ["CHUNK_UNIT", "Chunk", "batched_profile", "default_chunk_size", "per_replicate_inference", "plan_chunks",
           "uses_fast_path"]
