"""Conditions of a study (one per combination of grid values) and their human labels."""

from __future__ import annotations

import math
from typing import Iterable

import pandas as pd

from .style import KEY_LABELS, PARAM_TEXT
from ..study.generate import model_spec

_TEXT_KEYS = {"groups": "a", "per_group": "n", **PARAM_TEXT}


def fmt_value(v) -> str:
    """Compact number for labels: 0.05, 1, 18."""
    if isinstance(v, float):
        if math.isnan(v):
            return "–"
        if v.is_integer():
            return str(int(v))
        return f"{v:g}"
    return str(v)


def fmt_column(col: pd.Series) -> pd.Series:
    """:func:`fmt_value` of every cell, computed once per distinct value (columns of per-replicate rows
    repeat a few grid values over millions of rows)."""
    uniq = pd.unique(col.to_numpy(dtype=object))
    return col.astype(object).map({u: fmt_value(u) for u in uniq if not (isinstance(u, float) and math.isnan(u))}
                                  ).where(col.notna(), "–")


def varying_keys(frame: pd.DataFrame, keys: list[str]) -> list[str]:
    """Grid keys that take more than one value in ``frame``."""
    return [k for k in keys if k in frame.columns and frame[k].astype(str).nunique() > 1]


def _math_part(key: str, value) -> str:
    """One key of an axis label: ``σ$_A^2$=0.5``; the model by its name alone (``random slope``), which keeps
    the tick labels short enough to need little rotation."""
    if key == "model":
        return str(value).replace("_", " ")
    return f"{KEY_LABELS.get(key, key)}={fmt_value(value)}"


def condition_frame(frame: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """Unique conditions (rows of grid values), sorted, with an integer ``cond`` id and a text ``label``."""
    keys = [k for k in keys if k in frame.columns]
    if not keys:
        return pd.DataFrame({"cond": [0], "label": ["all"], "math": ["all"]})
    conds = frame[keys].drop_duplicates().reset_index(drop=True)
    try:
        conds = conds.sort_values(keys, kind="stable").reset_index(drop=True)
    except TypeError:
        pass
    vary = varying_keys(conds, keys) or keys[:1]
    conds["cond"] = range(len(conds))
    conds["label"] = [", ".join(f"{_TEXT_KEYS.get(k, k)}={fmt_value(r[k])}" for k in vary)
                      for _, r in conds.iterrows()]
    conds["math"] = [", ".join(_math_part(k, r[k]) for k in vary) for _, r in conds.iterrows()]
    return conds


def attach_condition(frame: pd.DataFrame, conds: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """``frame`` with the ``cond`` id and labels of its condition merged in."""
    keys = [k for k in keys if k in frame.columns and k in conds.columns]
    if not keys:
        out = frame.copy()
        out["cond"], out["label"], out["math"] = 0, "all", "all"
        return out
    left = frame.copy()
    right = conds.copy()
    for k in keys:  # merge on string forms so 1 and 1.0 (csv vs parquet) meet
        left[f"__{k}"] = fmt_column(left[k])
        right[f"__{k}"] = fmt_column(right[k])
    on = [f"__{k}" for k in keys]
    out = left.merge(right[on + ["cond", "label", "math"]], on=on, how="left")
    return out.drop(columns=on)


#: plain names of the study models (``model`` in the study YAML)
MODEL_NAMES: dict[str, str] = {"oneway": "one-way", "random_slope": "random slope", "two_way": "two-way (RCBD)"}


def _model_formula(model: str, covariance: str | None = None) -> str | None:
    """The fitted model's lme4 formula, from the study's own :func:`compare_mm.study.generate.model_spec`."""
    if model not in MODEL_NAMES:  # model_spec treats every other name as the random slope
        return None
    try:
        return model_spec(model, covariance).formula
    except Exception:  # an unknown model name: describe it by its key alone  # noqa: BLE001
        return None


def model_sentence(models: Iterable[str], fits: Iterable[dict] = ()) -> str:
    """The report header's model sentence, e.g. ``Models: one-way (y ~ 1 + (1 | g)) and random slope
    (y ~ 1 + x + (x | g)).``

    A random-slope model fitted with ``covariance: diagonal`` by some fits is shown with both formulas, the
    ``(x || g)`` one after the names of those fits; when every fit is diagonal, with that formula alone.
    """
    models = list(dict.fromkeys(str(m) for m in models)) or ["oneway"]
    fits = [f for f in fits if isinstance(f, dict) and str(f.get("method", "")).upper() not in ("F", "ANOVA")]
    diagonal = [str(f.get("name", "?")) for f in fits if str(f.get("covariance") or "") == "diagonal"]
    parts = []
    for m in models:
        name = MODEL_NAMES.get(m, m.replace("_", " "))
        full, diag = _model_formula(m), (_model_formula(m, "diagonal") if m == "random_slope" else None)
        if diag and diagonal and len(diagonal) == len(fits):
            parts.append(f"{name} ({diag})")
        elif diag and diagonal and full:
            parts.append(f"{name} ({full}; {', '.join(diagonal)}: {diag})")
        else:
            parts.append(f"{name} ({full})" if full else name)
    joined = parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]
    return f"{'Models' if len(parts) > 1 else 'Model'}: {joined}."
