"""Property test: the quadrature posterior of y ~ 1 + (1 | g) on random one-way data sets — unbalanced
group sizes, σ_A² from 0 to several times σ², SD priors of three families with random scales — against
an independent brute-force integration written in the tests (a dense (σ_A, σ) grid in natural units with
Simpson weights; :func:`test_pymc_quadrature.brute_force`).  Both paths a user gets are checked: a single
fit (``cm.fit``, the adaptive grid) and a study's batched fit (``PreparedQuadrature.fit_many``).

The claim checked is the quadrature's stated accuracy: the 2.5 %, 50 % and 97.5 % quantiles and the mean
and SD of σ_A, σ and μ within 1e-3 posterior SDs of the reference (the tolerance of its stopping rule).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

import compare_mm as cm
from compare_mm.backends.pymc.backend import BACKEND

sys.path.insert(0, str(Path(__file__).parent))
from test_pymc_quadrature import brute_force  # noqa: E402

TOL = 1e-3
FAMILIES = ("half_normal", "half_cauchy", "exponential")


def _data(seed: int) -> tuple[pd.DataFrame, dict]:
    rng = np.random.default_rng(seed)
    # ≥ 5 groups: with 3 the posterior of σ_A under a half-Cauchy prior has a σ_A⁻⁴ tail that the
    # reference's uniform grid can cover only by spacing too coarse near 0
    G = int(rng.integers(5, 13))
    sizes = rng.integers(2, 9, G)
    while sizes.sum() - G < 8:            # σ determined well enough for the brute-force box below
        sizes = sizes + 1
    sigma = float(np.exp(rng.uniform(np.log(0.3), np.log(5.0))))
    ratio = float(rng.choice([0.0, 0.05, 0.3, 1.0, 4.0]))
    g = np.repeat(np.arange(G), sizes)
    y = rng.normal(0, 10) + rng.normal(0, np.sqrt(ratio) * sigma, G)[g] + rng.normal(0, sigma, g.size)
    family = FAMILIES[int(rng.integers(len(FAMILIES)))]
    scale = float(np.std(y, ddof=1) * np.exp(rng.uniform(np.log(0.3), np.log(2.0))))
    return pd.DataFrame({"y": y, "g": [f"g{k:02d}" for k in g]}), {"family": family, "scale": scale}


def _reference(df: pd.DataFrame, prior: dict) -> dict:
    sy, yb = df.y.std(ddof=1), df.y.mean()
    within = df.groupby("g").y.transform("mean")
    sw = float(np.sqrt(((df.y - within) ** 2).sum() / (len(df) - df.g.nunique())))
    a_max = (7.0 if prior["family"] == "half_normal" else 25.0) * prior["scale"] + 3.0 * sy
    lo, hi = 0.2 * sw, 3.5 * sw
    for _ in range(5):   # brute_force asserts that its box holds the mass (edges < 1e-9): widen until it does
        try:
            return brute_force(df, "y", "g", (prior["family"], {"scale": prior["scale"]}),
                               ("exponential", {"scale": sy}), (yb, 2.5 * sy), a_max=a_max,
                               s_range=(lo, hi), na=1201, ns=301)
        except AssertionError:
            lo, hi, a_max = lo / 1.6, hi * 1.6, a_max * 1.6
    raise AssertionError("the brute-force box did not reach the posterior's tails")


def _errors(res, ref: dict) -> dict[str, float]:
    """Largest |quadrature − reference| / posterior SD over the quantiles, mean and SD, per parameter."""
    post = {s.parameter: s for s in res.posterior}
    out = {}
    for key, name in (("sd", "sd_(Intercept)|g"), ("sigma", "sigma"), ("mu", "(Intercept)")):
        p = post[name]
        got = np.array([p.eti_lower, p.median, p.eti_upper])
        err = np.abs(got - np.array(ref[key])) / p.sd
        if key + "_moments" in ref:
            err = np.concatenate([err, np.abs(np.array([p.mean, p.sd]) - np.array(ref[key + "_moments"])) / p.sd])
        out[name] = float(err.max())
    return out


@pytest.mark.slow
@settings(max_examples=12, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**31 - 1))
def test_random_one_way_posteriors_match_a_brute_force_grid(seed):
    df, prior = _data(seed)
    option = {"sd": {prior["family"]: prior["scale"]}}
    ref = _reference(df, prior)
    single = cm.fit("y ~ 1 + (1 | g)", df, backend="pymc", sampler="quadrature", prior=option)
    assert single.converged
    design = cm.make_design("y ~ 1 + (1 | g)", df)
    batched = BACKEND.prepare(design, {"sampler": "quadrature", "prior": option}).fit_many(df.y.to_numpy()[None])[0]
    assert batched.converged
    for path, res in (("single", single), ("batched", batched)):
        errs = _errors(res, ref)
        assert max(errs.values()) < TOL, (path, seed, prior, errs)
