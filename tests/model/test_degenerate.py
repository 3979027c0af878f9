"""Degenerate and unidentifiable models: each is refused in one sentence naming the cause, and each test
states (and where it can, computes inside the test) the independent reason there is no estimate.

The fits that *are* right at extreme variance ratios are in tests/fitter/test_extreme_ratio.py."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from compare_mm import fit, make_design
from compare_mm.errors import DataError, ModelSpecError


def one_line(exc: BaseException) -> str:
    msg = str(exc)
    assert "\n" not in msg and msg.strip() == msg and msg.endswith("."), msg
    return msg


def _data(seed: int = 1, G: int = 6, m: int = 4) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    g = np.repeat(np.arange(G), m)
    return pd.DataFrame({"g": g.astype(str), "x": rng.normal(size=G * m),
                         "u": rng.normal(size=G)[g], "e": rng.normal(size=G * m)})


def _in_span(A: np.ndarray, v: np.ndarray) -> bool:
    """Brute force: is v a combination of the columns of A (dense least squares)?"""
    r = v - A @ np.linalg.lstsq(A, v, rcond=None)[0]
    return bool(np.linalg.norm(r) <= 1e-10 * np.linalg.norm(v))


def _indicators(codes) -> np.ndarray:
    codes = pd.factorize(np.asarray(codes))[0]
    return np.eye(codes.max() + 1)[codes]


# ------------------------------------------------------------------ no residual variation
@pytest.mark.parametrize("backend", ["reml", "statsmodels"])
def test_response_constant_within_groups_is_refused(backend):
    # y = the group's value: y lies in span(Z), so the density at y is unbounded as σ² → 0 (a Gaussian
    # whose covariance σ²I + σ_g²ZZ' tends to the singular σ_g²ZZ' while y stays in its range)
    d = _data()
    d["y"] = d["u"]
    assert _in_span(_indicators(d["g"]), d["y"].to_numpy())
    with pytest.raises(DataError, match=r"fitted exactly .*constant within every level of 'g'") as e:
        fit("y ~ 1 + (1 | g)", d, backend=backend)
    one_line(e.value)


def test_exact_fit_siblings_are_refused():
    d = _data()
    # constant within groups after a fixed slope: y = 2x + u_g is in span([X Z])
    d["y"] = 2.0 * d["x"] + d["u"]
    with pytest.raises(DataError, match=r"after the fixed effects it is constant within every level of 'g'"):
        make_design("y ~ x + (1 | g)", d)
    # crossed and additive: y = u_g + v_h is in span([Z_g Z_h]) though constant within neither factor
    h = np.tile(np.arange(4), 6)
    d2 = d.assign(h=h.astype(str), y=d["u"] + np.array([0.3, -1.0, 2.0, 0.5])[h])
    A = np.column_stack([np.ones(len(d2)), _indicators(d2["g"]), _indicators(d2["h"])])
    assert _in_span(A, d2["y"].to_numpy())
    with pytest.raises(DataError, match=r"fitted exactly by the fixed and random effects: there is no residual"):
        make_design("y ~ 1 + (1 | g) + (1 | h)", d2)
    # with noise of relative size 1e-6 (σ_g/σ = 1e6) the same data are fine
    d2["y"] = d2["y"] * 1e6 + d2["e"]
    assert make_design("y ~ 1 + (1 | g) + (1 | h)", d2).n == 24


# ------------------------------------------------------------------ confounded with the fixed effects
@pytest.mark.parametrize("method", ["REML", "ML"])
def test_random_intercept_confounded_with_fixed_factor(method):
    d = _data().assign(y=lambda f: f.x + f.u + f.e)
    # every column of Z (the group indicators) is a combination of X = [1, x, C(g) dummies]: the residual
    # contrasts (I − P_X)y do not involve u, so the REML criterion cannot depend on σ_g (nor can ML's
    # beyond the log-determinant, which pushes it to 0): not identifiable
    X = np.column_stack([np.ones(24), d["x"], _indicators(d["g"])[:, 1:]])
    assert all(_in_span(X, z) for z in _indicators(d["g"]).T)
    with pytest.raises(ModelSpecError, match=r"random effect \(1 \| g\) is confounded with the fixed effects") as e:
        fit("y ~ x + C(g) + (1 | g)", d, method=method)
    one_line(e.value)


def test_confounded_effect_of_a_vector_term_is_named():
    d = _data().assign(y=lambda f: f.x + f.u + f.e)
    with pytest.raises(ModelSpecError, match=r"random effect 'x' of \(0 \+ x \| g\)|random effect \(0 \+ x \| g\)"):
        make_design("y ~ x + C(g):x + (0 + x | g)", d)
    with pytest.raises(ModelSpecError, match=r"random effect '\(Intercept\)' of \(x \| g\) is confounded"):
        make_design("y ~ x + C(g) + (1 + x | g)", d)
    # a group-level fixed factor leaves the random slope identifiable
    assert make_design("y ~ x + C(g) + (0 + x | g)", d).p == 7


# ------------------------------------------------------------------ flat criterion
def _reml_profile_brute(y, X, Z, theta):
    """−2 × the REML log-likelihood profiled over σ², written from its definition:
    log|V| + log|X'V⁻¹X| + (n − p)(1 + log(2π r'V⁻¹r / (n − p))) with V = I + θ²ZZ'."""
    n, p = X.shape
    V = np.eye(n) + theta**2 * Z @ Z.T
    Vi = np.linalg.inv(V)
    M = X.T @ Vi @ X
    b = np.linalg.solve(M, X.T @ Vi @ y)
    r = y - X @ b
    return (np.linalg.slogdet(V)[1] + np.linalg.slogdet(M)[1]
            + (n - p) * (1 + np.log(2 * np.pi * (r @ Vi @ r) / (n - p))))


