"""A correlated random slope far from 0 is fitted on centred columns and mapped back (compare_mm.fitter.centring).

The reference is the fit of the same data with x centred exactly (x − mean(x), fitted as written) and
the transformation of the model written out here, independently of the package: with the user's
x = x_c + c, Z = Z_c M, M = [[1, c], [0, 1]], so

    Σ = M⁻¹ Σ_c M⁻ᵀ,  b = M⁻¹ b_c,  Var(b | y) = M⁻¹ Var(b_c | y) M⁻ᵀ,  β_0 = β_0c − c β_1c,  β_1 = β_1c,

and the criterion, σ and the singular flag are those of the centred fit.  Var(b_c | y) comes from the
dense formula Σ_b − Σ_b Z'(Z Σ_b Z' + σ² I)⁻¹ Z Σ_b (lme4's condVar, β treated as known) at the
reference fit's estimates; its diagonal is checked against the reference fit's own conditional SDs.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from compare_mm import fit, make_design
from compare_mm.backends.reml import BACKEND
from compare_mm.fitter.centring import lower_factor, shift_matrix, theta_to_fit, theta_to_user
from compare_mm.fitter.extended import fit_design, surface
from compare_mm.fitter.theta import make_layout
from compare_mm.inference.satterthwaite import satterthwaite

SHIFTS = (20.0, 220.0, 1e3)          # in SDs of x


def _data(seed: int, two: bool) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    G = int(rng.integers(8, 15))
    sizes = rng.integers(4, 10, G)
    g = np.repeat(np.arange(G), sizes)
    n = g.size
    x = rng.uniform(0, 1, n) * 10 ** rng.uniform(-1, 1)
    x = x - x.mean()
    sa, sb = rng.uniform(0.2, 2.0), rng.uniform(0.0, 1.0) / max(x.std(), 1e-9) * (seed % 4 != 0)
    rho = rng.uniform(-0.9, 0.9)
    L = np.array([[sa, 0.0], [rho * sb, sb * np.sqrt(1 - rho ** 2)]])
    u = rng.normal(size=(G, 2)) @ L.T
    y = 1.0 + 0.5 * x + u[g, 0] + u[g, 1] * x + rng.normal(size=n)
    df = pd.DataFrame({"y": y, "x": x, "g": [f"g{k:02d}" for k in g]})
    if two:
        h = rng.integers(0, 6, n)
        df["y"] += rng.uniform(0.3, 1.5) * rng.normal(size=6)[h]
        df["h"] = [f"h{k}" for k in h]
    return df


def _varcorr(r, group="g"):
    v = {(row.term, row.term2): row for row in r.varcorr if row.group == group}
    cov = (v.get(("x", "(Intercept)")) or v.get(("(Intercept)", "x"))).cov
    return np.array([[v[("(Intercept)", None)].variance, cov], [cov, v[("x", None)].variance]])


def _ranef(r, group="g"):
    rows = [row for row in r.ranef if row.group == group]
    levels = sorted({row.level for row in rows})
    b = np.array([[next(row.value for row in rows if row.level == lv and row.term == t)
                   for t in ("(Intercept)", "x")] for lv in levels])
    sd = np.array([[next(row.condsd for row in rows if row.level == lv and row.term == t)
                    for t in ("(Intercept)", "x")] for lv in levels])
    return levels, b, sd


def _cond_cov(df: pd.DataFrame, r, two: bool) -> np.ndarray:
    """Var(b_g | y) per level of g (levels sorted) by the dense formula, at the fit's estimates."""
    n = len(df)
    gl = sorted(df["g"].unique())
    Zg = np.zeros((n, 2 * len(gl)))
    idx = df["g"].map({lv: i for i, lv in enumerate(gl)}).to_numpy()
    Zg[np.arange(n), 2 * idx] = 1.0
    Zg[np.arange(n), 2 * idx + 1] = df["x"].to_numpy()
    blocks = [np.kron(np.eye(len(gl)), _varcorr(r))]
    Z = Zg
    if two:
        hl = sorted(df["h"].unique())
        Zh = (df["h"].to_numpy()[:, None] == np.array(hl)[None, :]).astype(float)
        vh = next(row.variance for row in r.varcorr if row.group == "h")
        Z = np.hstack([Zg, Zh])
        blocks.append(vh * np.eye(len(hl)))
    S = np.zeros((Z.shape[1], Z.shape[1]))
    o = 0
    for B in blocks:
        S[o:o + B.shape[0], o:o + B.shape[0]] = B
        o += B.shape[0]
    V = Z @ S @ Z.T + r.sigma ** 2 * np.eye(n)
    C = S - S @ Z.T @ np.linalg.solve(V, Z @ S)
    m = 2 * len(gl)
    return np.array([C[2 * i:2 * i + 2, 2 * i:2 * i + 2] for i in range(len(gl))]) if m else C


