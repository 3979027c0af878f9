"""Results do not depend on the executor, the number of workers or the chunking."""

from __future__ import annotations

import pandas as pd
import pytest
from compare_mm.study.runner import run_study

STUDY = {"name": "w", "seed": 11, "replicates": 12, "chunk_size": 4, "model": "oneway",
         "grid": {"groups": [5], "per_group": [3, [2, 3, 4, 3, 2]], "sigma_a2": [0.3]},
         "fits": [{"name": "reml", "backend": "reml", "method": "REML"},
                  {"name": "ml", "backend": "reml", "method": "ML", "replicates": 7}]}
KEYS = ["row_type", "condition", "replicate", "fit", "parameter", "group"]


def test_one_and_two_workers_give_identical_rows(tmp_path, rows_of):
    run_study(STUDY, tmp_path / "w1", workers=1, progress=False)
    run_study(STUDY, tmp_path / "w2", workers=2, progress=False)
    a, b = rows_of(tmp_path / "w1", KEYS), rows_of(tmp_path / "w2", KEYS)
    assert len(a) > 0 and (a["ok"]).all()
    assert set(a.fit) == {"reml", "ml", "F-test"}
    pd.testing.assert_frame_equal(a, b)
    # serial, with another chunking, gives the same rows too
    run_study(dict(STUDY, chunk_size=5), tmp_path / "s", progress=False)
    pd.testing.assert_frame_equal(a, rows_of(tmp_path / "s", KEYS))
    # unbalanced condition went through the backend, balanced one through the closed forms
    assert a[(a.condition == 1) & (a.fit == "reml")].converged.all()
    # the capped fit ran on replicates 0..6 only
    assert sorted(set(a[a.fit == "ml"].replicate)) == list(range(7))


def test_existing_scheduler_gives_identical_rows(tmp_path, rows_of):
    from dask.distributed import LocalCluster

    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None) as cluster:
        run_study(STUDY, tmp_path / "d", scheduler=cluster.scheduler_address, progress=False)
    run_study(STUDY, tmp_path / "s", progress=False)
    pd.testing.assert_frame_equal(rows_of(tmp_path / "d", KEYS), rows_of(tmp_path / "s", KEYS))


@pytest.mark.slow
def test_pymc_study_on_forked_workers_matches_serial(tmp_path, monkeypatch, rows_of):
    """Local workers are forked after the client compiled the PyMC model (executors.warm_pymc): the
    workers use it (no compile of their own) and give the rows of a serial run with the same seeds."""
    import compare_mm.study.executors as ex
    from compare_mm.backends.pymc import backend as pymc

    study = {"name": "wp", "seed": 5, "replicates": 4, "chunk_size": 2, "model": "oneway",
             "grid": {"groups": [6], "per_group": [4], "sigma_a2": [0.5]},
             "fits": [{"name": "bayes", "backend": "pymc", "draws": 60, "tune": 60, "chains": 2,
                       "options": {"cores": 1}}]}
    run_study(study, tmp_path / "s", progress=False)
    before = pymc.compile_count()
    warmed = []
    real = ex.warm_pymc
    monkeypatch.setattr(ex, "warm_pymc", lambda payload, chunks: warmed.append(real(payload, chunks)) or warmed[-1])
    run_study(study, tmp_path / "w2", workers=2, progress=False)
    assert warmed == [True] and pymc.compile_count() == before  # the serial run's compiled model was reused
    a, b = rows_of(tmp_path / "s", KEYS), rows_of(tmp_path / "w2", KEYS)
    assert len(a) > 0 and a["ok"].all()
    pd.testing.assert_frame_equal(a, b)


def test_two_workers_run_a_study_with_grid_model(tmp_path, rows_of):
    """A study whose model is a grid key (as in the quickstart) under --workers 2: the forked-worker warm-up
    reads the config's dump without rejecting its top-level ``model`` (it did: "not both"), and the rows
    equal a serial run's."""
    study = {"name": "gm", "seed": 9, "replicates": 4, "chunk_size": 2,
             "grid": {"model": ["oneway", "random_slope"], "sigma_a2": [0.3]},
             "fixed": {"groups": 5, "per_group": 3, "sigma_b2": 0.05},
             "fits": [{"name": "reml", "backend": "reml"},
                      {"name": "bayes", "backend": "pymc", "sampler": "quadrature", "covariance": "diagonal"}]}
    run_study(study, tmp_path / "s", progress=False)
    run_study(study, tmp_path / "w2", workers=2, progress=False)
    a, b = rows_of(tmp_path / "s", KEYS), rows_of(tmp_path / "w2", KEYS)
    assert len(a) > 0 and a["ok"].all()
    pd.testing.assert_frame_equal(a, b)
