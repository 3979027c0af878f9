"""Quadrature grids of the random-slope models and the grid machinery: the production path against finer
grids built here with an independent end rule (Gregory's weights) and against the full-box rule on its own
spacings; the per-pattern group effects against the level-by-level mixture; the per-axis prior and Jacobian
terms against the pointwise density; the box's extension limit.  Brute-force and NUTS checks of the
posteriors are in test_pymc_quadrature.py."""

from __future__ import annotations

from importlib import resources

import numpy as np
import pandas as pd
import pytest

import compare_mm as cm
from compare_mm.backends.pymc import quadrature as qd
from compare_mm.backends.pymc import quadrature_mode as qm

REL = 1e-3


def _sleep() -> pd.DataFrame:
    return pd.read_csv(resources.files("compare_mm").joinpath("data/sleepstudy.csv"))


def _slope_data(groups: int, seed: int, sigma_a2: float) -> pd.DataFrame:
    """The quickstart random-slope design: x = 0..9 per group, σ_B² = 0.05, σ² = 1, β = (0, 1)."""
    rng = np.random.default_rng(seed)
    g = np.repeat(np.arange(groups), 10)
    x = np.tile(np.arange(10.0), groups)
    y = x + rng.normal(0, np.sqrt(sigma_a2), groups)[g] + rng.normal(0, np.sqrt(0.05), groups)[g] * x \
        + rng.normal(size=g.size)
    return pd.DataFrame({"y": y, "x": x, "g": [f"g{k:02d}" for k in g]})


def _problem(formula: str, df: pd.DataFrame, prior: dict | None = None):
    """(QuadProblem, Coordinates) of the backend's quadrature for this model, data and prior option."""
    from compare_mm.api import make_design
    from compare_mm.backends.pymc.backend import resolve_options
    from compare_mm.backends.pymc.priors import data_scales
    from compare_mm.backends.pymc.quadrature_model import build_problem

    design = make_design(formula, df)
    _, priors = resolve_options(design, {"sampler": "quadrature"} | ({"prior": prior} if prior else {}))
    pb = build_problem(design, priors)
    ds = data_scales(design)
    return pb, qd.coordinates(pb, ds["sd"], float(ds["sigma"]))


def _start(pb, co):
    """(mode z*, spacing scales s, first box, max log f) as quadrature.integrate starts its grids."""
    start = np.full(co.c.size, 1.5)
    if co.rho_axis is not None:
        start[co.rho_axis] = 0.0
    logf = lambda z: qd.log_density(pb, co, z)  # noqa: E731
    z0, lmax = qm.find_mode(logf, co.bounded, start)
    s_lo, s_hi = qm.axis_scales(logf, co.bounded, z0, lmax)
    box = np.stack([z0 - 4 * s_lo, z0 + 4 * s_hi], axis=1)
    box[co.bounded, 0] = np.where(box[co.bounded, 0] < 0, 0.0, box[co.bounded, 0])
    return z0, np.minimum(s_lo, s_hi), box, lmax


def reference_grid(formula: str, df: pd.DataFrame, hs: tuple, gregory: bool = True) -> dict[str, np.ndarray]:
    """The reported quantiles on fixed fine grids h = hs[0], hs[1], … (each pruned by the previous one),
    with Gregory's end weights on every η axis (the rule before the ½ end weight on even axes; with
    ``gregory=False`` the production path's end weights), from the mode and scales of the production
    path; returns the last grid's quantiles and posterior SDs."""
    from dataclasses import replace

    from compare_mm.api import make_design
    from compare_mm.backends.pymc.quadrature_summary import summarise_grid

    design = make_design(formula, df)
    pb, co = _problem(formula, df)
    if gregory:
        co = replace(co, tilt=None)
    z0, s, box, lmax = _start(pb, co)
    grid = None
    for h in hs:
        grid, box = qd.make_grid(pb, co, z0, s, h, box, lmax, qd.DELTA[z0.size], grid)
    q, sd, _ = summarise_grid(pb, co, design, 0.95, grid, qd.normalised(grid))
    return {"q": q, "sd": sd}


def _fit_quantiles(formula: str, df: pd.DataFrame):
    """(result, the compared quantiles and posterior SDs of the final grid) of the production path."""
    from compare_mm.backends.pymc import quadrature_fit as qf

    got = {}
    orig = qf.summarise_grid

    def spy(pb, co, design, level, grid, w):
        out = orig(pb, co, design, level, grid, w)
        got["q"], got["sd"] = out[0], out[1]
        return out

    qf.summarise_grid = spy
    try:
        res = cm.fit(formula, df, backend="pymc", sampler="quadrature")
    finally:
        qf.summarise_grid = orig
    return res, got


