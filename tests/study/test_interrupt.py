"""Ctrl-C / SIGTERM during `compare-mm run`: one line, exit 130, manifest "interrupted", and `--resume`
finishes with the rows of an uninterrupted run; the run time sums every session."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

from compare_mm.study.runner import run_study

STUDY = {"name": "intr", "seed": 3, "replicates": 48, "chunk_size": 4, "model": "oneway",
         "grid": {"groups": [6], "per_group": [[2, 3, 4, 3, 2, 5]], "sigma_a2": [0.0, 0.3]},
         "fits": [{"name": "reml", "backend": "reml", "method": "REML"},
                  {"name": "sm", "backend": "statsmodels", "method": "REML"}]}
KEYS = ["row_type", "condition", "replicate", "fit", "parameter", "group"]


def _default_sigint() -> None:
    """In the child: SIGINT back to its default, as in a terminal.  A test run started in the background
    of a non-interactive shell (a CI script's ``cmd &``) inherits SIGINT ignored, and Python then installs
    no KeyboardInterrupt handler, so the interrupt under test would never arrive."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _cli(*args: str, **kw) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "compare_mm", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, preexec_fn=_default_sigint, **kw)


def _wait_for_chunks(out: Path, n: int, proc: subprocess.Popen, timeout: float = 180) -> None:
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        folder = out / "replicates"
        if folder.is_dir() and len(list(folder.glob("chunk-*.parquet"))) >= n:
            return
        if proc.poll() is not None:
            pytest.fail(f"the run ended before {n} chunks were stored: {proc.communicate()}")
        time.sleep(0.1)
    pytest.fail("no chunks stored in time")


def _progress_free(text: str) -> list[str]:
    """Lines of output that are not the progress bar (tqdm redraws with carriage returns)."""
    lines = [seg.strip() for line in text.splitlines() for seg in line.split("\r")]
    return [ln for ln in lines if ln and "|" not in ln]


@pytest.mark.slow
def test_sigint_under_two_workers_then_resume(tmp_path, rows_of):
    study = tmp_path / "intr.yaml"
    study.write_text(yaml.safe_dump(STUDY, sort_keys=False))
    out = tmp_path / "run"
    # a new session, and SIGINT to its whole process group: what Ctrl-C in a terminal does
    proc = _cli("run", str(study), "--out", str(out), "--workers", "2", "--no-report", start_new_session=True)
    _wait_for_chunks(out, 3, proc)
    os.killpg(proc.pid, signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, (stdout, stderr)
    assert "Traceback" not in stderr and "Error" not in stderr, stderr  # no worker or asyncio tracebacks
    lines = _progress_free(stdout) + _progress_free(stderr)
    assert len(lines) == 1, lines
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["status"] == "interrupted"
    stored = len(list((out / "replicates").glob("chunk-*.parquet")))
    assert f"{stored} of 24 chunks are stored" in lines[0] and "--resume" in lines[0]
    assert 0 < stored < 24
    first = manifest["elapsed_s"]
    assert first > 0 and len(manifest["sessions"]) == 1

    done = _cli("run", str(study), "--out", str(out), "--resume", "--no-report", "--quiet")
    stdout, stderr = done.communicate(timeout=300)
    assert done.returncode == 0, (stdout, stderr)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["status"] == "complete"
    assert [s["status"] for s in manifest["sessions"]] == ["interrupted", "complete"]
    assert manifest["elapsed_s"] == pytest.approx(sum(s["elapsed_s"] for s in manifest["sessions"]), abs=1e-2)
    assert manifest["elapsed_s"] > first

    run_study(STUDY, tmp_path / "whole", progress=False)
    pd.testing.assert_frame_equal(rows_of(out, KEYS), rows_of(tmp_path / "whole", KEYS))


def test_sigterm_serial_marks_the_manifest(tmp_path):
    study = tmp_path / "intr.yaml"
    study.write_text(yaml.safe_dump(dict(STUDY, replicates=400), sort_keys=False))
    out = tmp_path / "run"
    proc = _cli("run", str(study), "--out", str(out), "--no-report", "--quiet")
    _wait_for_chunks(out, 1, proc)
    proc.send_signal(signal.SIGTERM)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, (stdout, stderr)
    assert not stdout.strip() and len(stderr.strip().splitlines()) == 1
    assert "--resume" in stderr
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["status"] == "interrupted" and manifest["sessions"][0]["status"] == "interrupted"


def test_report_run_time_sums_sessions(tmp_path):
    from compare_mm.report.load import load_study
    from compare_mm.report.tables import reproducibility

    small = dict(STUDY, replicates=4, fits=STUDY["fits"][:1])
    run_study(small, tmp_path / "r", progress=False)
    path = tmp_path / "r" / "manifest.json"
    man = json.loads(path.read_text())
    man["sessions"].insert(0, {"elapsed_s": 100.0, "status": "interrupted"})
    man["elapsed_s"] = sum(s["elapsed_s"] for s in man["sessions"])
    path.write_text(json.dumps(man))
    info = reproducibility(load_study(tmp_path / "r"))
    assert info["run time"].startswith(f"{man['elapsed_s']:.1f} s") and "2 sessions" in info["run time"]
