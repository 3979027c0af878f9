"""The sleepstudy exercise (``compare-mm example sleepstudy``) against lme4 1.1-31's published fits.

lme4's numbers (tests/data/sleepstudy_lme4.json) are for Reaction; the example fits Reaction/10, so the
test converts them itself — fixed effects, SEs, SDs and conditional modes ÷ 10, variances ÷ 100 — and
compares at 1e-5 relative (fixed effects and SDs).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import matplotlib.image as mpimg
import matplotlib.pyplot as plt
import pandas as pd
import pytest

from compare_mm.cli import main
from compare_mm.examples.sleepstudy import MODELS, lme4_scaled, load_lme4, run_sleepstudy
from compare_mm.examples.plot import panel_figure

REF = json.loads((Path(__file__).parents[1] / "data" / "sleepstudy_lme4.json").read_text())
KEYS = {"independent": "sleepstudy | Reaction ~ Days + (Days || Subject) | REML",
        "correlated": "sleepstudy | Reaction ~ Days + (Days | Subject) | REML"}


@pytest.fixture(scope="module")
def result():
    return run_sleepstudy(bayes=False, statsmodels=False)


def rel(a, b):
    return abs(a - b) / abs(b)


@pytest.mark.parametrize("model", list(MODELS))
def test_reml_reproduces_lme4_after_scaling(result, model):
    ref, fit = REF[KEYS[model]], result.fits[(model, "reml")]
    est = fit.estimates()
    for term, value in ref["fixef"].items():
        assert rel(est[term], value / 10) < 1e-5, term
        assert rel(next(r.se for r in fit.fixef if r.term == term), ref["se"][term] / 10) < 1e-4, term
    for row in ref["varcorr"]:
        if row["grp"] == "Residual":
            assert rel(est["sigma"], row["sdcor"] / 10) < 1e-5
            assert rel(est["sigma2"], row["vcov"] / 100) < 1e-5
        elif row["var2"] is None:
            assert rel(est[f"sd_{row['var1']}|Subject"], row["sdcor"] / 10) < 1e-5, row
            assert rel(est[f"var_{row['var1']}|Subject"], row["vcov"] / 100) < 1e-5, row
        else:
            assert rel(est["cor_Days.(Intercept)|Subject"], row["sdcor"]) < 1e-5
    blups = {(g, t): v / 10 for g, t, v in zip(ref["blups"]["grp"], ref["blups"]["term"], ref["blups"]["condval"])}
    for r in fit.ranef:
        assert abs(r.value - blups[(r.level, r.term)]) < 1e-4 * max(1.0, abs(blups[(r.level, r.term)]))


def test_loglik_scaling_rule_reml_and_ml():
    """REML logLik shifts by (n − p)·log 10, ML by n·log 10: checked against our own fits of Reaction/10."""
    from compare_mm import fit
    from compare_mm.examples.sleepstudy import load_sleepstudy

    data, lme4 = load_sleepstudy(), load_lme4()
    for method in ("REML", "ML"):
        entry = lme4[f"sleepstudy | Reaction ~ Days + (Days | Subject) | {method}"]
        ours = fit("Reaction/10 ~ Days + (Days | Subject)", data, method=method)
        assert abs(lme4_scaled(entry, nobs=180)["loglik"] - ours.loglik) < 1e-6, method
    shift_reml = lme4_scaled(REF[KEYS["independent"]], 180)["loglik"] - REF[KEYS["independent"]]["logLik"]
    assert shift_reml == pytest.approx(178 * math.log(10), rel=1e-12)


@pytest.mark.parametrize("model", list(MODELS))
def test_comparison_table(result, model):
    table = result.comparison(model)
    assert table["rel. diff vs lme4"].max() < 1e-5
    assert "σ_A²" in set(table["quantity"]) and "σ_B²" in set(table["quantity"])
    vc = result.variance_components()
    assert list(vc["model"]) == list(MODELS.values())
    ref = REF[KEYS["independent"]]["varcorr"]
    assert rel(vc.loc[0, "σ_A²"], ref[0]["vcov"] / 100) < 1e-5
    assert rel(vc.loc[0, "σ_B²"], ref[1]["vcov"] / 100) < 1e-5
    assert rel(vc.loc[0, "σ_ε²"], ref[2]["vcov"] / 100) < 1e-5


def test_panel_figure_layout(result):
    fig = panel_figure(result.data, result.fits[("independent", "reml")])
    try:
        axes = [ax for ax in fig.axes if ax.get_visible()]
        assert len(axes) == 18
        assert {ax.get_title() for ax in axes} == {f"Subject {s}" for s in result.data["Subject"].unique()}
        texts = {t.get_text() for t in fig.texts}
        assert {"Days of sleep deprivation", "Reaction times"} <= texts
        # each panel: points, the subject's line and the dashed population line
        ax = axes[0]
        styles = sorted(line.get_linestyle() for line in ax.get_lines())
        assert styles == ["-", "--", "None"]
    finally:
        plt.close(fig)


def test_cli_example_no_bayes(tmp_path, capsys):
    out = tmp_path / "ex"
    assert main(["example", "sleepstudy", "--no-bayes", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "lme4 vs compare_mm" in printed and "Reaction/10 scale" in printed
    png = out / "sleepstudy_panels.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert mpimg.imread(png).shape[1] > 1000
    for name in ("variance_components", "fixed_effects", "random_effects", "comparison_independent",
                 "comparison_correlated"):
        assert (out / f"sleepstudy_{name}.csv").is_file(), name
    comp = pd.read_csv(out / "sleepstudy_comparison_correlated.csv")
    assert comp["rel. diff vs lme4"].max() < 1e-5
    assert "PyMC posterior median" not in comp.columns
    # statsmodels MixedLM beside lme4 (its optimiser stops a little earlier than ours: 1e-4, not 1e-5)
    sm = comp.set_index("quantity")
    for q in ("β₀ (Intercept)", "β₁ Days", "σ_A (sd intercept)", "σ_B (sd slope)", "σ_ε (residual sd)"):
        assert abs(sm.loc[q, "statsmodels REML"] / sm.loc[q, "lme4 (÷10)"] - 1) < 1e-4, q
    assert "![sleepstudy panels](sleepstudy_panels.png)" in (out / "sleepstudy.md").read_text()


@pytest.mark.slow
def test_bayes_column_appears():
    res = run_sleepstudy(bayes=True, statsmodels=False, draws=150, tune=150, chains=2, models=("independent",))
    table = res.comparison("independent")
    assert ("independent", "pymc") in res.fits, res.errors
    post = table.set_index("quantity")["PyMC posterior median"]
    assert abs(post["β₁ Days"] - 1.0467) < 0.15 and 1.5 < post["σ_A (sd intercept)"] < 4.5
