"""Where a study's results live on disk (**contract**): output folder, chunks, manifest.

Layout of an output directory ``DIR``::

    DIR/config.yaml          copy of the study file as given
    DIR/manifest.json        name, config_hash, conditions, chunk plan, status, timings, versions
    DIR/replicates/chunk-C0000-R000000.parquet   one file per chunk (condition C, first replicate R)
    DIR/summary.csv          metrics (see compare_mm.study.summarise), recomputable by `compare-mm summarise`

A chunk is the unit of work: a range of replicates of one condition, all fits.  It is written to a
temporary name starting with ``.`` in ``replicates/`` and renamed with ``os.replace`` when complete, so a
file named ``chunk-*.parquet`` is always whole; an interrupted run leaves only whole chunks (plus
temporary files that ``--resume`` deletes).  ``--resume`` skips chunks whose file exists and verifies and
refuses to continue if the config's hash differs from the manifest's.  Every chunk written is recorded
(rows, replicates, config hash, SHA-256) in ``DIR/chunks.jsonl`` and, at the end of each session, in the
manifest; readers take only the verified chunks of the plan (:mod:`compare_mm.study.integrity`).  A run
holds ``DIR/.lock`` (:mod:`compare_mm.study.lock`), so two runs never write into one folder.

The rows of a chunk (columns, dtypes and meanings) are defined in :mod:`compare_mm.study.row_schema`.
Within a chunk file the group rows (one per group, replicate and fit: most of a study's rows) come after
the others, in row groups of their own, with the count of rows before them in the schema metadata
(:data:`GROUP_START_KEY`), so ``summarise`` and ``report`` read only the columns of them they use; chunks
written with the kinds interleaved (older studies) are read the same, by whole columns.
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
from .integrity import INTEGRITY, StoredChunks, append_record, check_chunks, file_sha256
from .row_schema import PARAM_COLUMNS
from .. import __version__

CHUNK_GLOB = "chunk-*.parquet"

def chunk_name(condition: int, start: int) -> str:
    """File name of the chunk starting at replicate ``start`` of ``condition``."""
    return f"chunk-C{condition:04d}-R{start:06d}.parquet"


def replicates_dir(out_dir: Path) -> Path:
    return Path(out_dir) / "replicates"


def write_chunk(out_dir: Path, name: str, rows: pd.DataFrame, record: dict[str, Any] | None = None) -> Path:
    """Write one chunk atomically: a temporary ``.``-name in the same folder, then ``os.replace``; with a
    ``record`` (condition, start, stop, config_hash) append the chunk's record (those, its row count and
    SHA-256) to the journal of :mod:`compare_mm.study.integrity`.

    The rows must hold every column of :mod:`compare_mm.study.row_schema` (plus the grid keys)."""
    missing = [c for c in PARAM_COLUMNS if c not in rows.columns]
    if missing:
        raise DataError(f"Chunk {name}: rows lack the schema columns {missing}.")
    folder = replicates_dir(out_dir)
    folder.mkdir(parents=True, exist_ok=True)
    final = folder / name
    tmp = folder / f".{name}.{uuid.uuid4().hex[:8]}.tmp"
    try:
        _write_parquet(*_group_rows_last(rows), tmp)
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        digest = file_sha256(tmp) if record is not None else ""
        os.replace(tmp, final)
    except BaseException:  # a full disk, an interrupt: leave no partial temporary behind
        tmp.unlink(missing_ok=True)
        raise
    if record is not None:
        append_record(out_dir, dict(record, name=name, rows=len(rows), sha256=digest))
    return final


#: schema-metadata key of a chunk file: the number of rows before its first group row.  Group rows (one per
#: group, replicate and fit: most of a study's rows) are stored after the chunk's other rows, in row groups
#: of their own, so a reader that needs no group row — or only a few columns of them — skips the rest
#: (:func:`row_parts`).
GROUP_START_KEY = b"compare_mm.group_rows_from"


def _group_rows_last(rows: pd.DataFrame):
    """``rows`` as an Arrow table with its group rows moved after the others, each kind in its stored
    order, and the number of rows before the first group row, recorded under :data:`GROUP_START_KEY` in
    the schema's metadata."""
    import numpy as np
    import pyarrow as pa

    table = pa.Table.from_pandas(rows, preserve_index=False)
    if "row_type" in rows.columns:
        is_group = (rows["row_type"].astype(str) == "group").to_numpy()
    else:
        is_group = np.zeros(len(rows), bool)
    start = int(len(rows) - is_group.sum())
    if 0 < start < len(rows) and is_group[:start].any():
        table = table.take(pa.array(np.concatenate([np.flatnonzero(~is_group), np.flatnonzero(is_group)])))
    meta = dict(table.schema.metadata or {})
    meta[GROUP_START_KEY] = str(start).encode()
    return table.replace_schema_metadata(meta), start


def _write_parquet(table, start: int, where: Path) -> None:
    """Write ``table`` to ``where``: rows before ``start`` in one row group, the group rows after it in
    another (:func:`_group_rows_last`)."""
    import pyarrow.parquet as pq

    with pq.ParquetWriter(where, table.schema, compression="snappy", write_statistics=False) as writer:
        for part in [p for p in (table.slice(0, start), table.slice(start)) if p.num_rows] or [table]:
            writer.write_table(part)


