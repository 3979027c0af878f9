"""End to end: a tiny study run by compare_mm.study's own runner, then the report from its stored outputs
(guards the report against drift of the study's row and summary schema)."""

from __future__ import annotations

import re

import pandas as pd

from compare_mm.report.layout import figure_name
from compare_mm.report import write_report
from compare_mm.study.runner import run_study

STUDY = {
    "name": "tiny_report", "seed": 5, "replicates": 30, "level": 0.95, "model": "oneway",
    "grid": {"groups": [6], "per_group": [3], "sigma_a2": [0.0, 0.5]},
    "fits": [{"name": "reml", "backend": "reml", "method": "REML"},
             {"name": "ml", "backend": "reml", "method": "ML"},
             {"name": "anova", "backend": "reml", "method": "ANOVA"}],
}


def test_report_of_a_real_study(tmp_path):
    out = tmp_path / "tiny"
    run_study(STUDY, out, progress=False)
    html = write_report(out)
    names = {figure_name(p) for p in (out / "figures").glob("*.png")}
    assert names == {"fit_quality", "boundary_rate", "underestimation", "coverage_width", "bias_rmse", "tests",
                     "shrinkage", "sampling_distribution"}
    text = html.read_text()
    assert len(re.findall(r'src="data:image/png;base64,', text)) == len(list((out / "figures").glob("*.png")))
    assert "Not shown: The study has no Bayesian fit." in text
    for fit in ("reml", "ml", "anova"):
        assert f"<td>{fit}</td>" in text
    table = pd.read_csv(out / "tables" / "summary_formatted.csv", dtype=str).fillna("")
    assert "Wald 95%" in set(table["interval"])
    # the boundary rate of every fit is in the table with its MCSE and the exact probability beside it
    sa = table[(table["parameter"] == "σ_A²") & (table["fit"].isin(["reml", "ml", "anova"]))]
    assert len(sa) == 6 and sa["boundary_rate"].str.fullmatch(r"\d\.\d+ \(\d\.\d+\)").all()
    assert (sa["exact boundary_rate"] != "").all()


def test_no_exact_boundary_curve_for_a_random_slope_facet_of_a_mixed_grid():
    """``model`` can be a grid key: the one-way closed form must not be drawn on random-slope facets."""
    from types import SimpleNamespace

    import numpy as np

    from compare_mm.report.figures import _exact_boundary_curves

    study = SimpleNamespace(model="oneway, random_slope",
                            config={"fixed": {"groups": 10, "per_group": 5}}, method=lambda f: "REML")
    xs = np.array([0.0, 0.5])
    assert _exact_boundary_curves(study, {"model": "random_slope"}, xs, ["reml"]) == []
    (method, fits, curve), = _exact_boundary_curves(study, {"model": "oneway"}, xs, ["reml"])
    assert method == "REML" and fits == ["reml"] and 0.5 < curve[0] < 0.6
