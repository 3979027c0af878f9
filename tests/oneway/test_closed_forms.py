"""Balanced one-way closed forms (compare_mm.oneway.closed_forms) against independent references:
a dense numerical maximisation of the (restricted) likelihood built from V, scipy/statsmodels ANOVA,
exact F distributions and Monte Carlo."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import optimize, stats

from compare_mm.model.design import Design, RandomBlock
from compare_mm.errors import DataError, OptionError, UnsupportedModelError
from compare_mm.oneway.closed_forms import (
    OnewayStats, design_to_array, f_test, f_test_power, fit_oneway, is_balanced_oneway, oneway_stats,
    simulate_oneway,
)
from compare_mm.model.spec import ModelSpec, RandomTerm

LOG2PI = np.log(2 * np.pi)


# ----------------------------------------------------------------------------- dense reference
def _dense(y, a, n, sa2, se2):
    N = a * n
    V = np.kron(np.eye(a), sa2 * np.ones((n, n))) + se2 * np.eye(N)
    X = np.ones((N, 1))
    Vi = np.linalg.inv(V)
    XtViX = X.T @ Vi @ X
    beta = np.linalg.solve(XtViX, X.T @ Vi @ y)
    r = y - X @ beta
    return V, Vi, X, XtViX, beta, r


def dense_loglik(y, a, n, sa2, se2, method):
    """ML: multivariate normal log-density at the GLS β̂; REML: lme4's
    −½[(N−p) log 2π + log|V| + log|X'V⁻¹X| + r'V⁻¹r] (no log|X'X| term)."""
    V, Vi, X, XtViX, beta, r = _dense(y, a, n, sa2, se2)
    if method == "ML":
        return stats.multivariate_normal(mean=X @ beta, cov=V).logpdf(y)
    N, p = X.shape
    return -0.5 * ((N - p) * LOG2PI + np.linalg.slogdet(V)[1] + np.linalg.slogdet(XtViX)[1] + r @ Vi @ r)


def dense_fit(y, a, n, method):
    """Maximise the dense (restricted) likelihood over (s_A, log σ_e²), σ_A² = s_A² (so σ_A² = 0 is an
    interior point of the parameterisation), BFGS with the analytic dense gradient."""
    N = a * n
    B = np.kron(np.eye(a), np.ones((n, n)))

    def obj(p):
        sa2, se2 = p[0] ** 2, np.exp(p[1])
        V, Vi, X, XtViX, beta, r = _dense(y, a, n, sa2, se2)
        f = -2 * dense_loglik(y, a, n, sa2, se2, method)
        P = Vi if method == "ML" else Vi - Vi @ X @ np.linalg.solve(XtViX, X.T @ Vi)
        Pr = Vi @ r
        g = []
        for dV in (2 * p[0] * B, se2 * np.eye(N)):
            g.append(np.trace(P @ dV) - Pr @ dV @ Pr)
        return f, np.array(g)

    best = None
    for start in ([1.0, 0.0], [0.1, np.log(np.var(y))]):
        res = optimize.minimize(obj, start, jac=True, method="BFGS", options={"gtol": 1e-11, "maxiter": 500})
        if best is None or res.fun < best.fun:
            best = res
    return best.x[0] ** 2, np.exp(best.x[1]), -0.5 * best.fun


def _ratio(Y):
    a, n = Y.shape
    gm = Y.mean(1)
    msa = n * np.var(gm, ddof=1)
    mse = np.sum((Y - gm[:, None]) ** 2) / (a * (n - 1))
    return msa, mse


def _find(a, n, sa2, cond, start=0):
    for seed in range(start, start + 10000):
        Y = simulate_oneway(np.random.default_rng(seed), a, n, 3.0, sa2, 2.0)
        if cond(*_ratio(Y)):
            return Y
    raise AssertionError("no seed found")


def datasets():
    a6 = 6
    return {
        "interior": simulate_oneway(np.random.default_rng(11), 6, 3, 3.0, 1.5, 2.0),
        "interior_a4n5": simulate_oneway(np.random.default_rng(12), 4, 5, -1.0, 4.0, 0.5),
        "reml_zero": _find(6, 3, 0.0, lambda msa, mse: msa < 0.8 * mse),
        "ml_zero_reml_not": _find(6, 3, 0.0, lambda msa, mse: 1.02 * mse < msa < 0.98 * a6 / (a6 - 1) * mse),
    }


DATA = datasets()


@pytest.mark.parametrize("name", list(DATA))
@pytest.mark.parametrize("method", ["REML", "ML"])
def test_closed_forms_equal_dense_maximisation(name, method):
    Y = DATA[name]
    a, n = Y.shape
    y = Y.ravel()
    est = fit_oneway(Y, method)
    sa2, se2, ll = dense_fit(y, a, n, method)
    np.testing.assert_allclose(est.sigma_e2, se2, rtol=1e-6)
    np.testing.assert_allclose(est.sigma_a2, sa2, rtol=1e-6, atol=1e-10)
    # the closed-form maximum is the dense maximum, and the reported loglik is the dense formula there
    assert abs(est.loglik - ll) < 1e-8
    assert abs(est.loglik - dense_loglik(y, a, n, float(est.sigma_a2), float(est.sigma_e2), method)) < 1e-10
    assert bool(est.boundary) == (sa2 < 1e-10)


def test_boundary_cases_are_the_intended_ones():
    r0, m0 = fit_oneway(DATA["reml_zero"], "REML"), fit_oneway(DATA["reml_zero"], "ML")
    assert r0.sigma_a2 == 0 and m0.sigma_a2 == 0
    N = 18
    s = oneway_stats(DATA["reml_zero"])
    np.testing.assert_allclose(r0.sigma_e2, (s.sse + s.ssa) / (N - 1), rtol=1e-14)
    np.testing.assert_allclose(m0.sigma_e2, (s.sse + s.ssa) / N, rtol=1e-14)
    r1, m1 = fit_oneway(DATA["ml_zero_reml_not"], "REML"), fit_oneway(DATA["ml_zero_reml_not"], "ML")
    assert r1.sigma_a2 > 0 and m1.sigma_a2 == 0 and not r1.boundary and m1.boundary


@pytest.mark.parametrize("method", ["REML", "ML", "ANOVA"])
def test_blup_se_and_condsd_equal_dense_formulas(method):
    Y = DATA["interior"]
    a, n = Y.shape
    est = fit_oneway(Y, method, level=0.9)
    sa2, se2 = float(est.sigma_a2), float(est.sigma_e2)
    V, Vi, X, XtViX, beta, r = _dense(Y.ravel(), a, n, sa2, se2)
    Z = np.kron(np.eye(a), np.ones((n, 1)))
    np.testing.assert_allclose(est.blup, sa2 * Z.T @ Vi @ r, rtol=1e-10, atol=1e-12)  # G Z'V⁻¹(y − Xβ̂)
    np.testing.assert_allclose(est.mu, beta[0], rtol=1e-12)
    np.testing.assert_allclose(est.se_mu, np.sqrt(np.linalg.inv(XtViX)[0, 0]), rtol=1e-10)
    condvar = np.linalg.inv(np.eye(a) / sa2 + Z.T @ Z / se2)  # Var(u | y) at the estimates (lme4 condVar)
    np.testing.assert_allclose(est.blup_condsd, np.sqrt(condvar[0, 0]), rtol=1e-10)
    np.testing.assert_allclose(est.shrinkage, n * sa2 / (se2 + n * sa2), rtol=1e-12)
    z = stats.norm.ppf(0.95)
    np.testing.assert_allclose([est.mu_wald_lower, est.mu_wald_upper],
                               [beta[0] - z * est.se_mu, beta[0] + z * est.se_mu], rtol=1e-12)
    # exact t interval = the one-sample t interval on the group means (independent: scipy)
    ci = stats.ttest_1samp(Y.mean(1), 0.0).confidence_interval(0.9)
    np.testing.assert_allclose([est.mu_lower, est.mu_upper], [ci.low, ci.high], rtol=1e-12)


def test_anova_matches_statsmodels_and_may_be_negative():
    import statsmodels.formula.api as smf
    from statsmodels.stats.anova import anova_lm

    for name in ("interior", "reml_zero"):
        Y = DATA[name]
        a, n = Y.shape
        df = pd.DataFrame({"y": Y.ravel(), "g": np.repeat([f"g{i}" for i in range(a)], n)})
        tab = anova_lm(smf.ols("y ~ C(g)", df).fit())
        msa, mse = tab["mean_sq"].iloc[0], tab["mean_sq"].iloc[1]
        est = fit_oneway(Y, "ANOVA")
        np.testing.assert_allclose(est.sigma_a2, (msa - mse) / n, rtol=1e-10)
        np.testing.assert_allclose(est.sigma_e2, mse, rtol=1e-10)
        assert np.isnan(est.loglik)
    neg = fit_oneway(DATA["reml_zero"], "ANOVA")
    assert neg.sigma_a2 < 0 and neg.boundary
    assert neg.shrinkage == 0 and np.all(neg.blup == 0) and neg.blup_condsd == 0


def test_vectorised_equals_separate_calls():
    rng = np.random.default_rng(5)
    Y = simulate_oneway(rng, 5, 4, 1.0, 0.3, 1.0, size=(3, 4))
    assert Y.shape == (3, 4, 5, 4)
    for method in ("REML", "ML", "ANOVA"):
        batch = fit_oneway(Y, method)
        for i in range(3):
            for j in range(4):
                one = fit_oneway(Y[i, j], method)
                for field in ("mu", "se_mu", "sigma_a2", "sigma_e2", "loglik", "boundary", "blup",
                              "blup_condsd", "shrinkage", "mu_lower", "mu_upper", "mu_wald_lower",
                              "mu_wald_upper"):
                    np.testing.assert_allclose(getattr(batch, field)[i, j], getattr(one, field),
                                               rtol=1e-13, atol=1e-15, err_msg=f"{method} {field}")
    s = oneway_stats(Y)
    assert isinstance(s, OnewayStats) and s.shape == (3, 4) and s.group_means.shape == (3, 4, 5)
    np.testing.assert_array_equal(fit_oneway(s, "ML").sigma_a2, fit_oneway(Y, "ML").sigma_a2)


def test_f_test_matches_scipy_f_oneway():
    rng = np.random.default_rng(3)
    Y = simulate_oneway(rng, 7, 4, 0.0, 0.2, 1.0, size=20)
    ft = f_test(Y)
    assert (ft.df1, ft.df2) == (6, 21)
    for r in range(20):
        ref = stats.f_oneway(*Y[r])
        np.testing.assert_allclose(ft.statistic[r], ref.statistic, rtol=1e-10)
        np.testing.assert_allclose(ft.p_value[r], ref.pvalue, rtol=1e-9)


def test_f_test_size_and_power_by_simulation():
    a, n, R, alpha = 6, 3, 4000, 0.05
    rng = np.random.default_rng(20261122)
    rej0 = np.mean(f_test(simulate_oneway(rng, a, n, 0.0, 0.0, 1.0, size=R)).p_value < alpha)
    assert abs(rej0 - alpha) < 4 * np.sqrt(alpha * (1 - alpha) / R)
    np.testing.assert_allclose(f_test_power(a, n, 0.0, 1.0, alpha), alpha, rtol=1e-12)
    p1 = float(f_test_power(a, n, 0.5, 1.0, alpha))
    assert 0.2 < p1 < 0.9
    rej1 = np.mean(f_test(simulate_oneway(rng, a, n, 0.0, 0.5, 1.0, size=R)).p_value < alpha)
    assert abs(rej1 - p1) < 4 * np.sqrt(p1 * (1 - p1) / R)
    grid = f_test_power(np.array([6, 18])[:, None], 3, np.array([0.0, 0.2, 1.0]), 1.0)
    assert grid.shape == (2, 3) and np.all(np.diff(grid, axis=1) > 0)


def test_simulate_shapes_and_moments():
    rng = np.random.default_rng(0)
    assert simulate_oneway(rng, 3, 2, 0.0, 1.0, 1.0).shape == (3, 2)
    Y = simulate_oneway(rng, 4, 5, 2.0, 0.7, 1.3, size=20000)
    est = fit_oneway(Y, "ANOVA")  # unbiased: E σ̂_A² = σ_A², E σ̂_e² = σ_e²
    assert abs(est.mu.mean() - 2.0) < 4 * est.mu.std() / np.sqrt(20000)
    assert abs(est.sigma_a2.mean() - 0.7) < 4 * est.sigma_a2.std() / np.sqrt(20000)
    assert abs(est.sigma_e2.mean() - 1.3) < 4 * est.sigma_e2.std() / np.sqrt(20000)


def test_bad_inputs_raise_user_errors():
    with pytest.raises(OptionError, match="method"):
        fit_oneway(DATA["interior"], "MOM")
    with pytest.raises(OptionError, match="level"):
        fit_oneway(DATA["interior"], "REML", level=95)
    with pytest.raises(DataError, match="at least 2 groups"):
        oneway_stats(np.ones((1, 4)))
    with pytest.raises(DataError, match="shape"):
        oneway_stats(np.ones(4))
    with pytest.raises(DataError, match="NaN"):
        oneway_stats(np.array([[1.0, np.nan], [2.0, 3.0]]))


# ----------------------------------------------------------------------------- designs
def _design(codes, y, X=None, Z=None, fixed="1", q_names=("(Intercept)",)):
    codes = np.asarray(codes)
    N = codes.size
    levels = tuple(str(i) for i in range(codes.max() + 1))
    spec = ModelSpec(response="y", fixed=fixed, random=(RandomTerm(group=("g",), formula="1"),))
    block = RandomBlock(group="g", term_names=q_names, covariance="unstructured", codes=codes, levels=levels,
                        Z=np.ones((N, 1)) if Z is None else Z)
    return Design(spec=spec, y=np.asarray(y, float), X=np.ones((N, 1)) if X is None else X,
                  fixed_names=("(Intercept)",), blocks=(block,), response_name="y")


def test_design_helpers_on_hand_built_designs():
    rng = np.random.default_rng(1)
    codes = np.repeat(np.arange(4), 3)
    perm = rng.permutation(12)
    y = np.arange(12.0)
    d = _design(codes[perm], y[perm])
    assert is_balanced_oneway(d) == (4, 3)
    arr = design_to_array(d)
    np.testing.assert_array_equal(np.sort(arr, axis=1), y.reshape(4, 3))
    assert is_balanced_oneway(_design(np.array([0, 0, 1, 1, 1]), np.arange(5.0))) is None  # unbalanced
    assert is_balanced_oneway(_design(np.arange(4), np.arange(4.0))) is None  # n = 1
    xcol = np.column_stack([np.ones(12), np.arange(12.0)])
    assert is_balanced_oneway(_design(codes, y, X=xcol)) is None  # slope in the fixed part
    assert is_balanced_oneway(_design(codes, y, Z=np.arange(12.0)[:, None], q_names=("x",))) is None
    with pytest.raises(UnsupportedModelError):
        design_to_array(_design(np.array([0, 0, 1, 1, 1]), np.arange(5.0)))


def test_design_helpers_through_make_design():
    from compare_mm import make_design

    Y = DATA["interior"]
    a, n = Y.shape
    df = pd.DataFrame({"y": Y.ravel(), "g": np.repeat([f"s{i}" for i in range(a)], n)}).sample(
        frac=1.0, random_state=2)
    d = make_design("y ~ 1 + (1 | g)", df)
    assert is_balanced_oneway(d) == (a, n)
    arr = design_to_array(d)
    order = [int(lv[1:]) for lv in d.blocks[0].levels]
    np.testing.assert_allclose(np.sort(arr, axis=1), np.sort(Y[order], axis=1))
    assert is_balanced_oneway(make_design("y ~ 1 + (1 | g)", df.iloc[1:])) is None


# ----------------------------------------------------------------------------- numerical fitter
@pytest.mark.parametrize("name", list(DATA))
@pytest.mark.parametrize("method", ["REML", "ML"])
def test_closed_forms_equal_numerical_fitter(name, method):
    """Issue 2: the lecture's closed forms equal the hand-written numerical fitter (1e-7), boundary included."""
    import compare_mm

    Y = DATA[name]
    a, n = Y.shape
    df = pd.DataFrame({"y": Y.ravel(), "g": np.repeat([f"g{i}" for i in range(a)], n)})
    fit = compare_mm.fit("y ~ 1 + (1|g)", df, method=method)
    est = fit_oneway(Y, method)
    got = fit.estimates()
    np.testing.assert_allclose(got["(Intercept)"], est.mu, rtol=1e-7)
    np.testing.assert_allclose(fit.fixef[0].se, est.se_mu, rtol=1e-7)
    np.testing.assert_allclose(got["sigma2"], est.sigma_e2, rtol=1e-7)
    np.testing.assert_allclose(got["var_(Intercept)|g"], est.sigma_a2, rtol=1e-7, atol=1e-12)
    np.testing.assert_allclose(fit.loglik, est.loglik, rtol=0, atol=1e-7)
    assert fit.singular == bool(est.boundary)
    values = {r.level: (r.value, r.condsd) for r in fit.ranef}
    np.testing.assert_allclose([values[f"g{i}"][0] for i in range(a)], est.blup, rtol=1e-7, atol=1e-10)
    np.testing.assert_allclose([values[f"g{i}"][1] for i in range(a)], np.full(a, est.blup_condsd),
                               rtol=1e-7, atol=1e-10)