def row_parts(files, schema):
    """The chunk files as two Arrow datasets over ``schema`` — the rows that are not group rows, and the
    group rows — or None when a file does not store its group rows last in row groups of their own (chunks
    written before :data:`GROUP_START_KEY` existed): the callers then read whole columns and filter."""
    import pyarrow.dataset as ds

    if schema is None:  # the files' schemas do not unify (see unified_schema): no common dataset
        return None
    base = ds.dataset([str(f) for f in files], schema=schema, format="parquet")
    other, group = [], []
    for frag in base.get_fragments():
        meta = frag.physical_schema.metadata or {}
        if GROUP_START_KEY not in meta:
            return None
        start, offset, ids = int(meta[GROUP_START_KEY]), 0, ([], [])
        for i in range(frag.num_row_groups):
            n = frag.metadata.row_group(i).num_rows
            if offset < start < offset + n:  # a row group holding both kinds
                return None
            ids[offset >= start].append(i)
            offset += n
        other.append(frag.subset(row_group_ids=ids[0]))
        group.append(frag.subset(row_group_ids=ids[1]))
    return tuple(ds.FileSystemDataset(f, schema, base.format, base.filesystem) for f in (other, group))


def stored_chunks(out_dir: str | Path, manifest: dict[str, Any] | None = None) -> StoredChunks:
    """The verified chunk files of a study folder, and those skipped (see :mod:`.integrity`)."""
    out = Path(out_dir)
    return check_chunks(replicates_dir(out), read_manifest(out) if manifest is None else manifest)


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


def _verified_files(out_dir: Path, stored: StoredChunks | None) -> list[Path]:
    files = list((stored or stored_chunks(out_dir)).files)
    if not files:
        raise DataError(f"'{replicates_dir(out_dir)}' holds no finished chunks; run `compare-mm run` first.")
    return files


def read_rows(out_dir: str | Path, stored: StoredChunks | None = None) -> pd.DataFrame:
    """All stored rows of a study (every verified chunk of its plan, :func:`stored_chunks`), in plan order."""
    return read_parquet_files(_verified_files(Path(out_dir), stored))


def read_parquet_files(files) -> pd.DataFrame:
    """Rows of several Parquet chunk files, in the order given, as one frame.

    One Arrow table, converted to pandas once (reading and concatenating the files one by one as pandas
    frames cost ~10× more on a 2,000-row-per-condition study); text columns stored as dictionaries come back
    as categoricals over the union of the files' categories."""
    import pyarrow as pa  # deferred: pyarrow is heavy; imported when Parquet is read or written
    import pyarrow.parquet as pq

    if len(files) > 1:  # one dataset scan over the files' unified schema: the same table as concatenating
        table = _unified_table(files)  # the files, read several times faster
        if table is not None and table.num_rows:
            return table.to_pandas()
    tables = [pq.ParquetFile(p).read(use_threads=False) for p in files]  # threads only add overhead here
    tables = [t for t in tables if t.num_rows] or tables[:1]
    if len(tables) == 1:
        return tables[0].to_pandas()
    try:
        table = pa.concat_tables(tables, promote_options="permissive")
    except (pa.ArrowTypeError, pa.ArrowInvalid):  # a grid key stored as text in some chunks, numbers in others
        return pd.concat([t.to_pandas() for t in tables], ignore_index=True)
    table = table.replace_schema_metadata(None)  # the per-file pandas metadata would name one file's dtypes
    return table.to_pandas()


