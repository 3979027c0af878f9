"""Study rows are identical whether the reml fits of a chunk go through the batched fitter
(``PreparedReml.fit_many``) or replicate by replicate (timings aside): random slopes (correlated REML,
diagonal ML) and an unbalanced one-way condition, with boundary replicates in both."""

from __future__ import annotations

import pandas as pd
import pytest

from compare_mm.backends.reml import PreparedReml
from compare_mm.study.chunk import run_chunk
from compare_mm.study.config.load import load_config
from compare_mm.study.plan import plan_chunks

STUDIES = [
    {"name": "slope", "seed": 5, "replicates": 12, "model": "random_slope",
     "grid": {"sigma_b2": [0.0, 0.3]}, "fixed": {"groups": 8, "sigma_a2": 1.0, "rho": 0.3},
     "fits": [{"name": "reml", "backend": "reml", "method": "REML"},
              {"name": "diag", "backend": "reml", "method": "ML", "covariance": "diagonal"}]},
    {"name": "unbalanced", "seed": 6, "replicates": 30, "model": "oneway",
     "grid": {"sigma_a2": [0.0, 0.5]}, "fixed": {"per_group": [2, 3, 3, 5, 8, 1, 4]},
     "fits": [{"name": "reml", "backend": "reml", "method": "REML"},
              {"name": "ml", "backend": "reml", "method": "ML"}]},
]


def _rows(cfg) -> pd.DataFrame:
    frame = pd.concat([run_chunk(cfg, c) for c in plan_chunks(cfg)], ignore_index=True)
    frame = frame.drop(columns=["elapsed_s"])
    for c in frame.columns:
        if isinstance(frame[c].dtype, pd.CategoricalDtype):
            frame[c] = frame[c].astype(str)
    return frame


@pytest.mark.parametrize("study", STUDIES, ids=[s["name"] for s in STUDIES])
def test_rows_identical_with_and_without_batch(study, monkeypatch):
    cfg = load_config(study)
    batched = _rows(cfg)
    assert batched.singular[batched.row_type == "param"].any()              # boundary replicates are in
    monkeypatch.delattr(PreparedReml, "fit_many")
    single = _rows(cfg)
    pd.testing.assert_frame_equal(batched, single, check_exact=False, rtol=1e-8, atol=1e-10)
