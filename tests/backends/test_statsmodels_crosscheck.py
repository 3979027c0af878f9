"""The cross-check of every statsmodels fit against our fitter's criterion (backends/statsmodels/
crosscheck.py).  Independent references: the balanced one-way closed forms (compare_mm.oneway), whose
REML estimates are the optimum any correct fitter must reach, and lme4's sleepstudy fits."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from compare_mm import fit, make_design
from compare_mm.backends.statsmodels.backend import _failed, check_options
from compare_mm.backends.statsmodels.crosscheck import GAP_TOL, NOT_AT_OPTIMUM, deviance_gap
from compare_mm.oneway.closed_forms import fit_oneway, oneway_loglik, oneway_stats, simulate_oneway
from compare_mm.study.rows import result_rows


def _oneway(ratio: float, seed: int = 3, a: int = 10, n: int = 5):
    Y = simulate_oneway(np.random.default_rng(seed), a, n, 0.0, ratio**2, 1.0)
    return Y, pd.DataFrame({"g": np.repeat(np.arange(a), n), "y": Y.ravel()})


@pytest.mark.parametrize("ratio", [1e4, 1e5, 1e6])
def test_extreme_ratio_failures_are_caught(ratio):
    Y, d = _oneway(ratio)
    r = fit("y ~ 1 + (1 | g)", d, backend="statsmodels")
    cf = fit_oneway(Y, "REML")
    # statsmodels' own answer: off the closed-form optimum, and its REML log-likelihood (from the closed
    # form, at its σ estimates) below the optimum by more than GAP_TOL / 2
    s2, sa2 = r.sigma ** 2, r.estimates()["sd_(Intercept)|g"] ** 2
    assert abs(s2 / float(cf.sigma_e2) - 1) > 1e-3
    ll_sm = float(oneway_loglik(oneway_stats(Y), np.array(sa2), np.array(s2), "REML"))
    assert float(cf.loglik) - ll_sm > GAP_TOL / 2
    # … and the cross-check says so
    assert not r.converged
    msg = [w for w in r.warnings if w.startswith(NOT_AT_OPTIMUM)]
    assert len(msg) == 1 and "treat this fit as not converged" in msg[0]
    gap, best = deviance_gap(r.design, r.theta, r.sigma)
    assert best == pytest.approx(-2 * float(cf.loglik), rel=1e-10)
    assert gap == pytest.approx(2 * (float(cf.loglik) - ll_sm), rel=1e-6)


@pytest.mark.parametrize("formula", ["Reaction ~ Days + (Days | Subject)", "Reaction ~ Days + (1 | Subject)"])
@pytest.mark.parametrize("method", ["REML", "ML"])
def test_good_fits_pass_the_cross_check(sleepstudy, lme4, formula, method):
    r = fit(formula, sleepstudy, backend="statsmodels", method=method)
    assert r.converged and not any(w.startswith(NOT_AT_OPTIMUM) for w in r.warnings)
    gap, best = deviance_gap(r.design, r.theta, r.sigma)
    assert abs(gap) < 1e-6
    assert best == pytest.approx(lme4[f"sleepstudy | {formula} | {method}"]["deviance_or_reml_crit"], rel=1e-9)


def test_gap_is_positive_away_from_the_optimum(sleepstudy):
    r = fit("Reaction ~ Days + (1 | Subject)", sleepstudy, backend="statsmodels")
    gap, _ = deviance_gap(r.design, np.array(r.theta) * 1.5, r.sigma)
    assert gap > GAP_TOL
    assert math.isnan(deviance_gap(r.design, [math.nan], r.sigma)[0])


def test_nan_estimates_are_a_failed_fit_in_study_rows():
    _, d = _oneway(1.0)
    design = make_design("y ~ 1 + (1 | g)", d)
    res = _failed(design, check_options(None), ["statsmodels error: LinAlgError: Singular matrix"], 0.1)
    truth = {"mu": 0.0, "sigma_a2": 1.0, "sigma_e2": 1.0}
    rows = result_rows({}, res, "oneway", None, "wald", 0.95, truth, 0.0, np.zeros((10, 1)),
                       np.zeros((10, 1)), {}, 0.1)
    params = [r for r in rows if r["row_type"] == "param"]
    assert params and all(not r["ok"] and not r["converged"] for r in params)
    assert "non-finite estimate of mu, sigma_a2, sigma_e2 (statsmodels error: LinAlgError" in params[0]["error"]
