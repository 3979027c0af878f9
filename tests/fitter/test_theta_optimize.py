"""θ layout (lme4 order, bounds, start), the sign/zero rectification, singular fits, backend options."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.optimize import minimize

import compare_mm
from compare_mm.backends.reml import BACKEND
from compare_mm.errors import OptionError
from compare_mm.fitter import onefactor
from compare_mm.fitter.optimize import canonical, is_singular
from compare_mm.fitter.theta import make_layout, theta_positions


def test_theta_positions_lme4_order():
    r, c = theta_positions(2, "unstructured")
    assert list(zip(r, c)) == [(0, 0), (1, 0), (1, 1)]              # (λ11, λ21, λ22)
    r, c = theta_positions(3, "unstructured")
    assert list(zip(r, c)) == [(0, 0), (1, 0), (2, 0), (1, 1), (2, 1), (2, 2)]
    r, c = theta_positions(2, "diagonal")
    assert list(zip(r, c)) == [(0, 0), (1, 1)]


def slope_data(seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    g = np.repeat(np.arange(10), 5)
    x = np.tile(np.arange(5, dtype=float), 10)
    y = 1 + 0.5 * x + rng.normal(size=10)[g] + rng.normal(size=50)
    return pd.DataFrame({"y": y, "x": x, "g": [f"g{i}" for i in g], "h": [f"h{i % 3}" for i in range(50)]})


def test_layout_bounds_start_and_order():
    design = compare_mm.make_design("y ~ x + (1 | h) + (x | g)", slope_data(0))
    layout = make_layout(design.blocks)
    assert [t.group for t in layout.terms] == ["g", "h"]            # 10 levels before 3
    assert layout.diagonal.tolist() == [True, False, True, True]
    assert layout.lower.tolist() == [0.0, -np.inf, 0.0, 0.0]
    assert layout.start().tolist() == [1.0, 0.0, 1.0, 1.0]
    assert layout.column_of(0).tolist() == [0, 1]
    assert canonical(np.array([-1.0, 0.5, -2.0, 3.0]), layout).tolist() == [1.0, -0.5, 2.0, 3.0]


def test_singular_slope_fit_is_the_bounded_optimum():
    """A rank-deficient covariance: λ22 exactly 0, |corr| = 1, and no bounded optimiser does better."""
    df = slope_data(0)
    res = compare_mm.fit("y ~ x + (x | g)", df)
    assert res.singular and res.theta[2] == 0.0 and res.theta[0] > 0.1
    corr = [r.corr for r in res.varcorr if r.term2 is not None][0]
    assert abs(corr) == pytest.approx(1.0, abs=1e-12)
    design = compare_mm.make_design("y ~ x + (x | g)", df)
    layout = make_layout(design.blocks)
    pr = onefactor.build_one_factor(design, layout)
    f = lambda t: onefactor.evaluate(pr, np.asarray(t), True, False)[0]
    assert res.criterion == pytest.approx(f(np.array(res.theta)), abs=1e-9)
    bounds = [(0, None), (None, None), (0, None)]
    for start in ([1.0, 0.0, 1.0], [0.5, -0.3, 0.5], [2.0, 0.5, 0.2]):
        other = minimize(f, start, method="Powell", bounds=bounds, options=dict(xtol=1e-10, ftol=1e-14))
        assert res.criterion <= other.fun + 1e-9
    # moving λ22 off zero makes the deviance worse
    th = np.array(res.theta)
    for h in (1e-4, 1e-2):
        assert f(th + np.array([0, 0, h])) > res.criterion


def test_is_singular_uses_lme4_tolerance():
    design = compare_mm.make_design("y ~ x + (x | g)", slope_data(1))
    layout = make_layout(design.blocks)
    assert is_singular(np.array([1.0, 0.3, 5e-5]), layout)
    assert not is_singular(np.array([1.0, 0.3, 2e-4]), layout)
    assert not is_singular(np.array([1.0, -5.0, 2e-4]), layout)    # off-diagonals do not count


def test_unknown_option_names_the_key():
    design = compare_mm.make_design("y ~ x + (1 | g)", slope_data(2))
    with pytest.raises(OptionError, match="'draws'"):
        BACKEND.fit(design, {"draws": 100})
    with pytest.raises(OptionError, match="'level'"):
        BACKEND.fit(design, {"level": 1.5})
    with pytest.raises(OptionError, match="'path'"):
        BACKEND.fit(design, {"path": "cholmod"})
    with pytest.raises(OptionError, match="onefactor"):
        BACKEND.fit(compare_mm.make_design("y ~ x + (1 | g) + (1 | h)", slope_data(2)), {"path": "onefactor"})


def test_wald_level_option():
    df = slope_data(3)
    res = compare_mm.fit("y ~ x + (1 | g)", df, level=0.9)
    z = 1.6448536269514722                                          # qnorm(0.95)
    for r in res.fixef:
        iv = res.interval(r.term, "wald")
        assert iv.level == 0.9 and iv.kind == "wald"
        assert (iv.upper - iv.lower) / 2 == pytest.approx(z * r.se, rel=1e-12)


def test_supports():
    assert BACKEND.supports(compare_mm.parse_formula("y ~ x + (x | g)")) is None
    assert BACKEND.supports(compare_mm.parse_formula("y ~ x + (1 | a/b)")) is None
    no_random = compare_mm.ModelSpec(response="y", fixed="1 + x")
    assert isinstance(BACKEND.supports(no_random), str)


def test_with_y_refit_and_elapsed():
    """A prebuilt design refitted with another response (how studies call the backend)."""
    df = slope_data(4)
    design = compare_mm.make_design("y ~ x + (1 | g)", df)
    y2 = df["y"].to_numpy() * 2.0 + 3.0
    r1 = BACKEND.fit(design, {})
    r2 = BACKEND.fit(design.with_y(y2), {})
    assert r2.sigma == pytest.approx(2 * r1.sigma, rel=1e-7)
    assert r2.theta == pytest.approx(r1.theta, rel=1e-6)
    assert r2.fixef[0].estimate == pytest.approx(2 * r1.fixef[0].estimate + 3, rel=1e-9)
    assert r1.elapsed_s > 0


def test_block_order_conversion():
    """FitResult.theta is in lme4 order (terms by decreasing levels); helpers map to design.blocks order."""
    from compare_mm.fitter.theta import from_block_order, to_block_order

    design = compare_mm.make_design("y ~ x + (1 | h) + (x | g)", slope_data(0))
    layout = make_layout(design.blocks)
    lme4 = np.array([1.0, 2.0, 3.0, 4.0])                  # g: (1, 2, 3), h: (4,)
    blocks = to_block_order(layout, lme4)
    assert blocks.tolist() == [4.0, 1.0, 2.0, 3.0]          # h first, as in the formula
    assert from_block_order(layout, blocks).tolist() == lme4.tolist()
