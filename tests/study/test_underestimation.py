"""The study's underestimation_rate: P(σ̂_A²/σ̂_ε² < σ_A²/σ_ε²) from stored rows, and its exact value."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from compare_mm.inference import onevc
from compare_mm.oneway import theory
from compare_mm.study.exact import exact_value
from compare_mm.study.runner import run_study

STUDY = {
    "name": "underest", "seed": 20261203, "replicates": 400, "model": "oneway",
    "grid": {"groups": [5], "per_group": [3], "sigma_a2": [0.0, 0.3]},
    "fixed": {"sigma_e2": 2.0, "mu": 0.0},
    "fits": [{"name": "reml", "backend": "reml", "method": "REML"},
             {"name": "ml", "backend": "reml", "method": "ML"},
             {"name": "anova", "backend": "reml", "method": "ANOVA"}],
}


@pytest.fixture(scope="module")
def study_out(tmp_path_factory):
    out = tmp_path_factory.mktemp("underest") / "out"
    return out, run_study(STUDY, out, progress=False).summary


def test_rate_is_a_count_of_stored_ratios_with_the_closed_form_beside_it(study_out):
    out, s = study_out
    rows = pd.concat([pd.read_parquet(p) for p in sorted((out / "replicates").glob("chunk-*.parquet"))])
    par = rows[(rows["row_type"] == "param") & rows["ok"].astype(bool)]
    u = s[s["metric"] == "underestimation_rate"]
    # only σ_A² > 0 has the metric (P(λ̂ < 0) = 0), once per fit; σ_ε² has none
    assert sorted(u["fit"]) == ["anova", "ml", "reml"]
    assert set(u["parameter"]) == {"sigma_a2"} and set(u["sigma_a2"].astype(float)) == {0.3}
    for _, r in u.iterrows():
        mine = par[(par["fit"] == r["fit"]) & (par["condition"] == r["condition"])]
        wide = mine.pivot_table(index="replicate", columns="parameter", values="estimate", aggfunc="first")
        hits = int((wide["sigma_a2"] / wide["sigma_e2"] < 0.3 / 2.0).sum())
        assert len(wide) == 400
        assert r["value"] == hits / 400
        assert r["mcse"] == pytest.approx(np.sqrt(hits / 400 * (1 - hits / 400) / 400), rel=1e-12)
        assert r["ci_lower"] < r["value"] < r["ci_upper"]
        exact = float(theory.variance_ratio_cdf(0.15, 5, 3, 0.3, 2.0, r["method"]))
        assert r["exact"] == pytest.approx(exact, abs=1e-15)
        assert abs(r["value"] - exact) < 4 * np.sqrt(exact * (1 - exact) / 400), (r["fit"], r["value"], exact)
        assert "sigma_a2/sigma_e2" in r["note"]
    # ML underestimates λ more often than REML (its threshold (a − 1)/a < 1); ANOVA's γ̂ < γ is REML's
    by = u.set_index("fit")
    assert by.loc["ml", "exact"] > by.loc["reml", "exact"] == pytest.approx(by.loc["anova", "exact"], abs=1e-15)


def test_report_draws_the_rates_with_their_exact_dashes(study_out, tmp_path):
    from compare_mm.report.figures_underest import underestimation_figure
    from compare_mm.report.load import load_study
    from compare_mm.report.style import FitStyle, setup_rc
    import matplotlib.pyplot as plt

    study = load_study(study_out[0])
    with plt.rc_context(setup_rc()):
        fig = underestimation_figure(study, FitStyle(study.fit_names()), tmp_path / "u.png")
    assert fig.skipped is None and (tmp_path / "u.png").stat().st_size > 10_000
    assert "not σ̂_A² < σ_A²" in fig.caption


@pytest.mark.parametrize("method", ["REML", "ML"])
def test_equal_sizes_as_a_list_take_the_spectral_path_and_equal_the_closed_form(method):
    # a per_group list goes through compare_mm.inference.onevc; equal sizes must give the F cdf
    cond = {"model": "oneway", "per_group": [4] * 6, "sigma_a2": 0.6, "sigma_e2": 2.0, "mu": 0.0}
    v = exact_value("oneway", cond, False, method, "sigma_a2", "underestimation_rate", 0.95)
    assert abs(v - float(theory.variance_ratio_cdf(0.3, 6, 4, 0.6, 2.0, method))) < 1e-8
    assert np.isnan(exact_value("oneway", cond, True, "", "sigma_a2", "underestimation_rate", 0.95))
    assert np.isnan(exact_value("oneway", cond, False, "ANOVA", "sigma_a2", "underestimation_rate", 0.95))


def test_unbalanced_exact_is_the_global_probability():
    cond = {"model": "oneway", "per_group": [2, 3, 3, 5, 8, 12, 20], "sigma_a2": 0.1, "sigma_e2": 1.0, "mu": 0.0}
    v = exact_value("oneway", cond, False, "ML", "sigma_a2", "underestimation_rate", 0.95)
    sp = onevc.oneway_spectrum(cond["per_group"])
    g = onevc.underestimation_probability_global(sp, 0.1, "ML", 100_000)
    assert v == pytest.approx(g.value, abs=1e-15) and g.mcse < 1e-3
    # the correction for several local maxima is small but there (Imhof alone is the unimodal value)
    assert 0.0 < abs(v - onevc.underestimation_probability(sp, 0.1, "ML")) < 2e-3
