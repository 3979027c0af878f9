"""The statsmodels backend against lme4's published fits, against our REML fitter, and its failure handling."""

from __future__ import annotations

import json
import math
from importlib import resources

import numpy as np
import pandas as pd
import pytest
from statsmodels.regression.mixed_linear_model import MixedLM

import compare_mm
from compare_mm.backends import get_backend
from compare_mm.backends.statsmodels.backend import SILENT_FAILURE, check_options, silent_failure
from compare_mm.errors import OptionError, UnsupportedModelError

FORMULAS = ("Reaction ~ Days + (Days | Subject)", "Reaction ~ Days + (Days || Subject)",
            "Reaction ~ Days + (1 | Subject)")
CASES = [(f, m) for f in FORMULAS for m in ("REML", "ML")]


@pytest.fixture(scope="module")
def sleep() -> pd.DataFrame:
    with resources.files("compare_mm.data").joinpath("sleepstudy.csv").open() as fh:
        return pd.read_csv(fh, dtype={"Subject": str})


@pytest.fixture(scope="module")
def lme4() -> dict:
    with resources.files("compare_mm.data").joinpath("sleepstudy_lme4.json").open() as fh:
        return json.load(fh)


@pytest.fixture(scope="module")
def fits(sleep):
    return {(f, m): compare_mm.fit(f, sleep, backend="statsmodels", method=m) for f, m in CASES}


def _rel(a: float, b: float) -> float:
    return abs(a - b) / abs(b)


def _lme4_estimates(entry: dict) -> dict[str, float]:
    out = dict(entry["fixef"])
    for v in entry["varcorr"]:
        grp = v["grp"].removesuffix(".1")
        if v["grp"] == "Residual":
            out["sigma"] = v["sdcor"]
        elif v["var2"] is None:
            out[f"sd_{v['var1']}|{grp}"] = v["sdcor"]
        else:
            out[f"cor_{v['var2']}.{v['var1']}|{grp}"] = v["sdcor"]
    return out


@pytest.mark.parametrize("formula,method", CASES)
def test_against_lme4(fits, lme4, formula, method):
    """fixef, SDs, corr, σ, SE, loglik, θ and conditional modes match lme4 1.1-31 (1e-4) when converged."""
    res, ref = fits[(formula, method)], lme4[f"sleepstudy | {formula} | {method}"]
    if not res.converged:  # then the reason must be in the result
        assert res.warnings
        return
    est, want = res.estimates(), _lme4_estimates(ref)
    for name, value in want.items():
        assert _rel(est[name], value) < 1e-4, name
    for row in res.fixef:
        assert _rel(row.se, ref["se"][row.term]) < 1e-4, row.term
    assert res.loglik == pytest.approx(ref["logLik"], abs=1e-6)  # same REML convention as lme4: no offset
    assert res.criterion == pytest.approx(-2 * ref["logLik"], abs=2e-6)
    assert np.allclose(res.theta, np.atleast_1d(ref["theta"]), rtol=1e-4, atol=1e-6)
    assert res.singular is ref["singular"]
    modes = np.array([r.value for r in res.ranef])
    condsd = np.array([r.condsd for r in res.ranef])
    assert [(r.group, r.level, r.term) for r in res.ranef] == list(
        zip(ref["blups"]["grpvar"], ref["blups"]["grp"], ref["blups"]["term"]))
    assert np.max(np.abs(modes - ref["blups"]["condval"])) < 1e-4 * np.max(np.abs(ref["blups"]["condval"]))
    assert np.allclose(condsd, ref["blups"]["condsd"], rtol=1e-4)


@pytest.mark.parametrize("formula,method", CASES)
def test_agrees_with_our_fitter(fits, sleep, formula, method):
    """statsmodels and our REML/ML fitter: estimates within 1e-4 relative where statsmodels converged."""
    sm = fits[(formula, method)]
    ours = compare_mm.fit(formula, sleep, backend="reml", method=method)
    if not sm.converged:
        assert any("converge" in w.lower() or SILENT_FAILURE in w for w in sm.warnings)
        return
    a, b = sm.estimates(), ours.estimates()
    assert set(a) == set(b)
    for name in b:  # fixef, SDs, correlations, σ (variances, derived, carry twice the SDs' relative error)
        if not name.startswith("var_") and name != "sigma2":
            assert _rel(a[name], b[name]) < 1e-4, name
    assert [r.name for r in sm.varcorr] == [r.name for r in ours.varcorr]  # same rows, same order
    assert sm.aic == pytest.approx(ours.aic, abs=1e-5) and sm.bic == pytest.approx(ours.bic, abs=1e-5)


