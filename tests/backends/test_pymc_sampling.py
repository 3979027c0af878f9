"""PyMC backend end to end (nutpie): sleepstudy against lme4, marginal = non-centred, compile once.

Compiling a model costs seconds to minutes, so each compiled structure is built once per module
(module-scoped fixtures) and the tests share the fits.  Seeds are pinned.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import compare_mm as cm
from compare_mm.backends.pymc.backend import BACKEND, compile_count

warnings.filterwarnings("ignore", category=FutureWarning)

pytestmark = pytest.mark.slow  # every test here compiles and samples a PyMC model

LME4 = json.loads((Path(__file__).parents[1] / "data" / "sleepstudy_lme4.json").read_text())
RUN = dict(draws=1000, tune=1000, chains=2)


def _arviz():
    import arviz as az

    return az


@pytest.fixture(scope="module")
def sleep() -> pd.DataFrame:
    return pd.read_csv(Path(cm.__file__).parent / "data" / "sleepstudy.csv", dtype={"Subject": str})


def oneway(seed: int, mu: float = 10.0, sd_a: float = 2.0, sigma: float = 3.0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    g = np.repeat(np.arange(18), 10)
    y = mu + rng.normal(0, sd_a, 18)[g] + rng.normal(0, sigma, g.size)
    return pd.DataFrame({"y": y, "g": [f"g{k:02d}" for k in g]})


@pytest.fixture(scope="module")
def sleep_fit(sleep):
    d = cm.make_design("Reaction ~ Days + (Days || Subject)", sleep)
    return BACKEND.fit(d, dict(RUN, seed=11))


@pytest.fixture(scope="module")
def oneway_design():
    return cm.make_design("y ~ 1 + (1 | g)", oneway(2024))


@pytest.fixture(scope="module")
def oneway_nc(oneway_design):
    return BACKEND.fit(oneway_design, dict(RUN, seed=5, parameterisation="noncentred"))


@pytest.fixture(scope="module")
def oneway_marg(oneway_design):
    return BACKEND.fit(oneway_design, dict(RUN, seed=6, parameterisation="marginal"))


# ------------------------------------------------------------------------------------- sleepstudy
def test_sleepstudy_medians_match_reml(sleep_fit):
    """Default priors and parameterisation (auto: marginal here): posterior medians of β within 2% of
    lme4's REML (251.405, 10.467)."""
    ref = LME4["sleepstudy | Reaction ~ Days + (Days || Subject) | REML"]["fixef"]
    post = {s.parameter: s for s in sleep_fit.posterior}
    for term, value in ref.items():
        assert post[term].median == pytest.approx(value, rel=0.02), term
    assert sleep_fit.diagnostics["divergences"] == 0
    assert sleep_fit.diagnostics["max_rhat"] < 1.01
    assert all(s.rhat < 1.01 for s in sleep_fit.posterior)
    assert sleep_fit.converged and not sleep_fit.warnings


def test_sleepstudy_result_schema(sleep_fit):
    r = sleep_fit
    names = {s.parameter for s in r.posterior}
    assert names == {"(Intercept)", "Days", "sd_(Intercept)|Subject", "sd_Days|Subject", "sigma",
                     "var_(Intercept)|Subject", "var_Days|Subject", "sigma2"}
    for n in names:
        assert r.interval(n, "eti").level == 0.95 and r.interval(n, "hdi") is not None
        assert n in r.idata.posterior  # canonical names in the InferenceData
    post = {s.parameter: s for s in r.posterior}
    assert [row.estimate for row in r.fixef] == [post["(Intercept)"].mean, post["Days"].mean]
    assert [row.se for row in r.fixef] == [post["(Intercept)"].sd, post["Days"].sd]
    assert r.sigma == post["sigma"].mean and r.loglik is None and r.method == "Bayes"
    assert [v.group for v in r.varcorr] == ["Subject", "Subject", "Residual"]
    assert len(r.ranef) == 36 and r.ngroups == {"Subject": 18}
    # posterior SDs are bigger than REML's plug-in SEs but of the same order
    se = LME4["sleepstudy | Reaction ~ Days + (Days || Subject) | REML"]["se"]
    assert 0.8 < post["Days"].sd / se["Days"] < 1.6
    assert set(r.options["priors"]) >= {"(Intercept)", "sd_(Intercept)|Subject", "sigma"}
    assert r.diagnostics["sampler"] == "nutpie" and r.diagnostics["draws"] == 1000
    json.loads(r.to_json())


# -------------------------------------------------------------------------- marginal = non-centred
def test_marginal_equals_noncentred(oneway_nc, oneway_marg):
    """Posterior means of μ, σ_A, σ agree within 4 combined Monte Carlo SEs (arviz.mcse)."""
    az = _arviz()
    for name in ("(Intercept)", "sd_(Intercept)|g", "sigma"):
        a = np.asarray(oneway_nc.idata.posterior[name])
        b = np.asarray(oneway_marg.idata.posterior[name])
        mcse = [float(az.mcse(az.convert_to_dataset(v))["x"].values) for v in (a, b)]
        se = np.hypot(*mcse)
        assert abs(a.mean() - b.mean()) < 4 * se, (name, a.mean(), b.mean(), se)
    assert oneway_marg.diagnostics["parameterisation"] == "marginal"
    # the random effects drawn afterwards from their conditional reproduce the non-centred ones
    u_nc = np.array([r.value for r in oneway_nc.ranef])
    u_m = np.array([r.value for r in oneway_marg.ranef])
    sd_nc = np.array([r.condsd for r in oneway_nc.ranef])
    assert np.max(np.abs(u_nc - u_m) / sd_nc) < 0.25


