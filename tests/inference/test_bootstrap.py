"""Parametric bootstrap: reproducibility, worker independence, the simulation model, p-value formula."""

from __future__ import annotations

import numpy as np
import pytest

import compare_mm as cm
from compare_mm.errors import OptionError
from compare_mm.inference import bootstrap_draws, bootstrap_intervals, bootstrap_lrt
from compare_mm.inference.bootstrap import ModelParams, simulate_y
from compare_mm.fitter.theta import make_layout


def _dense_z(block) -> np.ndarray:
    """The block's n × (levels · q) model matrix, columns level-major (level 0's q effects first)."""
    Z = np.zeros((block.Z.shape[0], block.n_levels * block.q))
    for j in range(block.q):
        Z[np.arange(Z.shape[0]), np.asarray(block.codes) * block.q + j] = np.asarray(block.Z)[:, j]
    return Z


@pytest.fixture(scope="module")
def slope_design(sleepstudy):
    # a small random-slope design (6 subjects) keeps fitter refits cheap
    keep = sleepstudy["Subject"].isin(sorted(sleepstudy["Subject"].unique())[:6])
    return cm.make_design("Reaction ~ Days + (Days || Subject)", sleepstudy[keep], method="REML")


def test_reproducible_with_a_seed(slope_design):
    a = bootstrap_draws(slope_design, nsim=12, seed=42, refit="fitter")
    b = bootstrap_draws(slope_design, nsim=12, seed=42, refit="fitter")
    c = bootstrap_draws(slope_design, nsim=12, seed=43, refit="fitter")
    assert a[0] == ("(Intercept)", "Days", "sd_(Intercept)|Subject", "sd_Days|Subject", "sigma")
    np.testing.assert_array_equal(a[1], b[1])
    assert not np.array_equal(a[1], c[1])
    assert np.all(np.isfinite(a[1]))


def test_identical_with_one_and_two_workers_and_any_chunking(slope_design):
    from dask.distributed import LocalCluster

    serial = bootstrap_draws(slope_design, nsim=16, seed=7, refit="fitter", chunk_size=16)[1]
    chunked = bootstrap_draws(slope_design, nsim=16, seed=7, refit="fitter", chunk_size=3)[1]
    np.testing.assert_array_equal(serial, chunked)
    p1 = bootstrap_lrt(slope_design, "Subject", "Days", nsim=8, seed=3, refit="fitter")
    batched = bootstrap_draws(slope_design, nsim=16, seed=7, chunk_size=5)[1]      # refit="auto": the batch
    # two worker processes (one cluster for both calls: starting workers is the slow part)
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                      silence_logs=40) as cluster:
        two = bootstrap_draws(slope_design, nsim=16, seed=7, refit="fitter", chunk_size=5,
                              scheduler=cluster.scheduler_address)[1]
        p2 = bootstrap_lrt(slope_design, "Subject", "Days", nsim=8, seed=3, refit="fitter", chunk_size=3,
                           scheduler=cluster.scheduler_address)
        batched_two = bootstrap_draws(slope_design, nsim=16, seed=7, chunk_size=5,
                                      scheduler=cluster.scheduler_address)[1]
    np.testing.assert_array_equal(serial, two)
    np.testing.assert_array_equal(batched, batched_two)
    assert p1 == p2


def test_closed_form_refit_equals_the_fitter(oneway_frame):
    d = cm.make_design("y ~ 1 + (1 | g)", oneway_frame(6, 4, 1.0, 8))
    a = bootstrap_draws(d, nsim=30, seed=1, refit="fitter")[1]
    b = bootstrap_draws(d, nsim=30, seed=1, refit="closed_form")[1]
    np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-8)
    ta = bootstrap_lrt(d, nsim=30, seed=1, refit="fitter")
    tb = bootstrap_lrt(d, nsim=30, seed=1, refit="closed_form")
    assert ta.p_value == tb.p_value and ta.statistic == pytest.approx(tb.statistic, rel=1e-8)


