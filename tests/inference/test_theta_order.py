"""θ order: FitResult.theta is in lme4 order (terms by decreasing number of levels), and inference must
read it so — on a crossed design written (1 | small) + (1 | big) the formula order is the reverse."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import compare_mm as cm
from compare_mm.inference import satterthwaite
from compare_mm.inference.bootstrap import ModelParams, simulate_y


def _crossed(seed: int = 1) -> pd.DataFrame:
    # 4 levels of 'small' with a large variance, 12 levels of 'big' with a small one, 2 replicates each
    rng = np.random.default_rng(seed)
    s, b = np.meshgrid(np.arange(4), np.arange(12), indexing="ij")
    s, b = np.repeat(s.ravel(), 2), np.repeat(b.ravel(), 2)
    x = rng.normal(size=s.size)
    y = 3 + 0.5 * x + 3.0 * rng.normal(size=4)[s] + 0.4 * rng.normal(size=12)[b] + rng.normal(size=s.size)
    return pd.DataFrame({"y": y, "x": x, "small": [f"s{i}" for i in s], "big": [f"b{i}" for i in b]})


FORMULAS = ("y ~ x + (1 | small) + (1 | big)", "y ~ x + (1 | big) + (1 | small)")


def _model_v(design, fit) -> np.ndarray:
    """V = Σ_g σ²_g Z_g Z_g' + σ² I from the fit's VarCorr rows (by group name, not by position)."""
    var = {r.group: r.variance for r in fit.varcorr if r.term2 is None}
    V = var["Residual"] * np.eye(design.n)
    for b in design.blocks:
        same = np.asarray(b.codes)[:, None] == np.asarray(b.codes)[None, :]
        V = V + var[b.group] * same
    return V


@pytest.mark.parametrize("formula", FORMULAS)
def test_simulated_responses_have_the_fitted_variance_components(formula):
    df = _crossed()
    fit = cm.fit(formula, df)
    design = cm.make_design(formula, df)
    var = {r.group: r.variance for r in fit.varcorr if r.term2 is None}
    assert var["small"] > 10 * var["big"]  # the two components are far apart: a swap cannot pass
    params = ModelParams.from_result(fit)
    rng = np.random.default_rng(0)
    Y = np.stack([simulate_y(design, params, rng) for _ in range(20_000)])
    V = _model_v(design, fit)
    C = np.cov(Y.T)
    assert np.max(np.abs(C - V)) < 0.06 * V.max()


def test_satterthwaite_from_fit_theta_does_not_depend_on_formula_order():
    # the same model written two ways: the fit's θ (lme4 order) gives the same df either way
    df = _crossed()
    out = []
    for f in FORMULAS:
        fit = cm.fit(f, df)
        out.append(satterthwaite(cm.make_design(f, df), np.array(fit.theta), fit.sigma, "REML").df)
    assert np.all(np.isfinite(out[0]))
    np.testing.assert_allclose(out[0], out[1], rtol=1e-6)


def test_profile_parameters_in_lme4_order_and_equal_for_both_formula_orders():
    # lme4's confint lists θ's parameters in its term order (more levels first), then σ
    from compare_mm.inference import profile_intervals
    from compare_mm.inference.profile import var_params

    df = _crossed()
    ivs = []
    for f in FORMULAS:
        d = cm.make_design(f, df, method="ML")
        assert [p.name for p in var_params(d)] == ["sd_(Intercept)|big", "sd_(Intercept)|small", "sigma"]
        ivs.append(profile_intervals(d, mode="ml", parameters=["sd_(Intercept)|small"]))
    (a,), (b,) = ivs
    assert 0 < a.lower < a.upper
    assert (a.lower, a.upper) == pytest.approx((b.lower, b.upper), rel=1e-6)


def test_run_inference_does_not_depend_on_formula_order():
    from compare_mm.inference import run_inference

    df = _crossed()
    out = []
    for f in FORMULAS:
        res = run_inference(f, df, cm.fit(f, df), seed=4, nsim=200)
        out.append({(t.name, t.group): t.statistic for t in res.tests}
                   | {(r.term, "df"): r.df for r in res.fixef})
    assert out[0].keys() == out[1].keys() and ("lrt_chi2", "small") in out[0]
    for k, v in out[0].items():
        assert out[1][k] == pytest.approx(v, rel=1e-6, abs=1e-8), k
