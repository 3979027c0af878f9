"""A posterior SD that does not exist (backends.pymc.tails) travels through a study as inf, not as a
missing value: the rows store se = inf and the summary's mean_se is inf with a note saying why; a study
whose posterior SDs exist is unchanged (finite mean_se, the usual note)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from compare_mm.study.runner import run_study
from compare_mm.study.store import read_rows

STUDY = {"name": "hc3", "seed": 5, "replicates": 6, "model": "oneway",
         "grid": {"sigma_a2": [0.0, 1.0]}, "fixed": {"groups": 3, "per_group": 6},
         "fits": [{"name": "hc", "backend": "pymc", "sampler": "quadrature", "prior": "half_cauchy"},
                  {"name": "hn", "backend": "pymc", "sampler": "quadrature"}]}


def test_an_infinite_posterior_sd_is_stored_and_summarised_as_inf(tmp_path):
    run_study(STUDY, tmp_path / "s", progress=False)
    rows = read_rows(tmp_path / "s")
    var = rows[(rows["row_type"] == "param") & (rows["parameter"] == "sigma_a2")]
    assert np.isinf(var.loc[var["fit"] == "hc", "se"]).all()          # half-Cauchy, 3 groups: E[σ_A⁴] = ∞
    assert np.isfinite(var.loc[var["fit"] == "hn", "se"]).all()       # half-normal: every moment exists
    summary = pd.read_csv(tmp_path / "s" / "summary.csv")
    se = summary[(summary["parameter"] == "sigma_a2") & (summary["metric"] == "mean_se")].set_index(["fit", "condition"])
    for c in (0, 1):
        assert math.isinf(se.loc[("hc", c), "value"])
        assert se.loc[("hc", c), "note"].startswith("posterior SD: infinite in every replicate")
        assert math.isfinite(se.loc[("hn", c), "value"])
        assert se.loc[("hn", c), "note"] == "model-based SE (posterior SD for posteriors)"
