"""sleepstudy with Days shifted far from 0 (Days + 2000, a calendar-year-like covariate at ≈ 700 SD, and
Days + 220 SD) against lme4 1.1-31's (Days | Subject) fits (tests/data/sleepstudy_lme4.json) transformed:
x = Days + c gives Z = Z_Days M, M = [[1, c], [0, 1]], so Σ = M⁻¹ Σ_lme4 M⁻ᵀ, b = M⁻¹ b_lme4,
β_0 = β_0,lme4 − c β_1; logLik, σ, the slope's SD, its BLUPs' conditional SDs, its Satterthwaite df and
the profile intervals of sd_Days, σ and Days are lme4's own.  (No stored lme4 fit has an uncentred slope;
the transformation is written out here.)  Tolerances are those of tests/backends/test_reml_lme4.py,
tests/inference/test_profile.py and tests/inference/test_satterthwaite.py."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from compare_mm import fit, make_design
from compare_mm.inference.profile import profile_intervals
from compare_mm.inference.satterthwaite import satterthwaite

# numpy's floating-point warnings reach a user's stderr: these paths must not print any
pytestmark = pytest.mark.filterwarnings("error::RuntimeWarning")

HERE = Path(__file__).resolve().parent
REF = json.loads((HERE.parent / "data" / "sleepstudy_lme4.json").read_text())
DATA = pd.read_csv(HERE.parents[1] / "compare_mm" / "data" / "sleepstudy.csv")
FORMULA = "Reaction ~ Days + (Days | Subject)"
SHIFTS = (2000.0, 220.0 * float(DATA["Days"].std(ddof=0)))


def _lme4_sigma(ref) -> np.ndarray:
    v = {(r["var1"], r["var2"]): r["vcov"] for r in ref["varcorr"] if r["grp"] == "Subject"}
    c = v[("(Intercept)", "Days")]
    return np.array([[v[("(Intercept)", None)], c], [c, v[("Days", None)]]])


@pytest.mark.parametrize("method", ["REML", "ML"])
@pytest.mark.parametrize("c", SHIFTS)
def test_shifted_sleepstudy_is_lme4s_fit_transformed(c, method):
    ref = REF[f"sleepstudy | {FORMULA} | {method}"]
    res = fit(FORMULA, DATA.assign(Days=DATA["Days"] + c), method=method)
    assert res.converged and res.singular == ref["singular"] is False
    assert res.loglik == pytest.approx(ref["logLik"], abs=2e-6)
    assert res.sigma == pytest.approx(ref["sigma"], rel=1e-5)
    Mi = np.array([[1.0, -c], [0.0, 1.0]])
    S = Mi @ _lme4_sigma(ref) @ Mi.T
    v = {(r.term, r.term2): r for r in res.varcorr if r.group == "Subject"}
    assert v[("(Intercept)", None)].variance == pytest.approx(S[0, 0], rel=2e-5)
    assert v[("Days", None)].variance == pytest.approx(S[1, 1], rel=2e-5)
    cov = (v.get(("Days", "(Intercept)")) or v.get(("(Intercept)", "Days"))).cov
    assert cov == pytest.approx(S[0, 1], rel=1e-4)
    fx = {r.term: r.estimate for r in res.fixef}
    b0, b1 = ref["fixef"]["(Intercept)"], ref["fixef"]["Days"]
    assert fx["Days"] == pytest.approx(b1, rel=1e-5)
    assert fx["(Intercept)"] == pytest.approx(b0 - c * b1, rel=1e-5)
    se = {r.term: r.se for r in res.fixef}
    assert se["Days"] == pytest.approx(ref["se"]["Days"], rel=1e-4)
    bl = pd.DataFrame(ref["blups"])
    got = {(r.level, r.term): r for r in res.ranef}
    for lv in bl["grp"].unique():
        rows = bl[bl["grp"] == lv].set_index("term")
        u0, u1 = rows.loc["(Intercept)", "condval"], rows.loc["Days", "condval"]
        assert got[(lv, "Days")].value == pytest.approx(u1, rel=1e-4, abs=1e-4)
        assert got[(lv, "(Intercept)")].value == pytest.approx(u0 - c * u1, rel=1e-4, abs=1e-4 * c)
        assert got[(lv, "Days")].condsd == pytest.approx(rows.loc["Days", "condsd"], rel=1e-4)


def test_shifted_sleepstudy_profile_and_df_are_lme4s():
    ref = REF[f"sleepstudy | {FORMULA} | REML"]
    c = 2000.0
    design = make_design(FORMULA, DATA.assign(Days=DATA["Days"] + c))
    assert design.blocks[0].centred
    ivs = {iv.parameter: iv for iv in profile_intervals(design, mode="ml", level=0.95)}
    lme = {r["name"]: r for r in ref["profile_ci_95"]}
    for name in ("sd_Days|Subject", "sigma", "Days"):
        assert ivs[name].lower == pytest.approx(lme[name]["lower"], rel=1e-3), name
        assert ivs[name].upper == pytest.approx(lme[name]["upper"], rel=1e-3), name
    res = fit(FORMULA, DATA.assign(Days=DATA["Days"] + c))
    s = satterthwaite(design, np.asarray(res.theta), res.sigma, "REML")
    assert s.df[1] == pytest.approx(ref["df_satterthwaite"]["Days"], rel=1e-3)
