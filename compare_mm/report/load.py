"""Read a finished study's stored outputs (never refit): summary.csv, replicates/*.parquet, manifest, config.

The files are written by :mod:`compare_mm.study` (the output contract in :mod:`compare_mm.study.store`): ``summary.csv`` is tidy, one
row per (condition, fit, parameter, metric) with every grid key as a column plus ``fit, parameter, metric,
value, mcse, exact, n_ok, n_failed``; ``replicates/`` holds the per-replicate Parquet chunks.

The per-replicate rows are read on demand (:class:`StoredRows`, :meth:`StudyOutputs.rows`): each view of
:mod:`compare_mm.report.rows` asks for the columns and row types it uses, and only those are read — a study
stores one group row per group, replicate and fit (1.5 million in the boundary study), which no figure
needs whole.
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


def text_in(col: pd.Series, values) -> np.ndarray:
    """Boolean mask: the column's text is one of ``values`` (per distinct value for categoricals; a missing
    value's text is ``"nan"``)."""
    values = [values] if isinstance(values, str) else list(values)
    if isinstance(col.dtype, pd.CategoricalDtype):
        hit = np.array([str(c) in values for c in col.cat.categories] + [False])
        codes = col.cat.codes.to_numpy()
        return hit[np.where(codes >= 0, codes, len(hit) - 1)]
    return col.astype(object).where(col.notna(), "nan").astype(str).isin(values).to_numpy()


class StoredRows:
    """The per-replicate rows of a study's verified chunk files, read column by column as they are asked for.

    :meth:`select` gives the rows of some row types with some columns: exactly the frame a read of every
    row and column (:func:`compare_mm.study.store.read_parquet_files`) gives after keeping those rows and
    columns (``frame[text_in(frame["row_type"], row_types)][columns].reset_index(drop=True)``), without
    reading the other columns or turning the other rows into pandas.  Each column is read from the files
    once (one dataset scan for the columns a request adds) and kept as Arrow.  Files whose schemas cannot be
    unified are read whole, once, and filtered in pandas."""

    def __init__(self, files):
        from ..study.store import unified_schema  # deferred: pyarrow is heavy

        self.files = [str(f) for f in files]
        self._schema = unified_schema(self.files)
        # columns read so far, per part: None = every row; 0 / 1 = the rows that are not / are group rows,
        # when the chunks store their group rows apart (compare_mm.study.store.row_parts)
        self._arrow: dict[int | None, dict[str, Any]] = {None: {}, 0: {}, 1: {}}
        self._masks: dict[tuple, np.ndarray] = {}
        self._whole: pd.DataFrame | None = None
        self._parts: Any = None  # row_parts(...), False when the chunks do not store group rows apart

    @property
    def columns(self) -> list[str]:
        """The stored columns, in stored order."""
        return list(self._schema.names) if self._schema is not None else list(self._read_whole().columns)

    def __len__(self) -> int:
        if self._schema is None:
            return len(self._read_whole())
        first = self.columns[0] if self.columns else None
        return len(self._column(first)) if first is not None else 0

    def _read_whole(self) -> pd.DataFrame:
        if self._whole is None:
            from ..study.store import read_parquet_files  # deferred: pyarrow is heavy

            self._whole = read_parquet_files(self.files)
        return self._whole

    def _column(self, name: str, part: int | None = None):
        self._load([name], part)
        return self._arrow[part][name]

    def _part(self, types) -> int | None:
        """Which stored part holds every row of the row types ``types``: 0 (no group row among them), 1 (only
        group rows), or None (all rows: mixed types, no types, or chunks that keep group rows inline)."""
        if types is None:
            return None
        if self._parts is None:
            from ..study.store import row_parts  # deferred: pyarrow is heavy

            self._parts = row_parts(self.files, self._schema) or False
        if self._parts is False:
            return None
        return 0 if "group" not in types else 1 if set(types) == {"group"} else None

    def _load(self, names, part: int | None = None) -> None:
        from ..study.store import _unified_table  # deferred: pyarrow is heavy

        have = self._arrow[part]
        missing = [c for c in dict.fromkeys(names) if c not in have and c in self._schema.names]
        if missing:
            table = _unified_table(self.files, missing, self._schema) if part is None else \
                self._parts[part].to_table(columns=missing, use_threads=False)
            if table is None:
                raise DataError(f"The stored rows in {self.files[0]!r}… could not be read together.")
            for c in missing:
                have[c] = table.column(c)

    def select(self, columns, row_types=None, where: dict | None = None, distinct: bool = False) -> pd.DataFrame:
        """The rows whose ``row_type`` is one of ``row_types`` (all rows: None; no ``row_type`` column: all
        rows) and whose columns have the values of ``where`` ({column: value}; a column not stored matches
        nothing) with those of ``columns`` that are stored, in stored order, index 0, 1, …; with ``distinct``
        each distinct row once (in no particular order; text columns may have other categories)."""
        import pyarrow as pa  # deferred: pyarrow is heavy

        wanted = set(columns)
        cols = [c for c in self.columns if c in wanted]
        types = tuple(row_types) if row_types is not None and "row_type" in self.columns else None
        where = dict(where or {})
        if self._schema is None:
            whole = self._read_whole()
            rows = _filtered(whole, types, where)[cols]
            return (rows.drop_duplicates() if distinct else rows).reset_index(drop=True)
        part = self._part(types)
        self._load(cols + (["row_type"] if types is not None else []) + list(where), part)
        arrow = self._arrow[part]
        mask = None
        if types is not None:
            if (types, part) not in self._masks:
                from ..study.store import text_mask

                self._masks[types, part] = text_mask(arrow["row_type"], types)
            mask = self._masks[types, part]
        n = len(self) if part is None else len(arrow["row_type"])
        if where:
            import pyarrow.compute as pc  # deferred: pyarrow is heavy

            hit = np.ones(n, bool) if mask is None else mask.copy()
            for c, v in where.items():
                if c not in arrow:
                    hit[:] = False
                    continue
                v = v.item() if isinstance(v, np.generic) else v
                hit &= pc.fill_null(pc.equal(arrow[c], v), False).to_numpy(zero_copy_only=False)
            mask = hit
        if not cols:
            return pd.DataFrame(index=pd.RangeIndex(n if mask is None else int(mask.sum())))
        table = pa.table({c: arrow[c] for c in cols})
        table = table if mask is None else table.filter(pa.array(mask))
        if distinct:  # Arrow's hash grouping: millions of group rows become their few distinct keys
            table = table.unify_dictionaries().group_by(cols, use_threads=False).aggregate([]).select(cols)
        return table.to_pandas()


