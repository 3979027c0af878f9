"""Store integrity: one run per output folder (an OS lock the kernel releases), and only the verified
chunks of the manifest's plan are read — a truncated, corrupt, replaced, foreign or duplicated chunk file
is named in one line, never read or double-counted, and ``--resume`` quarantines and reruns a damaged one.

The reference for every "rows unchanged / nothing double-counted" assertion is an untouched run of the same
study (the rows depend on the seed only, not on how the run was split)."""

from __future__ import annotations

import errno
import json
import multiprocessing
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from compare_mm.cli import main
from compare_mm.errors import ConfigError, EnvironmentFailure
from compare_mm.study import runner as runner_mod
from compare_mm.study.budget import check_budget, estimate
from compare_mm.study.config.load import load_config
from compare_mm.study.integrity import JOURNAL
from compare_mm.study.lock import locked_out_dir
from compare_mm.study.runner import fit_workers, resume_command, run_study
from compare_mm.study.store import read_manifest, read_rows, stored_chunks

STUDY = {"name": "guard", "seed": 11, "replicates": 4, "chunk_size": 2, "model": "oneway",
         "grid": {"groups": [4], "per_group": [3], "sigma_a2": [0.0, 0.5]},
         "fits": [{"name": "reml", "backend": "reml", "method": "REML"}]}
CHUNKS = ["chunk-C0000-R000000.parquet", "chunk-C0000-R000002.parquet",
          "chunk-C0001-R000000.parquet", "chunk-C0001-R000002.parquet"]
KEYS = ["row_type", "condition", "replicate", "fit", "parameter", "group"]


def _rows(out) -> pd.DataFrame:
    frame = read_rows(out).drop(columns=["elapsed_s"])
    for c in frame.columns:
        if isinstance(frame[c].dtype, pd.CategoricalDtype):
            frame[c] = frame[c].astype(str)
    return frame.sort_values(KEYS).reset_index(drop=True)


def _n_ok(out) -> pd.Series:
    s = pd.read_csv(Path(out) / "summary.csv")
    return s.loc[s.metric == "failure_rate", "n_ok"].reset_index(drop=True)


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("guard") / "ref"
    run_study(STUDY, out, progress=False)
    return out


@pytest.fixture
def copy(reference, tmp_path) -> Path:
    out = tmp_path / "run"
    shutil.copytree(reference, out)
    return out


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _flip_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def _other_study_chunk(path: Path, tmp: Path) -> None:
    run_study(dict(STUDY, seed=12), tmp / "other", progress=False)
    shutil.copyfile(tmp / "other" / "replicates" / path.name, path)


def _drop_record(path: Path, tmp: Path) -> None:  # noqa: ARG001
    out = path.parent.parent
    man = read_manifest(out)
    for c in man["chunks"]:
        if c["name"] == path.name:
            del c["sha256"]
    (out / "manifest.json").write_text(json.dumps(man))
    lines = (out / JOURNAL).read_text().splitlines()
    (out / JOURNAL).write_text("".join(ln + "\n" for ln in lines if path.name not in ln))


DAMAGE = [
    # id, damage(path, tmp), the reason named
    ("truncated", lambda p, t: _truncate(p), "its checksum differs from the one recorded when it was written"),
    ("flipped-byte", lambda p, t: _flip_byte(p), "its checksum differs from the one recorded when it was written"),
    ("emptied", lambda p, t: p.write_bytes(b""), "its checksum differs from the one recorded when it was written"),
    ("other-study", _other_study_chunk, "its checksum differs from the one recorded when it was written"),
    ("no-record", _drop_record, "no record of it being written by this study"),
]


@pytest.mark.parametrize("damage,why", [d[1:] for d in DAMAGE], ids=[d[0] for d in DAMAGE])
def test_damaged_chunk_is_named_skipped_then_quarantined_and_rerun(copy, reference, tmp_path, capsys, damage, why):
    bad = copy / "replicates" / CHUNKS[1]
    damage(bad, tmp_path)
    assert main(["summarise", str(copy)]) == 0
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"note: skipped 1 chunk file: {CHUNKS[1]} ({why}); the results use the 3 verified chunks."]
    n_ok = _n_ok(copy)
    assert list(n_ok) == [0, 2] or list(n_ok) == [1, 2] or n_ok.sum() == _n_ok(reference).sum() - 2
    assert n_ok.sum() == _n_ok(reference).sum() - 2  # the two replicates of the skipped chunk

    notes: list[str] = []
    res = run_study(STUDY, copy, resume=True, progress=False, note=notes.append)
    assert notes == [f"{CHUNKS[1]} is damaged ({why}); moved it to {copy / 'quarantine'} and will rerun it."]
    assert res.chunks_run == 1
    assert (copy / "quarantine" / CHUNKS[1]).is_file()
    assert stored_chunks(copy).note() is None
    pd.testing.assert_frame_equal(_rows(copy), _rows(reference))
    pd.testing.assert_series_equal(_n_ok(copy), _n_ok(reference))


