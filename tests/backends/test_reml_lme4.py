"""The reml backend against lme4 1.1-31 (tests/data/sleepstudy_lme4.json): all six sleepstudy fits.

Every fit goes through ``compare_mm.fit(formula, data, method=...)`` so the whole path (formula → spec →
design → backend → FitResult) is exercised.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

import compare_mm

HERE = Path(__file__).resolve().parent
REF = json.loads((HERE.parent / "data" / "sleepstudy_lme4.json").read_text())
KEYS = sorted(REF)


@pytest.fixture(scope="module")
def fits(sleepstudy):
    return {k: compare_mm.fit(REF[k]["formula"], sleepstudy, method=REF[k]["method"]) for k in KEYS}


@pytest.mark.parametrize("key", KEYS)
def test_fixed_effects_and_se(fits, key):
    ref, res = REF[key], fits[key]
    assert [r.term for r in res.fixef] == list(ref["fixef"])
    for r in res.fixef:
        assert r.estimate == pytest.approx(ref["fixef"][r.term], rel=1e-5)
        assert r.se == pytest.approx(ref["se"][r.term], rel=1e-4)
    se = np.sqrt(np.diagonal(res.vcov))
    assert se == pytest.approx([ref["se"][r.term] for r in res.fixef], rel=1e-4)


@pytest.mark.parametrize("key", KEYS)
def test_loglik_criterion_theta_singular(fits, key):
    ref, res = REF[key], fits[key]
    # within 1e-6 of lme4's, or higher (a better optimum of the same likelihood)
    assert res.loglik > ref["logLik"] - 1e-6
    assert res.loglik - ref["logLik"] < 1e-6
    assert res.criterion == pytest.approx(-2 * res.loglik, abs=1e-9)
    assert res.criterion == pytest.approx(ref["deviance_or_reml_crit"], abs=2e-6)
    k = len(res.fixef) + len(res.theta) + 1
    assert res.aic == pytest.approx(res.criterion + 2 * k, abs=1e-9)
    assert res.bic == pytest.approx(res.criterion + k * math.log(180), abs=1e-9)
    assert np.allclose(res.theta, np.atleast_1d(ref["theta"]), atol=1e-5, rtol=0)
    assert res.singular is ref["singular"] is False
    assert res.converged and res.warnings == ()
    assert res.method == ref["method"] and res.backend == "reml" and res.nobs == 180
    assert res.ngroups == {"Subject": 18}
    assert res.optimisation.evaluations > 0


@pytest.mark.parametrize("key", KEYS)
def test_variance_components(fits, key):
    ref, res = REF[key], fits[key]
    assert len(res.varcorr) == len(ref["varcorr"])
    ours = {(r.term, r.term2) if r.group != "Residual" else ("Residual",): r for r in res.varcorr}
    for row in ref["varcorr"]:
        if row["grp"] == "Residual":
            r = ours[("Residual",)]
            assert r.sd == pytest.approx(row["sdcor"], rel=1e-5)
            assert r.variance == pytest.approx(row["vcov"], rel=2e-5)
            assert res.sigma == pytest.approx(row["sdcor"], rel=1e-5)
        elif row["var2"] is None:
            r = ours[(row["var1"], None)]
            assert r.group == "Subject"          # (Days || Subject): "Subject", not lme4's "Subject.1"
            assert r.sd == pytest.approx(row["sdcor"], rel=1e-5)
            assert r.variance == pytest.approx(row["vcov"], rel=2e-5)
        else:
            r = ours[(row["var1"], row["var2"])]
            assert r.corr == pytest.approx(row["sdcor"], abs=1e-5)
            assert r.cov == pytest.approx(row["vcov"], rel=1e-4)


@pytest.mark.parametrize("key", KEYS)
def test_conditional_modes_and_sds(fits, key):
    ref, res = REF[key]["blups"], fits[key]
    # same rows in lme4's as.data.frame(ranef(...)) order
    assert [(r.group, r.term, r.level) for r in res.ranef] == list(zip(ref["grpvar"], ref["term"], ref["grp"]))
    vals = np.array([r.value for r in res.ranef])
    sds = np.array([r.condsd for r in res.ranef])
    assert np.max(np.abs(vals - np.array(ref["condval"]))) < 1e-4
    assert sds == pytest.approx(np.array(ref["condsd"]), rel=1e-4)


def test_wald_intervals_and_json(fits):
    res = fits["sleepstudy | Reaction ~ Days + (Days | Subject) | REML"]
    z = 1.959963984540054
    for r in res.fixef:
        iv = res.interval(r.term, "wald")
        assert iv.level == 0.95
        assert iv.lower == pytest.approx(r.estimate - z * r.se, rel=1e-12)
        assert iv.upper == pytest.approx(r.estimate + z * r.se, rel=1e-12)
    d = json.loads(res.to_json())
    assert d["backend"] == "reml" and d["nobs"] == 180 and len(d["ranef"]) == 36


def test_separate_terms_equal_double_bar(sleepstudy):
    """(1 | Subject) + (0 + Days | Subject) is the same model as (Days || Subject) (lme4 says so too)."""
    key = "sleepstudy | Reaction ~ Days + (Days || Subject) | REML"
    res = compare_mm.fit("Reaction ~ Days + (1 | Subject) + (0 + Days | Subject)", sleepstudy)
    assert res.loglik == pytest.approx(REF[key]["logLik"], abs=1e-6)
    assert np.allclose(res.theta, REF[key]["theta"], atol=1e-5)
    assert [r.condsd for r in res.ranef] == pytest.approx(REF[key]["blups"]["condsd"], rel=1e-4)


def test_general_path_matches_fast_path(sleepstudy):
    for key in KEYS:
        a = compare_mm.fit(REF[key]["formula"], sleepstudy, method=REF[key]["method"], path="onefactor")
        b = compare_mm.fit(REF[key]["formula"], sleepstudy, method=REF[key]["method"], path="general")
        assert b.loglik == pytest.approx(a.loglik, abs=1e-8)
        assert np.allclose(a.theta, b.theta, atol=1e-6)
        assert np.allclose([r.value for r in a.ranef], [r.value for r in b.ranef], atol=1e-5)
        assert np.allclose([r.condsd for r in a.ranef], [r.condsd for r in b.ranef], rtol=1e-6)
