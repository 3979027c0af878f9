"""Monte Carlo boundary rates of REML and ML against the exact probabilities."""

from __future__ import annotations

import numpy as np
import pandas as pd

from compare_mm.oneway import theory
from compare_mm.study.runner import run_study

STUDY = {
    "name": "boundary", "seed": 20261122, "replicates": 2000, "model": "oneway",
    "grid": {"groups": [6], "per_group": [3], "sigma_a2": [0.0, 0.05, 0.2, 1.0]},
    "fits": [{"name": "reml", "backend": "reml", "method": "REML"},
             {"name": "ml", "backend": "reml", "method": "ML"},
             {"name": "anova", "backend": "reml", "method": "ANOVA"}],
}


def test_boundary_rate_within_4_mcse_of_exact(tmp_path):
    res = run_study(STUDY, tmp_path / "out", progress=False)
    s = res.summary
    rows = s[(s["metric"] == "boundary_rate") & s["fit"].isin(["reml", "ml"])]
    assert len(rows) == 8
    for _, r in rows.iterrows():
        # the exact value is recomputed here, independently of the summary's `exact` column
        exact = float(theory.boundary_probability(6, 3, r["sigma_a2"], 1.0, r["method"]))
        assert r["exact"] == exact
        assert r["n_ok"] == 2000 and r["n_failed"] == 0
        mcse = np.sqrt(exact * (1 - exact) / 2000)
        assert abs(r["value"] - exact) < 4 * mcse, (r["fit"], r["sigma_a2"], r["value"], exact)
    # ML is on the boundary more often than REML at every σ_A² (its threshold a/(a−1) > 1)
    piv = rows.pivot(index="sigma_a2", columns="fit", values="value")
    assert (piv["ml"] > piv["reml"]).all()
    # the F test's size and power against the exact power function
    f = s[(s["fit"] == "F-test") & (s["metric"] == "rejection_rate")]
    for _, r in f.iterrows():
        exact = float(theory.f_test_power(6, 3, r["sigma_a2"], 1.0, alpha=0.05))
        assert abs(r["value"] - exact) < 4 * np.sqrt(exact * (1 - exact) / 2000)
    # summary.csv on disk is the returned frame
    disk = pd.read_csv(tmp_path / "out" / "summary.csv")
    assert len(disk) == len(s)
    assert {"groups", "per_group", "sigma_a2", "fit", "parameter", "metric", "value", "mcse", "exact",
            "n_ok", "n_failed"} <= set(disk.columns)


def test_rows_match_an_independent_closed_form(tmp_path):
    """The stored REML estimates equal a direct ANOVA-table computation on regenerated data."""
    from compare_mm.study.generate import data_rng, simulate

    study = dict(STUDY, replicates=5, grid={"groups": [6], "per_group": [3], "sigma_a2": [0.2]})
    run_study(study, tmp_path / "o", progress=False)
    rows = pd.read_parquet(next((tmp_path / "o" / "replicates").glob("chunk-*.parquet")))
    for r in range(5):
        rep = simulate("oneway", {"groups": 6, "per_group": 3, "sigma_a2": 0.2, "sigma_e2": 1.0, "mu": 0.0},
                       data_rng(20261122, 0, r))
        Y = rep.y.reshape(6, 3)
        msa = 3 * Y.mean(1).var(ddof=1)
        mse = Y.var(axis=1, ddof=1).mean()
        want = max((msa - mse) / 3, 0.0)
        got = rows[(rows.replicate == r) & (rows.fit == "reml") & (rows.parameter == "sigma_a2")
                   & (rows.row_type == "param")]["estimate"].item()
        assert abs(got - want) < 1e-12