def _check(df, ref, got, c, two):
    """``got`` (x = x_c + c) against the reference fit on x_c, transformed as in the module docstring."""
    assert got.converged and ref.converged
    assert got.singular == ref.singular
    assert got.loglik == pytest.approx(ref.loglik, abs=1e-8)
    Mi = np.array([[1.0, -c], [0.0, 1.0]])
    S_ref, S_got = Mi @ _varcorr(ref) @ Mi.T, _varcorr(got)
    assert S_got[0, 0] == pytest.approx(S_ref[0, 0], rel=1e-6)
    assert S_got[1, 1] == pytest.approx(S_ref[1, 1], rel=1e-6, abs=1e-10 * S_ref[0, 0] / c ** 2)
    if S_ref[1, 1] > 1e-8 * S_ref[0, 0] / c ** 2:
        rho_ref = S_ref[0, 1] / np.sqrt(S_ref[0, 0] * S_ref[1, 1])
        rho_got = S_got[0, 1] / np.sqrt(S_got[0, 0] * S_got[1, 1])
        assert rho_got == pytest.approx(rho_ref, rel=1e-6)
    assert got.sigma == pytest.approx(ref.sigma, rel=1e-6)
    if two:
        vh = [next(row.variance for row in r.varcorr if row.group == "h") for r in (ref, got)]
        assert vh[1] == pytest.approx(vh[0], rel=1e-6, abs=1e-9 * ref.sigma ** 2)
    b_ref = {f.term: f.estimate for f in ref.fixef}
    b_got = {f.term: f.estimate for f in got.fixef}
    assert b_got["x"] == pytest.approx(b_ref["x"], rel=1e-6, abs=1e-9)
    b0 = b_ref["(Intercept)"] - c * b_ref["x"]
    assert b_got["(Intercept)"] == pytest.approx(b0, rel=1e-6, abs=1e-9 * c * abs(b_ref["x"]) + 1e-9)
    # BLUPs and condVar
    lv, bc, sdc = _ranef(ref)
    lv2, bg, sdg = _ranef(got)
    assert lv == lv2
    Vc = _cond_cov(df, ref, two)
    assert np.sqrt(np.einsum("laa->la", Vc)) == pytest.approx(sdc, rel=1e-5, abs=1e-7 * sdc.max())
    bu = bc @ Mi.T
    scale = np.abs(bu).max(axis=0)
    assert bg == pytest.approx(bu, rel=1e-6, abs=1e-6 * scale.max())
    sdu = np.sqrt(np.maximum(np.einsum("ab,lbc,dc->lad", Mi, Vc, Mi)[:, [0, 1], [0, 1]], 0.0))
    assert sdg == pytest.approx(sdu, rel=1e-5, abs=1e-6 * sdu.max())


CASES = [(seed, two) for seed in range(6) for two in (False, True)]


