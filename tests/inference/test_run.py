"""run_inference: everything that applies to a fit, in the FitResult JSON contract."""

from __future__ import annotations

import json

import pytest

import compare_mm as cm
from compare_mm.inference import run_inference


def test_sleepstudy_random_intercept(sleepstudy, lme4, ref_key):
    f = "Reaction ~ Days + (1 | Subject)"
    fit = cm.fit(f, sleepstudy)
    out = run_inference(f, sleepstudy, fit, seed=1, nsim=2000)
    assert fit.tests == () and all(r.df is None for r in fit.fixef)  # a copy; the input is untouched
    names = [t.name for t in out.tests]
    assert names == ["lrt_chi2", "lrt_chibar2", "exact_rlrt"]
    rlrt = out.tests[2]
    assert rlrt.statistic == pytest.approx(lme4[ref_key("int", "REML")]["exactRLRT"]["statistic"], rel=1e-6)
    assert out.tests[0].statistic == rlrt.statistic  # the REML LRT statistic is the RLRT statistic
    ref = lme4[ref_key("int", "REML")]["df_satterthwaite"]
    for r in out.fixef:
        assert r.df == pytest.approx(ref[r.term], rel=1e-4) and 0 <= r.p_value < 1e-10
    d = json.loads(out.to_json())
    assert {"name", "group", "term", "statistic", "p_value", "nsim"} <= set(d["tests"][0])
    assert d["fixef"][1]["df"] == pytest.approx(ref["Days"], rel=1e-4)
    assert {iv["kind"] for iv in d["intervals"]} == {"wald"}
    assert "Tests:" in str(out)


def test_balanced_oneway_ml_fit_with_profile_and_bootstrap(oneway_frame):
    df = oneway_frame(6, 4, 1.0, 5)
    f = "y ~ 1 + (1 | g)"
    fit = cm.fit(f, df, method="ML")
    out = run_inference(f, df, fit, profile="ml", bootstrap=40, seed=3, nsim=1000)
    names = [t.name for t in out.tests]
    assert names == ["f_test", "lrt_chi2", "lrt_chibar2", "exact_rlrt", "bootstrap_lrt"]
    kinds = {(iv.parameter, iv.kind) for iv in out.intervals}
    for p in ("(Intercept)", "sd_(Intercept)|g", "sigma"):
        assert (p, "profile") in kinds and (p, "bootstrap") in kinds
    again = run_inference(f, df, fit, profile="ml", bootstrap=40, seed=3, nsim=1000)
    assert again.tests == out.tests and again.intervals == out.intervals  # seeded
    assert out.options["inference_seed"] == again.options["inference_seed"]