SLOPE_CASES = [("y ~ x + (x || g)", 10, 3, 0.0), ("y ~ x + (x || g)", 10, 4, 0.5), ("y ~ x + (x || g)", 18, 5, 0.5)]


@pytest.mark.parametrize("formula,groups,seed,sigma_a2", SLOPE_CASES, ids=["xx10_sa0", "xx10_sa05", "xx18_sa05"])
def test_uncorrelated_slope_matches_fine_gregory_grid(formula, groups, seed, sigma_a2):
    """(x || g): the production path (½ end weight, refinement h = 1, 1/√2, …) agrees with a fine h = ¼ grid
    with Gregory's end weights within 1e-3 posterior SDs in the 2.5/50/97.5 % quantiles of every parameter."""
    df = _slope_data(groups, seed, sigma_a2)
    res, got = _fit_quantiles(formula, df)
    assert res.converged
    ref = reference_grid(formula, df, (1.0, 0.5, 0.25))
    err = np.abs(got["q"] - ref["q"]) / ref["sd"]
    print(f"max error {err.max():.2e} posterior SDs; grid {res.diagnostics['grid_shape']}")
    assert err.max() < REL, err


def test_production_path_equals_the_full_box_rule_on_its_own_grids():
    """(x | g), 8 groups: the flood-filled grids give the quantiles that the full-box rule (first grid fully
    evaluated, refined grids pruned by the coarse grid) gives on the same spacings, within 1e-4 posterior SDs
    — the nodes the flood leaves out hold < 1e-6 of the mass (quadrature_flood docstring)."""
    df = _slope_data(8, 4, 0.5)
    res, got = _fit_quantiles("y ~ x + (x | g)", df)
    steps = tuple(r["h"] for r in res.diagnostics["refinements"])
    ref = reference_grid("y ~ x + (x | g)", df, steps, gregory=False)
    err = np.abs(got["q"] - ref["q"]) / ref["sd"]
    print(f"max difference {err.max():.2e} posterior SDs; h {steps}; grid {res.diagnostics['grid_shape']}")
    assert err.max() < 1e-4, err


CORR_CASES = [(10, 3, 0.0), (10, 4, 0.5)]


@pytest.mark.slow
@pytest.mark.parametrize("groups,seed,sigma_a2", CORR_CASES, ids=["x10_sa0", "x10_sa05"])
def test_correlated_slope_matches_a_finer_grid(groups, seed, sigma_a2):
    """(x | g): the production path (design-pattern sums, reused nodes, pruned summaries, ½ end weights on
    the SD axes folded over the symmetric ζ lattice, the corrected ρ marginal) agrees within 1e-3
    posterior SDs with a grid one refinement finer than the one it stopped at, built from scratch with
    Gregory's end weights (an independent end rule; slow: both data sets stop at h = ½, so the reference
    has h = 0.35 and ~2e7 nodes)."""
    df = _slope_data(groups, seed, sigma_a2)
    res, got = _fit_quantiles("y ~ x + (x | g)", df)
    assert res.converged
    steps = [r["h"] for r in res.diagnostics["refinements"]]
    ref = reference_grid("y ~ x + (x | g)", df, tuple(steps) + (steps[-1] * 2 ** -0.5,))
    err = np.abs(got["q"] - ref["q"]) / ref["sd"]
    print(f"max error {err.max():.2e} posterior SDs; h {steps}")
    assert err.max() < REL, err


PATTERN_CASES = [("y ~ x + (x | g)", 12), ("y ~ x + (x || g)", 12), ("y ~ x + (1 | g)", 12),
                 ("y ~ x + (x | g)", 0), ("y ~ 1 + (1 | g)", 0)]