FOREIGN = [
    # id, name of the extra file, which stored chunk it copies
    ("duplicate-copy", "chunk-C0000-R000000 (1).parquet", CHUNKS[0]),
    ("outside-plan", "chunk-C0009-R000000.parquet", CHUNKS[2]),
    ("renamed-extension", "chunk-C0000-R000002.copy.parquet", CHUNKS[1]),
]


@pytest.mark.parametrize("name,source", [f[1:] for f in FOREIGN], ids=[f[0] for f in FOREIGN])
def test_foreign_or_duplicated_chunk_is_ignored_and_named(copy, reference, capsys, name, source):
    shutil.copyfile(copy / "replicates" / source, copy / "replicates" / name)
    assert main(["summarise", str(copy)]) == 0
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"note: skipped 1 chunk file: {name} (not a chunk of this study's plan); "
                   f"the results use the 4 verified chunks."]
    pd.testing.assert_series_equal(_n_ok(copy), _n_ok(reference))  # nothing double-counted
    pd.testing.assert_frame_equal(_rows(copy), _rows(reference))
    notes: list[str] = []
    assert run_study(STUDY, copy, resume=True, progress=False, note=notes.append).chunks_run == 0
    assert notes == [f"ignored replicates/{name} (not a chunk of this study's plan)."]


def test_a_torn_journal_line_leaves_its_chunk_unrecorded(copy, reference):
    """A process killed while appending a record: the torn line is ignored, the chunk counts as unwritten
    and --resume reruns it (the records of the manifest are those of the last finished session)."""
    man = read_manifest(copy)
    for c in man["chunks"]:
        if c["name"] == CHUNKS[3]:
            del c["sha256"]
    (copy / "manifest.json").write_text(json.dumps(man))
    lines = (copy / JOURNAL).read_text().splitlines()
    torn = [ln for ln in lines if CHUNKS[3] not in ln] + [next(ln for ln in lines if CHUNKS[3] in ln)[:40]]
    (copy / JOURNAL).write_text("\n".join(torn))
    notes: list[str] = []
    assert run_study(STUDY, copy, resume=True, progress=False, note=notes.append).chunks_run == 1
    assert notes == [f"{CHUNKS[3]} is damaged (no record of it being written by this study); moved it to "
                     f"{copy / 'quarantine'} and will rerun it."]
    pd.testing.assert_frame_equal(_rows(copy), _rows(reference))


def test_many_skipped_files_stay_one_line(copy):
    for k in range(6):
        shutil.copyfile(copy / "replicates" / CHUNKS[0], copy / "replicates" / f"chunk-C0000-R000000-{k}.parquet")
    note = stored_chunks(copy).note()
    assert "\n" not in note and note.startswith("skipped 6 chunk files: ") and note.count("(not a chunk") == 4
    assert note.endswith("; and 2 more; the results use the 4 verified chunks.")


def test_legacy_folder_is_checked_by_content(copy, reference):
    """A folder written before chunks were recorded: no records, so each chunk's rows are checked."""
    man = read_manifest(copy)
    del man["integrity"]
    for c in man["chunks"]:
        for k in ("sha256", "rows", "config_hash"):
            c.pop(k, None)
    (copy / "manifest.json").write_text(json.dumps(man))
    (copy / JOURNAL).unlink()
    assert stored_chunks(copy).note() is None
    pd.testing.assert_frame_equal(_rows(copy), _rows(reference))
    shutil.copyfile(copy / "replicates" / CHUNKS[0], copy / "replicates" / CHUNKS[1])  # replicates 0-1 as 2-3
    shutil.copyfile(copy / "replicates" / CHUNKS[2], copy / "replicates" / CHUNKS[3])  # condition 1's 0-1 as 2-3
    _truncate(copy / "replicates" / CHUNKS[0])
    st = stored_chunks(copy)
    assert [p.name for p in st.files] == [CHUNKS[2]]
    assert [b[0] for b in st.bad] == [CHUNKS[0], CHUNKS[1], CHUNKS[3]]
    assert st.bad[0][1].startswith("not a readable Parquet file: ")
    assert st.bad[1][1] == "holds replicates outside 2–3" and st.bad[2][1] == "holds replicates outside 2–3"