@pytest.mark.parametrize("seed,two", CASES)
def test_shifted_slope_fit_is_the_centred_fit_transformed(seed, two):
    df = _data(seed, two)
    formula = "y ~ x + (x | g)" + (" + (1 | h)" if two else "")
    ref = fit(formula, df)
    assert not any(make_design(formula, df).blocks[0].shift)        # the reference is fitted as written
    sd = df["x"].std(ddof=0)
    for k in SHIFTS:
        c = k * sd
        got = fit(formula, df.assign(x=df["x"] + c))
        _check(df, ref, got, c, two)


@pytest.mark.parametrize("path", ["general", "sparse"])
@pytest.mark.parametrize("seed,two", [(1, False), (2, True), (5, True)])
def test_every_path_maps_back(seed, two, path):
    """The dense and sparse paths (and, in the test above, the one-factor and blocked ones) give the same."""
    df = _data(seed, two)
    formula = "y ~ x + (x | g)" + (" + (1 | h)" if two else "")
    ref = BACKEND.fit(make_design(formula, df), {"path": path})
    for k in (220.0, 1e3):
        c = k * df["x"].std(ddof=0)
        got = BACKEND.fit(make_design(formula, df.assign(x=df["x"] + c)), {"path": path})
        _check(df, ref, got, c, two)


def test_batched_fits_map_back_as_the_single_fits():
    """fit_many (the batched one-factor fitter) and fit_columns equal the per-replicate fits."""
    df = _data(3, False)
    c = 220.0 * df["x"].std(ddof=0)
    design = make_design("y ~ x + (x | g)", df.assign(x=df["x"] + c))
    assert design.blocks[0].shift[1] == pytest.approx(c)
    rng = np.random.default_rng(0)
    Y = df["y"].to_numpy() + rng.normal(size=(5, len(df)))
    prep = BACKEND.prepare(design, {})
    assert prep.batches()
    many = prep.fit_many(Y)
    ref_design = make_design("y ~ x + (x | g)", df)
    for y, r in zip(Y, many):
        one = BACKEND.fit(design.with_y(y), {})
        ref = BACKEND.fit(ref_design.with_y(y), {})
        _check(df.assign(y=y), ref, r, c, False)
        assert r.loglik == pytest.approx(one.loglik, abs=1e-8)
        assert r.singular == one.singular
    cols = prep.fit_columns(Y)
    assert np.array_equal(cols.singular, [r.singular for r in many])
    assert cols.estimates["sd_(Intercept)|g"] == pytest.approx(
        [r.to_frame().set_index("parameter")["estimate"]["sd_(Intercept)|g"] for r in many], rel=1e-12)


def test_a_singular_centred_fit_stays_singular_and_is_not_flagged_by_round_off():
    """|ρ_c| = 1 in the centred fit maps to a rank-one Σ (λ22 = 0 exactly); a regular centred fit whose
    user's λ22 is below lme4's 1e-4 (x at 10³ SD) is not flagged singular."""
    rng = np.random.default_rng(11)
    g = np.repeat(np.arange(12), 6)
    x = np.tile(np.linspace(-1, 1, 6), 12)
    u = rng.normal(size=12)
    y = u[g] * (1 + 0.5 * x) + 0.3 * rng.normal(size=72)            # perfectly correlated effects
    df = pd.DataFrame({"y": y, "x": x, "g": g})
    ref = fit("y ~ x + (x | g)", df)
    for k in (220.0, 1e3):
        got = fit("y ~ x + (x | g)", df.assign(x=x + k * x.std()))
        assert got.singular == ref.singular
        if ref.singular and ref.theta[2] == 0.0:
            assert got.theta[2] == 0.0
    df = _data(1, False)
    got = fit("y ~ x + (x | g)", df.assign(x=df["x"] + 1e4 * df["x"].std(ddof=0)))
    assert got.theta[2] < 1e-4 and not got.singular and not fit("y ~ x + (x | g)", df).singular


