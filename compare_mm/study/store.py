"""Where a study's results live on disk, and the schema of the per-replicate rows (**contract**).

Layout of an output directory ``DIR``::

    DIR/config.yaml          copy of the study file as given
    DIR/manifest.json        name, config_hash, conditions, chunk plan, status, timings, versions
    DIR/replicates/chunk-C0000-R000000.parquet   one file per chunk (condition C, first replicate R)
    DIR/summary.csv          metrics (see compare_mm.study.summarise), recomputable by `compare-mm summarise`

A chunk is the unit of work: a range of replicates of one condition, all fits.  It is written to a
temporary name starting with ``.`` in ``replicates/`` and renamed with ``os.replace`` when complete, so a
file named ``chunk-*.parquet`` is always whole; an interrupted run leaves only whole chunks (plus
temporary files that ``--resume`` deletes).  ``--resume`` skips chunks whose file exists and refuses to
continue if the config's hash differs from the manifest's.

Rows of a chunk (one Parquet table; ``row_type`` says which kind a row is)
---------------------------------------------------------------------------
Common columns
    row_type     ``"param"``, ``"group"``, ``"test"`` or ``"interval"`` (the last two only for fits that
                 request ``tests`` / ``intervals``; see below)
    condition    condition index (0-based, order of ``manifest["conditions"]``)
    replicate    replicate index within the condition (0-based)
    <grid keys>  the condition's grid values (a list value such as unbalanced group sizes as "2,3,5")
    fit          fit name from the config (``"F-test"`` for the exact F test of σ_A² = 0)
    backend, method   the fit's backend and method ("" for pymc; "F" for the F test)
    parameter    param rows: canonical name ``mu`` | ``beta0`` | ``beta1`` | ``sigma_a2`` | ``sigma_b2`` |
                 ``rho`` | ``sigma_e2`` (F test: ``sigma_a2``); group rows: ``u_a`` (intercept effects),
                 ``u_b`` (slope effects)
    truth        the true value (group rows: the realised random effect u_i)
    estimate     point estimate (posterior mean for pymc; F statistic for the F test;
                 group rows: the predicted effect — BLUP / conditional mode / posterior mean)
    se           standard error (posterior SD; group rows: conditional SD); NaN where the backend gives none
    lower, upper, interval_kind, level
                 the interval used for coverage (``wald`` | ``t`` | ``profile`` | ``eti`` | ``hdi`` …,
                 ``wald-sd2`` when a variance interval was obtained by squaring an SD interval)
    median, mode, hdi_lower, hdi_upper   posterior fits only (NaN otherwise)
    p_value      the F test's p-value; test rows: the test's p-value (NaN otherwise)
    test         test rows: the test's name — ``f_test`` | ``lrt_chi2`` | ``lrt_chibar2`` | ``exact_rlrt`` |
                 ``bootstrap_lrt`` ("" on other rows)
Per-fit status columns (repeated on each row of a fit)
    ok           False if the fit raised (then estimates are NaN and ``error`` holds the message)
    error        "" or ``ExceptionType: message``
    converged    the backend's convergence flag
    boundary     σ̂_A² exactly 0 (ANOVA: ≤ 0); for posteriors: the lower limit of the fit's sigma_a2
                 interval (ETI by default, HDI with ``interval: hdi``) below ``boundary_threshold`` × true σ_e²
    divergences  number of divergent transitions (NaN for non-posterior fits)
    max_rhat     largest R-hat over the fit's parameters (NaN for non-posterior fits)
    elapsed_s    wall time of the fit (for vectorised closed-form fits: the chunk's time / replicates)
Group rows only
    group        group index i (0-based, generation order)
    raw          no-pooling estimate of the effect: ȳ_i − ȳ (one-way) or per-group OLS coefficient minus
                 its mean over groups (random slope)
Test rows (one per replicate, fit, requested test and tested variance component)
    parameter    the variance tested: ``sigma_a2`` (intercept effects) or ``sigma_b2`` (slope effects; with
                 ``(x | g)`` the slope's variance and its covariance are removed together)
    truth        the true value of that variance (0: the row is under H₀ and counts towards the size)
    estimate     the test statistic (F for ``f_test``; the deviance or REML-criterion difference for the
                 LRTs — the fit's method; the exact RLRT is always REML-based)
    p_value      the p-value (naive χ², χ̄² mixture, exact F, exact RLRT — computed exactly on the balanced
                 one-way fast path, simulated with ``nsim`` draws elsewhere — or parametric bootstrap)
    level        the study's level; the test rejects when p_value < 1 − level
    ok, error    False and the message when computing the test raised (the fit's own rows stay ok)
Interval rows (one per replicate, fit, requested interval kind other than the fit's primary one, and
canonical parameter)
    estimate     the fit's point estimate
    lower, upper, interval_kind, level   as on param rows; NaN (kind "") where the kind gives no interval
                 for that parameter (e.g. Wald for a variance component of our fitter, profile for μ in
                 REML-profile mode)
"""

from __future__ import annotations

from importlib.metadata import version
import json
import os
import platform
import time
import uuid
from pathlib import Path
from typing import Any

import pandas as pd

from ..errors import ConfigError, DataError
from .. import __version__

CHUNK_GLOB = "chunk-*.parquet"

#: column order of the rows (grid keys are inserted after ``replicate``)
PARAM_COLUMNS = (
    "row_type", "condition", "replicate", "fit", "backend", "method", "parameter", "truth", "estimate", "se",
    "lower", "upper", "interval_kind", "level", "median", "mode", "hdi_lower", "hdi_upper", "p_value",
    "ok", "error", "converged", "boundary", "divergences", "max_rhat", "elapsed_s", "group", "raw", "test",
)