def test_folder_without_plan_reads_every_readable_chunk(copy, reference):
    (copy / "manifest.json").unlink()
    _truncate(copy / "replicates" / CHUNKS[3])
    st = stored_chunks(copy)
    assert [p.name for p in st.files] == CHUNKS[:3]
    assert [b[0] for b in st.bad] == [CHUNKS[3]]
    assert len(read_rows(copy)) == len(read_rows(reference)) * 3 // 4


def test_report_reads_only_verified_chunks(copy, reference):
    from compare_mm.report.load import read_replicates

    shutil.copyfile(copy / "replicates" / CHUNKS[0], copy / "replicates" / "chunk-C0000-R000000 (1).parquet")
    _flip_byte(copy / "replicates" / CHUNKS[3])
    rows = read_replicates(copy)
    assert len(rows) == len(read_rows(reference)) * 3 // 4
    assert not rows.duplicated(KEYS).any()


@pytest.mark.slow
def test_report_names_the_skipped_chunk(copy, capsys):
    _truncate(copy / "replicates" / CHUNKS[2])
    assert main(["summarise", str(copy)]) == 0
    capsys.readouterr()
    assert main(["report", str(copy)]) == 0
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"note: skipped 1 chunk file: {CHUNKS[2]} (its checksum differs from the one recorded when "
                   f"it was written); the results use the 3 verified chunks."]
    assert (copy / "report.html").is_file()


# ---------------------------------------------------------------------------- the lock
def test_second_run_into_a_running_folder_refuses_and_the_first_completes(tmp_path, reference, capsys):
    other = tmp_path / "other.yaml"
    other.write_text(json.dumps(dict(STUDY, seed=99)))  # JSON is YAML
    out = tmp_path / "run"
    refusals: list[tuple[int, str]] = []

    def second(chunk):
        if not refusals:  # while the first run holds the folder, start another run into it
            code = main(["run", str(other), "--out", str(out), "--quiet", "--no-report"])
            refusals.append((code, capsys.readouterr().err))

    run_study(STUDY, out, progress=False, on_chunk=second)
    (code, err), = refusals
    assert code == 2
    assert err.splitlines() == [f"compare-mm run: error: --out: '{out}' is in use by another run (pid {os.getpid()}, "
                                f"started {err.split('started ')[1].split(')')[0]}); wait for it to finish or "
                                f"choose another directory."]
    assert read_manifest(out)["seed"] == 11 and "seed: 11" in (out / "config.yaml").read_text()
    pd.testing.assert_frame_equal(_rows(out), _rows(reference))


@pytest.mark.slow
def test_a_killed_holder_leaves_no_stale_lock(tmp_path, reference):
    out = tmp_path / "run"
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time\nfrom compare_mm.study.lock import "
                               "locked_out_dir\nwith locked_out_dir(sys.argv[1]):\n print('held', flush=True)\n"
                               " time.sleep(120)\n", str(out)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(ConfigError, match=rf"^--out: '{out}' is in use by another run \(pid {holder.pid}, "):
            run_study(STUDY, out, progress=False)
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    run_study(STUDY, out, progress=False)  # the kernel released the dead process's lock
    pd.testing.assert_frame_equal(_rows(out), _rows(reference))


def _sleep(started):
    import time
    started.set()  # the child runs Python code: its fork hooks have run
    time.sleep(30)


def test_forked_children_do_not_hold_the_lock(tmp_path):
    ctx = multiprocessing.get_context("fork")
    started = ctx.Event()
    with locked_out_dir(tmp_path / "o"):
        child = ctx.Process(target=_sleep, args=(started,))
        child.start()
        assert started.wait(60)
    try:
        with locked_out_dir(tmp_path / "o"):  # the child is alive, but the lock went with its owner's release
            pass
    finally:
        child.kill()
        child.join()