def _filtered(frame: pd.DataFrame, types, where: dict) -> pd.DataFrame:
    """The rows of ``frame`` whose ``row_type`` is one of ``types`` (None: every row) and whose columns have
    the values of ``where`` (see :meth:`StoredRows.select`)."""
    keep = np.ones(len(frame), bool)
    if types is not None and "row_type" in frame.columns:
        keep &= text_in(frame["row_type"], types)
    for c, v in where.items():
        keep &= (frame[c] == v).fillna(False).to_numpy(bool) if c in frame.columns else False
    return frame[keep]


@dataclass
class StudyOutputs:
    """Everything a report reads from a study directory.

    ``replicates`` holds the per-replicate rows when they are given in memory; :func:`load_study` leaves it
    None and sets ``stored`` (the folder's verified chunk files), from which :meth:`rows` reads what each
    figure and table needs."""

    out_dir: Path
    summary: pd.DataFrame
    grid_keys: list[str]
    replicates: pd.DataFrame | None = None
    manifest: dict[str, Any] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)
    config_text: str = ""
    stored: StoredRows | None = None

    # -------------------------------------------------------------- stored rows
    def row_columns(self) -> list[str] | None:
        """The columns of the per-replicate rows, or None when there are no rows."""
        if self.replicates is not None:
            return list(self.replicates.columns)
        if self.stored is not None and len(self.stored):
            return self.stored.columns
        return None

    def rows(self, columns, row_types=None, where: dict | None = None,
             distinct: bool = False) -> pd.DataFrame | None:
        """Per-replicate rows whose ``row_type`` is one of ``row_types`` (None: every row) and whose columns
        have the values of ``where`` with the stored ones of ``columns`` (index 0, 1, …; ``distinct``: each
        distinct row once), or None when there are no rows (:meth:`StoredRows.select`)."""
        if self.replicates is not None:
            rep = self.replicates
            wanted = set(columns)
            cols = [c for c in rep.columns if c in wanted]
            types = tuple(row_types) if row_types is not None else None
            rows = _filtered(rep, types, dict(where or {}))[cols]
            return (rows.drop_duplicates() if distinct else rows).reset_index(drop=True)
        if self.stored is None or not len(self.stored):
            return None
        return self.stored.select(columns, row_types, where, distinct)

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


def stored_files(out_dir: Path, stored=None) -> list[Path]:
    """The verified chunk files of the plan (damaged and foreign chunk files are left out:
    :func:`compare_mm.study.store.stored_chunks`; ``stored``: already verified); none when the manifest is
    not JSON."""
    from ..study.store import stored_chunks

    if stored is not None:
        return list(stored.files)
    try:
        return list(stored_chunks(out_dir).files)
    except DataError:  # a manifest that is not JSON: no plan to read by
        return []


def read_replicates(out_dir: Path) -> pd.DataFrame | None:
    """Every per-replicate row of the verified chunks of the plan (:func:`stored_files`), or None if there
    are none."""
    from ..study.store import read_parquet_files

    files = stored_files(out_dir)
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


def load_study(out_dir: str | Path, stored=None) -> StudyOutputs:
    """Read the stored outputs of a study directory (``stored``: its verified chunks,
    :func:`compare_mm.study.store.stored_chunks`, found when not given).

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
    files = stored_files(out, stored)
    return StudyOutputs(out_dir=out, summary=summary, grid_keys=keys, manifest=manifest, config=config,
                        config_text=config_text, stored=StoredRows(files) if files else None)
