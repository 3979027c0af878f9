"""A run killed with SIGKILL part-way, then resumed, equals an uninterrupted run; --resume refuses a
changed config."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest
import yaml

from compare_mm.errors import ConfigError
from compare_mm.study.runner import run_study
from compare_mm.study.store import CHUNK_GLOB, read_rows

STUDY = {"name": "killme", "seed": 5, "replicates": 60, "chunk_size": 3, "model": "oneway",
         "grid": {"per_group": [[2, 3, 4, 3, 2, 5]], "sigma_a2": [0.0, 0.5]},
         "fits": [{"name": "reml", "backend": "reml", "method": "REML"}]}
KEYS = ["row_type", "condition", "replicate", "fit", "parameter", "group"]


def _summary(out):
    s = pd.read_csv(out / "summary.csv")
    return s[s.metric != "mean_elapsed_s"].reset_index(drop=True)


def test_sigkill_then_resume_equals_uninterrupted(tmp_path):
    study_file = tmp_path / "study.yaml"
    study_file.write_text(yaml.safe_dump(STUDY))
    out = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, "-m", "compare_mm", "run", str(study_file), "--out", str(out),
                             "--no-report", "--quiet"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 240
    while time.time() < deadline and proc.poll() is None:
        if (out / "replicates").is_dir() and any((out / "replicates").glob(CHUNK_GLOB)):
            break
        time.sleep(0.02)
    assert proc.poll() is None, "the run finished before it could be killed: " + proc.stderr.read().decode()
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    n_total = 2 * 60 // 3
    done_before = len(list((out / "replicates").glob(CHUNK_GLOB)))
    assert 1 <= done_before < n_total
    assert not (out / "summary.csv").exists()

    res = run_study(study_file, out, resume=True, progress=False)
    assert res.chunks_run == n_total - done_before
    chunks = sorted((out / "replicates").glob(CHUNK_GLOB))
    assert len(chunks) == n_total
    assert not [p for p in (out / "replicates").iterdir() if p.name.startswith(".")]
    for p in chunks:  # every chunk is readable and holds exactly its replicates
        rows = pd.read_parquet(p)
        start = int(p.stem.split("-R")[1])
        assert sorted(set(rows.replicate)) == list(range(start, start + 3))
    rows = read_rows(out)
    assert not rows.duplicated(KEYS).any()

    ref = tmp_path / "ref"
    run_study(study_file, ref, progress=False)
    pd.testing.assert_frame_equal(_summary(out), _summary(ref))
    a = read_rows(out).drop(columns="elapsed_s").sort_values(KEYS).reset_index(drop=True)
    b = read_rows(ref).drop(columns="elapsed_s").sort_values(KEYS).reset_index(drop=True)
    pd.testing.assert_frame_equal(a.astype(str), b.astype(str))


def test_resume_refuses_changed_config_and_reuse_without_resume(tmp_path):
    small = dict(STUDY, replicates=6)
    run_study(small, tmp_path / "o", progress=False)
    with pytest.raises(ConfigError, match=r"^--resume: the config hash [0-9a-f]{12} differs from the stored "
                                          r"run's [0-9a-f]{12}"):
        run_study(dict(small, seed=6), tmp_path / "o", resume=True, progress=False)
    with pytest.raises(ConfigError, match="already holds a study; pass --resume"):
        run_study(small, tmp_path / "o", progress=False)
    res = run_study(small, tmp_path / "o", resume=True, progress=False)  # nothing left to do
    assert res.chunks_run == 0 and res.chunks_total == 4