# ---------------------------------------------------------------------------- write failures
def _failing_after(n: int, err: int):
    from compare_mm.study import store

    real, calls = store._write_parquet, []

    def write_parquet(table, start, where):
        calls.append(where)
        if len(calls) > n:
            Path(where).write_bytes(b"PAR1 partial")  # the disk fills part-way through the file
            raise OSError(err, os.strerror(err), str(where))
        return real(table, start, where)

    return write_parquet


@pytest.mark.parametrize("err", [errno.ENOSPC, errno.EROFS, errno.EDQUOT], ids=["ENOSPC", "EROFS", "EDQUOT"])
def test_write_failure_is_one_line_keeps_stored_chunks_and_resumes(tmp_path, reference, monkeypatch, capsys, err):
    from compare_mm.study import store

    study = tmp_path / "study.yaml"
    study.write_text(json.dumps(STUDY))
    out = tmp_path / "run"
    monkeypatch.setattr(store, "_write_parquet", _failing_after(2, err))
    code = main(["run", str(study), "--out", str(out), "--quiet", "--no-report"])
    lines = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and len(lines) == 1, lines
    assert lines[0].startswith(f"compare-mm run: error: cannot write '{out / 'replicates'}/.chunk-C0001-R000000.parquet.")
    assert lines[0].endswith(f" ({os.strerror(err)}); 2 of 4 chunks are stored in {out} — free space or fix the "
                             f"folder, then continue with `compare-mm run {study} --out {out} --resume`.")
    assert read_manifest(out)["status"] == "failed"
    assert [p.name for p in stored_chunks(out).files] == CHUNKS[:2]
    assert not [p for p in (out / "replicates").iterdir() if p.name.startswith(".")]
    monkeypatch.undo()
    assert main(["run", str(study), "--out", str(out), "--resume", "--quiet", "--no-report"]) == 0
    pd.testing.assert_frame_equal(_rows(out), _rows(reference))


def test_journal_write_failure_is_one_line(tmp_path, monkeypatch):
    from compare_mm.study import integrity

    real = integrity.os.fsync
    monkeypatch.setattr(integrity.os, "fsync", lambda fd: (_ for _ in ()).throw(OSError(errno.ENOSPC, "No space left on device")))
    with pytest.raises(EnvironmentFailure, match=r"\(No space left on device\); 0 of 4 chunks are stored in "):
        run_study(STUDY, tmp_path / "run", progress=False)
    monkeypatch.setattr(integrity.os, "fsync", real)
    assert read_manifest(tmp_path / "run")["status"] == "failed"


@pytest.mark.parametrize("where,err,message", [
    ("mkdir", errno.EACCES, "--out: cannot create '{out}' (Permission denied)."),
    ("mkdir", errno.EROFS, "--out: cannot create '{out}' (Read-only file system)."),
    ("lock", errno.EACCES, "--out: cannot write to '{out}' (Permission denied)."),
    ("lock", errno.EROFS, "--out: cannot write to '{out}' (Read-only file system)."),
], ids=["mkdir-EACCES", "mkdir-EROFS", "lock-EACCES", "lock-EROFS"])
def test_unwritable_out_is_one_line_exit_1(tmp_path, monkeypatch, capsys, where, err, message):
    """A read-only folder (simulated: these tests may run as root, who can write anywhere)."""
    from compare_mm.study import lock

    study = tmp_path / "study.yaml"
    study.write_text(json.dumps(STUDY))
    out = tmp_path / "ro" / "run"
    if where == "mkdir":
        monkeypatch.setattr(lock.Path, "mkdir", lambda *a, **k: (_ for _ in ()).throw(OSError(err, os.strerror(err))))
    else:
        out.mkdir(parents=True)
        real = lock.os.open
        monkeypatch.setattr(lock.os, "open", lambda p, *a, **k: (_ for _ in ()).throw(OSError(err, os.strerror(err)))
                            if str(p).endswith(".lock") else real(p, *a, **k))
    code = main(["run", str(study), "--out", str(out), "--quiet", "--no-report"])
    assert code == 1
    assert capsys.readouterr().err.splitlines() == [f"compare-mm run: error: {message.format(out=out)}"]


