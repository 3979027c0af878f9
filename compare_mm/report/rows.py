"""Views of the stored per-replicate rows that the distribution and shrinkage figures need.

The columns are those of :mod:`compare_mm.study.row_schema` (what the store writes); every view returns a small frame with fixed column names (or ``None``
when the study did not store what it needs).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..study.row_schema import PARAM_COLUMNS

from .load import StudyOutputs, text_in


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
        col = frame[err]
        if isinstance(col.dtype, pd.CategoricalDtype):  # judge each category once
            blank = np.array([str(c).strip() in ("", "None", "nan") for c in col.cat.categories] + [True])
            codes = col.cat.codes.to_numpy()
            ok &= blank[np.where(codes >= 0, codes, len(blank) - 1)]
        else:
            e = col.astype(object)
            ok &= e.isna() | (e.astype(str).str.strip() == "") | (e.astype(str) == "None")
    return ok


def _text(col: pd.Series) -> pd.Series:
    """A column as text, converting each distinct value once (the stored text columns are categoricals
    over millions of rows; ``astype(str)`` on them cost seconds)."""
    if isinstance(col.dtype, pd.CategoricalDtype):
        cats = pd.Series(col.cat.categories).astype(str).tolist()
        return pd.Series(pd.Categorical.from_codes(col.cat.codes.where(col.cat.codes >= 0, len(cats)).to_numpy(),
                                                   cats + ["nan"]), index=col.index).astype(object)
    return col.astype(object).where(col.notna(), "nan").astype(str)


_is = text_in  # boolean mask: the column's text is one of the values


def param_rows(study: StudyOutputs) -> pd.DataFrame | None:
    """One row per (condition, replicate, fit, parameter): ``estimate``, ``truth``, ``median`` (posterior)."""
    stored = study.row_columns()
    if stored is None or "parameter" not in stored or "estimate" not in stored:
        return None
    rep = study.rows([*study.grid_keys, "condition", "replicate", "fit", "parameter", "method", "ok", "error",
                      "estimate", "truth", "median"], ["param", "parameter"])
    est = _column(rep, "estimate")
    rows = rep[rep["parameter"].notna().to_numpy() & ~_is(rep["parameter"], ["", "nan"])]
    if "method" in rows.columns:  # the exact F test stores its statistic as an "estimate": not a fit
        rows = rows[~_is(rows["method"], "F")]
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


def group_rows(study: StudyOutputs, parameter: str = "u_a", where: dict | None = None,
               values: bool = True) -> pd.DataFrame | None:
    """Per-group rows of one random effect (``u_a``: intercepts) as deviations from the overall mean:
    ``group``, ``raw`` (no-pooling estimate, ȳ_i − ȳ for one-way), ``pred`` (BLUP / posterior mean of
    u_i), ``true_u`` (the realised u_i) per (condition, replicate, fit).

    ``where`` ({column: value}) keeps only the rows with those values (one condition and replicate: the
    stored rows are then read for those rows alone); ``values=False`` gives the key columns only (grid keys,
    condition, replicate, fit), each distinct key once — all a choice among millions of group rows needs."""
    stored = study.row_columns()
    if stored is None or "row_type" not in stored or "raw" not in stored:
        return None
    measured = ("group", "raw", "estimate", "truth") if values else ()
    rep = study.rows([*study.grid_keys, "condition", "replicate", "fit", *measured, "ok", "error", "row_type",
                      "parameter"], ["group"], where=where, distinct=not values)
    rows = rep.loc[_is(rep["parameter"], parameter)]
    rows = rows[_ok(rows)]
    if rows.empty:
        return None
    keep = [k for k in study.grid_keys if k in rows.columns]
    out = rows[keep].copy()
    for c in ("condition", "replicate", "fit", "group") if values else ("condition", "replicate", "fit"):
        out[c] = rows[c] if c in rows.columns else 0
    out["fit"] = out["fit"].astype(str)
    if not values:
        return out.reset_index(drop=True)
    out["raw"] = pd.to_numeric(rows["raw"], errors="coerce")
    out["pred"] = pd.to_numeric(rows["estimate"], errors="coerce")
    out["true_u"] = pd.to_numeric(rows["truth"], errors="coerce") if "truth" in rows.columns else np.nan
    return out.reset_index(drop=True)


def diagnostic_rows(study: StudyOutputs) -> pd.DataFrame | None:
    """One row per (condition, replicate, Bayesian fit): ``divergences`` and ``rhat_max``."""
    stored = study.row_columns()
    if stored is None or ("divergences" not in stored and "max_rhat" not in stored):
        return None
    rows = study.rows([*study.grid_keys, "replicate", "fit", "divergences", "max_rhat", "ok", "error"], ["param"])
    div, rh = _column(rows, "divergences"), _column(rows, "max_rhat")
    rows = rows[_ok(rows)]
    if "fit" in rows.columns:  # is_bayes once per fit, not once per row
        fits = _text(rows["fit"])
        rows = rows[fits.map({f: study.is_bayes(f) for f in fits.unique()}).to_numpy(bool)]
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
