"""Results do not depend on the executor, the number of workers or the chunking."""

from __future__ import annotations

import pandas as pd
from compare_mm.study.runner import run_study
from compare_mm.study.store import read_rows

STUDY = {"name": "w", "seed": 11, "replicates": 12, "chunk_size": 4, "model": "oneway",
         "grid": {"groups": [5], "per_group": [3, [2, 3, 4, 3, 2]], "sigma_a2": [0.3]},
         "fits": [{"name": "reml", "backend": "reml", "method": "REML"},
                  {"name": "ml", "backend": "reml", "method": "ML", "replicates": 7}]}
KEYS = ["row_type", "condition", "replicate", "fit", "parameter", "group"]


def _rows(out) -> pd.DataFrame:
    rows = read_rows(out).drop(columns=["elapsed_s"])
    for c in rows.columns:
        if isinstance(rows[c].dtype, pd.CategoricalDtype):
            rows[c] = rows[c].astype(str)
    return rows.sort_values(KEYS).reset_index(drop=True)


def test_one_and_two_workers_give_identical_rows(tmp_path):
    run_study(STUDY, tmp_path / "w1", workers=1, progress=False)
    run_study(STUDY, tmp_path / "w2", workers=2, progress=False)
    a, b = _rows(tmp_path / "w1"), _rows(tmp_path / "w2")
    assert len(a) > 0 and (a["ok"]).all()
    assert set(a.fit) == {"reml", "ml", "F-test"}
    pd.testing.assert_frame_equal(a, b)
    # serial, with another chunking, gives the same rows too
    run_study(dict(STUDY, chunk_size=5), tmp_path / "s", progress=False)
    pd.testing.assert_frame_equal(a, _rows(tmp_path / "s"))
    # unbalanced condition went through the backend, balanced one through the closed forms
    assert a[(a.condition == 1) & (a.fit == "reml")].converged.all()
    # the capped fit ran on replicates 0..6 only
    assert sorted(set(a[a.fit == "ml"].replicate)) == list(range(7))


def test_existing_scheduler_gives_identical_rows(tmp_path):
    from dask.distributed import LocalCluster

    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None) as cluster:
        run_study(STUDY, tmp_path / "d", scheduler=cluster.scheduler_address, progress=False)
    run_study(STUDY, tmp_path / "s", progress=False)
    pd.testing.assert_frame_equal(_rows(tmp_path / "d"), _rows(tmp_path / "s"))
