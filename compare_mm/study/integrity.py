"""Which stored chunk files a study may read: the chunks of the manifest's plan, each verified against the
record written with it.

When a chunk is written (:func:`compare_mm.study.store.write_chunk`), one JSON line is appended to
``DIR/chunks.jsonl``: its name, condition, replicate range, row count, the config hash of the run and the
SHA-256 of the file.  At the end of each session the records are also copied into the chunk entries of
``manifest.json``.  A reader (``summarise``, ``report``, ``--resume``) then takes a file only when

* its name is a chunk of the manifest's plan (anything else in ``replicates/`` — a chunk copied in from
  another study, ``chunk-… (1).parquet`` — is ignored and named);
* its record exists, names the manifest's config hash and the plan's condition and replicates, and its
  SHA-256 and row count match the file (a truncated, corrupt or replaced file is skipped and named;
  ``--resume`` moves it to ``DIR/quarantine/`` and reruns it).

Folders written before chunks were recorded (no ``"integrity"`` key in the manifest) have their chunks
checked by content instead: readable, of the plan's condition, within its replicate range.  A folder with
no plan at all (a hand-made one) has every readable ``chunk-*.parquet`` read.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: the version of chunk records a run writes (``manifest["integrity"]``)
INTEGRITY = 1
JOURNAL = "chunks.jsonl"
RECORD_KEYS = ("condition", "start", "stop", "rows", "sha256", "config_hash")


def file_sha256(path: Path) -> str:
    """Hex SHA-256 of a file's bytes."""
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def append_record(out_dir: Path, record: dict[str, Any]) -> None:
    """Append one chunk record to ``DIR/chunks.jsonl`` and flush it to disk (after a line torn by a killed
    process, on a line of its own)."""
    line = (json.dumps(record, sort_keys=True) + "\n").encode("utf-8")
    with open(Path(out_dir) / JOURNAL, "ab+") as fh:
        if fh.tell() > 0:
            fh.seek(-1, os.SEEK_END)
            if fh.read(1) != b"\n":
                line = b"\n" + line
        fh.write(line)
        fh.flush()
        os.fsync(fh.fileno())


def chunk_records(out_dir: Path, manifest: dict[str, Any] | None) -> dict[str, dict[str, Any]]:
    """Chunk name → its latest record: the manifest's chunk entries that carry one, then the journal's
    lines in order (a torn last line, from a killed process, is ignored)."""
    records = {c["name"]: c for c in (manifest or {}).get("chunks") or [] if "sha256" in c}
    path = Path(out_dir) / JOURNAL
    if path.is_file():
        for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
            try:
                rec = json.loads(line)
            except ValueError:
                continue
            if isinstance(rec, dict) and "name" in rec:
                records[rec["name"]] = rec
    return records


def merge_records(out_dir: Path, manifest: dict[str, Any]) -> None:
    """Copy the latest record of every chunk into its entry of ``manifest["chunks"]`` (in place)."""
    records = chunk_records(out_dir, manifest)
    for entry in manifest.get("chunks") or []:
        rec = records.get(entry["name"])
        if rec is not None:
            entry.update({k: rec[k] for k in RECORD_KEYS if k in rec})


@dataclass(frozen=True)
class StoredChunks:
    """The outcome of :func:`check_chunks`."""

    #: verified chunk files, in plan order
    files: tuple[Path, ...]
    #: chunk files of the plan that failed verification: (file name, why)
    bad: tuple[tuple[str, str], ...] = ()
    #: files in ``replicates/`` that are no chunk of the plan: (file name, why)
    foreign: tuple[tuple[str, str], ...] = ()

    @property
    def names(self) -> set[str]:
        return {p.name for p in self.files}

    def note(self, limit: int = 4) -> str | None:
        """One line naming the files not read, or None when every file was read."""
        skipped = list(self.bad) + list(self.foreign)
        if not skipped:
            return None
        shown = "; ".join(f"{name} ({why})" for name, why in skipped[:limit])
        more = f"; and {len(skipped) - limit} more" if len(skipped) > limit else ""
        plural = "s" if len(skipped) > 1 else ""
        return (f"skipped {len(skipped)} chunk file{plural}: {shown}{more}; the results use the "
                f"{len(self.files)} verified chunk{'s' if len(self.files) != 1 else ''}.")


