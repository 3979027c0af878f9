"""Study rows built column-wise from the batch (``PreparedReml.fit_columns``, study/rows_columns.py) equal
the rows of the FitResult route (``fit_many``, one FitResult per replicate): same columns, dtypes, order
and values bit for bit, except the LRT statistics and p-values (the FitResult route re-evaluates the full
criterion at θ̂ on the replicate's design: equal to 1e-9) and the timing column.  Unbalanced one-way,
``(x | g)`` and ``(x || g)``, with boundary and |ρ̂| = 1 replicates, profile intervals and LRTs."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import compare_mm.study.chunk as chunk_mod
from compare_mm.backends.reml import PreparedReml
from compare_mm.study.config.load import load_config
from compare_mm.study.plan import plan_chunks

STUDIES = [
    {"name": "slope", "seed": 9, "replicates": 12, "model": "random_slope",
     "grid": {"sigma_b2": [0.0, 0.3]}, "fixed": {"groups": 8, "sigma_a2": 1.0, "rho": 0.5, "x": [0, 1, 2, 3, 4, 5]},
     "fits": [{"name": "reml", "backend": "reml", "method": "REML", "tests": ["lrt_chi2", "lrt_chibar2"],
               "interval": "profile", "profile": "reml"},
              {"name": "diag", "backend": "reml", "method": "ML", "covariance": "diagonal",
               "tests": ["lrt_chibar2"], "intervals": ["wald", "profile"]}]},
    {"name": "unbalanced", "seed": 6, "replicates": 30, "model": "oneway",
     "grid": {"sigma_a2": [0.0, 0.5]}, "fixed": {"per_group": [2, 3, 3, 5, 8, 1, 4]},
     "fits": [{"name": "reml", "backend": "reml", "method": "REML", "tests": ["lrt_chi2", "lrt_chibar2"],
               "intervals": ["t", "profile"]},
              {"name": "ml", "backend": "reml", "method": "ML"}]},
]


def _rows(cfg) -> pd.DataFrame:
    return pd.concat([chunk_mod.run_chunk(cfg, c) for c in plan_chunks(cfg)], ignore_index=True)


@pytest.mark.parametrize("study", STUDIES, ids=[s["name"] for s in STUDIES])
def test_column_rows_equal_fitresult_rows(study, monkeypatch):
    cfg = load_config(study)
    built = []
    real = chunk_mod.column_rows
    monkeypatch.setattr(chunk_mod, "column_rows",
                        lambda head, cols, pos, reps, *a, **k: built.extend((head["fit"], int(r)) for r in reps)
                        or real(head, cols, pos, reps, *a, **k))
    col = _rows(cfg)
    monkeypatch.delattr(PreparedReml, "fit_columns")
    ref = _rows(cfg)
    n_fits = len(study["fits"]) * study["replicates"] * 2
    assert len(built) >= 0.8 * n_fits                                   # most fits went through the column path
    p = col[col.row_type == "param"]
    assert (p.estimate[p.parameter == "sigma_a2"] == 0).any() or (p.estimate[p.parameter == "sigma_b2"] == 0).any()
    if study["model"] == "random_slope":
        assert (p.estimate[p.parameter == "rho"].abs() > 1 - 1e-12).any()   # |ρ̂| = 1 replicates are in
    assert list(col.columns) == list(ref.columns)
    assert (col.dtypes == ref.dtypes).all()
    test = (col.row_type == "test").to_numpy()
    assert test.sum() > 0 and (col.interval_kind.astype(str).str.startswith("profile")).any()
    for c in col.columns:
        if c == "elapsed_s":
            continue
        a, b = col[c].to_numpy(), ref[c].to_numpy()
        if c in ("estimate", "p_value"):
            np.testing.assert_allclose(a[test].astype(float), b[test].astype(float), rtol=1e-9, atol=1e-9)
            a, b = a[~test], b[~test]
        if a.dtype.kind == "f":
            assert np.array_equal(a, b, equal_nan=True), c                 # bit for bit
        else:
            assert (a == b).all(), c
