"""The optimiser's boundary logic on objectives whose optimum is known in closed form.

d(θ) is even in each column of Λ, so θ_k = 0 is always a critical point in θ_k: these tests build even
functions of θ with a known global minimum and check that the exact 1-D solver, the restart off spurious
zeros and the zero rule (:func:`compare_mm.fitter.optimize.rectify`) find it.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

import compare_mm
from compare_mm.fitter.extended import surface
from compare_mm.fitter.optimize import inward, minimise_scalar, optimise_theta, rectify, OptResult
from compare_mm.fitter.theta import make_layout


def even(h, dh):
    """d(θ) = h(θ²) with gradient 2θ h'(θ²), as fitter objectives are."""
    def fun(th, want_grad):
        lam = float(th[0]) ** 2
        return h(lam), (np.array([2.0 * th[0] * dh(lam)]) if want_grad else None)
    return fun


def test_scalar_finds_the_global_minimum_beyond_a_local_minimum_at_zero():
    # h(λ) = 1000 + λ(λ − 1)(λ − 3): h'(0) = 3 > 0 (0 is a local minimum), global minimum at
    # λ* = (4 + √7)/3 where h'(λ) = 3λ² − 8λ + 3 = 0
    h = lambda l: 1000.0 + l * (l - 1.0) * (l - 3.0)
    dh = lambda l: 3 * l * l - 8 * l + 3
    lam_star = (4 + math.sqrt(7)) / 3
    for has_grad in (True, False):
        r = minimise_scalar(even(h, dh), has_grad=has_grad)
        assert r.theta[0] ** 2 == pytest.approx(lam_star, rel=1e-7)
        assert r.fval == pytest.approx(h(lam_star), rel=1e-15)


def test_scalar_interior_minimum_below_the_first_grid_point():
    # h(λ) = 1000 − 1e-6 λ + λ²: inward at 0, minimum at λ = 5e-7 (θ = 7.1e-4 < the grid's 1e-3)
    h = lambda l: 1000.0 - 1e-6 * l + l * l
    dh = lambda l: -1e-6 + 2 * l
    r = minimise_scalar(even(h, dh))
    assert r.theta[0] ** 2 == pytest.approx(5e-7, rel=1e-6)
    assert r.fval < 1000.0


def test_scalar_zero_when_the_derivative_points_outwards():
    h = lambda l: 50.0 + 0.3 * l + 0.01 * l * l
    r = minimise_scalar(even(h, lambda l: 0.3 + 0.02 * l))
    assert r.theta[0] == 0.0 and r.fval == 50.0


def test_inward_reads_the_sign_of_the_variance_derivative():
    for slope, want in ((-1e-3, True), (1e-3, False), (-1e-12, False)):
        fun = even(lambda l, s=slope: 10.0 + s * l + l * l, lambda l, s=slope: s + 2 * l)
        assert inward(fun, np.zeros(1), [0]) is want
        assert inward(fun, np.zeros(1), [0], has_grad=False) is want


def two_d(c):
    """d(θ1, θ2) = 1000 + (θ1² − 1)² + c θ2² + θ2⁴: θ2's optimum is θ2² = −c/2 when c < 0."""
    def fun(th, want_grad):
        a, b = float(th[0]), float(th[1])
        f = 1000.0 + (a * a - 1) ** 2 + c * b * b + b ** 4
        g = np.array([4 * a * (a * a - 1), 2 * c * b + 4 * b ** 3]) if want_grad else None
        return f, g
    return fun


def test_rectify_keeps_an_inward_component_off_zero():
    """θ2* = 7.1e-4 improves d by only 2.5e-13 (below any relative tolerance on d ≈ 1000), but the
    derivative at 0 points inwards, so the zero must not be kept."""
    layout = make_layout(compare_mm.make_design("y ~ 1 + (1 | a) + (1 | b)", crossed_frame()).blocks)
    fun = two_d(-1e-6)
    opt = OptResult(np.array([1.0, math.sqrt(5e-7)]), fun(np.array([1.0, math.sqrt(5e-7)]), False)[0],
                    True, "", "test")
    out = rectify(fun, opt, layout)
    assert out.theta[1] == pytest.approx(math.sqrt(5e-7), rel=1e-9)
    fun_out = two_d(+1e-6)                                  # outward: the zero is kept
    opt = OptResult(np.array([1.0, 1e-5]), fun_out(np.array([1.0, 1e-5]), False)[0], True, "", "test")
    assert rectify(fun_out, opt, layout).theta[1] == 0.0


def crossed_frame(seed=4):
    rng = np.random.default_rng(seed)
    a = np.repeat(np.arange(6), 8)
    b = np.tile(np.arange(4), 12)
    y = rng.normal(size=6)[a] + 0.8 * rng.normal(size=4)[b] + rng.normal(size=a.size)
    return pd.DataFrame({"y": y, "a": [f"a{i}" for i in a], "b": [f"b{i}" for i in b]})


@pytest.mark.parametrize("path", ["general", "sparse"])
def test_a_start_on_the_symmetric_zero_is_left(path):
    """θ = 0 exactly is a critical point of d in every component (∂d/∂θ = 0 by symmetry); started there,
    the optimiser must still reach the interior optimum that lme4's start reaches."""
    design = compare_mm.make_design("y ~ 1 + (1 | a) + (1 | b)", crossed_frame())
    surf = surface(design, path=path)
    fun = surf.objective(True)
    ref = optimise_theta(fun, surf.layout, has_grad=surf.has_grad)
    assert np.all(ref.theta > 0.1)
    got = optimise_theta(fun, surf.layout, has_grad=surf.has_grad, x0=np.zeros(2))
    assert got.fval == pytest.approx(ref.fval, rel=1e-10)
    assert got.theta == pytest.approx(ref.theta, rel=1e-4)


@pytest.mark.parametrize("formula", ["y ~ 1 + (1 | a)", "y ~ x + (1 | a)"])
@pytest.mark.parametrize("reml", [True, False])
def test_deviance_grid_equals_pointwise_evaluation(formula, reml):
    from compare_mm.fitter import onefactor

    df = crossed_frame()
    df["x"] = np.linspace(-1, 2, len(df)) ** 2
    surf = surface(compare_mm.make_design(formula, df))
    thetas = np.r_[0.0, np.geomspace(1e-4, 1e4, 40)]
    fun = surf.objective(reml)
    want = np.array([fun(np.array([t]), False)[0] for t in thetas])
    np.testing.assert_allclose(onefactor.deviance_grid(surf.problem, thetas, reml), want, rtol=1e-12)
