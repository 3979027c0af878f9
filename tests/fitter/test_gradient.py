"""The analytic gradient of the profiled deviance against finite differences (ML and REML).

Covers the closed-form q = 1 and q = 2 (unstructured and diagonal) one-factor paths, the batched q = 3
path, two terms merged on one factor, and the general (several factors) path.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import compare_mm
from compare_mm.fitter import general, onefactor
from compare_mm.fitter.theta import make_layout


def _data(seed: int = 3) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    sizes = rng.integers(2, 9, size=14)                      # unbalanced groups
    g = np.repeat(np.arange(14), sizes)
    n = g.size
    x = rng.normal(size=n)
    z = rng.uniform(-1, 1, size=n)
    h = rng.integers(0, 5, size=n)
    y = 3 + 0.5 * x + rng.normal(size=14)[g] + 0.4 * rng.normal(size=14)[g] * x + rng.normal(size=5)[h] \
        + rng.normal(scale=0.8, size=n)
    return pd.DataFrame({"y": y, "x": x, "z": z, "g": [f"g{i}" for i in g], "h": [f"h{i}" for i in h]})


def _theta(layout, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    th = rng.uniform(-0.4, 0.4, size=layout.n_theta)
    diag = layout.diagonal
    th[diag] = rng.uniform(0.3, 1.5, size=diag.sum())
    return th


def _fd(fun, th: np.ndarray, h: float = 1e-3) -> np.ndarray:
    """Fourth-order central differences."""
    out = np.empty_like(th)
    for k in range(th.size):
        e = np.zeros_like(th)
        e[k] = h
        out[k] = (-fun(th + 2 * e) + 8 * fun(th + e) - 8 * fun(th - e) + fun(th - 2 * e)) / (12 * h)
    return out


ONE_FACTOR = [
    "y ~ x + (1 | g)",
    "y ~ x + (x | g)",
    "y ~ x + (x || g)",
    "y ~ x + (x + z | g)",
    "y ~ x + (1 | g) + (0 + x | g)",
]


@pytest.mark.parametrize("method", ["REML", "ML"])
@pytest.mark.parametrize("formula", ONE_FACTOR)
def test_one_factor_gradient(formula, method):
    design = compare_mm.make_design(formula, _data(), method=method)
    layout = make_layout(design.blocks)
    pr = onefactor.build_one_factor(design, layout)
    reml = method == "REML"
    for seed in range(3):
        th = _theta(layout, seed)
        d, g = onefactor.evaluate(pr, th, reml)
        fd = _fd(lambda t: onefactor.evaluate(pr, t, reml, False)[0], th)
        assert np.all(np.isfinite(g))
        assert np.max(np.abs(g - fd)) <= 1e-6 * max(1.0, np.max(np.abs(fd)))
        # the same deviance from the independent dense general path
        pg = general.build_general(design, layout)
        d2, g2 = general.evaluate(pg, th, reml)
        assert d == pytest.approx(d2, rel=1e-12, abs=1e-9)
        assert np.allclose(g, g2, rtol=1e-7, atol=1e-8)


@pytest.mark.parametrize("method", ["REML", "ML"])
@pytest.mark.parametrize("formula", ["y ~ x + (1 | g) + (1 | h)", "y ~ x + (x | g) + (1 | h)",
                                     "y ~ x + (x || g) + (1 | g:h)"])
def test_general_gradient(formula, method):
    design = compare_mm.make_design(formula, _data(5), method=method)
    layout = make_layout(design.blocks)
    pg = general.build_general(design, layout)
    reml = method == "REML"
    for seed in range(3):
        th = _theta(layout, seed)
        _, g = general.evaluate(pg, th, reml)
        fd = _fd(lambda t: general.evaluate(pg, t, reml, False)[0], th)
        assert np.max(np.abs(g - fd)) <= 1e-6 * max(1.0, np.max(np.abs(fd)))


def test_gradient_at_boundary_is_finite_and_matches():
    """With a zero column in Λ the gradient still matches differences (one-sided use is not needed)."""
    design = compare_mm.make_design("y ~ x + (x | g)", _data(), method="REML")
    layout = make_layout(design.blocks)
    pr = onefactor.build_one_factor(design, layout)
    th = np.array([0.8, 0.2, 0.0])
    _, g = onefactor.evaluate(pr, th, True)
    fd = _fd(lambda t: onefactor.evaluate(pr, t, True, False)[0], th)
    assert np.max(np.abs(g - fd)) <= 1e-6 * max(1.0, np.max(np.abs(fd)))
