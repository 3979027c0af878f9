"""Study rows of a chunk's batched fits built column-wise, with no FitResult per replicate.

When a fit's backend returns its batch as a :class:`~compare_mm.results.columns.FitColumns` (our fitter on
the one-factor designs of :mod:`compare_mm.fitter.batch_fit`) and the fit asks only for what can be read
off the batch — Wald or profile intervals (batched, :mod:`compare_mm.inference.batch_profile`) and the
χ² / χ̄² LRTs (batched, :mod:`compare_mm.inference.batch_lrt`) — the chunk's rows are built here as
arrays over replicates.  Each kind of row comes from the constructor the per-replicate route uses
(:func:`compare_mm.study.rows.param_row`, :func:`~compare_mm.study.rows.group_row`,
:func:`compare_mm.study.rows_inference.test_row`, :func:`~compare_mm.study.rows_inference.interval_row`,
intervals by :func:`~compare_mm.study.rows.interval_of`), called with arrays instead of scalars, and the
rows are laid out replicate-major, in the per-replicate route's order, so the stored rows are the same
rows in the same order: every value bit for bit, except the LRT statistics and p-values (the
per-replicate route re-evaluates the full model's criterion at θ̂ on the replicate's design: equal to
rounding, ≤ 1e-9) and the timing column ``elapsed_s``.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import chain
from typing import Any

import numpy as np

from .row_schema import BOOL_COLUMNS, DEFAULTS, INT_COLUMNS, STRING_COLUMNS
from .rows import _EFFECT, BOUNDARY_COMPONENTS, NAN, Part, canonical_names, group_row, interval_of, param_row, \
    parameters, status
from .rows_inference import interval_row, test_parameter, test_row

#: the tests a column-wise fit computes in batch (every other test needs the per-replicate route)
COLUMN_TESTS = ("lrt_chi2", "lrt_chibar2")


def column_path_applies(fit, backend) -> bool:
    """True when every row ``fit`` asks for can be built from a batch held column-wise: a frequentist
    backend, tests among :data:`COLUMN_TESTS`, no bootstrap interval."""
    kinds = set(fit.intervals or []) | {fit.interval}
    return (not backend.posterior and set(fit.test_list) <= set(COLUMN_TESTS) and "bootstrap" not in kinds
            and not kinds & {"eti", "hdi"})


@dataclass(frozen=True, eq=False)
class ColumnRows:
    """The rows of R replicates, K per replicate, replicate-major: ``cols`` maps a column to a scalar (the
    same in every row) or an array (R, K)."""

    R: int
    K: int
    cols: dict[str, Any]

    def part(self, a: int, b: int) -> Part:
        """The rows of replicates a … b − 1 (positions in this block) as a :class:`~compare_mm.study.rows.Part`."""
        return Part((b - a) * self.K, {c: v if np.ndim(v) == 0 else v[a:b].reshape(-1) for c, v in self.cols.items()})


def _same(values: list) -> bool:
    first = values[0]
    for v in values[1:]:
        if not (v == first or (isinstance(v, float) and isinstance(first, float) and v != v and first != first)):
            return False
    return True


def lay_out(slots: list[tuple[int, dict[str, Any]]], R: int) -> ColumnRows:
    """Rows from ``slots``, each ``(k, columns)``: k consecutive rows per replicate whose columns are
    scalars, arrays (R,) or arrays (R, k); a column a slot does not set takes :data:`.row_schema.DEFAULTS`."""
    K = sum(k for k, _ in slots)
    out: dict[str, Any] = {}
    for c in dict.fromkeys(chain.from_iterable(d for _, d in slots)):
        vals = [d.get(c, DEFAULTS.get(c, NAN)) for _, d in slots]
        if all(np.ndim(v) == 0 for v in vals) and _same(vals):
            out[c] = vals[0]
            continue
        dtype = object if c in STRING_COLUMNS else bool if c in BOOL_COLUMNS else np.int64 if c in INT_COLUMNS \
            else float
        arr = np.empty((R, K), dtype=dtype)
        at = 0
        for (k, _), v in zip(slots, vals):
            v = np.asarray(v)
            arr[:, at:at + k] = v[:, None] if v.ndim == 1 else v
            at += k
        out[c] = arr
    return ColumnRows(R, K, out)


def ready(cols, model: str, covariance: str | None, cond: dict[str, Any] | None = None) -> np.ndarray:
    """Replicates of ``cols`` whose rows the column path builds: solved by the batch, every reported
    estimate finite (a NaN estimate is a failed fit, recorded by the per-replicate route)."""
    names = canonical_names(model, cond)
    ok = np.asarray(cols.solved, dtype=bool).copy()
    for canon in parameters(model, covariance, cond):
        est = cols.estimates.get(names[canon])
        ok &= np.isfinite(est) if est is not None else False
    return ok


def profile_columns(profiles: list) -> dict[tuple[str, str], tuple[np.ndarray, np.ndarray]] | None:
    """{(parameter, kind): (lower, upper)} of the replicates' profile intervals (one tuple of
    :class:`~compare_mm.results.schema.Interval` each), or None unless all carry the same parameters."""
    keys = [tuple((iv.parameter, iv.kind) for iv in ivs) for ivs in profiles]
    if not keys or any(k != keys[0] for k in keys):
        return None
    return {key: (np.array([ivs[j].lower for ivs in profiles], dtype=float),
                  np.array([ivs[j].upper for ivs in profiles], dtype=float)) for j, key in enumerate(keys[0])}


def column_rows(head: dict[str, Any], cols, pos: np.ndarray, reps: np.ndarray, fit, model: str,
                covariance: str | None, level: float, truth: dict[str, float], U: np.ndarray, RAW: np.ndarray,
                level_index: dict[str, int], cond: dict[str, Any] | None = None,
                profile: dict | None = None, lrts: list | None = None) -> ColumnRows:
    """The rows of replicates ``pos`` (positions in ``cols``; study replicate numbers ``reps``) of one fit,
    in the per-replicate route's order (:func:`compare_mm.study.rows.result_rows`, then
    :func:`compare_mm.study.rows_inference.inference_rows`): param rows, group rows, test rows, interval rows.

    ``U``, ``RAW`` (R, groups, q) are the realised effects and no-pooling estimates, ``profile`` the
    replicates' profile intervals (:func:`profile_columns`), ``lrts`` the batched LRTs of these replicates
    (:func:`compare_mm.inference.batch_lrt.lrt_many`, component order).
    """
    R = len(pos)
    h = dict(head, replicate=np.asarray(reps, dtype=np.int64))
    names = canonical_names(model, cond)
    intervals = {key: (lo[pos], hi[pos]) for key, (lo, hi) in cols.intervals.items()}
    intervals.update(profile or {})

    def find(parameter, kind):
        return intervals.get((parameter, kind))

    st = status(converged=cols.converged[pos], singular=cols.singular[pos], elapsed_s=cols.elapsed_s)
    nan = np.full(R, NAN)
    params = []
    for canon in parameters(model, covariance, cond):
        name = names[canon]
        est = cols.estimates[name][pos] if name in cols.estimates else nan
        se = cols.se[name][pos] if name in cols.se else nan
        lo, hi, ik = interval_of(find, name, fit.interval, est, se, level, None)
        params.append(param_row(h, canon, truth[canon], est, se, lo, hi, ik, level))
    comps = [r for r in params if r["parameter"] in BOUNDARY_COMPONENTS.get(model, ("sigma_a2",))]
    st["boundary"] = np.logical_or.reduce([r["estimate"] == 0.0 for r in comps]) if comps else np.zeros(R, bool)
    slots: list[tuple[int, dict[str, Any]]] = [(1, dict(r, **st)) for r in params]
    for rc in cols.ranef:
        effect = _EFFECT.get(rc.term)
        if effect is None or rc.group != "g":
            continue
        keep = [(c, level_index[str(lv)]) for c, lv in enumerate(rc.levels) if str(lv) in level_index]
        if not keep:
            continue
        c, i = (np.array(v) for v in zip(*keep))
        j = 0 if effect == "u_a" else 1
        slots.append((len(keep), group_row(h, effect, i.astype(float)[None, :], U[:, i, j], RAW[:, i, j],
                                           rc.values[pos][:, c], rc.condsd[pos][:, c], st)))
    if fit.test_list or fit.extra_intervals:
        for lrt in lrts or ():
            for name in COLUMN_TESTS:
                if name in fit.test_list:
                    slots.append((1, test_row(h, name, test_parameter(lrt.group, lrt.term), truth, lrt.statistic,
                                              lrt.p_value(name), level, st)))
        by_param = {r["parameter"]: r for r in params}
        for kind in fit.extra_intervals:
            if kind in ("exact", "mls"):
                continue  # balanced one-way only (fast path), as in inference_rows
            for canon in parameters(model, covariance, cond):
                est, se = by_param[canon]["estimate"], by_param[canon]["se"]
                lo, hi, ik = interval_of(find, names[canon], kind, est, se, level, None)
                slots.append((1, interval_row(h, canon, truth[canon], est, lo, hi, ik, level, st)))
    return lay_out(slots, R)


__all__ = ["COLUMN_TESTS", "ColumnRows", "column_path_applies", "column_rows", "lay_out", "profile_columns", "ready"]
