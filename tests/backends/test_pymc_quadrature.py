"""sampler='quadrature': the exact posterior of the PyMC model, checked against an independent brute-force
dense-grid integration (every prior family, a fit piled up at σ_A = 0), long NUTS runs (slow) and the
NUTS result schema (slow); what a user is told (refused models, ignored NUTS settings).  The grids of the
random-slope models and the grid machinery: test_quadrature_grids.py."""

from __future__ import annotations

from importlib import resources

import numpy as np
import pandas as pd
import pytest
from scipy import interpolate, optimize, special, stats

import compare_mm as cm
from compare_mm.errors import UnsupportedModelError

REL = 1e-3
PROBS = (0.025, 0.5, 0.975)


def _sleep() -> pd.DataFrame:
    return pd.read_csv(resources.files("compare_mm").joinpath("data/sleepstudy.csv"))


def _zero_data() -> pd.DataFrame:
    """6 groups × 5 with σ_A = 0 (seed 1): REML puts σ̂_A² on the boundary 0."""
    rng = np.random.default_rng(1)
    g = np.repeat(np.arange(6), 5)
    return pd.DataFrame({"y": 10 + rng.normal(size=30), "g": [f"g{i}" for i in g]})


def _simpson(x: np.ndarray) -> np.ndarray:
    """Composite Simpson weights on an odd number of equally spaced nodes."""
    w = np.ones(x.size)
    w[1:-1:2], w[2:-1:2] = 4.0, 2.0
    return w * (x[1] - x[0]) / 3.0


def _sd_logpdf(family: str, s: np.ndarray, **p) -> np.ndarray:
    """log density of an SD s ≥ 0 from scipy.stats (the inverse gamma is on the variance s²)."""
    if family == "half_normal":
        return stats.halfnorm(scale=p["scale"]).logpdf(s)
    if family == "half_cauchy":
        return stats.halfcauchy(scale=p["scale"]).logpdf(s)
    if family == "half_student_t":
        return np.log(2.0) + stats.t(df=p["nu"], scale=p["scale"]).logpdf(s)
    if family == "exponential":
        return stats.expon(scale=p["scale"]).logpdf(s)
    with np.errstate(divide="ignore"):
        return stats.invgamma(p["alpha"], scale=p["beta"]).logpdf(s * s) + np.log(2.0 * s)


