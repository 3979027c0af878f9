"""Data-generating processes: truths, realised effects, seeds."""

from __future__ import annotations

import numpy as np

from compare_mm.study.generate import (ReplicateStreams, data_rng, fit_seed, simulate, simulate_many,
                                      simulate_oneway_balanced, template_frame)

SLOPE = {"groups": 400, "x": list(range(10)), "sigma_a2": 2.0, "sigma_b2": 0.5, "rho": -0.6,
         "sigma_e2": 1.0, "beta0": 3.0, "beta1": 1.5}


def test_random_slope_effects_have_covariance_G():
    rep = simulate("random_slope", SLOPE, np.random.default_rng(3))
    C = np.cov(rep.u.T)
    G = np.array([[2.0, -0.6 * np.sqrt(2.0 * 0.5)], [-0.6 * np.sqrt(2.0 * 0.5), 0.5]])
    assert np.allclose(C, G, atol=0.25)
    # y = β0 + β1 x + a_i + b_i x + e: the per-group OLS fit recovers a_i + β0 and b_i + β1 up to noise
    Y = rep.y.reshape(400, 10)
    x = np.arange(10.0)
    slopes = np.polyfit(x, Y.T, 1)[0]
    assert np.corrcoef(slopes, rep.u[:, 1])[0, 1] > 0.9
    assert abs(slopes.mean() - 1.5) < 0.15
    assert np.allclose(rep.raw[:, 1], slopes - slopes.mean())


def test_oneway_unbalanced_sizes_and_raw_deviations():
    cond = {"per_group": [2, 3, 5], "groups": 3, "sigma_a2": 1.0, "sigma_e2": 1.0, "mu": 10.0}
    rep = simulate("oneway", cond, np.random.default_rng(0))
    assert rep.y.shape == (10,) and rep.u.shape == (3, 1)
    frame = template_frame("oneway", cond)
    assert list(frame["g"]) == ["g0"] * 2 + ["g1"] * 3 + ["g2"] * 5
    means = [rep.y[:2].mean(), rep.y[2:5].mean(), rep.y[5:].mean()]
    assert np.allclose(rep.raw[:, 0], np.array(means) - rep.y.mean())


def test_replicates_do_not_depend_on_batching():
    cond = {"groups": 4, "per_group": 3, "sigma_a2": 1.0, "sigma_e2": 1.0, "mu": 0.0}
    batch = simulate_many("oneway", cond, 5, 2, range(0, 6))
    single = simulate("oneway", cond, data_rng(5, 2, 4))
    assert np.array_equal(batch[4].y, single.y)
    assert not np.array_equal(batch[3].y, batch[4].y)
    assert not np.array_equal(simulate("oneway", cond, data_rng(5, 1, 4)).y, single.y)
    assert fit_seed(5, 2, 4, 0) == fit_seed(5, 2, 4, 0) != fit_seed(5, 2, 4, 1)
    # the reused-stream generator equals a fresh one, draw for draw, whatever was drawn before
    streams = ReplicateStreams(5, 2)
    streams(9).standard_normal(1000)
    assert np.array_equal(streams(4).standard_normal(7), data_rng(5, 2, 4).standard_normal(7))
    # and the balanced batch equals replicate-by-replicate simulation
    Y, U, RAW = simulate_oneway_balanced(cond, 5, 2, [1, 4])
    assert np.allclose(Y[1].ravel(), single.y, rtol=0, atol=1e-15) and np.allclose(U[1], single.u[:, 0])
    assert np.allclose(RAW[1], single.raw[:, 0], atol=1e-14)


def test_replicate_streams_are_independent():
    """Neighbouring replicates' draws are uncorrelated (substreams do not overlap)."""
    s = ReplicateStreams(1, 0)
    Z = np.stack([s(r).standard_normal(2000) for r in range(50)])
    C = np.corrcoef(Z)
    off = C[~np.eye(50, dtype=bool)]
    assert np.abs(off).max() < 5 / np.sqrt(2000)
    assert abs(Z.mean()) < 5 / np.sqrt(Z.size) and abs(Z.std() - 1) < 0.01
