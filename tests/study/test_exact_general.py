"""The study's exact values for designs without the balanced one-way closed forms (study/exact_general.py)."""

import math

import numpy as np
import pytest

from compare_mm.inference import onevc
from compare_mm.oneway import theory
from compare_mm.study.exact import exact_value
from compare_mm.study.summarise_inference import exact_rejection

UNBAL = {"model": "oneway", "per_group": [2, 3, 3, 5, 8, 12, 20], "sigma_a2": 0.1, "sigma_e2": 2.0, "mu": 0.0}


def test_unbalanced_boundary_rate_is_the_global_probability_at_lambda():
    v = exact_value("oneway", UNBAL, False, "REML", "sigma_a2", "boundary_rate", 0.95)
    sp = onevc.oneway_spectrum(UNBAL["per_group"])
    local = onevc.boundary_probability(sp, 0.05, "REML")           # λ = σ_A²/σ_e² = 0.05
    assert 0.0 <= local - v < 0.005
    assert v == pytest.approx(onevc.boundary_probability_global(sp, 0.05, "REML", 100_000).value, abs=1e-12)
    assert math.isnan(exact_value("oneway", UNBAL, True, "", "sigma_a2", "boundary_rate", 0.95))
    assert math.isnan(exact_value("oneway", UNBAL, False, "ANOVA", "sigma_a2", "boundary_rate", 0.95))


def test_unbalanced_rejection_rates():
    null = dict(UNBAL, sigma_a2=0.0)
    assert exact_rejection("exact_rlrt", "oneway", null, "ML", "sigma_a2", 0.95) == pytest.approx(0.05)
    size = exact_rejection("lrt_chibar2", "oneway", null, "REML", "sigma_a2", 0.95)
    assert 0.02 < size < 0.05                                       # conservative in finite samples
    power = exact_rejection("lrt_chi2", "oneway", UNBAL, "ML", "sigma_a2", 0.95)
    assert power > exact_rejection("lrt_chi2", "oneway", null, "ML", "sigma_a2", 0.95)
    assert math.isnan(exact_rejection("bootstrap_lrt", "oneway", UNBAL, "REML", "sigma_a2", 0.95))


def test_balanced_values_unchanged_and_mse_added():
    cond = {"model": "oneway", "groups": 6, "per_group": 5, "sigma_a2": 0.3, "sigma_e2": 1.0, "mu": 0.0}
    assert exact_value("oneway", cond, False, "REML", "u_a", "shrinkage_factor", 0.95) == \
        float(theory.shrinkage_factor(5, 0.3, 1.0))
    assert exact_value("oneway", cond, False, "REML", "sigma_a2", "boundary_rate", 0.95) == \
        float(theory.boundary_probability(6, 5, 0.3, 1.0, "REML"))
    mse = exact_value("oneway", cond, True, "", "u_a", "mse_blup", 0.95)
    assert mse == pytest.approx(0.3 - (5 / 6) * 0.09 / 0.5, rel=1e-12)
    ratio = exact_value("oneway", cond, False, "ML", "u_a", "mse_ratio", 0.95)
    raw = exact_value("oneway", cond, False, "ML", "u_a", "mse_raw", 0.95)
    assert ratio == pytest.approx(mse / raw, rel=1e-12)
    assert np.isnan(exact_value("oneway", cond, False, "REML", "sigma_a2", "mse_blup", 0.95))
