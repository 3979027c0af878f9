"""Awkward data for the fitter: singleton groups, a huge response offset, many effects per level."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import compare_mm


def unbalanced(seed: int = 8) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    sizes = np.r_[1, 1, 2, rng.integers(1, 12, size=20)]           # singleton groups: Z_i'Z_i singular
    g = np.repeat(np.arange(sizes.size), sizes)
    x = rng.uniform(0, 5, size=g.size)
    z = rng.normal(size=g.size)
    y = 5 + x + rng.normal(size=sizes.size)[g] + 0.5 * rng.normal(size=sizes.size)[g] * x \
        + rng.normal(size=g.size)
    return pd.DataFrame({"y": y, "x": x, "z": z, "g": [f"g{i:02d}" for i in g]})


@pytest.mark.parametrize("method", ["REML", "ML"])
@pytest.mark.parametrize("formula", ["y ~ x + (x | g)", "y ~ x + (x || g)", "y ~ x + (x + z | g)"])
def test_fast_path_equals_general_path_on_unbalanced_data(formula, method):
    df = unbalanced()
    a = compare_mm.fit(formula, df, method=method)
    b = compare_mm.fit(formula, df, method=method, path="general")
    assert a.options["path"] == "onefactor" and a.converged
    assert a.loglik == pytest.approx(b.loglik, abs=1e-7)
    assert np.allclose([r.value for r in a.ranef], [r.value for r in b.ranef], atol=1e-4)


def test_large_response_offset_changes_only_the_intercept():
    """y + 10⁶: the fitter works on the OLS residual, so θ and σ are unaffected by the offset."""
    df = unbalanced()
    shifted = df.assign(y=df["y"] + 1e6)
    a = compare_mm.fit("y ~ x + (x | g)", df)
    b = compare_mm.fit("y ~ x + (x | g)", shifted)
    assert b.theta == pytest.approx(a.theta, rel=1e-6, abs=1e-8)
    assert b.sigma == pytest.approx(a.sigma, rel=1e-8)
    assert b.fixef[0].estimate - 1e6 == pytest.approx(a.fixef[0].estimate, abs=1e-6)
    assert b.fixef[1].estimate == pytest.approx(a.fixef[1].estimate, rel=1e-8)
    assert b.loglik == pytest.approx(a.loglik, abs=1e-7)
