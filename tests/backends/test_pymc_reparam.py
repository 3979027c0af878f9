"""The PyMC model's hand-written pieces are exact: at mapped points its log density equals that of the
plain model written directly in PyMC — uncentred β̃ ~ N(0, I), ``pm.LKJCholeskyCov`` for a correlated
pair, u = z L', ``y ~ Normal(Xβ + Zu, σ)`` observed row by row.  This covers the centred coordinates
(β and (1 + x | g) effects), the closed-form Cholesky factor, the 2 × 2 LKJ written by hand and the
sufficient-statistic likelihood at once (pymc_model and pymc_stats docstrings).  Up to a constant in the
correlated case: PyMC's LKJ normalising constant for n = 2 differs from the true one (test below)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import compare_mm as cm
from compare_mm.backends.pymc.model import build_model, model_data
from compare_mm.backends.pymc.priors import resolve_priors

PRIOR = {"sd": {"half_normal": 20.0}, "sigma": {"half_normal": 30.0}, "fixef": {"normal": {"loc": 5, "scale": 80}},
         "cor": {"lkj": 2.0}}


def _data(seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    g = np.repeat(np.arange(6), 5)
    x = np.tile(np.arange(5.0), 6) + 3.0  # far from 0: centring matters
    y = 250 + 10 * x + rng.normal(0, 25, 6)[g] + rng.normal(0, 6, 6)[g] * x + rng.normal(0, 25, g.size)
    return pd.DataFrame({"y": y, "x": x, "g": [f"g{k}" for k in g]})


def _plain_model(design, data, correlated: bool):
    """The uncentred model in plain PyMC (independent of pymc_model's code)."""
    import pymc as pm

    b = design.blocks[0]
    with pm.Model() as model:
        raw = pm.Normal("beta_raw", 0.0, 1.0, shape=2)
        beta = data["prior_beta_loc"] + data["prior_beta_scale"] * raw
        scales = np.array([data["prior_sd_0"], data["prior_sd_1"]], float)
        if correlated:
            L, _, _ = pm.LKJCholeskyCov("chol", n=2, eta=2.0, sd_dist=pm.HalfNormal.dist(sigma=scales),
                                        compute_corr=True)
        else:
            sd = scales * pm.HalfNormal("sd_raw", 1.0, shape=2)
            L = pm.math.stack([pm.math.stack([sd[0], 0.0]), pm.math.stack([0.0, sd[1]])])
        z = pm.Normal("z", 0.0, 1.0, shape=(6, 2))
        u = pm.math.dot(z, L.T)
        sigma = float(data["prior_sigma"]) * pm.HalfNormal("sigma_raw", 1.0)
        mean = pm.math.dot(design.X, beta) + (b.Z * u[b.codes]).sum(axis=1)
        pm.Normal("y", mean, sigma, observed=design.y)
    return model


@pytest.mark.parametrize("formula", ["y ~ x + (x | g)", "y ~ x + (x || g)"])
def test_model_density_equals_the_plain_pymc_model(formula):
    design = cm.make_design(formula, _data(3))
    priors = resolve_priors(design, PRIOR)
    data = model_data(design, priors, "noncentred")
    ours = build_model(design, priors, "noncentred").compile_logp()
    correlated = "||" not in formula
    plain = _plain_model(design, data, correlated).compile_logp()
    rng = np.random.default_rng(8)
    diffs = []
    for _ in range(3):
        raw, z, s_log = rng.normal(size=2), rng.normal(size=(6, 2)), rng.normal()
        point = {"beta_raw": raw, "z": z, "sigma_raw_log__": s_log}
        # β: the model's free w with β̃_0 = w_0 − Σ_j x̄_j (scale_j / scale_0) w_j, β̃_j = w_j
        scale, xbar = data["prior_beta_scale"], data["x_mean"]
        w = raw.copy()
        w[0] = raw[0] + np.sum(xbar * scale * raw) / scale[0]
        mine = {"beta_w": w, "sigma_raw_log__": s_log}
        if correlated:
            t = rng.normal(size=3) * [0.5, 3.0, 0.5] + [3.0, 0.0, 1.5]  # (log l00, l10, log l11)
            point["chol_cholesky-cov-packed__"] = t
            sd1 = np.hypot(t[1], np.exp(t[2]))
            mine["chol_0_free"] = np.array([t[0], np.log(sd1), np.arctanh(t[1] / sd1)])  # log sd0, log sd1, atanh ρ
            L = np.array([[np.exp(t[0]), 0.0], [t[1], np.exp(t[2])]])
            a = data["z_mean_0"][1]
            T = np.array([[1.0, a], [0.0, 1.0]])
            M = np.linalg.cholesky(T @ L @ L.T @ T.T)
            mine["z_0"] = np.linalg.solve(M, T @ L @ z.T).T  # same u = z L', in centred coordinates
        else:
            sd_log = rng.normal(size=2)
            point["sd_raw_log__"] = sd_log
            mine.update({"sd_0_0_raw_log__": sd_log[0], "sd_0_1_raw_log__": sd_log[1], "z_0": z})
        # densities over different free coordinates: ours is in (log sd0, log sd1, atanh ρ), PyMC's in
        # (log l00, l10, log l11); the Jacobian of the change is 1 / sd1
        jac = -np.log(np.hypot(t[1], np.exp(t[2]))) if correlated else 0.0
        diffs.append(float(ours(mine)) + jac - float(plain(point)))
    # equal up to one constant (the densities are ~ −5e4, so 1e-9 is ~1e-14 relative)
    assert max(diffs) - min(diffs) < 1e-9
    # the constant: 0, or PyMC's LKJ normaliser for n = 2 (test below; PyMC evaluates it to ~1e-8 only)
    assert diffs[0] == pytest.approx(-np.log(16 / 9) if correlated else 0.0, abs=1e-7 if correlated else 1e-9)


def test_pymc_lkj2_normalising_constant():
    """Why the correlated case differs by the constant log(16/9): our 2 × 2 LKJ(2) density of ρ is
    0.75 (1 − ρ²), which integrates to 1 over (−1, 1); PyMC's LKJCorr(n=2, η=2) log density is
    log(4/3) + log(1 − ρ²), i.e. its normalising constant has the opposite sign (it integrates to 16/9).
    A constant does not change the posterior."""
    import pymc as pm
    from scipy.integrate import quad

    d = pm.LKJCorr.dist(n=2, eta=2.0)
    lp = pm.logp(d, np.array([0.0])).eval()
    assert float(lp) == pytest.approx(np.log(4 / 3), abs=1e-9)
    assert quad(lambda r: 0.75 * (1 - r * r), -1, 1)[0] == pytest.approx(1.0, abs=1e-12)