# ---------------------------------------------------------------------------- resource limits
def test_workers_are_capped_at_the_chunks_to_run(tmp_path, monkeypatch):
    seen = {}
    monkeypatch.setattr(runner_mod, "run_tasks", lambda payload, pending, store, workers, scheduler:
                        seen.update(workers=workers, pending=len(pending)))
    monkeypatch.setattr(runner_mod, "write_summary", lambda out, stored: pd.DataFrame())
    monkeypatch.setattr(runner_mod, "usable_cores", lambda: 2)
    notes: list[str] = []
    run_study(STUDY, tmp_path / "o", workers=500, progress=False, note=notes.append)
    assert seen == {"workers": 4, "pending": 4}
    assert notes == ["--workers 500: starting 4, one per chunk to run.",
                     "--workers 4 is more than the 2 CPU cores here; the workers will share them (each takes "
                     "memory for its own process)."]


@pytest.mark.parametrize("workers,chunks,cores,used,n_notes", [(2, 10, 2, 2, 0), (3, 10, 2, 3, 1), (8, 3, 4, 3, 1),
                                                               (1, 1, 1, 1, 0)])
def test_fit_workers(monkeypatch, workers, chunks, cores, used, n_notes):
    monkeypatch.setattr(runner_mod, "usable_cores", lambda: cores)
    notes: list[str] = []
    assert fit_workers(workers, chunks, notes.append) == used and len(notes) == n_notes


def test_row_estimate_is_the_stored_row_count(reference):
    """The estimate counts per replicate and fit: 3 parameters + 1 fit row + 4 groups (one-way, 4 groups)."""
    est = estimate(load_config(STUDY))
    assert est.rows == len(read_rows(reference)) == 2 * 4 * (3 + 1 + 4)
    assert not est.over()


@pytest.mark.parametrize("replicates,grid,message", [
    (1_000_000_000, {"sigma_a2": [0.5]}, "replicates: 1000000000 (1 condition × 1 fit) would store ~8e+09 rows, "
     "~320 GB on disk and take ~46.3 days by a rough estimate; pass --yes to run it anyway, or lower replicates."),
    (10_000_000, {"sigma_a2": [0.0, 0.5]}, "replicates: 10000000 (2 conditions × 1 fit) would store ~1.6e+08 rows, "
     "~6.4 GB on disk and take ~22.2 hours by a rough estimate; pass --yes to run it anyway, or lower replicates."),
])
def test_huge_study_needs_yes(tmp_path, capsys, replicates, grid, message):
    study = tmp_path / "huge.yaml"
    study.write_text(json.dumps(dict(STUDY, replicates=replicates, chunk_size=None,
                                     grid=dict(STUDY["grid"], **grid))))
    out = tmp_path / "huge"
    assert main(["run", str(study), "--out", str(out), "--quiet"]) == 2
    assert capsys.readouterr().err.splitlines() == [f"compare-mm run: error: {message}"]
    assert not out.exists()  # refused before anything was written
    assert check_budget(load_config(study), yes=True).over()


def test_resume_command_keeps_yes(tmp_path):
    assert resume_command("s.yaml", tmp_path, 2, None, yes=True).endswith("--resume --workers 2 --yes")


def test_resume_finishes_the_stored_plan_when_this_version_plans_other_chunks(tmp_path, reference, monkeypatch):
    """A run started by a version that cut the replicates into other chunks (chunk sizes follow fit costs and
    change between versions) is resumed on its stored plan: the rows equal an untouched run's, no replicate
    is stored twice, and no chunk of the new plan is written beside the old ones."""
    from compare_mm.study import plan as plan_mod
    from compare_mm.study.plan import Chunk

    real = plan_mod.plan_chunks
    old_plan = lambda cfg: [Chunk(c.condition, a, min(a + 1, c.stop))           # one replicate a chunk
                            for c in real(cfg) for a in range(c.start, c.stop)]
    out = tmp_path / "run"
    monkeypatch.setattr(runner_mod, "plan_chunks", old_plan)
    written: list[str] = []

    def stop_after_two(chunk):
        written.append(chunk.name)
        if len(written) == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_study(STUDY, out, progress=False, on_chunk=stop_after_two)
    monkeypatch.setattr(runner_mod, "plan_chunks", real)            # the "new version" plans other chunks
    run_study(STUDY, out, resume=True, progress=False)
    names = sorted(p.name for p in (out / "replicates").glob("*.parquet"))
    expected = sorted(c.name + ".parquet" for c in old_plan(load_config(STUDY)))
    assert [n.split(".")[0] for n in names] == [n.split(".")[0] for n in expected]
    pd.testing.assert_frame_equal(_rows(out), _rows(reference))