def test_second_replicate_does_not_recompile(oneway_design, oneway_nc):
    """Same design shape, new response: the cached compiled model is reused with new data."""
    before = compile_count()
    d2 = oneway_design.with_y(oneway(77, mu=20.0)["y"].to_numpy())
    r2 = BACKEND.fit(d2, dict(RUN, seed=5, parameterisation="noncentred"))
    assert compile_count() == before
    assert r2.diagnostics["compile_s"] == 0.0 and oneway_nc.diagnostics["compile_s"] > 0.0
    mu1 = oneway_nc.fixef[0].estimate
    mu2 = r2.fixef[0].estimate
    assert abs(mu2 - 20.0) < 3 * r2.fixef[0].se and abs(mu1 - 10.0) < 3 * oneway_nc.fixef[0].se
    assert r2.options["priors"]["(Intercept)"] != oneway_nc.options["priors"]["(Intercept)"]  # rescaled


# ---------------------------------------------------------------- centred, LKJ, inverse gamma
def test_centred_correlated_with_inverse_gamma(sleep):
    """(Days | Subject), centred, LKJ(2) correlation; σ² ~ IG(1000, 400000) (prior mean 400.4).

    The informative prior must pull σ² from REML's 655 to ≈ (β + SSR/2)/(α + n/2 − 1) ≈ 410–425.
    """
    d = cm.make_design("Reaction ~ Days + (Days | Subject)", sleep)
    r = BACKEND.fit(d, dict(draws=500, tune=500, chains=2, seed=3, parameterisation="centred",
                            prior={"sigma2": {"inverse_gamma": {"alpha": 1000, "beta": 400000}}}))
    cor = [v for v in r.varcorr if v.term2 is not None]
    assert len(cor) == 1 and cor[0].term == "(Intercept)" and cor[0].term2 == "Days"
    assert -1 < cor[0].corr < 1
    post = {s.parameter: s for s in r.posterior}
    assert -1 <= post["cor_Days.(Intercept)|Subject"].hdi_lower < post["cor_Days.(Intercept)|Subject"].hdi_upper <= 1
    assert 400 < post["sigma2"].mean < 440
    assert r.options["priors"]["sigma2"].startswith("InverseGamma(alpha=1000")
    assert r.options["priors"]["cor|Subject"] == "LKJ(eta=2)"
    assert r.fixef[1].estimate == pytest.approx(10.467, rel=0.05)


def test_pymc_sampler_fallback(oneway_design):
    """sampler='pymc' (PyMC's own NUTS) runs on the same model and fills the same schema."""
    r = BACKEND.fit(oneway_design, dict(draws=60, tune=60, chains=1, cores=1, seed=9, sampler="pymc"))
    assert r.diagnostics["sampler"] == "pymc"
    assert abs(r.fixef[0].estimate - 10.0) < 2.0
    assert {s.parameter for s in r.posterior} >= {"(Intercept)", "sd_(Intercept)|g", "sigma"}


def test_one_chain_says_why_it_is_not_converged_and_arviz_logs_nothing(oneway_design, capfd):
    """Split R-hat needs two chains: with ``chains=1`` ArviZ logged "Shape validation failed" on stderr
    and the result said "R-hat ≥ 1.01 for … (max nan); the chains have not mixed".  Now R-hat is NaN, the
    result says why in one sentence and stderr has no ArviZ line; two chains are unaffected."""
    one = BACKEND.fit(oneway_design, dict(draws=40, tune=40, chains=1, cores=1, seed=3))
    err = capfd.readouterr().err
    assert "Shape validation" not in err and "arviz" not in err.lower(), err
    assert all(np.isnan(s.rhat) for s in one.posterior) and np.isnan(one.diagnostics["max_rhat"])
    assert one.converged is False
    assert [w for w in one.warnings if "R-hat" in w] == [
        "R-hat needs at least 2 chains: with one chain convergence cannot be checked, so the fit is reported "
        "as not converged (use chains ≥ 2)."]
    text = str(one)   # no column of 'nan': R-hat is left out, ESS stays
    header = next(ln for ln in text.splitlines() if "median" in ln and "HDI" in ln)
    assert "R-hat" not in header and "ESS bulk" in header
    assert "nan" not in text.split("Posterior summary")[1].split(" divergences")[0]
    two = BACKEND.fit(oneway_design, dict(draws=40, tune=40, chains=2, cores=1, seed=3))
    assert all(np.isfinite(s.rhat) for s in two.posterior)
    assert "R-hat" in str(two)
    assert not any("at least 2 chains" in w for w in two.warnings)
