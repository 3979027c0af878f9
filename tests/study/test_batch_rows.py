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
    monkeypatch.delattr(PreparedReml, "fit_columns")
    single = _rows(cfg)
    pd.testing.assert_frame_equal(batched, single, check_exact=False, rtol=1e-8, atol=1e-10)


def test_profile_rows_identical_with_and_without_batched_profile(monkeypatch):
    # unbalanced one-way: profile intervals (ML and REML modes) computed for the chunk in one batch equal
    # the per-replicate profile, row by row (limits to 1e-6 relative, limits closed at 0 exactly)
    import compare_mm.study.chunk as chunk_mod

    cfg = load_config({"name": "prof", "seed": 8, "replicates": 12, "model": "oneway",
                       "grid": {"sigma_a2": [0.0, 0.5]}, "fixed": {"per_group": [2, 3, 3, 5, 8, 1, 4]},
                       "fits": [{"name": "reml", "backend": "reml", "method": "REML", "intervals": ["wald", "profile"],
                                 "profile": "reml"},
                                {"name": "ml", "backend": "reml", "method": "ML", "interval": "profile"}]})
    calls = []
    real = chunk_mod._batched_profiles
    monkeypatch.setattr(chunk_mod, "_batched_profiles", lambda *a: calls.append(r := real(*a)) or r)
    batched = _rows(cfg)
    assert calls and all(len(c) == 12 for c in calls)                  # every replicate profiled by the batch
    prof = batched[batched.interval_kind.str.startswith("profile")]
    assert (prof.lower == 0.0).sum() >= 4 and prof.upper.notna().all()  # closed-at-0 limits are in
    monkeypatch.setattr(chunk_mod, "_batched_profiles", lambda *a: {})
    single = _rows(cfg)
    pd.testing.assert_frame_equal(batched, single, check_exact=False, rtol=1e-6, atol=1e-12)


def test_random_slope_profile_rows_identical_with_and_without_batched_profile(monkeypatch):
    # random slopes, correlated (REML profile) and diagonal (ML profile, fixed effects included), with
    # σ_B² = 0 in one condition: the chunk's batch of profiles equals the per-replicate profile row by row
    import compare_mm.study.chunk as chunk_mod

    cfg = load_config({"name": "slope_prof", "seed": 9, "replicates": 6, "model": "random_slope",
                       "grid": {"sigma_b2": [0.0, 0.3]}, "fixed": {"groups": 8, "sigma_a2": 1.0, "rho": 0.5,
                                                                  "x": [0, 1, 2, 3, 4, 5]},
                       "fits": [{"name": "reml", "backend": "reml", "method": "REML", "intervals": ["wald", "profile"],
                                 "profile": "reml"},
                                {"name": "diag", "backend": "reml", "method": "ML", "covariance": "diagonal",
                                 "intervals": ["profile"]}]})
    calls = []
    real = chunk_mod._batched_profiles
    monkeypatch.setattr(chunk_mod, "_batched_profiles", lambda *a: calls.append(r := real(*a)) or r)
    batched = _rows(cfg)
    assert calls and sum(len(c) for c in calls) >= 20                  # most replicates profiled by the batch
    prof = batched[batched.interval_kind.str.startswith("profile")]
    assert (prof.lower == 0.0).sum() >= 2 and prof.upper.notna().all()  # σ̂_B = 0: limits closed at 0
    monkeypatch.setattr(chunk_mod, "_batched_profiles", lambda *a: {})
    single = _rows(cfg)
    pd.testing.assert_frame_equal(batched, single, check_exact=False, rtol=1e-6, atol=1e-12)