def test_one_residual_contrast_is_flat_and_refused():
    d = pd.DataFrame({"g": ["a", "a", "b"], "x": [0.0, 1.0, 3.0], "y": [1.0, 2.5, 4.0]})
    X = np.column_stack([np.ones(3), d["x"]])
    Z = _indicators(d["g"])
    crit = [_reml_profile_brute(d["y"].to_numpy(), X, Z, t) for t in (0.0, 0.1, 1.0, 10.0, 1e3)]
    assert np.ptp(crit) < 1e-9 * abs(crit[0])          # the criterion is flat in θ: no information
    with pytest.raises(DataError, match=r"variance of \(1 \| g\) is not identifiable: with 3 observations") as e:
        fit("y ~ x + (1 | g)", d)
    one_line(e.value)


def test_groups_of_one_are_refused():
    # every group of size 1: ZZ' = I, so σ² and σ_g² enter only through their sum
    d = pd.DataFrame({"g": list("abcde"), "y": [1.0, 2.0, 0.5, 3.0, 2.5]})
    with pytest.raises(DataError, match=r"'g' has 5 levels for 5 observations"):
        fit("y ~ 1 + (1 | g)", d)


# ------------------------------------------------------------------ duplicated random terms
@pytest.mark.parametrize("formula, message", [
    ("y ~ 1 + (1 | g) + (1 | g)", r"term \(1 \| g\) appears twice"),
    ("y ~ x + (1 | g) + (1 + x | g)", r"terms \(1 \| g\) and \(x \| g\) both give '\(Intercept\)' per level of 'g'"),
    ("y ~ x + (x || g) + (1 | g)", r"both give '\(Intercept\)' per level of 'g'"),
    ("y ~ 1 + (1 | g) + (1 | g2)", r"per level of 'g' and 'g2' \(the same grouping\)"),
    ("y ~ 1 + (1 | h/g) + (1 | g)", r"both give '\(Intercept\)' per level of 'h:g' and 'g' \(the same grouping\)"),
])
def test_duplicated_random_terms_are_refused(formula, message):
    # identical Z columns: V = σ²I + (σ_1² + σ_2²) ZZ', so only the sum of the two variances is identifiable
    d = _data().assign(y=lambda f: f.x + f.u + f.e)
    d["g2"] = d["g"].map(lambda s: f"level-{s}")                  # g relabelled: the same partition
    d["h"] = np.where(d["g"].astype(int) < 3, "A", "B")           # g nested in h: h:g is g again
    with pytest.raises(ModelSpecError, match=message) as e:
        make_design(formula, d)
    one_line(e.value)


