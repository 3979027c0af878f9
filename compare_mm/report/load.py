"""Read a finished study's stored outputs (never refit): summary.csv, replicates/*.parquet, manifest, config.

The files are written by :mod:`compare_mm.study` (the output contract in :mod:`compare_mm.study.store`): ``summary.csv`` is tidy, one
row per (condition, fit, parameter, metric) with every grid key as a column plus ``fit, parameter, metric,
value, mcse, exact, n_ok, n_failed``; ``replicates/`` holds the per-replicate Parquet chunks.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from ..backends.base import capability
from ..errors import DataError

#: columns of summary.csv that are not grid keys
SUMMARY_COLUMNS: tuple[str, ...] = (
    "condition", "fit", "parameter", "metric", "value", "mcse", "exact", "n_ok", "n_failed",
    "interval", "interval_kind", "kind", "level", "note", "backend", "method", "ci_lower", "ci_upper",
    "n_nonconverged", "n_singular", "excluded",
)


@dataclass
class StudyOutputs:
    """Everything a report reads from a study directory."""

    out_dir: Path
    summary: pd.DataFrame
    grid_keys: list[str]
    replicates: pd.DataFrame | None = None
    manifest: dict[str, Any] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)
    config_text: str = ""

    # -------------------------------------------------------------- config views
    @property
    def name(self) -> str:
        """Study name (config ``name`` or the directory name)."""
        return str(self.config.get("name") or self.manifest.get("name") or self.out_dir.name)

    @property
    def level(self) -> float:
        """Nominal interval level of the study."""
        try:
            return float(self.config.get("level", 0.95))
        except (TypeError, ValueError):
            return 0.95

    @property
    def model(self) -> str:
        """``oneway`` or ``random_slope``; ``"oneway, random_slope"`` when ``model`` is a grid key."""
        grid_models = (self.config.get("grid") or {}).get("model")
        if grid_models:
            return ", ".join(str(m) for m in grid_models)
        return str(self.config.get("model", "oneway"))

    def fit_specs(self) -> dict[str, dict[str, Any]]:
        """Fit name → its config entry (backend, method, prior …), in config order (computed once: the
        figures ask for it per row; a copy, so callers may change it)."""
        cache = self.__dict__.get("_fit_specs")
        if cache is None:
            cache = self.__dict__["_fit_specs"] = self._fit_specs()
        return {k: dict(v) for k, v in cache.items()}

    def _fit_specs(self) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        for f in (self.config.get("fits") or self.manifest.get("fits") or []):
            if isinstance(f, dict) and "name" in f:
                out[str(f["name"])] = dict(f)
        for name in self.summary["fit"].dropna().astype(str).unique():
            if name and name not in out:  # e.g. the exact "F-test" rows the study adds itself
                sub = self.summary[self.summary["fit"] == name]
                spec = {"name": name}
                for c in ("backend", "method"):
                    if c in sub.columns and sub[c].notna().any():
                        spec[c] = str(sub[c].dropna().iloc[0])
                spec.setdefault("method", "F" if name.lower().startswith("f-test") else "")
                out[name] = spec
        return out

    def fit_names(self) -> list[str]:
        """Fit names in config order (then any others found in the summary)."""
        return list(self.fit_specs())

    def is_bayes(self, fit: str) -> bool:
        """True if the fit's backend is a posterior sampler (its registered ``posterior`` capability; a
        backend not registered here counts as one when its config entry names a prior)."""
        known = self.__dict__.setdefault("_is_bayes", {})
        if fit not in known:
            spec = self.fit_specs().get(fit, {})
            backend = str(spec.get("backend", "")).lower()
            posterior = capability(backend, "posterior", None)
            known[fit] = bool(posterior) if posterior is not None else "prior" in spec
        return known[fit]

    def method(self, fit: str) -> str:
        """REML, ML, ANOVA (frequentist fits) or '' (posterior)."""
        spec = self.fit_specs().get(fit, {})
        if self.is_bayes(fit):
            return ""
        return str(spec.get("method", "REML") or "").upper()


def _read_yaml(path: Path) -> tuple[dict[str, Any], str]:
    if not path.exists():
        return {}, ""
    text = path.read_text()
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError:
        data = {}
    return (data if isinstance(data, dict) else {}), text


def _read_json(path: Path) -> dict[str, Any]:
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def read_replicates(out_dir: Path) -> pd.DataFrame | None:
    """The per-replicate rows of the verified chunks of the plan (damaged and foreign chunk files are left
    out: :func:`compare_mm.study.store.stored_chunks`), or None if there are none."""
    from ..study.store import read_parquet_files, stored_chunks

    try:
        files = list(stored_chunks(out_dir).files)
    except DataError:  # a manifest that is not JSON: no plan to read by
        return None
    if not files:
        return None
    frame = read_parquet_files(files)
    return frame if len(frame) else None


def normalise_metrics(summary: pd.DataFrame) -> pd.DataFrame:
    """Empty interval kinds as ``""``; and the one mapping of an older stored form: summary.csv files written
    before the HDI rows took their final form (``coverage``/``mean_width`` with interval kind ``hdi``) named
    them ``coverage_hdi``/``mean_width_hdi``."""
    if "interval_kind" not in summary.columns:
        summary["interval_kind"] = ""
    summary["interval_kind"] = summary["interval_kind"].astype(object).where(summary["interval_kind"].notna(), "")
    for metric, base in (("coverage_hdi", "coverage"), ("mean_width_hdi", "mean_width")):
        hit = summary["metric"] == metric
        summary.loc[hit, "metric"] = base
        summary.loc[hit, "interval_kind"] = "hdi"
    return summary


def load_study(out_dir: str | Path) -> StudyOutputs:
    """Read the stored outputs of a study directory.

    Raises
    ------
    DataError
        If the directory or its ``summary.csv`` is missing.
    """
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise DataError(f"Study directory {str(out)!r} is a file; give the --out folder of `compare-mm run`.")
    if not out.is_dir():
        raise DataError(f"Study directory {str(out)!r} does not exist.")
    summary_path = out / "summary.csv"
    if not summary_path.exists():
        raise DataError(f"{str(summary_path)!r} is missing; run `compare-mm run` (or `compare-mm summarise`) first.")
    summary = pd.read_csv(summary_path)
    for col in ("fit", "parameter", "metric"):
        if col not in summary.columns:
            raise DataError(f"{str(summary_path)!r} has no column {col!r}; it is not a compare_mm summary.")
        summary[col] = summary[col].astype(object).where(summary[col].notna(), "").astype(str)
    for col in ("value", "mcse", "exact", "n_ok", "n_failed"):
        if col in summary.columns:
            summary[col] = pd.to_numeric(summary[col], errors="coerce")
        else:
            summary[col] = np.nan
    summary = normalise_metrics(summary)
    config, config_text = _read_yaml(out / "config.yaml")
    manifest = _read_json(out / "manifest.json")
    grid = config.get("grid") if isinstance(config.get("grid"), dict) else None
    if isinstance(manifest.get("grid_keys"), list):
        keys = [k for k in manifest["grid_keys"] if k in summary.columns]
    elif grid:
        keys = [k for k in grid if k in summary.columns]
    else:
        keys = [c for c in summary.columns if c not in SUMMARY_COLUMNS]
    return StudyOutputs(out_dir=out, summary=summary, grid_keys=keys, replicates=read_replicates(out),
                        manifest=manifest, config=config, config_text=config_text)
