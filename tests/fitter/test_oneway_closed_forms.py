"""The fitter against the lecture's closed forms for the balanced one-way model y_ij = μ + a_i + e_ij.

With SSA = n Σ (ȳ_i − ȳ)², SSE = Σ (y_ij − ȳ_i)², MSA = SSA/(a − 1), MSE = SSE/(a(n − 1)):

* REML: σ̂_e² = MSE, σ̂_A² = (MSA − MSE)/n when MSA > MSE; else σ̂_A² = 0, σ̂_e² = (SSE + SSA)/(an − 1);
* ML:   σ̂_e² = MSE, σ̂_A² = ((1 − 1/a) MSA − MSE)/n when positive; else 0 and (SSE + SSA)/(an).

The closed forms are computed here from the raw numbers, independently of compare_mm.oneway.closed_forms.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import compare_mm


def simulate(seed: int, a: int, n: int, sd_a: float) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return 10.0 + rng.normal(0.0, sd_a, size=(a, 1)) + rng.normal(size=(a, n))


def frame(y: np.ndarray) -> pd.DataFrame:
    a, n = y.shape
    return pd.DataFrame({"y": y.ravel(), "g": np.repeat([f"g{i:02d}" for i in range(a)], n)})


def anova(y: np.ndarray):
    a, n = y.shape
    m = y.mean(axis=1)
    ssa = n * ((m - y.mean()) ** 2).sum()
    sse = ((y - m[:, None]) ** 2).sum()
    return ssa, sse, ssa / (a - 1), sse / (a * (n - 1))


def fit(y, method):
    res = compare_mm.fit("y ~ 1 + (1 | g)", frame(y), method=method)
    return res, res.varcorr[0].variance, res.varcorr[-1].variance


# seed 2 with σ_A² = 0: MSA < MSE (checked below), so both estimates of σ_A² are on the boundary
BOUNDARY = dict(seed=2, a=6, n=4, sd_a=0.0)


@pytest.mark.parametrize("method", ["REML", "ML"])
def test_boundary_estimate_is_exactly_zero(method):
    y = simulate(**BOUNDARY)
    a, n = y.shape
    ssa, sse, msa, mse = anova(y)
    assert msa < mse                       # the data really are on the REML (hence ML) boundary
    res, va, ve = fit(y, method)
    assert va == 0.0 and res.varcorr[0].sd == 0.0 and res.theta == (0.0,)
    assert res.singular is True
    assert res.warnings[0].startswith("boundary (singular) fit: a variance is estimated as 0")
    expected = (sse + ssa) / (a * n - 1) if method == "REML" else (sse + ssa) / (a * n)
    assert ve == pytest.approx(expected, rel=1e-10)
    assert res.fixef[0].estimate == pytest.approx(y.mean(), rel=1e-12)
    # the BLUPs of a zero variance are exactly zero, with conditional SD 0
    assert all(r.value == 0.0 and r.condsd == 0.0 for r in res.ranef)


@pytest.mark.parametrize("seed", [0, 3, 5, 7])
@pytest.mark.parametrize("method", ["REML", "ML"])
def test_interior_estimates_equal_closed_forms(seed, method):
    y = simulate(seed, a=6, n=4, sd_a=0.8)
    a, n = y.shape
    ssa, sse, msa, mse = anova(y)
    res, va, ve = fit(y, method)
    if method == "REML":
        assert msa > mse
        exp_a, exp_e = (msa - mse) / n, mse
    else:
        exp_a, exp_e = ((1 - 1 / a) * msa - mse) / n, mse
        assert exp_a > 0
    assert va == pytest.approx(exp_a, rel=1e-7)
    assert ve == pytest.approx(exp_e, rel=1e-7)
    assert not res.singular
    # SE of μ̂ in the balanced model: sqrt((σ_e² + n σ_A²)/(an))
    assert res.fixef[0].se == pytest.approx(np.sqrt((exp_e + n * exp_a) / (a * n)), rel=1e-7)


def test_ml_boundary_while_reml_interior():
    """Between the two boundaries: REML gives σ̂_A² > 0 while ML's estimate is exactly 0."""
    for seed in range(200):
        y = simulate(seed, a=5, n=3, sd_a=0.3)
        a, n = y.shape
        ssa, sse, msa, mse = anova(y)
        if msa > mse and (1 - 1 / a) * msa < mse:
            break
    else:  # pragma: no cover
        pytest.fail("no seed between the boundaries")
    res_r, va_r, ve_r = fit(y, "REML")
    res_m, va_m, ve_m = fit(y, "ML")
    assert va_r == pytest.approx((msa - mse) / n, rel=1e-7) and not res_r.singular
    assert va_m == 0.0 and res_m.singular
    assert ve_m == pytest.approx((sse + ssa) / (a * n), rel=1e-10)
