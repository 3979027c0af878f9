"""Views of the stored per-replicate rows that the distribution and shrinkage figures need.

The columns are those of :mod:`compare_mm.study.row_schema` (what the store writes); every view returns a small frame with fixed column names (or ``None``
when the study did not store what it needs).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..study.row_schema import PARAM_COLUMNS

from .load import StudyOutputs


def _column(frame: pd.DataFrame, name: str) -> str | None:
    """``name`` (a column of the row schema) if the stored rows have it, else None."""
    assert name in PARAM_COLUMNS, name
    return name if name in frame.columns else None


def _ok(frame: pd.DataFrame) -> pd.Series:
    """Rows of fits that did not fail."""
    ok = pd.Series(True, index=frame.index)
    if "ok" in frame.columns:
        ok &= frame["ok"].fillna(False).astype(bool)
    err = _column(frame, "error")
    if err:
        e = frame[err].astype(object)
        ok &= e.isna() | (e.astype(str).str.strip() == "") | (e.astype(str) == "None")
    return ok


def param_rows(study: StudyOutputs) -> pd.DataFrame | None:
    """One row per (condition, replicate, fit, parameter): ``estimate``, ``truth``, ``median`` (posterior)."""
    rep = study.replicates
    if rep is None or "parameter" not in rep.columns:
        return None
    est = _column(rep, "estimate")
    if est is None:
        return None
    rows = rep[rep["parameter"].notna() & (rep["parameter"].astype(str) != "")]
    if "row_type" in rows.columns:
        rows = rows[rows["row_type"].astype(str).isin(["param", "parameter"])]
    if "method" in rows.columns:  # the exact F test stores its statistic as an "estimate": not a fit
        rows = rows[rows["method"].astype(str) != "F"]
    rows = rows[_ok(rows)]
    keep = [k for k in study.grid_keys if k in rows.columns]
    out = rows[keep].copy()
    for c in ("condition", "replicate", "fit", "parameter"):
        out[c] = rows[c] if c in rows.columns else 0
    out["fit"] = out["fit"].astype(str)
    out["estimate"] = pd.to_numeric(rows[est], errors="coerce")
    t = _column(rows, "truth")
    out["truth"] = pd.to_numeric(rows[t], errors="coerce") if t else np.nan
    med = _column(rows, "median")
    out["median"] = pd.to_numeric(rows[med], errors="coerce") if med else np.nan
    return out.reset_index(drop=True)


def group_rows(study: StudyOutputs, parameter: str = "u_a") -> pd.DataFrame | None:
    """Per-group rows of one random effect (``u_a``: intercepts) as deviations from the overall mean:
    ``group``, ``raw`` (no-pooling estimate, ȳ_i − ȳ for one-way), ``pred`` (BLUP / posterior mean of
    u_i), ``true_u`` (the realised u_i) per (condition, replicate, fit)."""
    rep = study.replicates
    if rep is None or "row_type" not in rep.columns or "raw" not in rep.columns:
        return None
    rows = rep[(rep["row_type"].astype(str) == "group") & (rep["parameter"].astype(str) == parameter)]
    rows = rows[_ok(rows)]
    if rows.empty:
        return None
    keep = [k for k in study.grid_keys if k in rows.columns]
    out = rows[keep].copy()
    for c in ("condition", "replicate", "fit", "group"):
        out[c] = rows[c] if c in rows.columns else 0
    out["fit"] = out["fit"].astype(str)
    out["raw"] = pd.to_numeric(rows["raw"], errors="coerce")
    out["pred"] = pd.to_numeric(rows["estimate"], errors="coerce")
    out["true_u"] = pd.to_numeric(rows["truth"], errors="coerce") if "truth" in rows.columns else np.nan
    return out.reset_index(drop=True)


def diagnostic_rows(study: StudyOutputs) -> pd.DataFrame | None:
    """One row per (condition, replicate, Bayesian fit): ``divergences`` and ``rhat_max``."""
    rep = study.replicates
    if rep is None:
        return None
    div, rh = _column(rep, "divergences"), _column(rep, "max_rhat")
    if div is None and rh is None:
        return None
    rows = rep[_ok(rep)]
    if "row_type" in rows.columns:
        rows = rows[rows["row_type"].astype(str) == "param"]
    if "fit" in rows.columns:  # is_bayes once per fit name, not per row (it reads the fit specs)
        names = rows["fit"].astype(str)
        bayes = {f: study.is_bayes(f) for f in names.unique()}
        rows = rows[names.map(bayes).to_numpy(dtype=bool)]
    if rows.empty:
        return None
    keep = [k for k in study.grid_keys if k in rows.columns]
    ids = keep + [c for c in ("replicate", "fit") if c in rows.columns]
    agg = {}
    if div:
        agg["divergences"] = (div, "max")
    if rh:
        agg["rhat_max"] = (rh, "max")
    tmp = rows[ids].copy()
    for new, (col, _) in agg.items():  # per-fit status columns repeat on every row of a fit
        tmp[new] = pd.to_numeric(rows[col], errors="coerce")
    out = tmp.groupby(ids, dropna=False).max().reset_index()
    for c in ("divergences", "rhat_max"):
        if c not in out.columns:
            out[c] = np.nan
    out["fit"] = out["fit"].astype(str)
    return out
