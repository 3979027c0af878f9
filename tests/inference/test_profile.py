"""Profile-likelihood intervals against lme4's confint(method = "profile") and a dense computation."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import optimize, stats

import compare_mm as cm
from compare_mm.errors import OptionError
from compare_mm.inference import profile_intervals
from compare_mm.inference.components import components
from compare_mm.inference.rlrt import component_z


@pytest.mark.parametrize("kind", ["int", "diag", "corr"])
def test_ml_profile_matches_lme4(sleep_design, lme4, ref_key, kind):
    # lme4 profiles the ML deviance even for a REML fit (devfun2 calls refitML)
    ref = {r["name"]: r for r in lme4[ref_key(kind, "REML")]["profile_ci_95"]}
    ivs = profile_intervals(sleep_design(kind, "REML"), mode="ml", level=0.95)
    assert [iv.parameter for iv in ivs] == [r for r in ref]  # lme4's names and order
    for iv in ivs:
        assert iv.kind == "profile" and iv.level == 0.95
        assert iv.lower == pytest.approx(ref[iv.parameter]["lower"], rel=1e-3), iv.parameter
        assert iv.upper == pytest.approx(ref[iv.parameter]["upper"], rel=1e-3), iv.parameter


def _dense_profile(y, X, Z, sd, method):
    """min over σ of −2 log-likelihood (ML) or REML criterion with V = sd² ZZ' + σ² I, by dense algebra."""
    n, p = X.shape

    def crit(log_sigma):
        V = sd ** 2 * Z @ Z.T + np.exp(2 * log_sigma) * np.eye(n)
        Vi = np.linalg.inv(V)
        XtViX = X.T @ Vi @ X
        beta = np.linalg.solve(XtViX, X.T @ Vi @ y)
        r = y - X @ beta
        out = np.linalg.slogdet(V)[1] + r @ Vi @ r
        if method == "REML":
            return out + np.linalg.slogdet(XtViX)[1] + (n - p) * np.log(2 * np.pi)
        return out + n * np.log(2 * np.pi)

    return optimize.minimize_scalar(crit, bounds=(-5, 5), method="bounded", options={"xatol": 1e-10}).fun


@pytest.mark.parametrize("mode", ["ml", "reml"])
def test_profile_limits_solve_the_dense_profile_equation(oneway_frame, mode):
    # unbalanced random-intercept data: at each limit of the SD's interval the dense profile deviance
    # exceeds its minimum by exactly χ²₁(0.95)
    df = oneway_frame(8, 5, 1.5, 21).iloc[3:]
    d = cm.make_design("y ~ 1 + (1 | g)", df, method=mode.upper())
    (iv,) = profile_intervals(d, mode=mode, parameters=["sd_(Intercept)|g"])
    Z = component_z(d, components(d)[0])
    method = mode.upper()
    best = optimize.minimize_scalar(lambda s: _dense_profile(d.y, d.X, Z, s, method), bounds=(0, 5),
                                    method="bounded", options={"xatol": 1e-9}).fun
    for v in (iv.lower, iv.upper):
        assert v > 0
        assert _dense_profile(d.y, d.X, Z, v, method) - best == pytest.approx(stats.chi2.ppf(0.95, 1), abs=1e-4)


def test_boundary_lower_limit_is_exactly_zero(oneway_frame):
    df = oneway_frame(6, 4, 0.0, 4)
    d = cm.make_design("y ~ 1 + (1 | g)", df, method="ML")
    assert cm.fit(d.spec, df, method="ML").theta[0] == 0.0  # the ML estimate is on the boundary
    ivs = {iv.parameter: iv for iv in profile_intervals(d, mode="ml")}
    assert ivs["sd_(Intercept)|g"].lower == 0.0
    assert ivs["sd_(Intercept)|g"].upper > 0.0
    assert ivs["sigma"].lower < ivs["sigma"].upper


def test_reml_mode_has_no_fixed_effect_profiles(sleep_design):
    names = [iv.parameter for iv in profile_intervals(sleep_design("int"), mode="reml")]
    assert names == ["sd_(Intercept)|Subject", "sigma"]


def test_bad_mode(sleep_design):
    with pytest.raises(OptionError, match="'bayes'"):
        profile_intervals(sleep_design("int"), mode="bayes")


@pytest.mark.parametrize("mode", ["ml", "reml"])
def test_sigma_limits_at_a_zero_sd_solve_the_dense_profile_equation(oneway_frame, mode):
    # σ̂_A = 0: profiling σ starts every inner minimisation at SD = 0, a stationary point of d (d depends
    # on the SD through its square); below σ̂ the minimum over the SD lies inside, and the limit must be
    # where the dense profile min_SD d(SD, σ) exceeds its minimum by exactly χ²₁(0.95)
    df = oneway_frame(6, 4, 0.0, 4)
    d = cm.make_design("y ~ 1 + (1 | g)", df, method=mode.upper())
    ivs = {iv.parameter: iv for iv in profile_intervals(d, mode=mode)}
    assert ivs["sd_(Intercept)|g"].lower == 0.0
    Z = component_z(d, components(d)[0])
    n, p = d.X.shape
    nu = n - p if mode == "reml" else n

    def dense(sd, sigma):
        V = sd ** 2 * Z @ Z.T + sigma ** 2 * np.eye(n)
        Vi = np.linalg.inv(V)
        XtViX = d.X.T @ Vi @ d.X
        r = d.y - d.X @ np.linalg.solve(XtViX, d.X.T @ Vi @ d.y)
        out = np.linalg.slogdet(V)[1] + r @ Vi @ r + nu * np.log(2 * np.pi)
        return out + (np.linalg.slogdet(XtViX)[1] if mode == "reml" else 0.0)

    def sigma_profile(sigma):
        return optimize.minimize_scalar(lambda s: dense(s, sigma), bounds=(0, 5), method="bounded",
                                        options={"xatol": 1e-10}).fun

    best = optimize.minimize_scalar(sigma_profile, bounds=(0.1, 5), method="bounded", options={"xatol": 1e-9}).fun
    for v in (ivs["sigma"].lower, ivs["sigma"].upper):
        assert sigma_profile(v) - best == pytest.approx(stats.chi2.ppf(0.95, 1), abs=1e-4)