def brute_force(df: pd.DataFrame, y: str, g: str, sd_prior: tuple, sigma_prior: tuple, mu_prior: tuple,
                a_max: float, s_range: tuple, na: int = 321, ns: int = 121, log_a: tuple | None = None
                ) -> dict[str, list[float]]:
    """Quantiles of σ_A, σ and μ in y ~ 1 + (1 | g) on a rectangular (σ_A, σ) grid in the natural scale.

    p(σ_A, σ | y) ∝ N(y; m₀1, V), V = σ_A² ZZ' + σ²I + s₀² 11' (μ ~ N(m₀, s₀²) integrated out), times the
    scipy.stats prior densities; Simpson weights in both directions.  The dense V is diagonalised once
    (ZZ' = UΛU', so σ_A²ZZ' + σ²I = U diag(σ_A²λ + σ²) U') and the rank-one s₀²11' enters by the matrix
    determinant lemma and Sherman–Morrison; spot-checked against scipy.stats.multivariate_normal.
    Marginals → cubic-spline CDFs → quantiles by root finding; μ's marginal is the mixture of its
    Gaussian conditionals N((1'V₀⁻¹y + m₀/s₀²)/P, 1/P), P = 1'V₀⁻¹1 + 1/s₀², V₀ = V − s₀²11'.
    """
    yv = df[y].to_numpy(float)
    n = yv.size
    codes = pd.factorize(df[g])[0]
    Z = np.zeros((n, codes.max() + 1))
    Z[np.arange(n), codes] = 1.0
    lam, U = np.linalg.eigh(Z @ Z.T)
    m0, s0 = mu_prior
    e, o = U.T @ (yv - m0), U.T @ np.ones(n)
    # log_a = (lo, hi): σ_A = eᵗ on an equally spaced t grid (a prior that vanishes at 0 with a spike
    # near it, e.g. IG(0.001, 0.001) on σ_A², is resolved in t; integrals over σ_A carry the Jacobian eᵗ)
    T = np.linspace(*log_a, na) if log_a is not None else None
    A = np.exp(T) if log_a is not None else np.linspace(0.0, a_max, na)
    S = np.linspace(*s_range, ns)
    d = (A * A)[:, None, None] * lam[None, None] + (S * S)[None, :, None]      # (na, ns, n)
    ee, oo, eo = (e * e / d).sum(-1), (o * o / d).sum(-1), (e * o / d).sum(-1)
    c = 1.0 + s0 * s0 * oo
    quad = ee - s0 * s0 * eo * eo / c
    logf = -0.5 * (n * np.log(2 * np.pi) + np.log(d).sum(-1) + np.log(c) + quad)
    for i, j in ((na // 3, ns // 2), (na // 7, ns // 4)):
        V = A[i] ** 2 * Z @ Z.T + S[j] ** 2 * np.eye(n) + s0 * s0
        assert logf[i, j] == pytest.approx(stats.multivariate_normal(m0 * np.ones(n), V).logpdf(yv), abs=1e-7)
    prec = oo + 1 / s0**2
    cm_, cv = (m0 * oo + eo + m0 / s0**2) / prec, 1 / prec                      # 1'V₀⁻¹y = m₀ oo + eo
    logf += _sd_logpdf(sd_prior[0], A, **sd_prior[1])[:, None] + _sd_logpdf(sigma_prior[0], S, **sigma_prior[1])[None]
    f = np.exp(logf - logf[np.isfinite(logf)].max())
    f[~np.isfinite(f)] = 0.0
    assert f[-1].max() < 1e-9 and f[:, 0].max() < 1e-9 and f[:, -1].max() < 1e-9   # the grid covers the mass
    if log_a is not None:
        assert f[0].max() < 1e-9
    wa, ws = (_simpson(T) * A if log_a is not None else _simpson(A)), _simpson(S)
    out = {}
    # σ_A's marginal on its grid variable (t when log_a: the density in σ_A times eᵗ), σ's on S
    sd_axis = (T, (f @ ws) * A, np.exp) if log_a is not None else (A, f @ ws, None)
    for name, (x, marg, back) in (("sd", sd_axis), ("sigma", (S, wa @ f, None))):
        cdf = interpolate.CubicSpline(x, marg / (marg @ _simpson(x))).antiderivative()
        qs = [optimize.brentq(lambda t: cdf(t) - q, x[0], x[-1], xtol=1e-12) for q in PROBS]
        out[name] = [back(v) for v in qs] if back is not None else qs
        wx = marg * _simpson(x) / (marg @ _simpson(x))
        val = back(x) if back is not None else x
        m1 = wx @ val
        out[name + "_moments"] = [m1, np.sqrt(wx @ (val - m1) ** 2)]   # posterior mean and SD
    W = (f * wa[:, None] * ws[None]).ravel()
    W /= W.sum()
    mm, ss = cm_.ravel(), np.sqrt(cv.ravel())
    lo, hi = mm.min() - 10 * ss.max(), mm.max() + 10 * ss.max()
    out["mu"] = [optimize.brentq(lambda t: W @ special.ndtr((t - mm) / ss) - q, lo, hi, xtol=1e-10) for q in PROBS]
    return out


def _quantiles(res, name: str) -> list[float]:
    p = {s.parameter: s for s in res.posterior}[name]
    return [p.eti_lower, p.median, p.eti_upper]


def _agree(res, ref: dict, group: str) -> float:
    """Largest relative difference of the 2.5/50/97.5 % quantiles of σ_A, σ and μ; asserts ≤ REL."""
    worst = 0.0
    for key, name in (("sd", f"sd_(Intercept)|{group}"), ("sigma", "sigma"), ("mu", "(Intercept)")):
        got, want = np.array(_quantiles(res, name)), np.array(ref[key])
        rel = np.abs(got - want) / np.abs(want)
        worst = max(worst, float(rel.max()))
        assert np.all(rel < REL), (name, got, want, rel)
        if key + "_moments" in ref:   # the mean and SD too: an end rule can be right for quantiles only
            p = {s.parameter: s for s in res.posterior}[name]
            got, want = np.array([p.mean, p.sd]), np.array(ref[key + "_moments"])
            rel = np.abs(got - want) / np.abs(want)
            worst = max(worst, float(rel.max()))
            assert np.all(rel < REL), (name, "mean, sd", got, want, rel)
    return worst


def test_sleepstudy_random_intercept_matches_brute_force():
    """Default priors (half-normal sd(y), exponential mean sd(y), intercept N(ȳ, 2.5 sd(y)))."""
    df = _sleep()
    res = cm.fit("Reaction ~ 1 + (1 | Subject)", df, backend="pymc", sampler="quadrature")
    assert res.converged and res.diagnostics["integration_error"] < 1e-3
    sy, yb = df.Reaction.std(ddof=1), df.Reaction.mean()
    ref = brute_force(df, "Reaction", "Subject", ("half_normal", {"scale": sy}), ("exponential", {"scale": sy}),
                      (yb, 2.5 * sy), a_max=220.0, s_range=(30.0, 68.0), na=441)
    _agree(res, ref, "Subject")


def test_reml_boundary_data_set_matches_brute_force():
    """σ̂_A²(REML) = 0: the posterior of σ_A piles up at 0, where the half-normal prior has density."""
    df = _zero_data()
    reml = cm.fit("y ~ 1 + (1 | g)", df)
    assert [v.variance for v in reml.varcorr if v.group == "g"][0] == 0.0
    res = cm.fit("y ~ 1 + (1 | g)", df, backend="pymc", sampler="quadrature")
    assert res.converged
    post = {s.parameter: s for s in res.posterior}
    assert post["sd_(Intercept)|g"].hdi_lower == 0.0 and post["sd_(Intercept)|g"].mode < 0.05
    sy, yb = df.y.std(ddof=1), df.y.mean()
    ref = brute_force(df, "y", "g", ("half_normal", {"scale": sy}), ("exponential", {"scale": sy}),
                      (yb, 2.5 * sy), a_max=6.0, s_range=(0.3, 2.6), na=801, ns=161)
    _agree(res, ref, "g")


PRIOR_CASES = [
    ({"sd": {"half_normal": 0.7}}, ("half_normal", {"scale": 0.7}), ("exponential", None)),
    ({"sd": {"half_cauchy": 0.5}}, ("half_cauchy", {"scale": 0.5}), ("exponential", None)),
    ({"sd": {"half_student_t": {"nu": 4, "scale": 0.6}}}, ("half_student_t", {"nu": 4, "scale": 0.6}),
     ("exponential", None)),
    ({"sd": {"exponential": 0.5}}, ("exponential", {"scale": 0.5}), ("exponential", None)),
    ({"sd": {"inverse_gamma": {"alpha": 2.0, "beta": 0.3}}}, ("inverse_gamma", {"alpha": 2.0, "beta": 0.3}),
     ("exponential", None)),
    ({"sigma": {"half_cauchy": 2.0}, "sd": {"half_normal": 1.0}}, ("half_normal", {"scale": 1.0}),
     ("half_cauchy", {"scale": 2.0})),
    ({"sigma2": {"inverse_gamma": {"alpha": 3.0, "beta": 2.0}}, "sd": {"half_normal": 1.0}},
     ("half_normal", {"scale": 1.0}), ("inverse_gamma", {"alpha": 3.0, "beta": 2.0})),
]


@pytest.mark.parametrize("option,sd_prior,sigma_prior", PRIOR_CASES,
                         ids=["half_normal", "half_cauchy", "half_student_t", "exponential", "inverse_gamma",
                              "sigma_half_cauchy", "sigma2_inverse_gamma"])
def test_every_prior_family_matches_brute_force(option, sd_prior, sigma_prior):
    """Each SD family (on σ_A, and two on σ) on the σ̂_A² = 0 data set, where the behaviour at 0 matters."""
    df = _zero_data()
    sy = df.y.std(ddof=1)
    if sigma_prior[1] is None:
        sigma_prior = ("exponential", {"scale": sy})
    res = cm.fit("y ~ 1 + (1 | g)", df, backend="pymc", sampler="quadrature", prior=option)
    assert res.converged
    ref = brute_force(df, "y", "g", sd_prior, sigma_prior, (df.y.mean(), 2.5 * sy), a_max=12.0, na=1601, ns=181,
                      s_range=(0.3, 3.2))
    _agree(res, ref, "g")


def test_near_improper_inverse_gamma_matches_brute_force():
    """IG(0.001, 0.001) on σ_A² and σ² (the prior_coverage study's inverse_gamma preset) on the σ̂_A² = 0
    data set: the posterior of σ_A has a spike near √0.001 and a long shelf above it (Gelman 2006, Bayesian
    Anal. 1, 515–534).  The quadrature integrates it on log axes (s = c eᶻ) and must agree with a brute
    force on a fine log σ_A grid; before the log axes it needed h = 1/16 (~4 × 10⁴ nodes)."""
    df = _zero_data()
    ig = {"inverse_gamma": {"alpha": 0.001, "beta": 0.001}}
    res = cm.fit("y ~ 1 + (1 | g)", df, backend="pymc", sampler="quadrature", prior={"sd": ig, "sigma2": ig})
    assert res.converged and res.diagnostics["grid_size"] < 5000
    ref = brute_force(df, "y", "g", ("inverse_gamma", {"alpha": 0.001, "beta": 0.001}),
                      ("inverse_gamma", {"alpha": 0.001, "beta": 0.001}), (df.y.mean(), 2.5 * df.y.std(ddof=1)),
                      a_max=np.nan, log_a=(np.log(2e-3), np.log(40.0)), na=4001, ns=181, s_range=(0.3, 3.2))
    _agree(res, ref, "g")


def test_non_default_fixed_effect_prior_matches_brute_force():
    """An informative N(9.5, 0.2²) prior on μ moves its posterior; the Gaussian mixture follows."""
    df = _zero_data()
    sy = df.y.std(ddof=1)
    res = cm.fit("y ~ 1 + (1 | g)", df, backend="pymc", sampler="quadrature",
                 prior={"(Intercept)": {"normal": {"loc": 9.5, "scale": 0.2}}})
    ref = brute_force(df, "y", "g", ("half_normal", {"scale": sy}), ("exponential", {"scale": sy}),
                      (9.5, 0.2), a_max=6.0, s_range=(0.3, 2.6), na=801, ns=161)
    _agree(res, ref, "g")


def test_five_dimensional_psi_is_refused_with_one_sentence():
    rng = np.random.default_rng(0)
    df = pd.DataFrame({"y": rng.normal(size=60), "x": rng.normal(size=60),
                       "a": np.repeat(list("abcdef"), 10), "b": np.tile(list("uvwxyz"), 10)})
    with pytest.raises(UnsupportedModelError) as exc:
        cm.fit("y ~ x + (1 | a) + (x | b)", df, backend="pymc", sampler="quadrature")
    msg = str(exc.value)
    assert "quadrature" in msg and msg.count(". ") == 0 and "\n" not in msg and msg.endswith(".")


def test_diagnostics_and_group_effects():
    """Grid size, refinement record and error in diagnostics; u's posterior means shrink the group means."""
    df = _sleep()
    res = cm.fit("Reaction ~ 1 + (1 | Subject)", df, backend="pymc", sampler="quadrature")
    d = res.diagnostics
    assert d["sampler"] == "quadrature" and d["grid_size"] > 0 and len(d["refinements"]) >= 2
    assert d["integration_error"] == d["refinements"][-1]["change"]
    dev = df.groupby("Subject").Reaction.mean() - df.Reaction.mean()
    dev.index = dev.index.astype(str)
    u = pd.Series({r.level: r.value for r in res.ranef})
    assert np.all(np.abs(u[dev.index].to_numpy()) < np.abs(dev.to_numpy()))
    assert np.corrcoef(u[dev.index], dev)[0, 1] > 0.999
    assert all(r.condsd > 0 for r in res.ranef)
    # the printed summary has no R-hat/ESS columns of 'nan' (nothing was sampled) and rounds the diagnostics
    text = str(res)
    assert "nan" not in text and "R-hat" not in text and "ESS bulk" not in text
    assert f"integration_error: {d['integration_error']:.5g}," in text


NUTS_CASES = ["Reaction ~ 1 + (1 | Subject)", "Reaction ~ Days + (Days || Subject)",
              "Reaction ~ Days + (Days | Subject)"]


def nuts_z(formula: str, seed: int = 20261202) -> dict[tuple[str, float], float]:
    """z = (quadrature − NUTS) / MCSE of the 2.5/50/97.5 % quantiles of the fixed effects, SDs and σ.

    NUTS: nutpie, 4 chains × 2,000 draws after 1,000 tuning steps; MCSE of a quantile by
    ``arviz.mcse(method="quantile", prob=…)`` (Vehtari et al. 2021).
    """
    import arviz as az

    df = _sleep()
    quad = cm.fit(formula, df, backend="pymc", sampler="quadrature")
    nuts = cm.fit(formula, df, backend="pymc", chains=4, draws=2000, tune=1000, seed=seed)
    assert nuts.diagnostics["divergences"] == 0 and nuts.diagnostics["max_rhat"] < 1.01
    post = nuts.idata.load().posterior
    qpost = {s.parameter: s for s in quad.posterior}
    out = {}
    for name in qpost:
        if name.startswith(("var_", "cor_")) or name == "sigma2":
            continue
        draws = np.asarray(post[name].values)
        want = dict(zip(PROBS, _quantiles(quad, name)))
        for prob in PROBS:
            mcse = float(az.mcse(draws, method="quantile", prob=prob))
            out[(name, prob)] = (want[prob] - float(np.quantile(draws, prob))) / mcse
    return out


@pytest.mark.slow
@pytest.mark.parametrize("formula", NUTS_CASES, ids=["intercept", "uncorrelated", "correlated"])
def test_agrees_with_a_long_nuts_run_within_3_mcse(formula):
    z = nuts_z(formula)
    worst = max(z, key=lambda k: abs(z[k]))
    assert abs(z[worst]) < 3.0, (worst, z[worst], z)


@pytest.mark.slow
@pytest.mark.parametrize("formula", NUTS_CASES[1:], ids=["uncorrelated", "correlated"])
def test_same_result_schema_as_nuts(formula):
    df = _sleep()
    quad = cm.fit(formula, df, backend="pymc", sampler="quadrature")
    nuts = cm.fit(formula, df, backend="pymc", chains=1, draws=30, tune=30, seed=1)
    assert [s.parameter for s in quad.posterior] == [s.parameter for s in nuts.posterior]
    assert list(quad.estimates()) == list(nuts.estimates())
    assert [(i.parameter, i.kind) for i in quad.intervals] == [(i.parameter, i.kind) for i in nuts.intervals]
    assert [(r.group, r.term, r.term2) for r in quad.varcorr] == [(r.group, r.term, r.term2) for r in nuts.varcorr]
    assert [(r.group, r.level, r.term) for r in quad.ranef] == [(r.group, r.level, r.term) for r in nuts.ranef]
    assert quad.method == nuts.method and quad.backend == nuts.backend


def test_study_config_accepts_sampler_quadrature():
    from compare_mm.study.config.load import load_config

    cfg = load_config({"name": "q", "seed": 1, "replicates": 2, "grid": {"model": ["oneway"], "sigma_a2": [0.0]},
                       "fixed": {"groups": 6, "per_group": 5},
                       "fits": [{"name": "bq", "backend": "pymc", "sampler": "quadrature"}]})
    assert cfg.fits[0].sampler == "quadrature"


@pytest.mark.parametrize("formula, has", [
    ("Reaction ~ Days + (1 | Subject) + (0 + Days | Subject) + (1 | Days)",
     "3 random-effect terms over 2 grouping factors (1 effect by Subject, 1 effect by Subject, 1 effect by Days: "
     "4 covariance parameters)"),
    ("Reaction ~ Days + (Days | Subject) + (1 | Days)",
     "2 random-effect terms over 2 grouping factors (2 effects by Subject, 1 effect by Days: 5 covariance"),
    ("Reaction ~ Days + (Days + I(Days^2) || Subject)", "3 per level of Subject (4 covariance parameters)"),
    ("Reaction ~ Days + (Days + I(Days^2) | Subject)", "3 per level of Subject (7 covariance parameters)"),
])
def test_unsupported_models_get_a_sentence_naming_what_they_have(formula, has):
    """One sentence: what quadrature handles and what this model has (the old sentence said 'at most 4
    covariance parameters, and this model has 4' for three scalar terms)."""
    with pytest.raises(UnsupportedModelError) as err:
        cm.fit(formula, _sleep(), backend="pymc", sampler="quadrature")
    msg = str(err.value)
    assert has in msg and msg.endswith("use sampler='nutpie'.") and "\n" not in msg


def test_nuts_settings_given_to_a_quadrature_fit_are_named_in_a_warning():
    """draws/tune (NUTS settings) cannot change an exact integration: the fit says it ignored them, the
    batched fits too, and a fit without them carries no such warning."""
    df = _sleep()
    res = cm.fit("Reaction ~ 1 + (1 | Subject)", df, backend="pymc", sampler="quadrature", draws=50, tune=10)
    assert res.warnings == ("sampler='quadrature' integrates the posterior exactly and ignores the NUTS settings "
                            "draws, tune.",)
    assert cm.fit("Reaction ~ 1 + (1 | Subject)", df, backend="pymc", sampler="quadrature").warnings == ()
    from compare_mm.backends.pymc.backend import BACKEND

    design = cm.make_design("Reaction ~ 1 + (1 | Subject)", df)
    prepared = BACKEND.prepare(design, {"sampler": "quadrature", "chains": 3})
    y = df["Reaction"].to_numpy()
    fits = prepared.fit_many(np.stack([y, y[::-1]]), [1, 2])
    assert all(f.warnings == ("sampler='quadrature' integrates the posterior exactly and ignores the NUTS "
                              "setting chains.",) for f in fits)