def chunk_name(condition: int, start: int) -> str:
    """File name of the chunk starting at replicate ``start`` of ``condition``."""
    return f"chunk-C{condition:04d}-R{start:06d}.parquet"


def replicates_dir(out_dir: Path) -> Path:
    return Path(out_dir) / "replicates"


def write_chunk(out_dir: Path, name: str, rows: pd.DataFrame) -> Path:
    """Write one chunk atomically: a temporary ``.``-name in the same folder, then ``os.replace``."""
    folder = replicates_dir(out_dir)
    folder.mkdir(parents=True, exist_ok=True)
    final = folder / name
    tmp = folder / f".{name}.{uuid.uuid4().hex[:8]}.tmp"
    import pyarrow as pa  # deferred: pyarrow is heavy; imported when Parquet is read or written
    import pyarrow.parquet as pq

    pq.write_table(pa.Table.from_pandas(rows, preserve_index=False), tmp, compression="snappy",
                   write_statistics=False)
    with open(tmp, "rb") as fh:
        os.fsync(fh.fileno())
    os.replace(tmp, final)
    return final


def finished_chunks(out_dir: Path) -> set[str]:
    """Names of the complete chunk files."""
    folder = replicates_dir(out_dir)
    return {p.name for p in folder.glob(CHUNK_GLOB)} if folder.is_dir() else set()


def remove_temporaries(out_dir: Path) -> int:
    """Delete temporary files left by an interrupted run; returns how many."""
    folder = replicates_dir(out_dir)
    if not folder.is_dir():
        return 0
    stale = [p for p in folder.glob(".chunk-*.tmp")]
    for p in stale:
        p.unlink(missing_ok=True)
    return len(stale)


def read_rows(out_dir: str | Path) -> pd.DataFrame:
    """All stored rows of a study (every complete chunk), in chunk order."""
    folder = replicates_dir(Path(out_dir))
    files = sorted(folder.glob(CHUNK_GLOB)) if folder.is_dir() else []
    if not files:
        raise DataError(f"'{folder}' holds no finished chunks; run `compare-mm run` first.")
    return pd.concat([pd.read_parquet(p) for p in files], ignore_index=True)


# ---------------------------------------------------------------------------- manifest
def manifest_path(out_dir: Path) -> Path:
    return Path(out_dir) / "manifest.json"


def read_manifest(out_dir: Path) -> dict[str, Any] | None:
    path = manifest_path(out_dir)
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except ValueError:
        raise DataError(f"'{path}' is not valid JSON; it is not a compare_mm manifest.") from None


def write_manifest(out_dir: Path, manifest: dict[str, Any]) -> None:
    """Write ``manifest.json`` atomically."""
    path = manifest_path(out_dir)
    tmp = path.with_name(f".manifest.{uuid.uuid4().hex[:8]}.tmp")
    tmp.write_text(json.dumps(manifest, indent=1, default=str))
    os.replace(tmp, path)


def new_manifest(cfg, conditions: list[dict[str, Any]], chunks: list[dict[str, Any]]) -> dict[str, Any]:
    """The manifest written when a run starts."""
    versions = {"compare_mm": __version__, "python": platform.python_version()}
    for mod in ("numpy", "scipy", "pandas", "statsmodels", "pymc", "nutpie", "arviz"):
        try:
            versions[mod] = __import__(mod).__version__ if mod in ("numpy", "pandas", "scipy") else \
                _dist_version(mod)
        except Exception:  # noqa: BLE001 — versions are informative only
            pass
    return {
        "name": cfg.name, "config_hash": cfg.config_hash, "model": cfg.model, "models": cfg.models, "seed": cfg.seed,
        "replicates": cfg.replicates, "level": cfg.level, "grid_keys": cfg.grid_keys,
        "fits": [f.model_dump(mode="json") for f in cfg.fits],
        "conditions": conditions, "chunks": chunks, "status": "running",
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "versions": versions,
    }


def _dist_version(name: str) -> str:
    return version(name)


def prepare_out_dir(out_dir: Path, cfg, resume: bool) -> dict[str, Any] | None:
    """Check an output directory before a run; returns the stored manifest when resuming.

    Raises
    ------
    ConfigError
        If the directory holds another run and ``resume`` is false, or the stored config hash differs.
    """
    out_dir = Path(out_dir)
    old = read_manifest(out_dir) if out_dir.exists() else None
    if old is None:
        if resume and out_dir.exists() and finished_chunks(out_dir):
            raise ConfigError(f"--resume: '{out_dir}' has chunks but no manifest.json; use a new --out directory.")
        return None
    if not resume:
        if finished_chunks(out_dir):
            raise ConfigError(f"--out: '{out_dir}' already holds a study; pass --resume to continue it or "
                              f"choose another directory.")
        return None
    if old.get("config_hash") != cfg.config_hash:
        raise ConfigError(f"--resume: the config hash {cfg.config_hash[:12]} differs from the stored run's "
                          f"{str(old.get('config_hash'))[:12]} in '{manifest_path(out_dir)}'; the study file "
                          f"changed, so use a new --out directory.")
    return old


__all__ = ["CHUNK_GLOB", "PARAM_COLUMNS", "chunk_name", "finished_chunks", "new_manifest", "prepare_out_dir",
           "read_manifest", "read_rows", "remove_temporaries", "write_chunk", "write_manifest"]