def test_terms_on_one_factor_with_different_effects_are_fine():
    d = _data().assign(y=lambda f: f.x + f.u + f.e)
    assert len(make_design("y ~ x + (1 | g) + (0 + x | g)", d).blocks) == 2
    assert make_design("y ~ x + (x || g)", d).blocks[0].covariance == "diagonal"


# ------------------------------------------------------------------ column types and counts
def test_numeric_column_with_one_text_cell_is_refused():
    d = _data().assign(y=lambda f: f.x + f.u + f.e)
    d["x"] = d["x"].astype(object)
    d.loc[3, "x"] = "abc"
    with pytest.raises(DataError, match=r"Column 'x' is numeric except for 1 value such as 'abc' "
                                        r"\(first at row 3\)") as e:
        make_design("y ~ x + (1 | g)", d)
    one_line(e.value)
    # the same read from a CSV (strings throughout)
    d["x"] = d["x"].astype(str)
    with pytest.raises(DataError, match=r"such as 'abc'"):
        make_design("y ~ x + (1 | g)", d)
    # a genuine text factor, and C(x) asked for explicitly, are not this mistake
    d["x"] = np.where(np.arange(24) % 2, "lo", "hi")
    assert make_design("y ~ x + (1 | g)", d).fixed_names == ("(Intercept)", "x[T.lo]")


def test_more_fixed_columns_than_observations_is_refused():
    d = _data().assign(y=lambda f: f.x + f.u + f.e)
    d["day"] = [f"2020-01-{i + 1:02d}" for i in range(24)]    # a date column read as text
    with pytest.raises(DataError, match=r"fixed effects have 24 columns for 24 observations.*column 'day' is not "
                                        r"numeric and has 24 distinct values") as e:
        fit("y ~ day + (1 | g)", d)
    one_line(e.value)


@pytest.mark.parametrize("formula, where", [
    ("y ~ y + (1 | g)", "the fixed effects"),
    ("log(y) ~ x + y + (1 | g)", "the fixed effects"),
    ("y ~ x + (y | g)", r"the random-effects term \(y \| g\)"),
    ("y ~ x + (1 | y)", r"the grouping factor of \(1 \| y\)"),
])
def test_response_on_both_sides_is_refused(formula, where):
    d = _data().assign(y=lambda f: np.exp(f.x + f.u + f.e))
    with pytest.raises(ModelSpecError, match=rf"Column 'y' is the response .* also used in {where}") as e:
        make_design(formula, d)
    one_line(e.value)


# ------------------------------------------------------------------ flat along a combination of parameters
def _reml_criterion(y, X, Zs_cov, sigma2):
    """The textbook REML criterion (−2 log restricted likelihood) with V = σ²I + Σ G_kl Z_k Z_l' written
    densely; ``Zs_cov`` is a list of (n × L matrix a, n × L matrix b, coefficient) adding coef · a b'."""
    n = y.size
    V = sigma2 * np.eye(n)
    for a, b, coef in Zs_cov:
        V += coef * a @ b.T
    Vi = np.linalg.inv(V)
    XtViX = X.T @ Vi @ X
    beta = np.linalg.solve(XtViX, X.T @ Vi @ y)
    r = y - X @ beta
    return (np.linalg.slogdet(V)[1] + np.linalg.slogdet(XtViX)[1] + r @ Vi @ r)


def _binary_trt_data(seed: int = 1) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    g = np.repeat(np.arange(8), 6)
    trt = np.tile([0.0, 1.0], 24)
    return pd.DataFrame({"y": rng.normal(size=48) + trt, "g": [f"s{k}" for k in g], "trt": trt})


