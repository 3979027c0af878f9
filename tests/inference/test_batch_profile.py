"""Batched profile intervals (:func:`compare_mm.inference.batch_profile.profile_many`) equal the
per-replicate :func:`compare_mm.inference.profile_intervals`, replicate by replicate.

Random-intercept designs with unequal group sizes (one-way, and with a covariate), responses simulated
with σ_A² at 0 and near it so that many replicates have σ̂_A = 0 and an SD interval closed at 0; every
limit (SD, σ and, in ``"ml"`` mode, the fixed effects) to 1e-6 relative, the closed-at-0 limits exactly.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import compare_mm as cm
from compare_mm.fitter.batch_fit import BatchFitter
from compare_mm.fitter.theta import make_layout
from compare_mm.inference import profile_intervals
from compare_mm.inference.batch_profile import profile_many, scalar_intercept

REL = 1e-6


def _case(formula, seed, R):
    rng = np.random.default_rng(seed)
    sizes = rng.integers(2, 9, size=10)
    g = np.repeat(np.arange(sizes.size), sizes)
    x = rng.normal(size=g.size)
    df = pd.DataFrame({"y": rng.normal(size=g.size), "x": x, "g": [f"g{i:02d}" for i in g]})
    d = cm.make_design(formula, df)
    sa = np.sqrt(rng.choice([0.0, 0.05, 0.5], size=(R, 1)))
    Y = 1.0 + 0.5 * x + sa * rng.normal(size=(R, sizes.size))[:, g] + rng.normal(size=(R, g.size))
    return d, Y


@pytest.mark.parametrize("mode", ["ml", "reml"])
@pytest.mark.parametrize("formula,seed", [("y ~ 1 + (1 | g)", 3), ("y ~ 1 + x + (1 | g)", 5)])
def test_batched_profile_equals_per_replicate(formula, seed, mode):
    d, Y = _case(formula, seed, 10)
    fitter = BatchFitter(d, make_layout(d.blocks))
    assert scalar_intercept(fitter)
    got = profile_many(fitter, Y, mode=mode)
    assert sum(g is not None for g in got) == len(Y)  # the batch decided every replicate itself
    closed = 0
    for r, ivs in enumerate(got):
        ref = profile_intervals(d.with_y(Y[r]), mode=mode)
        assert [iv.parameter for iv in ivs] == [iv.parameter for iv in ref]
        for a, b in zip(ref, ivs):
            assert b.kind == "profile" and b.level == a.level
            if a.lower == 0.0:
                assert b.lower == 0.0, (r, a.parameter)
                closed += a.parameter.startswith("sd_")
            else:
                assert b.lower == pytest.approx(a.lower, rel=REL), (r, a.parameter)
            assert b.upper == pytest.approx(a.upper, rel=REL), (r, a.parameter)
    assert closed >= 2  # boundary replicates (σ̂_A = 0 or the boundary inside the interval) are covered


def test_slope_designs_are_not_scalar():
    rng = np.random.default_rng(1)
    df = pd.DataFrame({"y": rng.normal(size=40), "x": rng.normal(size=40), "g": np.repeat(list("abcdefgh"), 5)})
    d = cm.make_design("y ~ x + (x || g)", df)
    assert not scalar_intercept(BatchFitter(d, make_layout(d.blocks)))
