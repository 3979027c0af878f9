"""Profile intervals of a correlated slope the fitter centres internally are those of the user's parameters.

References, both independent of the elimination in compare_mm.inference.profile_centred:
* at 5 SD, where the fit on the columns as written is accurate, the same design with the centring turned
  off (RandomBlock.shift = 0), profiled directly in the user's ψ;
* at 220 SD, the slope SD, σ and β_x intervals of the fit on x − mean(x) (the same quantities), and for the
  intercept's SD and the correlation at x = 0 the profile deviance at each reported limit, recomputed
  here by a constrained minimisation (SLSQP) over the centred (σ_c, ρ_c, σ_B, σ) with the constraint
  σ_A² = σ_c² − 2cρ_cσ_cσ_B + c²σ_B² or ρ = (ρ_cσ_c − cσ_B)/σ_A written out: it must be χ²₁(0.95) above
  the minimum.
"""

from __future__ import annotations

import sys
import warnings
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from scipy import optimize, stats

from compare_mm import make_design
from compare_mm.fitter.extended import fit_design, surface
from compare_mm.inference.profile import profile_intervals

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "fitter"))
from test_centring import _data  # noqa: E402

# numpy's floating-point warnings reach a user's stderr: these paths must not print any
pytestmark = pytest.mark.filterwarnings("error::RuntimeWarning")

FORMULA = "y ~ x + (x | g)"


def _by_name(ivs):
    return {iv.parameter: (iv.lower, iv.upper) for iv in ivs}


@pytest.mark.parametrize("seed", [2, 3])
def test_moderate_shift_equals_the_profile_of_the_fit_as_written(seed):
    df = _data(seed, False)
    d = make_design(FORMULA, df.assign(x=df["x"] + 5.0 * df["x"].std(ddof=0)))
    assert d.blocks[0].centred
    plain = replace(d, blocks=(replace(d.blocks[0], shift=(0.0, 0.0)),))
    assert not plain.blocks[0].centred and not any(plain.x_shift)
    got, ref = _by_name(profile_intervals(d)), _by_name(profile_intervals(plain))
    assert got.keys() == ref.keys()
    for name in ref:
        assert got[name] == pytest.approx(ref[name], rel=1e-5, abs=1e-7), name


def _centred_deviance(design):
    """d(σ_c, ρ_c, σ_B, σ) (ML) of the design's centred problem, θ from the Cholesky factor of Σ_c / σ²."""
    surf = surface(design).fitted

    def d(x):
        sc, rc, sb, s = x
        L = np.array([[sc, 0.0], [rc * sb, sb * np.sqrt(max(1.0 - rc * rc, 0.0))]]) / s
        return surf.deviance_sigma(np.array([L[0, 0], L[1, 0], L[1, 1]]), s, False)
    return d


def _user(x, c):
    sc, rc, sb, _ = x
    va = sc * sc - 2 * c * rc * sc * sb + c * c * sb * sb
    return np.sqrt(max(va, 0.0)), (rc * sc - c * sb) / np.sqrt(max(va, 1e-300))


def test_far_shift_gives_the_users_intervals():
    df = _data(2, False)
    c = 220.0 * df["x"].std(ddof=0)
    d = make_design(FORMULA, df.assign(x=df["x"] + c))
    d0 = make_design(FORMULA, df)
    assert d.blocks[0].shift[1] == pytest.approx(c) and not d0.blocks[0].centred
    got, ref = _by_name(profile_intervals(d)), _by_name(profile_intervals(d0))
    for name in ("sd_x|g", "sigma", "x"):
        assert got[name] == pytest.approx(ref[name], rel=1e-5), name
    fit = fit_design(d, reml=False)
    dmin, crit = fit.deviance, stats.chi2.ppf(0.95, 1)
    dev = _centred_deviance(d)
    lam = np.array([[fit.theta[0], 0.0], [fit.theta[1], fit.theta[2]]]) * fit.sigma      # the user's Σ^{1/2}
    Mc = np.array([[1.0, c], [0.0, 1.0]])
    Sc = Mc @ lam @ lam.T @ Mc.T                                                        # Σ_c = M Σ M'
    x0 = np.array([np.sqrt(Sc[0, 0]), Sc[0, 1] / np.sqrt(Sc[0, 0] * Sc[1, 1]), np.sqrt(Sc[1, 1]), fit.sigma])
    assert dev(x0) == pytest.approx(dmin, abs=1e-6)
    bounds = [(1e-8, None), (-1.0, 1.0), (1e-8, None), (1e-6, None)]
    for name, which in (("sd_(Intercept)|g", 0), ("cor_x.(Intercept)|g", 1)):
        for limit in got[name]:
            if which == 1 and abs(limit) == 1.0:      # the boundary is inside: ζ(±1) is below the cut-off
                r = optimize.minimize(dev, x0 * [1, 0, 1, 1] + [0, np.sign(limit), 0, 0], method="SLSQP",
                                      bounds=bounds, constraints=[{"type": "eq", "fun": lambda x: x[1] - np.sign(limit)}])
                assert r.fun - dmin <= crit + 1e-6
                continue
            cons = [{"type": "eq", "fun": lambda x, v=limit, w=which: (_user(x, c)[w] - v) * (1.0 if w else 1.0 / v)}]
            best = np.inf
            for start in (x0, x0 * [1.2, 1, 1, 1], x0 * [0.8, 1, 1.1, 1]):
                r = optimize.minimize(dev, start, method="SLSQP", bounds=bounds, constraints=cons,
                                      options=dict(ftol=1e-12, maxiter=500))
                if r.success and abs(cons[0]["fun"](r.x)) < 1e-9:
                    best = min(best, r.fun)
            assert best - dmin == pytest.approx(crit, abs=2e-3), (name, limit)


def test_several_centred_slopes_get_no_intercept_profile_and_say_so():
    rng = np.random.default_rng(5)
    df = _data(1, False)
    df["z"] = rng.normal(size=len(df)) + 100.0
    d = make_design("y ~ x + z + (x + z | g)", df.assign(x=df["x"] + 50.0))
    assert d.blocks[0].centred and d.blocks[0].q == 3
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        ivs = _by_name(profile_intervals(d, parameters=["sd_(Intercept)|g", "sd_x|g"]))
    assert np.isnan(ivs["sd_(Intercept)|g"]).all() and np.isfinite(ivs["sd_x|g"]).all()
    assert any("several internally centred slopes" in str(x.message) for x in w)