def test_flat_combination_of_a_slope_term_and_its_interaction_is_refused():
    """(trt | g) + (1 | g:trt) with a two-level trt: [same g and trt] = A_00 − A_01 + 2 A_11, so moving
    (σ_00, σ_01, σ_11, σ_g:trt) along (1, −1, 2, −1) — the covariance multiplies A_01 = Z_0Z_1' + Z_1Z_0' —
    leaves V, and the REML criterion computed here densely, unchanged."""
    df = _binary_trt_data()
    y, trt = df["y"].to_numpy(), df["trt"].to_numpy()
    Z0 = _indicators(df["g"])
    Z1 = Z0 * trt[:, None]
    Zc = _indicators(df["g"] + ":" + df["trt"].astype(str))
    X = np.column_stack([np.ones_like(y), trt])

    def crit(s00, s01, s11, sc):
        return _reml_criterion(y, X, [(Z0, Z0, s00), (Z0, Z1, s01), (Z1, Z0, s01), (Z1, Z1, s11),
                                      (Zc, Zc, sc)], 1.0)
    base = crit(1.0, -0.2, 1.5, 0.8)
    for t in (0.1, 0.3, 0.6):
        assert crit(1.0 + t, -0.2 - t, 1.5 + 2 * t, 0.8 - t) == pytest.approx(base, abs=1e-9)
    assert abs(crit(1.3, -0.2, 1.5, 0.8) - base) > 1e-3     # while each parameter alone does move it
    with pytest.raises(DataError) as err:
        make_design("y ~ trt + (trt | g) + (1 | g:trt)", df)
    msg = one_line(err.value)
    assert "flat along a combination" in msg and "of (trt | g) and (1 | g:trt)" in msg
    # without the covariance there is no flat direction: the model is fitted
    assert fit("y ~ trt + (trt || g) + (1 | g:trt)", df).converged


