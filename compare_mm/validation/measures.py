"""Agreement measures for ``compare-mm validate``: one number per quantity group, and its tolerance.

A fit (ours, statsmodels, or lme4's published numbers) is first reduced to :class:`Quantities`; two of
them are compared group by group (:func:`compare`):

``fixef``, ``se``, ``sigma``
    largest relative difference |a − b| / |b|.
``sd/corr``
    largest relative difference over the random-effect SDs and correlations.  On a boundary (either SD
    below 1e-4 σ, where a relative difference is meaningless) the SD difference is measured in units of
    the reference σ instead, and correlations involving that effect are skipped (undefined at 0).
``loglik``
    the signed difference ours − reference (absolute); it passes when ≥ −tol, i.e. ours is within tol or
    higher (our optimiser may find a better optimum than the reference, never a worse one).
``ranef``
    conditional modes and conditional SDs: largest |a − b| divided by the largest |b| of the same
    grouping factor and effect (a scale for the effect, since single modes may be ~0), or by 1e-4 σ if
    that is larger (an effect on the boundary, all of whose modes are ~0).

SEs are compared in lme4's convention, conditional on the variance estimates (:func:`from_fit`).

Tolerances: against lme4, fixef/sd/sigma 1e-5 relative, se 1e-4, ranef 1e-4,
loglik 1e-6; against statsmodels 1e-4 throughout (loglik 1e-6 the same way).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any

from ..results.schema import FitResult

GROUPS: tuple[str, ...] = ("fixef", "se", "sd/corr", "sigma", "loglik", "ranef")
LME4_TOL: dict[str, float] = {"fixef": 1e-5, "se": 1e-4, "sd/corr": 1e-5, "sigma": 1e-5, "loglik": 1e-6,
                              "ranef": 1e-4}
PEER_TOL: dict[str, float] = {"fixef": 1e-4, "se": 1e-4, "sd/corr": 1e-4, "sigma": 1e-4, "loglik": 1e-6,
                              "ranef": 1e-4}
BOUNDARY = 1e-4


@dataclass(frozen=True)
class Quantities:
    """The numbers of one fit that validation compares, keyed by canonical names."""

    fixef: dict[str, float]
    se: dict[str, float]
    sd: dict[str, float]
    corr: dict[str, tuple[float, str, str]]  # name -> (corr, sd name 1, sd name 2)
    sigma: float
    loglik: float | None
    ranef: dict[tuple[str, str, str], float] = field(default_factory=dict)
    condsd: dict[tuple[str, str, str], float] = field(default_factory=dict)
    converged: bool = True
    warnings: tuple[str, ...] = ()


def from_fit(fit: FitResult) -> Quantities:
    """Quantities of a :class:`FitResult`.

    SEs are the ones conditional on the variance estimates (lme4's convention): a backend that reports
    another kind keeps these in ``diagnostics["se_conditional"]`` (statsmodels), which is used instead.
    """
    sd, corr = {}, {}
    for r in fit.varcorr:
        if r.group == "Residual":
            continue
        if r.term2 is None:
            sd[r.name] = float(r.sd) if r.sd is not None else math.nan
        else:
            corr[r.name] = (float(r.corr) if r.corr is not None else math.nan,
                            f"sd_{r.term}|{r.group}", f"sd_{r.term2}|{r.group}")
    se = {r.term: r.se for r in fit.fixef}
    se.update((fit.diagnostics or {}).get("se_conditional", {}))
    return Quantities(
        fixef={r.term: r.estimate for r in fit.fixef}, se=se, sd=sd, corr=corr,
        sigma=float(fit.sigma), loglik=fit.loglik,
        ranef={(r.group, r.level, r.term): r.value for r in fit.ranef},
        condsd={(r.group, r.level, r.term): r.condsd for r in fit.ranef},
        converged=bool(fit.converged), warnings=tuple(fit.warnings))


def from_lme4(entry: dict[str, Any]) -> Quantities:
    """Quantities of one fit in lme4's published json (``sleepstudy_lme4.json``)."""
    groups = {g for g in entry["blups"]["grpvar"]}

    def grp(name: str) -> str:  # lme4 names the second term of (x || g) "g.1"
        return name if name in groups else re.sub(r"\.\d+$", "", name)

    sd, corr = {}, {}
    for v in entry["varcorr"]:
        if v["grp"] == "Residual":
            continue
        g = grp(v["grp"])
        if v["var2"] is None:
            sd[f"sd_{v['var1']}|{g}"] = float(v["sdcor"])
        else:
            corr[f"cor_{v['var2']}.{v['var1']}|{g}"] = (float(v["sdcor"]), f"sd_{v['var1']}|{g}",
                                                        f"sd_{v['var2']}|{g}")
    b = entry["blups"]
    keys = list(zip(b["grpvar"], b["grp"], b["term"]))
    return Quantities(
        fixef=dict(entry["fixef"]), se=dict(entry["se"]), sd=sd, corr=corr, sigma=float(entry["sigma"]),
        loglik=float(entry["logLik"]), ranef=dict(zip(keys, map(float, b["condval"]))),
        condsd=dict(zip(keys, map(float, b["condsd"]))))


def _rel(a: float, b: float) -> float:
    if not (math.isfinite(a) and math.isfinite(b)):
        return math.inf
    if a == b:
        return 0.0
    return abs(a - b) / abs(b) if b != 0 else math.inf


def _max(values) -> float | None:
    values = list(values)
    return max(values) if values else None


def _missing(ours: dict, ref: dict) -> bool:
    return set(ours) != set(ref)


def _scaled(ours: dict, ref: dict, sigma: float) -> float | None:
    """max |a − b| / max(max |b|, 1e-4 σ) within each (group, term), over all of them.

    The floor 1e-4 σ matters only on a boundary, where every mode of the effect is ~0.
    """
    if not ref:
        return None
    if _missing(ours, ref):
        return math.inf
    scale: dict[tuple[str, str], float] = {}
    floor = BOUNDARY * sigma if math.isfinite(sigma) and sigma > 0 else 0.0
    for (g, _, t), v in ref.items():
        scale[(g, t)] = max(scale.get((g, t), floor), abs(v))
    out = 0.0
    for k, v in ref.items():
        a = ours[k]
        if not (math.isfinite(a) and math.isfinite(v)):
            return math.inf
        s = scale[(k[0], k[2])]
        out = max(out, abs(a - v) / s if s > 0 else abs(a - v))
    return out


def _sd_corr(ours: Quantities, ref: Quantities) -> float | None:
    if _missing(ours.sd, ref.sd) or _missing(ours.corr, ref.corr):
        return math.inf
    sigma = ref.sigma if math.isfinite(ref.sigma) and ref.sigma > 0 else 1.0
    boundary = {k for k in ref.sd if min(abs(ref.sd[k]), abs(ours.sd[k])) < BOUNDARY * sigma}
    diffs = [abs(ours.sd[k] - ref.sd[k]) / sigma if k in boundary else _rel(ours.sd[k], ref.sd[k])
             for k in ref.sd]
    diffs += [_rel(ours.corr[k][0], v[0]) for k, v in ref.corr.items()
              if v[1] not in boundary and v[2] not in boundary]
    return _max(diffs)


def compare(ours: Quantities, ref: Quantities) -> dict[str, float | None]:
    """Per quantity group the agreement measure (module docstring); None where the group is empty."""
    out: dict[str, float | None] = {}
    out["fixef"] = math.inf if _missing(ours.fixef, ref.fixef) else _max(
        _rel(ours.fixef[k], v) for k, v in ref.fixef.items())
    out["se"] = math.inf if _missing(ours.se, ref.se) else _max(_rel(ours.se[k], v) for k, v in ref.se.items())
    out["sd/corr"] = _sd_corr(ours, ref)
    out["sigma"] = _rel(ours.sigma, ref.sigma)
    if ours.loglik is None or ref.loglik is None:
        out["loglik"] = None
    else:
        out["loglik"] = ours.loglik - ref.loglik if math.isfinite(ours.loglik) else -math.inf
    r1, r2 = _scaled(ours.ranef, ref.ranef, ref.sigma), _scaled(ours.condsd, ref.condsd, ref.sigma)
    out["ranef"] = None if r1 is None and r2 is None else max(x for x in (r1, r2) if x is not None)
    return out


def passes(group: str, value: float | None, tol: float) -> bool:
    """Whether one group's measure is within tolerance (loglik: ours − ref ≥ −tol)."""
    if value is None:
        return True
    if group == "loglik":
        return value >= -tol
    return math.isfinite(value) and value <= tol