def test_theta_maps_are_inverse_and_exact_on_rank_one_factors():
    """theta_to_user ∘ theta_to_fit = id; ΛΛ' = M⁻¹Λ_cΛ_c'M⁻ᵀ; a zero last column stays exactly zero."""
    df = _data(0, True)
    design = make_design("y ~ x + (x | g) + (1 | h)", df.assign(x=df["x"] + 50.0))
    layout = make_layout(design.blocks)
    t = next(t for t in layout.terms if t.q == 2)
    rng = np.random.default_rng(2)
    for _ in range(20):
        th = rng.normal(size=layout.n_theta)
        th[layout.diagonal] = np.abs(th[layout.diagonal])
        back = theta_to_fit(layout, theta_to_user(layout, th))
        assert back == pytest.approx(th, rel=1e-9, abs=1e-9)
        lam_c, lam_u = t.factor(th), t.factor(theta_to_user(layout, th))
        Mi = np.array([[1.0, -50.0], [0.0, 1.0]])
        assert lam_u @ lam_u.T == pytest.approx(Mi @ lam_c @ lam_c.T @ Mi.T, rel=1e-12, abs=1e-10)
        assert np.allclose(np.triu(lam_u, 1), 0.0) and np.all(np.diagonal(lam_u) >= 0)
    th[t.start + 2] = 0.0
    assert theta_to_user(layout, th)[t.start + 2] == 0.0
    A = rng.normal(size=(4, 3, 3))
    L = lower_factor(A)
    assert L @ np.swapaxes(L, 1, 2) == pytest.approx(A @ np.swapaxes(A, 1, 2), rel=1e-12)
    assert shift_matrix(np.array([0.0, 2.0, 3.0])) @ shift_matrix(np.array([0.0, 2.0, 3.0]), True) == \
        pytest.approx(np.eye(3))


def test_surface_takes_the_users_theta_and_satterthwaite_is_invariant():
    """Surface.at(user θ) gives the fit's criterion; Satterthwaite df of the shifted fit equal those of
    the centred fit (the slope's df; the intercept's t refers to x = 0 and differs, its df is checked
    against a fit of the design with x fitted as written at a moderate shift)."""
    df = _data(2, False)
    ref = fit("y ~ x + (x | g)", df)
    c = 220.0 * df["x"].std(ddof=0)
    design = make_design("y ~ x + (x | g)", df.assign(x=df["x"] + c))
    got = BACKEND.fit(design, {})
    prof = surface(design).at(np.asarray(got.theta), True)
    assert prof.deviance == pytest.approx(got.criterion, abs=1e-8)
    assert prof.beta == pytest.approx([f.estimate for f in got.fixef], rel=1e-9)
    assert surface(design).vcov_beta(np.asarray(got.theta), got.sigma) == pytest.approx(got.vcov, rel=1e-7)
    tf = fit_design(design)                     # the inference path's fit: the user's θ and β
    assert tf.deviance == pytest.approx(got.criterion, abs=1e-8)
    assert tf.beta == pytest.approx([f.estimate for f in got.fixef], rel=1e-6)
    assert tf.theta == pytest.approx(np.asarray(got.theta), rel=1e-5, abs=1e-8)
    s_ref = satterthwaite(make_design("y ~ x + (x | g)", df), np.asarray(ref.theta), ref.sigma, "REML")
    s_got = satterthwaite(design, np.asarray(got.theta), got.sigma, "REML")
    assert s_got.df[1] == pytest.approx(s_ref.df[1], rel=1e-5)
    assert s_got.se[1] == pytest.approx(s_ref.se[1], rel=1e-6)
    # the intercept at x = 0: the same design fitted without internal centring (shift forced to 0) at
    # 5 SD, where the fit as written is accurate, against the centred fit of it
    c5 = 5.0 * df["x"].std(ddof=0)
    d5 = make_design("y ~ x + (x | g)", df.assign(x=df["x"] + c5))
    assert d5.blocks[0].centred
    d5_plain = replace(d5, blocks=(replace(d5.blocks[0], shift=(0.0, 0.0)),))
    f5, f5p = BACKEND.fit(d5, {}), BACKEND.fit(d5_plain, {})
    assert f5.loglik == pytest.approx(f5p.loglik, abs=1e-8)
    s5 = satterthwaite(d5, np.asarray(f5.theta), f5.sigma, "REML")
    s5p = satterthwaite(d5_plain, np.asarray(f5p.theta), f5p.sigma, "REML")
    assert s5.df == pytest.approx(s5p.df, rel=1e-4)
    assert s5.se == pytest.approx(s5p.se, rel=1e-5)