@pytest.mark.parametrize("formula,drop", PATTERN_CASES, ids=["xg_unbal", "xxg_unbal", "1g_unbal", "xg_bal", "1g_bal"])
def test_group_effects_per_pattern_equal_the_per_level_mixture(formula, drop):
    """The per-pattern sums of quadrature_ranef give the mixture moments of u that evaluating (2) level by
    level and averaging gives (balanced: one pattern; unbalanced: rows dropped at random)."""
    from compare_mm.backends.pymc.quadrature_model import conditional, patterns
    from compare_mm.backends.pymc.quadrature_ranef import group_moments

    rng = np.random.default_rng(11)
    df = _slope_data(8, 2, 0.5)
    df = df.drop(index=rng.choice(len(df), drop, replace=False)).reset_index(drop=True)
    pb, co = _problem(formula, df)
    assert (patterns(pb).n.size == 1) == (drop == 0)
    z = np.abs(rng.normal(1.5, 0.5, (500, co.c.size)))
    if co.rho_axis is not None:
        z[:, co.rho_axis] = rng.normal(0.0, 0.7, 500)
    w = rng.random(500)
    w /= w.sum()
    sds, rho, sigma = co.natural(z)
    cond = conditional(pb, sds, rho, sigma, want_u=True)             # level by level (G, Q per point)
    mean = np.einsum("p,pgq->gq", w, cond.u_mean)
    sd = np.sqrt(np.einsum("p,pgq->gq", w, cond.u_var + cond.u_mean ** 2) - mean ** 2)
    got_mean, got_sd = group_moments(pb, sds, rho, sigma, w)
    np.testing.assert_allclose(got_mean, mean, rtol=0, atol=1e-9 * sd.min())
    np.testing.assert_allclose(got_sd, sd, rtol=1e-9)


@pytest.mark.parametrize("prior", [None, {"sd": {"inverse_gamma": {"alpha": 2.0, "beta": 0.5}}, "sigma": "half_cauchy"}])
def test_axis_terms_equal_the_pointwise_density(prior):
    """log f on a tensor grid from the per-axis prior and Jacobian terms (make_grid's path) equals the
    pointwise log_density at the same nodes.  Under the inverse gamma the σ_A axis is a log axis
    (s = c eᶻ, z = 0 is s = c), so every node has a finite density; with the other priors z = 0 is s = 0."""
    pb, co = _problem("y ~ x + (x | g)", _slope_data(8, 3, 0.5), prior)
    nodes = (np.linspace(0, 3, 5), np.linspace(-1, 1, 4), np.linspace(0.5, 3, 3), np.linspace(1, 2.5, 6))
    grid = qd.Grid(nodes, tuple(np.ones(n.size) for n in nodes), np.zeros([n.size for n in nodes]))
    flat = np.arange(grid.size)
    got = qd._density(pb, *qd.natural_at(co, qd.axis_terms(pb, co, nodes), grid.logf.shape, flat))
    want = qd.log_density_beta(pb, co, grid.points())
    assert np.isfinite(want[0]).all() and np.isfinite(got[0]).all()
    assert co.is_log(0) == (prior is not None) and co.bounded[0] == (prior is None)
    fin = np.isfinite(want[0])
    np.testing.assert_allclose(got[0][fin], want[0][fin], rtol=1e-13, atol=0)
    np.testing.assert_allclose(got[1], want[1], rtol=1e-13)


def test_a_box_still_growing_after_its_last_extension_is_reported(monkeypatch):
    """make_grid extends the box at most MAX_EXTENSIONS times and flags a grid whose faces still hold
    posterior mass then (sleepstudy's first grid needs more than one extension); a fit whose final grid
    is flagged is not converged and says why."""
    pb, co = _problem("Reaction ~ 1 + (1 | Subject)", _sleep())
    z0, s, box, lmax = _start(pb, co)
    args = (pb, co, z0, s, 1.0, box, lmax, qd.DELTA[2])
    assert not qd.make_grid(*args, flood_fill=True)[0].open_faces
    monkeypatch.setattr(qd, "MAX_EXTENSIONS", 1)
    assert qd.make_grid(*args, flood_fill=True)[0].open_faces
    monkeypatch.undo()

    real = qd.make_grid

    def flagged(*a, **k):
        grid, b = real(*a, **k)
        object.__setattr__(grid, "open_faces", True)
        return grid, b

    monkeypatch.setattr(qd, "make_grid", flagged)
    res = cm.fit("Reaction ~ 1 + (1 | Subject)", _sleep(), backend="pymc", sampler="quadrature")
    assert not res.converged
    assert [w for w in res.warnings if "faces" in w] == [
        f"the quadrature's box still had posterior mass at its faces after {qd.MAX_EXTENSIONS} extensions (a "
        f"very heavy tail): the tails beyond its {res.diagnostics['grid_size']} points are not integrated, so "
        f"quantiles and moments may be off."]