def check_chunks(folder: Path, manifest: dict[str, Any] | None) -> StoredChunks:
    """Verify the chunk files in ``folder`` (``DIR/replicates``) against the manifest (see the module)."""
    folder = Path(folder)
    present = {p.name: p for p in sorted(folder.glob("*.parquet")) if not p.name.startswith(".")} \
        if folder.is_dir() else {}
    plan = (manifest or {}).get("chunks")
    if not plan:  # a folder without a plan: every readable chunk file
        good, bad = [], []
        for name, path in present.items():
            if not name.startswith("chunk-"):
                continue
            why = _unreadable(path)
            (bad.append((name, why)) if why else good.append(path))
        return StoredChunks(tuple(good), tuple(bad))
    records = chunk_records(folder.parent, manifest) if manifest.get("integrity") else {}
    good, bad = [], []
    for entry in plan:
        path = present.pop(entry["name"], None)
        if path is None:
            continue
        why = (_against_record(path, entry, records.get(entry["name"]), manifest.get("config_hash"))
               if manifest.get("integrity") else _against_content(path, entry))
        (bad.append((path.name, why)) if why else good.append(path))
    foreign = tuple((name, "not a chunk of this study's plan") for name in present)
    return StoredChunks(tuple(good), tuple(bad), foreign)


def _against_record(path: Path, entry: dict[str, Any], rec: dict[str, Any] | None, config_hash: Any) -> str | None:
    if rec is None:
        return "no record of it being written by this study"
    if rec.get("config_hash") != config_hash:
        return f"written by another study (config hash {str(rec.get('config_hash'))[:12]})"
    if any(rec.get(k) != entry.get(k) for k in ("condition", "start", "stop")):
        return "its record does not match the plan's condition and replicates"
    if file_sha256(path) != rec.get("sha256"):
        return "its checksum differs from the one recorded when it was written"
    rows = _num_rows(path)
    if rows != rec.get("rows"):
        return f"it holds {rows} rows, not the {rec.get('rows')} written"
    return None


def _against_content(path: Path, entry: dict[str, Any]) -> str | None:
    """A chunk of a folder written before chunks were recorded: readable, of its condition and replicates."""
    import pyarrow.parquet as pq  # deferred: pyarrow is heavy; imported when Parquet is read or written
    import numpy as np

    try:
        table = pq.read_table(path, columns=["condition", "replicate"], use_threads=False)
    except Exception as exc:  # noqa: BLE001 — pyarrow raises several types for a damaged file
        return f"not a readable Parquet file: {_first_line(exc)}"
    cond = np.unique(table.column("condition").to_numpy())
    reps = table.column("replicate").to_numpy()
    if len(cond) and (len(cond) > 1 or int(cond[0]) != int(entry["condition"])):
        return f"holds rows of condition {', '.join(str(int(c)) for c in cond)}, not {entry['condition']}"
    if len(reps) and (reps.min() < entry["start"] or reps.max() >= entry["stop"]):
        return f"holds replicates outside {entry['start']}–{entry['stop'] - 1}"
    return None


def _num_rows(path: Path) -> int | None:
    import pyarrow.parquet as pq  # deferred: pyarrow is heavy; imported when Parquet is read or written

    try:
        return int(pq.read_metadata(path).num_rows)
    except Exception:  # noqa: BLE001
        return None


def _unreadable(path: Path) -> str | None:
    import pyarrow.parquet as pq  # deferred: pyarrow is heavy; imported when Parquet is read or written

    try:
        pq.read_table(path, use_threads=False)
    except Exception as exc:  # noqa: BLE001 — pyarrow raises several types for a damaged file
        return f"not a readable Parquet file: {_first_line(exc)}"
    return None


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def quarantine(out_dir: Path, names) -> Path:
    """Move the named chunk files of ``DIR/replicates`` into ``DIR/quarantine/`` (an existing file of the
    same name there gets a numbered suffix); returns the quarantine folder."""
    src = Path(out_dir) / "replicates"
    dest = Path(out_dir) / "quarantine"
    dest.mkdir(exist_ok=True)
    for name in names:
        target, k = dest / name, 1
        while target.exists():
            target, k = dest / f"{name}.{k}", k + 1
        os.replace(src / name, target)
    return dest


__all__ = ["INTEGRITY", "JOURNAL", "StoredChunks", "append_record", "check_chunks", "chunk_records",
           "file_sha256", "merge_records", "quarantine"]