def test_result_contract(fits):
    """JSON keys as the reml backend's; Wald intervals at 0.95; optimisation summary filled."""
    res = fits[("Reaction ~ Days + (Days | Subject)", "REML")]
    d = json.loads(res.to_json())
    assert d["backend"] == "statsmodels" and d["method"] == "REML" and d["nobs"] == 180
    assert [r["term"] for r in d["fixef"]] == ["(Intercept)", "Days"]
    assert [(r["group"], r["term"], r["term2"]) for r in d["varcorr"]] == [
        ("Subject", "(Intercept)", None), ("Subject", "Days", None), ("Subject", "(Intercept)", "Days"),
        ("Residual", None, None)]
    assert len(d["ranef"]) == 36 and len(d["theta"]) == 3
    iv = res.interval("Days", "wald")
    days = res.fixef[1]
    assert iv.level == 0.95 and iv.lower == pytest.approx(days.estimate - 1.959963984540054 * days.se)
    assert res.optimisation.evaluations > 0 and res.optimisation.optimizer.startswith("statsmodels:")
    assert res.elapsed_s > 0


def test_diagonal_has_no_correlation(sleep):
    """(Days || Subject): the off-diagonal of cov_re is held at exactly 0 and no corr row is reported."""
    res = compare_mm.fit("Reaction ~ Days + (Days || Subject)", sleep, backend="statsmodels", method="REML")
    assert not any(r.term2 for r in res.varcorr)
    design = compare_mm.make_design("Reaction ~ Days + (Days || Subject)", sleep, method="REML")
    from compare_mm.backends.statsmodels.layout import plan_layout

    layout = plan_layout(design)
    raw = MixedLM(design.y, design.X, groups=layout.groups, exog_re=layout.exog_re).fit(free=layout.free)
    assert raw.cov_re[0, 1] == 0.0 and raw.cov_re[1, 0] == 0.0
    # and the independent fit differs from the correlated one (the mask is not a no-op)
    corr = compare_mm.fit("Reaction ~ Days + (Days | Subject)", sleep, backend="statsmodels")
    assert abs(res.estimates()["sd_(Intercept)|Subject"] - corr.estimates()["sd_(Intercept)|Subject"]) > 0.1


