"""Balanced one-way fits at extreme variance ratios σ_A/σ against the closed forms (compare_mm.oneway):
REML and ML estimators in closed form from MSA and MSE (Searle, Casella & McCulloch 1992, sec. 3.7–3.8)
are exact to rounding, so our fitter must match them to ~1e-8 whatever the ratio.  Before the stable
cross-products (onefactor._stable_c) σ̂² was off by 0.4 % at 1e5 and 6.6 % at 1e6."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from compare_mm import fit, make_design
from compare_mm.backends.reml import BACKEND as REML
from compare_mm.oneway.closed_forms import fit_oneway, simulate_oneway


def _oneway(ratio: float, mu: float, seed: int = 3, a: int = 10, n: int = 5):
    Y = simulate_oneway(np.random.default_rng(seed), a, n, mu, ratio**2, 1.0)
    return Y, pd.DataFrame({"g": np.repeat(np.arange(a), n), "y": Y.ravel()})


@pytest.mark.parametrize("method", ["REML", "ML"])
@pytest.mark.parametrize("ratio", [1e4, 1e5, 1e6, 1e8])
@pytest.mark.parametrize("mu", [0.0, 1e3])
def test_extreme_ratio_matches_closed_form(ratio, mu, method):
    Y, d = _oneway(ratio, mu)
    cf = fit_oneway(Y, method)
    r = fit("y ~ 1 + (1 | g)", d, method=method)
    est = r.estimates()
    assert r.converged and not r.warnings
    assert est["sigma"] ** 2 == pytest.approx(float(cf.sigma_e2), rel=1e-8)
    assert est["sd_(Intercept)|g"] ** 2 == pytest.approx(float(cf.sigma_a2), rel=1e-10)
    assert est["(Intercept)"] == pytest.approx(float(cf.mu), rel=1e-12, abs=1e-6)
    assert r.loglik == pytest.approx(float(cf.loglik), rel=1e-10)


def test_no_residual_noise_in_a_study_replicate_is_not_converged():
    # the design check refuses such data up front; a study's replicate reaches the fitter through
    # with_y, and there the deviance keeps falling as θ → ∞ (σ² → 0): not a converged fit
    _, d = _oneway(1.0, 0.0)
    design = make_design("y ~ 1 + (1 | g)", d)
    y = np.repeat(np.arange(10.0), 5)
    r = REML.prepare(design, {}).fit(y)
    assert not r.converged
    assert "still decreases" in r.optimisation.message


@pytest.mark.parametrize("path", ["onefactor", "general"])
def test_random_slope_at_extreme_ratio_reaches_the_within_group_limit(path):
    # (1 + x | g) with G = 12 groups of 8 and both random-effect SDs ≈ 1e6 σ: as D = G/σ² → ∞ the
    # random effects absorb each group's line, and the REML σ̂² tends to the within-group OLS residual
    # variance SSE_w / (n − 2G) (Harville 1977: REML uses only the contrasts free of the fixed effects;
    # with per-group lines unpenalised those are the within-group residuals); the difference is
    # O(σ²/(σ_A² Σx²)) ≈ 1e-12 here.  Before the stable cross-products σ̂² was 3.4e-4 off on these data
    # (one-factor path); the general path, which formed C as C0 − V1'V1, failed this test until C was
    # computed from the residuals.
    rng = np.random.default_rng(4)
    G, m = 12, 8
    g = np.repeat(np.arange(G), m)
    x = np.tile(np.arange(m, dtype=float), G)
    y = 1e6 * rng.normal(size=G)[g] + 3e5 * rng.normal(size=G)[g] * x + rng.normal(size=G * m)
    Xg = np.column_stack([np.ones(m), np.arange(m)])
    Y = y.reshape(G, m)
    sse = sum(float(((Y[i] - Xg @ np.linalg.lstsq(Xg, Y[i], rcond=None)[0]) ** 2).sum()) for i in range(G))
    r = fit("y ~ x + (x | g)", pd.DataFrame({"g": g, "x": x, "y": y}), path=path)
    assert r.converged
    assert r.sigma ** 2 == pytest.approx(sse / (G * m - 2 * G), rel=1e-7)