def _dense_user_deviance(df: pd.DataFrame, formula_two: bool, layout, theta_user, reml: bool) -> float:
    """d(θ) of the model as the user wrote it (x uncentred, in X and Z), from V = I + Σ_t Z_t G_t Z_t'/σ²."""
    n = len(df)
    y, x = df["y"].to_numpy(), df["x"].to_numpy()
    X = np.column_stack([np.ones(n), x])
    V = np.eye(n)
    for t in layout.terms:
        col = df[t.group].to_numpy()
        D = (col[:, None] == np.unique(col)[None, :]).astype(float)
        lam = t.factor(np.asarray(theta_user))
        eff = [np.ones(n) if nm == "(Intercept)" else x for nm in t.names]
        Zt = np.stack([D * e[:, None] for e in eff], axis=2).reshape(n, -1)
        V += Zt @ np.kron(np.eye(D.shape[1]), lam @ lam.T) @ Zt.T
    Vi = np.linalg.inv(V)
    M = X.T @ Vi @ X
    beta = np.linalg.solve(M, X.T @ Vi @ y)
    e = y - X @ beta
    nu = n - 2 if reml else n
    d = np.linalg.slogdet(V)[1] + nu * (1 + np.log(2 * np.pi * float(e @ Vi @ e) / nu))
    return float(d + (np.linalg.slogdet(M)[1] if reml else 0.0))


@pytest.mark.parametrize("two", [False, True])
def test_every_paths_problem_is_the_users_model_at_the_mapped_theta(two):
    """Each path's deviance and gradient at a θ of its centred problem equal the dense deviance of the
    model as written (uncentred X and Z, independent of the package) at theta_to_user(θ), and its
    central differences."""
    from compare_mm.fitter import blocked, blocked_eval, general, onefactor, sparse
    df = _data(4, two)
    df = df.assign(x=df["x"] + 50.0 * df["x"].std(ddof=0))
    formula = "y ~ x + (x | g)" + (" + (1 | h)" if two else "")
    design = make_design(formula, df)
    layout = make_layout(design.blocks)
    assert layout.centred and any(design.x_shift)
    paths = {"general": (general.build_general, general.evaluate), "sparse": (sparse.build_sparse, sparse.evaluate)}
    if two:
        paths["blocked"] = (blocked.build_blocked, blocked_eval.evaluate)
    else:
        paths["onefactor"] = (onefactor.build_one_factor, onefactor.evaluate)
    rng = np.random.default_rng(3)
    for reml in (True, False):
        th = rng.uniform(-0.5, 0.5, layout.n_theta)
        th[layout.diagonal] = rng.uniform(0.2, 1.6, int(layout.diagonal.sum()))
        ref = _dense_user_deviance(df, two, layout, theta_to_user(layout, th), reml)
        h = 1e-4
        fd = np.array([(_dense_user_deviance(df, two, layout, theta_to_user(layout, th + h * e), reml)
                        - _dense_user_deviance(df, two, layout, theta_to_user(layout, th - h * e), reml)) / (2 * h)
                       for e in np.eye(layout.n_theta)])
        for name, (build, evaluate) in paths.items():
            d, g = evaluate(build(design, layout), th, reml, True)
            assert d == pytest.approx(ref, rel=1e-9), name
            if g is not None:
                assert g == pytest.approx(fd, rel=1e-5, abs=1e-5 * abs(ref)), name