def _oneway(seed: int, a: int = 10, n: int = 5, sd_a: float = 1.0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    g = np.repeat(np.arange(a), n)
    x = rng.normal(size=a * n)
    y = 3.0 + 0.5 * x + rng.normal(0.0, sd_a, a)[g] + rng.normal(size=a * n)
    return pd.DataFrame({"y": y, "x": x, "g": [f"g{i:02d}" for i in g]})


def test_silent_failure_flagged(monkeypatch):
    """statsmodels#10239 reproduced through statsmodels' own code path, then detected.

    get_fe_params zeroes the inverse RE covariance once Var(RE)/σ² < tol (1e-10); raising tol makes the
    same branch run on ordinary data, and statsmodels returns the intercept as exactly 0.0 with
    converged=True.
    """
    df = _oneway(1)
    normal = compare_mm.fit("y ~ x + (1 | g)", df, backend="statsmodels")
    assert normal.converged and not any(w.startswith(SILENT_FAILURE) for w in normal.warnings)
    assert normal.fixef[0].estimate != 0.0

    original = MixedLM.get_fe_params
    monkeypatch.setattr(MixedLM, "get_fe_params",
                        lambda self, cov_re, vcomp, tol=1e-10: original(self, cov_re, vcomp, tol=1e6))
    broken = compare_mm.fit("y ~ x + (1 | g)", df, backend="statsmodels")
    assert broken.optimisation.converged  # statsmodels itself says converged ...
    assert broken.fixef[0].estimate == 0.0  # ... with the intercept silently 0.0
    assert broken.converged is False
    flags = [w for w in broken.warnings if w.startswith(SILENT_FAILURE)]
    assert len(flags) == 1 and "(Intercept)" in flags[0]


def test_silent_failure_rule():
    names = ("(Intercept)", "x")
    assert silent_failure(np.array([1.0, 2.0]), np.array([1.0, 1.0]), names, True) is None
    assert silent_failure(np.array([0.0, 2.0]), np.array([1.0, 1.0]), names, False) is None  # already failed
    assert "x" in silent_failure(np.array([1.0, 0.0]), np.array([1.0, 1.0]), names, True)
    assert silent_failure(np.array([1.0, 2.0]), np.array([np.nan, 1.0]), names, True).startswith(SILENT_FAILURE)


def _boundary_data() -> pd.DataFrame:
    """σ_A² = 0 and a seed whose between-group mean square is below the within (estimate on the boundary)."""
    for seed in range(100):
        df = _oneway(seed, a=6, n=5, sd_a=0.0)
        means = df.groupby("g")["y"].mean()
        msa = 5 * means.var(ddof=1)
        mse = df.groupby("g")["y"].var(ddof=1).mean()
        if msa < 0.5 * mse:
            return df
    raise AssertionError("no boundary seed")


def test_warnings_captured_not_hidden(recwarn):
    """A boundary fit: statsmodels' ConvergenceWarnings end up in FitResult.warnings, none escapes."""
    df = _boundary_data()
    res = compare_mm.fit("y ~ 1 + (1 | g)", df, backend="statsmodels")
    assert any("boundary of the parameter space" in w for w in res.warnings)
    assert all(w.split(": ", 1)[0].endswith("Warning") for w in res.warnings if not w.startswith("compare_mm"))
    assert not [w for w in recwarn if "statsmodels" in str(w.filename)]
    ours = compare_mm.fit("y ~ 1 + (1 | g)", df, backend="reml")
    assert ours.estimates()["sd_(Intercept)|g"] == 0.0 and ours.singular
    assert res.loglik <= ours.loglik + 1e-6  # statsmodels never beats the exact boundary optimum


def test_exception_becomes_failed_result(monkeypatch):
    """statsmodels raising inside MixedLM.fit (e.g. LinAlgError on boundary data): a failed result, not a crash."""
    def boom(self, *args, **kwargs):
        raise np.linalg.LinAlgError("Singular matrix")

    monkeypatch.setattr(MixedLM, "fit", boom)
    df = _oneway(0, a=8, n=4, sd_a=0.0)
    res = compare_mm.fit("y ~ x + (1 | g)", df, backend="statsmodels", optimizer="lbfgs")
    assert not res.converged
    assert any(w.startswith("statsmodels error: LinAlgError") for w in res.warnings)
    assert math.isnan(res.fixef[0].estimate) and res.loglik is None


@pytest.mark.parametrize("formula", ["y ~ x + (1 | a) + (1 | b)", "y ~ x + (1 | a/b)",
                                     "y ~ x + (x | a) + (1 | a:b)", "y ~ x + (1 | a) + (0 + x | a)"])
@pytest.mark.parametrize("method", ["REML", "ML"])
def test_crossed_and_nested_layouts(formula, method):
    """Crossed (one cluster of variance components), nested (cluster + components) and separate terms on
    one factor agree with our fitter to 1e-6 when statsmodels is run to a tight gradient tolerance."""
    rng = np.random.default_rng(3)
    ia, ib = np.repeat(np.arange(8), 12), np.tile(np.repeat(np.arange(6), 2), 8)
    x = rng.normal(size=ia.size)
    y = 1 + 0.5 * x + rng.normal(0, 1.0, 8)[ia] + rng.normal(0, 0.7, 6)[ib] + rng.normal(0, 0.5, ia.size)
    df = pd.DataFrame({"y": y, "x": x, "a": [f"a{i}" for i in ia], "b": [f"b{j}" for j in ib]})
    sm = compare_mm.fit(formula, df, backend="statsmodels", method=method, gtol=1e-9)
    ours = compare_mm.fit(formula, df, backend="reml", method=method)
    assert sm.converged
    assert sm.loglik == pytest.approx(ours.loglik, abs=1e-6)
    a, b = sm.estimates(), ours.estimates()
    for name in b:
        assert a[name] == pytest.approx(b[name], rel=1e-5, abs=1e-8), name
    assert [(r.group, r.level, r.term) for r in sm.ranef] == [(r.group, r.level, r.term) for r in ours.ranef]
    assert np.allclose([r.value for r in sm.ranef], [r.value for r in ours.ranef], atol=1e-5)
    assert np.allclose([r.condsd for r in sm.ranef], [r.condsd for r in ours.ranef], atol=1e-5)
    assert np.allclose(sm.theta, ours.theta, atol=1e-5)
    assert np.allclose(list(sm.diagnostics["se_conditional"].values()), [r.se for r in ours.fixef], rtol=1e-5)


def test_direct_conditional_matches_statsmodels(sleep):
    """The fallback formula for ranef (used when statsmodels refuses) equals statsmodels' own output."""
    from compare_mm.backends.statsmodels.layout import plan_layout
    from compare_mm.backends.statsmodels.ranef import direct_conditional

    design = compare_mm.make_design("Reaction ~ Days + (Days | Subject)", sleep)
    layout = plan_layout(design)
    res = MixedLM(design.y, design.X, groups=layout.groups, exog_re=layout.exog_re).fit()
    modes, covs = direct_conditional(design, layout, np.asarray(res.fe_params), res.cov_re, np.zeros(0),
                                     res.scale)
    for i, c in enumerate(sorted(res.random_effects)):
        assert np.allclose(modes[i], res.random_effects[c], rtol=1e-8, atol=1e-8)
        assert np.allclose(covs[i], res.random_effects_cov[c], rtol=1e-8, atol=1e-8)


@pytest.mark.parametrize("formula", ["Reaction ~ Days + (Days || Subject)", "Reaction ~ Days + (1 | Subject)"])
def test_ranef_fallback_when_statsmodels_refuses(sleep, monkeypatch, formula):
    """When random_effects raises (singular cov_re), the direct formula fills ranef and a note says so."""
    from statsmodels.regression.mixed_linear_model import MixedLMResults

    normal = compare_mm.fit(formula, sleep, backend="statsmodels")

    def refuse(self):
        raise ValueError("Cannot predict random effects from singular covariance structure.")

    monkeypatch.setattr(MixedLMResults, "random_effects", property(refuse))
    fallback = compare_mm.fit(formula, sleep, backend="statsmodels")
    assert any(w.startswith("compare_mm: statsmodels could not compute the random effects") for w in fallback.warnings)
    assert [(r.group, r.level, r.term) for r in fallback.ranef] == [(r.group, r.level, r.term) for r in normal.ranef]
    assert np.allclose([r.value for r in fallback.ranef], [r.value for r in normal.ranef], rtol=1e-8, atol=1e-8)
    assert np.allclose([r.condsd for r in fallback.ranef], [r.condsd for r in normal.ranef], rtol=1e-8)


def test_supports_crossed_correlated_term():
    """A correlated term on a factor that is not the clustering factor cannot be expressed."""
    be = get_backend("statsmodels")
    reason = be.supports(compare_mm.parse_formula("y ~ x + (1 | a) + (x | b)"))
    assert reason and reason.count(".") <= 2 and "(x | b)" in reason
    assert be.supports(compare_mm.parse_formula("y ~ x + (1 | a) + (x || b)")) is None
    assert be.supports(compare_mm.parse_formula("y ~ x + (x | a) + (1 | a:b)")) is None
    df = pd.DataFrame({"y": np.arange(12.0) % 5, "x": np.arange(12.0), "a": list("pq") * 6, "b": list("rst") * 4})
    with pytest.raises(UnsupportedModelError, match=r"\(x \| b\)"):
        compare_mm.fit("y ~ x + (1 | a) + (x | b)", df, backend="statsmodels")


def test_options(sleep):
    with pytest.raises(OptionError, match="'draws'"):
        compare_mm.fit("Reaction ~ Days + (1 | Subject)", sleep, backend="statsmodels", draws=10)
    with pytest.raises(OptionError, match="'optimizer'"):
        check_options({"optimizer": "newton"})
    with pytest.raises(OptionError, match="'level'"):
        check_options({"level": 1.5})
    with pytest.raises(OptionError, match="'maxiter'"):
        check_options({"maxiter": -3})
    with pytest.raises(OptionError, match="'powell'"):  # would ignore the mask of (Days || Subject)
        compare_mm.fit("Reaction ~ Days + (Days || Subject)", sleep, backend="statsmodels", optimizer="powell")
    res = compare_mm.fit("Reaction ~ Days + (1 | Subject)", sleep, backend="statsmodels", level=0.9,
                         optimizer=["lbfgs"])
    assert res.intervals[0].level == 0.9 and res.optimisation.optimizer == "statsmodels:lbfgs"
