"""Conditions of a study (one per combination of grid values) and their human labels."""

from __future__ import annotations

import math

import pandas as pd

from .style import KEY_LABELS, PARAM_TEXT

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


def varying_keys(frame: pd.DataFrame, keys: list[str]) -> list[str]:
    """Grid keys that take more than one value in ``frame``."""
    return [k for k in keys if k in frame.columns and frame[k].astype(str).nunique() > 1]


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
    conds["math"] = [", ".join(f"{KEY_LABELS.get(k, k)}={fmt_value(r[k])}" for k in vary)
                     for _, r in conds.iterrows()]
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
        left[f"__{k}"] = left[k].map(fmt_value)
        right[f"__{k}"] = right[k].map(fmt_value)
    on = [f"__{k}" for k in keys]
    out = left.merge(right[on + ["cond", "label", "math"]], on=on, how="left")
    return out.drop(columns=on)