def test_simulated_responses_have_the_model_covariance(slope_design):
    # empirical covariance of y* over many draws vs the dense V = Z G Z' + σ² I
    params = ModelParams(np.array([0.8, 0.3]), 2.0, np.array([1.0, 0.5]))
    rng = np.random.default_rng(0)
    Y = np.stack([simulate_y(slope_design, params, rng) for _ in range(20_000)])
    b = slope_design.blocks[0]
    (term,) = make_layout(slope_design.blocks).terms
    T = term.factor(params.theta)
    # the diagonal term as two q = 1 columns per level: G = σ² T T' per level
    Z = _dense_z(b)
    G = np.kron(np.eye(b.n_levels), params.sigma ** 2 * T @ T.T)
    V = Z @ G @ Z.T + params.sigma ** 2 * np.eye(slope_design.n)
    np.testing.assert_allclose(Y.mean(axis=0), slope_design.X @ params.beta, atol=5 * np.sqrt(V.max() / 20_000))
    C = np.cov(Y.T)
    assert np.max(np.abs(C - V)) < 0.06 * V.max()


def test_pvalue_formula_and_percentiles(oneway_frame):
    d = cm.make_design("y ~ 1 + (1 | g)", oneway_frame(6, 4, 3.0, 8))
    t = bootstrap_lrt(d, nsim=99, seed=5)
    assert t.name == "bootstrap_lrt" and t.nsim == 99
    assert t.p_value == pytest.approx(1 / 100)  # huge group effect: no null replicate reaches T
    names, draws = bootstrap_draws(d, nsim=200, seed=5)
    ivs = bootstrap_intervals(d, nsim=200, seed=5, level=0.9)
    for iv, col in zip(ivs, draws.T):
        assert iv.kind == "bootstrap" and iv.level == 0.9
        assert iv.lower == pytest.approx(np.quantile(col, 0.05)) and iv.upper == pytest.approx(np.quantile(col, 0.95))


def test_bad_options(oneway_frame):
    d = cm.make_design("y ~ 1 + (1 | g)", oneway_frame(4, 3, 1.0, 8))
    with pytest.raises(OptionError, match="at least 1 replicate"):
        bootstrap_draws(d, nsim=0, seed=1)
    with pytest.raises(OptionError, match="'fast'"):
        bootstrap_draws(d, nsim=5, seed=1, refit="fast")


@pytest.mark.parametrize("formula", ["Reaction ~ Days + (Days || Subject)", "Reaction ~ Days + (Days | Subject)",
                                     "Reaction ~ Days + (1 | Subject)"])
def test_batched_refits_equal_the_fitter_and_do_not_depend_on_the_chunking(sleepstudy, formula):
    """refit="auto" takes one-factor designs through the batched fitter: draws and bootstrap LRT statistics
    equal the per-replicate fitter's (1e-7 relative on estimates whose SE is ~1; boundary replicates
    included); another chunking changes them by rounding only (the batch's array kernels depend on the
    chunk's size; the number of workers does not change the chunks, see the workers test)."""
    from compare_mm.inference.bootstrap import ModelParams, _lrt_chunk, refit_all
    from compare_mm.inference.components import drop_component, find_component

    keep = sleepstudy["Subject"].isin(sorted(sleepstudy["Subject"].unique())[:8])
    d = cm.make_design(formula, sleepstudy[keep], method="REML")
    names, batched = bootstrap_draws(d, nsim=40, seed=5, chunk_size=40)
    _, fitter = bootstrap_draws(d, nsim=40, seed=5, refit="fitter", chunk_size=40)
    scale = np.nanstd(fitter, axis=0)
    assert np.all(np.abs(batched - fitter) <= 1e-7 * np.maximum(np.abs(fitter), scale)), \
        np.max(np.abs(batched - fitter) / np.maximum(np.abs(fitter), scale))
    np.testing.assert_allclose(bootstrap_draws(d, nsim=40, seed=5, chunk_size=7)[1], batched, rtol=1e-11)
    comp = find_component(d, "Subject", None if "(1 |" in formula else "Days")
    null = drop_component(d, comp)
    params = ModelParams.from_design(null)
    t_b = _lrt_chunk((0, 40), full=d, null=null, params=params, entropy=9, stream=1, refit="batched")
    t_f = _lrt_chunk((0, 40), full=d, null=null, params=params, entropy=9, stream=1, refit="fitter")
    np.testing.assert_allclose(t_b, t_f, rtol=1e-6, atol=1e-7)
    # the batch really ran: it solved most of these replicates itself (the rest went to the fitter)
    from compare_mm.fitter.batch_fit import BatchFitter
    from compare_mm.fitter.theta import make_layout as layout_of

    ys = np.stack([simulate_y(d, ModelParams.from_design(d), np.random.default_rng(r)) for r in range(40)])
    assert BatchFitter(d, layout_of(d.blocks)).arrays(ys, True).solved.mean() > 0.8
    fits = refit_all(d, ys, True)
    assert np.all(np.isfinite(fits.deviance))