def _dense_gram_min_eig(X, mats):
    """Brute force: the smallest eigenvalue of the unit-diagonal Gram matrix of I and K'A K (K: an explicit
    orthonormal basis of the residual space of X from a full SVD)."""
    n, p = X.shape
    K = np.linalg.svd(X, full_matrices=True)[0][:, p:]
    Bs = [np.eye(n - p)] + [K.T @ A @ K for A in mats]
    G = np.array([[np.sum(a * b) for b in Bs] for a in Bs])
    d = np.sqrt(np.diag(G))
    if np.any(d <= 1e-12 * d.max()):
        return float("nan")
    ev = np.linalg.eigvalsh(G / np.outer(d, d))
    return ev[0] / ev[-1]


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), binary=st.booleans(), correlated=st.booleans(), n=st.integers(8, 30))
@example(seed=1483397, binary=False, correlated=False, n=8)
def test_flat_combination_check_agrees_with_a_dense_gram_matrix(seed, binary, correlated, n):
    """Random small designs y ~ x + (x | g) or (x || g), + (1 | h) and + (1 | g:x) when x is binary: the
    design is refused as flat exactly when the dense Gram matrix is singular (min eigenvalue ≤ 1e-10).

    The example: g0 has one row (x = 0.0099 there), so after X is projected out both of g's effects are
    multiples of that row's residual, an exact dependence (brute force 9e-18).  Formed as Z'Z − Z'HZ the
    check's Gram matrix kept 1.4e-12 of rounding and accepted the design; it now residualises the level
    columns explicitly for small designs.  A term with no residual contrast at all (the brute force's
    normalisation divides by 0) must be refused by the earlier checks."""
    rng = np.random.default_rng(seed)
    g = rng.integers(0, max(2, n // 4), n)
    h = rng.integers(0, 3, n)
    x = rng.integers(0, 2, n).astype(float) if binary else rng.normal(size=n)
    df = pd.DataFrame({"y": rng.normal(size=n), "x": x, "g": [f"g{k}" for k in g], "h": [f"h{k}" for k in h]})
    bar = "|" if correlated else "||"
    formula = f"y ~ x + (x {bar} g) + (1 | h)" + (" + (1 | g:x)" if binary else "")
    Zg = _indicators(df["g"])
    mats = [Zg @ Zg.T, (Zg * x[:, None]) @ (Zg * x[:, None]).T, _indicators(df["h"]) @ _indicators(df["h"]).T]
    if correlated:
        mats.append((Zg * x[:, None]) @ Zg.T + Zg @ (Zg * x[:, None]).T)
    if binary:
        Zc = _indicators(df["g"] + ":" + df["x"].astype(str))
        mats.append(Zc @ Zc.T)
    X = np.column_stack([np.ones(n), x])
    try:
        make_design(formula, df)
        refused = None
    except (DataError, ModelSpecError) as e:
        refused = str(e)
    if refused is not None and "flat along a combination" not in refused:
        return            # another check (too few levels, confounded, …) refused it first
    ratio = _dense_gram_min_eig(X, mats)
    if np.isnan(ratio):   # a term with no residual contrast: the confounding checks' case
        assert refused is not None, formula
        return
    assert (refused is not None) == (ratio <= 1e-10), (formula, refused, ratio)


# ------------------------------------------------------------------ covariates in extreme units
def _slope_data(seed: int, n_groups: int = 10, m: int = 6) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    g = np.repeat(np.arange(n_groups), m)
    x = rng.normal(size=g.size)
    y = rng.normal(size=g.size) + rng.normal(size=n_groups)[g] + 0.5 * rng.normal(size=n_groups)[g] * x
    return pd.DataFrame({"y": y, "x": x, "g": [f"g{k}" for k in g]})


@settings(max_examples=12, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), log_scale=st.floats(-3.9, 5.9), correlated=st.booleans())
@example(seed=3, log_scale=5.9, correlated=False)
@example(seed=3, log_scale=5.9, correlated=True)
@example(seed=3, log_scale=-3.9, correlated=False)
def test_random_slope_fit_is_equivariant_in_the_units_of_x(seed, log_scale, correlated):
    """x in other units (x · c, c from 1e-3.9 to 1e5.9): the slope's SD scales by 1/c, everything else is
    unchanged, and the REML log-likelihood shifts by exactly −log c (the log|X'V⁻¹X| term).  Before the
    stable 2 × 2 adjugate, c = 1e6 gave a log-likelihood 19–135 units off, reported converged."""
    df = _slope_data(seed)
    formula = "y ~ x + (x | g)" if correlated else "y ~ x + (x || g)"
    c = 10.0 ** log_scale
    ref = fit(formula, df)
    got = fit(formula, df.assign(x=df["x"] * c))
    assert got.loglik == pytest.approx(ref.loglik - np.log(c), abs=1e-6)
    sd_ref, sd_got = ref.to_frame().set_index("parameter")["estimate"], got.to_frame().set_index("parameter")["estimate"]
    assert sd_got["sd_x|g"] * c == pytest.approx(sd_ref["sd_x|g"], rel=1e-5, abs=1e-6)
    assert sd_got["sigma"] == pytest.approx(sd_ref["sigma"], rel=1e-6)


@pytest.mark.parametrize("c, advice", [(1e8, "divide it by 1e+08"), (1e-6, "multiply it by 1e+06")])
def test_random_slope_in_extreme_units_is_refused_with_the_rescaling(c, advice):
    df = _slope_data(3)
    with pytest.raises(DataError) as err:
        make_design("y ~ x + (x | g)", df.assign(x=df["x"] * c))
    msg = one_line(err.value)
    assert "'x' of (x | g)" in msg and advice in msg


def _days_data(seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    g = np.repeat(np.arange(10), 6)
    x = np.tile(np.arange(6.0), 10)
    y = rng.normal(size=60) + rng.normal(size=10)[g] + 0.5 * rng.normal(size=10)[g] * x
    return pd.DataFrame({"y": y, "x": x, "g": [f"g{k}" for k in g]})


@settings(max_examples=10, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), ratio=st.floats(0.0, 8.0))
@example(seed=1022, ratio=8.0)
def test_correlated_slope_fit_is_invariant_to_shifting_x(seed, ratio):
    """(x | g) with x + c is the same model (only the intercept's variance moves to x = −c): the same
    log-likelihood, slope SD and σ up to c = 8 SD(x).  The reference (x = 0…5, at 1.5 SD) is fitted as
    written; the tolerance 1e-4 is the boundary rule's there: a shift can bring the interior optimum to
    |ρ| ≈ 1 − 1e-8, where θ's last diagonal falls below lme4's singular threshold 1e-4 and is set to 0
    (measured loss ≤ 3e-5).  Beyond 2 SD the fitter centres x internally (tests/fitter/test_centring.py
    pins those fits to the centred fit to 1e-8)."""
    df = _days_data(seed)
    ref = fit("y ~ x + (x | g)", df)
    got = fit("y ~ x + (x | g)", df.assign(x=df["x"] + ratio * df["x"].std(ddof=0)))
    assert got.loglik == pytest.approx(ref.loglik, abs=1e-4)
    e_ref, e_got = (r.to_frame().set_index("parameter")["estimate"] for r in (ref, got))
    assert e_got["sd_x|g"] == pytest.approx(e_ref["sd_x|g"], rel=2e-3)
    assert e_got["sigma"] == pytest.approx(e_ref["sigma"], rel=2e-3)


def test_correlated_slope_on_an_uncentred_x_is_fitted_as_the_centred_model_mapped_back():
    """x + 10³ (≈ 590 SD) and x + 20 SD, once refused, are fitted: the criterion, σ, σ_B and the slope of
    the fit on x − mean(x); the intercept's SD and correlation by Σ = M⁻¹ Σ_c M⁻ᵀ, M = [[1, c], [0, 1]],
    written out here from the centred fit's VarCorr (tests/fitter/test_centring.py has the full check).
    (At 10⁴, ≈ 5,900 SD, the criterion differs by 6e-8: the fixed-effects X, kept as written, then has
    cond(X'X) ≈ 3·10⁷.)"""
    df = _days_data(3)
    xc = df["x"] - df["x"].mean()
    ref = fit("y ~ x + (x | g)", df.assign(x=xc))
    v = {(r.term, r.term2): r for r in ref.varcorr if r.group == "g"}
    sa2, sb2 = v[("(Intercept)", None)].variance, v[("x", None)].variance
    cab = v[("x", "(Intercept)")].cov if ("x", "(Intercept)") in v else v[("(Intercept)", "x")].cov
    for c in (1e3 - df["x"].mean(), 20 * df["x"].std(ddof=0)):
        got = fit("y ~ x + (x | g)", df.assign(x=xc + c))
        assert got.converged and got.singular == ref.singular
        assert got.loglik == pytest.approx(ref.loglik, abs=1e-8)
        e = got.to_frame().set_index("parameter")["estimate"]
        sa2_u = sa2 - 2 * c * cab + c * c * sb2                  # (M⁻¹ Σ_c M⁻ᵀ)_11
        assert e["sd_(Intercept)|g"] == pytest.approx(np.sqrt(sa2_u), rel=1e-6)
        assert e["sd_x|g"] == pytest.approx(np.sqrt(sb2), rel=1e-6)
        assert e["cor_x.(Intercept)|g"] == pytest.approx((cab - c * sb2) / np.sqrt(sa2_u * sb2), rel=1e-6)
        assert e["sigma"] == pytest.approx(ref.sigma, rel=1e-6)
    assert not any(make_design("y ~ x + (x || g)", df.assign(x=df["x"] + 1e4)).blocks[0].shift)  # another model


def test_a_slope_collinear_with_the_intercept_to_rounding_is_still_refused():
    """x = 10⁵ + u with u of size 10⁻³ (SD/RMS ≈ 2e-8, below the fixed-effects columns' 1e-7): no
    estimate, the reason named; a constant x is refused by the identifiability checks."""
    df = _days_data(3)
    with pytest.raises(DataError) as err:
        make_design("y ~ 1 + (x | g)", df.assign(x=1e5 + 1e-3 * df["x"]))
    msg = one_line(err.value)
    assert "'x' of (x | g)" in msg and "collinear with the intercept to rounding" in msg
    with pytest.raises(DataError):
        make_design("y ~ 1 + (x | g)", df.assign(x=5.0))