def read_split_rows(out_dir: str | Path, group_columns, stored: StoredChunks | None = None,
                    skip=()) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The stored rows of a study split for the summary: every row that is not a group row as one frame
    (all columns but those in ``skip``, in chunk order, as :func:`read_rows` gives them), and the group rows
    as Arrow arrays of ``group_columns`` only (a dict of column → NumPy array; string columns as
    ``(codes, categories)``).  A column in ``skip`` and not in ``group_columns`` is not read at all.

    Group rows are one per group, replicate and fit, so they are most of the stored rows; reading only the
    columns the shrinkage metrics use, and never turning them into a pandas frame, is what keeps
    ``compare-mm summarise`` fast.  Chunks whose schemas cannot be unified fall back to :func:`read_rows`."""
    files = _verified_files(Path(out_dir), stored)
    import pyarrow as pa  # deferred: pyarrow is heavy; imported when Parquet is read or written

    skip = {c for c in skip if c != "row_type"}
    schema = unified_schema(files)
    wanted = None if schema is None or not skip else \
        [c for c in schema.names if c not in skip or c in group_columns]
    parts = row_parts(files, schema)
    if parts is not None:  # group rows stored apart: read only the group columns of those
        cols = [c for c in group_columns if c in schema.names]
        try:
            other = parts[0].to_table(columns=[c for c in schema.names if c not in skip], use_threads=False)
            groups = parts[1].to_table(columns=cols, use_threads=False)
            return other.to_pandas(), _arrays(groups, cols)
        except (pa.ArrowTypeError, pa.ArrowInvalid, pa.ArrowNotImplementedError):
            pass  # a column that cannot be cast to the unified type: the whole-column reads below
    table = _unified_table(files, wanted, schema)
    if table is None:  # e.g. a grid key stored as text in some chunks, numbers in others
        rows = read_parquet_files(files)
        is_g = rows["row_type"].astype(str).to_numpy() == "group"
        rest = rows[~is_g].reset_index(drop=True)
        return rest[[c for c in rest.columns if c not in skip]], frame_columns(rows[is_g], group_columns)
    is_group = _equals(table.column("row_type"), "group")
    cols = [c for c in group_columns if c in table.schema.names]
    other = table.select([c for c in table.schema.names if c not in skip]).filter(pa.array(~is_group))
    groups = table.select(cols).filter(pa.array(is_group))
    return other.to_pandas(), _arrays(groups, cols)


def _arrays(groups, cols) -> dict[str, Any]:
    """The columns ``cols`` of an Arrow table of group rows as :func:`read_split_rows` gives them."""
    import pyarrow as pa

    arrays: dict[str, Any] = {}
    for c in cols:
        col = groups.column(c)
        if pa.types.is_dictionary(col.type) or pa.types.is_string(col.type) or pa.types.is_large_string(col.type):
            cat = col.to_pandas().astype("category") if not pa.types.is_dictionary(col.type) else col.to_pandas()
            arrays[c] = (cat.cat.codes.to_numpy(), list(cat.cat.categories))
        else:
            arrays[c] = col.to_numpy()
    return arrays


def _unified_table(files, columns=None, schema=None):
    """All chunk files as one Arrow table over their unified schema (one dataset scan; only ``columns`` when
    given, those the files have), or None when the schemas cannot be unified — e.g. a grid key stored as text
    in some chunks and as numbers in others — and the callers read the files one by one."""
    import pyarrow as pa  # deferred: pyarrow is heavy; imported when Parquet is read or written
    import pyarrow.dataset as ds

    schema = schema if schema is not None else unified_schema(files)  # the callers' copy: no re-read
    if schema is None:
        return None
    if columns is not None:
        columns = [c for c in columns if c in schema.names]
    try:
        return ds.dataset([str(f) for f in files], schema=schema, format="parquet").to_table(
            columns=columns, use_threads=False)
    except (pa.ArrowTypeError, pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None


def unified_schema(files):
    """The unified Arrow schema (no metadata) of the chunk files, or None when it cannot be unified."""
    import pyarrow as pa  # deferred: pyarrow is heavy; imported when Parquet is read or written
    import pyarrow.parquet as pq

    try:
        return pa.unify_schemas([pq.read_schema(f) for f in files], promote_options="permissive").remove_metadata()
    except (pa.ArrowTypeError, pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None


def _equals(column, value: str):
    """``column == value`` as a NumPy bool array (null: False); see :func:`text_mask`."""
    return text_mask(column, (value,))


def text_mask(column, values):
    """``column`` is one of the texts ``values``, as a NumPy bool array (null: False); a dictionary column
    is compared through its codes, chunk by chunk (much cheaper than comparing millions of strings)."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    values = list(values)
    parts = []
    for chunk in column.chunks:
        if pa.types.is_dictionary(chunk.type):
            names = [str(v) for v in chunk.dictionary.to_pylist()]
            hit = np.array([n in values for n in names] + [False])
            codes = chunk.indices.fill_null(len(names)).to_numpy()
            parts.append(hit[codes])
        else:
            text = chunk if pa.types.is_string(chunk.type) or pa.types.is_large_string(chunk.type) \
                else chunk.cast(pa.string())
            parts.append(pc.fill_null(pc.is_in(text, value_set=pa.array(values, pa.string())), False)
                         .to_numpy(zero_copy_only=False))
    return np.concatenate(parts) if parts else np.zeros(0, bool)


def frame_columns(rows: pd.DataFrame, columns) -> dict[str, Any]:
    """``columns`` of a frame as :func:`read_split_rows` gives the group rows' arrays."""
    out: dict[str, Any] = {}
    for c in columns:
        if c not in rows.columns:
            continue
        col = rows[c]
        if isinstance(col.dtype, pd.CategoricalDtype) or col.dtype == object or pd.api.types.is_string_dtype(col):
            cat = col.astype(str).astype("category") if not isinstance(col.dtype, pd.CategoricalDtype) else col
            out[c] = (cat.cat.codes.to_numpy(), list(cat.cat.categories))
        else:
            out[c] = col.to_numpy()
    return out


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
        "conditions": conditions, "chunks": chunks, "integrity": INTEGRITY, "status": "running",
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


__all__ = ["CHUNK_GLOB", "chunk_name", "finished_chunks", "new_manifest", "prepare_out_dir",
           "frame_columns", "read_manifest", "read_parquet_files", "read_rows", "read_split_rows",
           "remove_temporaries", "text_mask", "unified_schema", "stored_chunks", "write_chunk", "write_manifest"]
