"""Metric formulas against independent numbers (Morris et al. 2019, Table 6)."""

from __future__ import annotations

import math

import numpy as np

from compare_mm.study import mcse


def test_bias_rmse_mcse_formulas():
    x = np.array([0.3, -0.1, 0.7, 0.2, 0.5])
    b, se = mcse.bias(x, 0.1)
    assert math.isclose(b, 0.22)
    assert math.isclose(se, np.std(x, ddof=1) / math.sqrt(5))
    m, mse_se = mcse.mse(x, 0.1)
    sq = (x - 0.1) ** 2
    assert math.isclose(m, sq.mean())
    assert math.isclose(mse_se, math.sqrt(np.sum((sq - sq.mean()) ** 2) / 20))
    r, r_se = mcse.rmse(x, 0.1)
    assert math.isclose(r, math.sqrt(sq.mean()))
    assert math.isclose(r_se, mse_se / (2 * r))
    p, pse = mcse.proportion(np.array([True, False, True, True]))
    assert p == 0.75 and math.isclose(pse, math.sqrt(0.75 * 0.25 / 4))


def test_mcse_matches_spread_over_repeated_studies():
    """Each MCSE equals the SD of its metric across many independent 'studies' (within 15 %)."""
    rng = np.random.default_rng(1)
    vals = {"bias": [], "rmse": [], "ratio": []}
    ses = {"bias": [], "rmse": [], "ratio": []}
    for _ in range(1500):
        est = rng.normal(0.2, 1.0, size=200)
        A = rng.gamma(3.0, 1.0, size=200)
        B = A + rng.gamma(2.0, 1.0, size=200)
        for key, (v, s) in {"bias": mcse.bias(est, 0.0), "rmse": mcse.rmse(est, 0.0),
                            "ratio": mcse.ratio_of_means(A, B)}.items():
            vals[key].append(v)
            ses[key].append(s)
    for key in vals:
        spread = np.std(vals[key], ddof=1)
        assert abs(np.mean(ses[key]) / spread - 1) < 0.15, key
