"""`compare-mm run` and `compare-mm summarise` end to end; a mixed one-way + random-slope study."""

from __future__ import annotations

import numpy as np
import pandas as pd
import yaml

from compare_mm.cli import main
from compare_mm.study.generate import data_rng, simulate
from compare_mm.study.store import read_manifest, read_rows

MIXED = {"name": "mixed", "seed": 4, "replicates": 6, "level": 0.9,
         "grid": {"model": ["oneway", "random_slope"], "sigma_a2": [0.5]},
         "fixed": {"groups": 8, "per_group": 4, "sigma_b2": 0.2, "rho": 0.5, "beta1": 2.0},
         "fits": [{"name": "reml", "backend": "reml", "method": "REML"},
                  {"name": "diag", "backend": "reml", "method": "ML", "covariance": "diagonal"}]}


def test_run_then_summarise_reproduces_summary(tmp_path, capsys):
    f = tmp_path / "mixed.yaml"
    f.write_text(yaml.safe_dump(MIXED))
    out = tmp_path / "out"
    assert main(["run", str(f), "--out", str(out), "--no-report", "--quiet"]) == 0
    assert "2 of 2 chunks run" in capsys.readouterr().out
    assert (out / "config.yaml").read_text() == f.read_text()
    m = read_manifest(out)
    assert m["status"] == "complete" and m["models"] == ["oneway", "random_slope"]
    first = (out / "summary.csv").read_text()
    (out / "summary.csv").unlink()
    assert main(["summarise", str(out)]) == 0
    assert (out / "summary.csv").read_text() == first

    s = pd.read_csv(out / "summary.csv")
    one, slope = s[s.model == "oneway"], s[s.model == "random_slope"]
    assert set(one.parameter.dropna()) >= {"mu", "sigma_a2", "sigma_e2", "u_a"}
    assert set(slope[slope.fit == "reml"].parameter.dropna()) >= {"beta0", "beta1", "sigma_a2", "sigma_b2", "rho",
                                                                  "sigma_e2", "u_a", "u_b"}
    assert "rho" not in set(slope[slope.fit == "diag"].parameter.dropna())   # (x || g) has no correlation
    assert (s[s.metric == "failure_rate"].value == 0).all()

    rows = read_rows(out)
    r = rows[(rows.condition == 1) & (rows.fit == "reml") & (rows.row_type == "param")]
    truth = r.drop_duplicates("parameter").set_index("parameter").truth
    assert truth.to_dict() == {"beta0": 0.0, "beta1": 2.0, "sigma_a2": 0.5, "sigma_b2": 0.2, "rho": 0.5,
                               "sigma_e2": 1.0}
    # group rows: the realised u of replicate 3 is the DGP's, and predictions are shrunk raw effects
    cond = {"groups": 8, "x": list(range(10)), "sigma_a2": 0.5, "sigma_b2": 0.2, "rho": 0.5, "sigma_e2": 1.0,
            "beta0": 0.0, "beta1": 2.0}
    rep = simulate("random_slope", cond, data_rng(4, 1, 3))
    g = rows[(rows.condition == 1) & (rows.fit == "reml") & (rows.row_type == "group") & (rows.replicate == 3)]
    ua = g[g.parameter == "u_a"].sort_values("group")
    assert np.allclose(ua.truth, rep.u[:, 0]) and np.allclose(ua.raw, rep.raw[:, 0])
    # the fixed-effect estimate of β1 equals the mean of per-group OLS slopes in this balanced design
    b1 = r[(r.replicate == 3) & (r.parameter == "beta1")].estimate.item()
    x = np.arange(10.0)
    slopes = np.polyfit(x, rep.y.reshape(8, 10).T, 1)[0]
    assert abs(b1 - slopes.mean()) < 1e-6
    # Wald intervals at the study's level (0.9)
    assert (r[r.parameter == "beta1"].interval_kind == "wald").all()


def test_bad_study_path_exits_2(tmp_path, capsys):
    code = main(["run", str(tmp_path / "nope.yaml"), "--out", str(tmp_path / "o"), "--quiet"])
    assert code == 2
    assert capsys.readouterr().err.strip() == f"compare-mm run: error: Study file '{tmp_path / 'nope.yaml'}' does not exist."
