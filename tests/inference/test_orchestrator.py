"""The one orchestrator (compare_mm.inference.run): takes the fit it is given, one exact-RLRT rule."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import compare_mm as cm
import compare_mm.api
from compare_mm.errors import OptionError
from compare_mm.fitter.extended import fit_design
from compare_mm.inference import run as run_mod
from compare_mm.inference.run import applicable_tests, infer, optimum, run_inference


def _slope_frame(seed=2):
    rng = np.random.default_rng(seed)
    g = np.repeat(np.arange(10), 8)
    x = np.tile(np.arange(8.0), 10)
    y = 1 + 0.5 * x + rng.normal(0, 1, 10)[g] + rng.normal(0, 0.3, 10)[g] * x + rng.normal(size=g.size)
    return pd.DataFrame({"y": y, "x": x, "g": g.astype(str)})


def _boom(*args, **kwargs):
    raise AssertionError("inference rebuilt the design or refitted the optimum")


@pytest.mark.parametrize("method", ["REML", "ML"])
def test_a_fit_of_our_fitter_is_not_refitted_and_the_design_not_rebuilt(monkeypatch, method):
    f = "y ~ x + (x || g)"
    df = _slope_frame()
    fit = cm.fit(f, df, method=method)
    expected = fit_design(fit.design, method == "REML")
    monkeypatch.setattr(compare_mm.api, "make_design", _boom)
    monkeypatch.setattr(run_mod, "fit_design", _boom)
    full = optimum(fit.design, fit)
    assert np.array_equal(full.theta, np.asarray(fit.theta))
    assert full.deviance == pytest.approx(expected.deviance, rel=1e-9)
    assert full.sigma == pytest.approx(fit.sigma, rel=1e-9)
    out = run_inference(fit, seed=1, nsim=100)
    assert [t.name for t in out.tests] == ["lrt_chi2", "lrt_chibar2", "exact_rlrt"] * 2


def test_another_optimiser_or_method_is_refitted(monkeypatch):
    df = _slope_frame()
    sm = cm.fit("y ~ x + (x || g)", df, backend="statsmodels")
    calls = []
    monkeypatch.setattr(run_mod, "fit_design", lambda *a, **k: calls.append(k) or fit_design(*a, **k))
    optimum(sm.design, sm)
    assert calls and calls[0]["start"] is not None  # polished from statsmodels' θ̂
    ml = cm.fit("y ~ x + (x || g)", df, method="ML")
    reml_design = cm.fit("y ~ x + (x || g)", df).design
    optimum(reml_design, ml)  # the REML optimum of an ML fit needs a REML fit
    assert len(calls) == 2


def test_the_old_call_form_is_the_same_as_the_new(oneway_frame):
    df = oneway_frame(6, 4, 1.0, 5)
    fit = cm.fit("y ~ 1 + (1 | g)", df)
    a = run_inference("y ~ 1 + (1 | g)", df, fit, seed=3, nsim=200)
    b = run_inference(fit, seed=3, nsim=200)
    assert a.to_json() == b.to_json()


def test_a_result_without_a_design_is_a_one_sentence_error(oneway_frame):
    from dataclasses import replace

    fit = replace(cm.fit("y ~ 1 + (1 | g)", oneway_frame(6, 4, 1.0, 5)), design=None)
    with pytest.raises(OptionError, match="carries no design"):
        run_inference(fit)


def test_one_rule_for_the_exact_rlrt():
    """``all`` leaves it out where the component is not a single variance; naming it there is an error."""
    fit = cm.fit("y ~ x + (1 + x | g)", _slope_frame())
    assert "exact_rlrt" not in applicable_tests(fit.design)
    assert "exact_rlrt" in applicable_tests(cm.fit("y ~ x + (x || g)", _slope_frame()).design)
    out = run_inference(fit, seed=1, nsim=100)
    assert "exact_rlrt" not in {t.name for t in out.tests}
    with pytest.raises(OptionError, match="single variance"):
        infer(fit.design, None, tests=["exact_rlrt"], entropy=1)


def test_all_tests_of_a_model_with_both_kinds_of_component():
    """(1 + x | g) + (1 | h): ``all`` gives the exact RLRT of h's single variance and leaves out g's
    effects, which carry a covariance (it had raised on g's slope)."""
    df = _slope_frame()
    df["h"] = (np.arange(len(df)) % 6).astype(str)
    fit = cm.fit("y ~ x + (1 + x | g) + (1 | h)", df)
    out = run_inference(fit, seed=1, nsim=100)
    rlrt = [t for t in out.tests if t.name == "exact_rlrt"]
    assert [(t.group, t.term) for t in rlrt] == [("h", "(Intercept)")]
    assert {(t.group, t.term) for t in out.tests if t.name == "lrt_chibar2"} == \
        {("g", "x"), ("h", "(Intercept)")}
