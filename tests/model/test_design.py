"""ModelSpec + DataFrame → Design: arrays, names and level order checked against independent sources
(lme4's own output in tests/data/sleepstudy_lme4.json, formulaic's model matrices, pandas group counts),
and every bad input → a one-sentence DataError/ModelSpecError naming the column or term."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from formulaic import model_matrix

from compare_mm.model.checks import aliased_columns
from compare_mm.model.design import build_design, factor_codes
from compare_mm.errors import DataError, ModelSpecError
from compare_mm.model.formula import parse_formula
from compare_mm.model.spec import ModelSpec, RandomTerm

LME4 = json.loads((Path(__file__).parents[1] / "data" / "sleepstudy_lme4.json").read_text())


@pytest.fixture(scope="module")
def sleep() -> pd.DataFrame:
    path = resources.files("compare_mm") / "data" / "sleepstudy.csv"
    return pd.read_csv(path, dtype={"Subject": str})


def design(formula: str, data: pd.DataFrame, **kw):
    return build_design(parse_formula(formula), data, **kw)


def one_line(exc: BaseException) -> str:
    msg = str(exc)
    assert "\n" not in msg and msg.strip() == msg and msg.endswith("."), msg
    return msg


# --------------------------------------------------------------------------------------------- sleepstudy

def test_sleepstudy_diagonal_slope(sleep):
    d = design("Reaction ~ Days + (Days || Subject)", sleep)
    assert d.n == 180 and d.p == 2 and d.n_dropped == 0
    assert d.fixed_names == ("(Intercept)", "Days")
    np.testing.assert_array_equal(d.y, sleep["Reaction"].to_numpy())
    np.testing.assert_array_equal(d.X, np.column_stack([np.ones(180), sleep["Days"].to_numpy(float)]))
    (b,) = d.blocks
    assert b.group == "Subject" and b.covariance == "diagonal"
    assert b.term_names == ("(Intercept)", "Days")
    assert b.q == 2 and b.n_theta == 2
    np.testing.assert_array_equal(b.Z, d.X)
    # level order = lme4's ranef order (independent: R's factor() of the same data)
    lme4_levels = LME4["sleepstudy | Reaction ~ Days + (Days || Subject) | REML"]["blups"]["grp"][:18]
    assert b.levels == tuple(lme4_levels)
    assert b.levels[0] == "308" and b.levels[-1] == "372" and b.n_levels == 18
    np.testing.assert_array_equal(np.asarray(b.levels)[b.codes], sleep["Subject"].to_numpy(dtype=object))
    assert b.codes.dtype == np.int64


def test_sleepstudy_shapes_for_the_three_reference_models(sleep):
    for key, ref in LME4.items():
        d = design(ref["formula"], sleep)
        assert list(d.fixed_names) == list(ref["fixef"])
        qs = [b.q for b in d.blocks]
        assert sum(qs) == len(set(ref["blups"]["term"])), key
        assert sum(b.n_theta for b in d.blocks) == np.size(ref["theta"]), key


def test_numeric_subject_is_a_factor_with_string_levels(sleep):
    as_int = sleep.assign(Subject=sleep["Subject"].astype(int))
    d_int = design("Reaction ~ Days + (1 | Subject)", as_int)
    d_str = design("Reaction ~ Days + (1 | Subject)", sleep)
    assert d_int.blocks[0].levels == d_str.blocks[0].levels
    np.testing.assert_array_equal(d_int.blocks[0].codes, d_str.blocks[0].codes)


def test_response_expression(sleep):
    d = design("Reaction/10 ~ Days + (1 | Subject)", sleep)
    np.testing.assert_allclose(d.y, sleep["Reaction"].to_numpy() / 10, rtol=0, atol=0)
    assert d.response_name == "Reaction/10"
    d = design("log(Reaction) ~ Days + (1 | Subject)", sleep)
    np.testing.assert_allclose(d.y, np.log(sleep["Reaction"].to_numpy()))


def test_response_of_integers_is_fine(sleep):
    d = design("r ~ Days + (1 | Subject)", sleep.assign(r=sleep["Days"] * 3 + (sleep.index % 2)))
    assert d.y.dtype == np.float64


def test_with_y_and_shape_key(sleep):
    d = design("Reaction ~ Days + (Days | Subject)", sleep)
    d2 = d.with_y(d.y + 1)
    assert d2.shape_key == d.shape_key and d2.X is d.X


# ------------------------------------------------------------------------------------ level ordering

def test_factor_codes_orders_like_R():
    codes, levels = factor_codes(pd.Series([10, 9, 100, 9]))
    assert levels == ("9", "10", "100") and codes.tolist() == [1, 0, 2, 0]
    codes, levels = factor_codes(pd.Series([2.0, 1.5, 2.0]))
    assert levels == ("1.5", "2")
    codes, levels = factor_codes(pd.Series(["10", "9", "100"]))  # strings sort as strings, as in R's C locale
    assert levels == ("10", "100", "9") and codes.tolist() == [0, 2, 1]
    cat = pd.Series(pd.Categorical(["b", "c", "b"], categories=["c", "a", "b"]))
    codes, levels = factor_codes(cat)  # category order, unused "a" dropped
    assert levels == ("c", "b") and codes.tolist() == [1, 0, 1]
    codes, levels = factor_codes(pd.Series([True, False, True]))
    assert levels == ("FALSE", "TRUE") and codes.tolist() == [1, 0, 1]
    codes, levels = factor_codes(pd.Series(["b", "a", "b"], dtype=object))
    assert levels == ("a", "b") and codes.tolist() == [1, 0, 1]


# ------------------------------------------------------------------- categorical fixed effects (formulaic)

@pytest.fixture(scope="module")
def small() -> pd.DataFrame:
    rng = np.random.default_rng(1)
    n = 60
    return pd.DataFrame({
        "y": rng.normal(size=n),
        "x": rng.normal(size=n),
        "z": rng.normal(size=n),
        "f": rng.choice(["lo", "mid", "hi"], size=n),
        "a": np.repeat(["A1", "A2", "A3"], n // 3),
        "b": np.tile(np.repeat(["B1", "B2"], 5), n // 10),
        "c": np.tile(np.arange(6), n // 6),
    })


@pytest.mark.parametrize("rhs", ["1 + C(f)", "1 + f", "1 + x*z", "1 + x*C(f)", "0 + C(f) + x", "1 + x:z"])
def test_fixed_effects_match_formulaic(small, rhs):
    d = design(f"y ~ {rhs} + (1 | a)", small)
    mm = model_matrix(rhs, small)
    expected = [("(Intercept)" if c == "Intercept" else c) for c in mm.columns]
    assert list(d.fixed_names) == expected
    np.testing.assert_array_equal(d.X, mm.to_numpy(float))


def test_treatment_coding_reference_is_first_level(small):
    d = design("y ~ f + (1 | a)", small)
    assert d.fixed_names == ("(Intercept)", "f[T.lo]", "f[T.mid]")  # "hi" < "lo" < "mid": hi is reference


def test_categorical_random_slope_via_C(small):
    d = design("y ~ 1 + (C(f) | a)", small)
    (b,) = d.blocks
    assert b.term_names == ("(Intercept)", "C(f)[T.lo]", "C(f)[T.mid]")
    np.testing.assert_array_equal(b.Z[:, 1], (small["f"] == "lo").to_numpy(float))


# --------------------------------------------------------------------------------- nested and crossed

def test_nested(small):
    d = design("y ~ x + (1 | a/b)", small)
    assert [b.group for b in d.blocks] == ["a", "a:b"]
    assert d.blocks[0].n_levels == small["a"].nunique() == 3
    assert d.blocks[1].n_levels == small.groupby(["a", "b"]).ngroups == 6
    assert d.blocks[1].levels == ("A1:B1", "A1:B2", "A2:B1", "A2:B2", "A3:B1", "A3:B2")
    labels = np.asarray(d.blocks[1].levels)[d.blocks[1].codes]
    np.testing.assert_array_equal(labels, (small["a"] + ":" + small["b"]).to_numpy(dtype=object))


def test_interaction_only_observed_combinations():
    df = pd.DataFrame({"y": np.arange(8.0) ** 1.5, "a": [2, 2, 10, 10, 2, 2, 10, 10],
                       "b": ["u", "v", "u", "u", "u", "v", "u", "u"]})
    d = design("y ~ (1 | a:b)", df)
    # numeric a sorts numerically (2 < 10); (10, "v") never occurs
    assert d.blocks[0].levels == ("2:u", "2:v", "10:u")
    assert d.blocks[0].codes.tolist() == [0, 1, 2, 2, 0, 1, 2, 2]


def test_crossed(small):
    d = design("y ~ x + (1 | a) + (1 | c)", small)
    assert [(b.group, b.n_levels) for b in d.blocks] == [("a", 3), ("c", 6)]
    assert d.blocks[1].levels == tuple(str(i) for i in range(6))


def test_spec_built_in_code(small):
    spec = ModelSpec(response="y", fixed="0 + x", random=(RandomTerm(("a",), "0 + x"),))
    d = build_design(spec, small)
    assert d.fixed_names == ("x",) and d.blocks[0].term_names == ("x",)


# ----------------------------------------------------------------------------------------------- dropna

def test_dropna_drops_and_counts(sleep):
    bad = sleep.copy()
    bad.loc[[3, 7], "Days"] = np.nan
    bad.loc[5, "Reaction"] = np.inf
    bad.loc[[7, 11], "Subject"] = None  # row 7 is counted once
    d = design("Reaction ~ Days + (Days | Subject)", bad, dropna=True)
    assert d.n_dropped == 4 and d.n == 176
    keep = ~bad.index.isin([3, 5, 7, 11])
    np.testing.assert_array_equal(d.y, sleep["Reaction"].to_numpy()[keep])


def test_dropna_for_computed_response(sleep):
    df = sleep.assign(c=sleep["Days"].astype(float))
    d = design("log(c) ~ 1 + (1 | Subject)", df, dropna=True)
    assert d.n_dropped == 18 and d.n == 162  # log(0) = -inf on day 0 of each subject


# ------------------------------------------------------------------------------------------- bad input

def test_empty_data(sleep):
    with pytest.raises(DataError, match="no rows") as e:
        design("Reaction ~ Days + (1 | Subject)", sleep.iloc[:0])
    one_line(e.value)


@pytest.mark.parametrize("formula,col", [
    ("Reaction ~ Dayz + (1 | Subject)", "Dayz"),
    ("Reaction ~ Days + (1 | Subj)", "Subj"),
    ("Reaction ~ Days + (Dayz | Subject)", "Dayz"),
    ("Reacton ~ Days + (1 | Subject)", "Reacton"),
    ("log(Reacton) ~ Days + (1 | Subject)", "Reacton"),
    ("Reaction ~ C(Dayz) + (1 | Subject)", "Dayz"),
])
def test_missing_column(sleep, formula, col):
    with pytest.raises(DataError, match=f"Column '{col}' .*is not in the data") as e:
        design(formula, sleep)
    msg = one_line(e.value)
    assert "The data have 'Reaction', 'Days', 'Subject'" in msg
    assert "perhaps you meant" in msg and "for '" + col + "'" in msg   # every misspelling here has a close match


def test_nan_and_inf_named_with_counts(sleep):
    bad = sleep.copy()
    bad.loc[[3, 7], "Days"] = np.nan
    with pytest.raises(DataError, match=r"Column 'Days' has 2 missing or infinite values .*dropna=True") as e:
        design("Reaction ~ Days + (1 | Subject)", bad)
    one_line(e.value)
    bad.loc[5, "Reaction"] = -np.inf
    with pytest.raises(DataError, match=r"column 'Reaction' \(1 row, first in data row 6\), column 'Days' "
                                        r"\(2 rows, first in data row 4\)"):
        design("Reaction ~ Days + (1 | Subject)", bad)


def test_missing_group_label(sleep):
    bad = sleep.copy()
    bad.loc[4, "Subject"] = None
    # 1-based data row numbers (the fifth data row; pandas label 4)
    with pytest.raises(DataError, match=r"Column 'Subject' has 1 missing or infinite value \(first in data row 5\)"):
        design("Reaction ~ Days + (1 | Subject)", bad)


def test_nonfinite_computed_fixed_column(sleep):
    with pytest.raises(DataError, match=r"Fixed-effects column 'log\(Days\)' has 18 missing or infinite"):
        design("Reaction ~ log(Days) + (1 | Subject)", sleep)
    d = design("Reaction ~ log(Days) + (1 | Subject)", sleep, dropna=True)
    assert d.n_dropped == 18


def test_non_numeric_response(sleep):
    with pytest.raises(DataError, match=r"response 'Subject' is not numeric \(dtype str\)") as e:
        design("Subject ~ Days + (1 | Days)", sleep)
    one_line(e.value)


def test_non_numeric_random_slope(sleep):
    df = sleep.assign(f=np.where(sleep["Days"] > 4, "late", "early"))
    with pytest.raises(DataError, match=r"random-slope covariate 'f' in \(f \| Subject\) is not numeric") as e:
        design("Reaction ~ Days + (f | Subject)", df)
    one_line(e.value)


def test_single_level_group(sleep):
    with pytest.raises(DataError, match=r"Grouping factor 'one' has a single level \('a'\)") as e:
        design("Reaction ~ Days + (1 | one)", sleep.assign(one="a"))
    one_line(e.value)


def test_as_many_levels_as_observations(sleep):
    with pytest.raises(DataError, match=r"Grouping factor 'Days:Subject' has 180 levels for 180 observations"):
        design("Reaction ~ Days + (1 | Days:Subject)", sleep)


def test_more_random_effects_than_observations(sleep):
    df = sleep[sleep["Days"] < 2]  # 36 rows, 18 subjects × 2 effects = 36 random effects
    with pytest.raises(DataError, match=r"\(Days \| Subject\) has 36 random effects for 36 observations") as e:
        design("Reaction ~ Days + (Days | Subject)", df)
    one_line(e.value)
    # lme4 expands (Days || Subject) into two terms of 18 effects each and accepts it, but 2 + 36 effects
    # for 36 observations fit y exactly: σ² → 0 and the likelihood is unbounded, so there is no estimate
    with pytest.raises(DataError, match=r"fitted exactly .*\(38 fixed and random effects for 36 observations\)"):
        design("Reaction ~ Days + (Days || Subject)", df)


def test_rank_deficient_X_names_aliased_columns(sleep):
    df = sleep.assign(D2=2 * sleep["Days"] + 1, D3=sleep["Days"] ** 2)
    with pytest.raises(DataError, match=r"column 'D2' is a linear combination of '\(Intercept\)', 'Days'") as e:
        design("Reaction ~ Days + D3 + D2 + (1 | Subject)", df)
    one_line(e.value)
    # the later column of a dependent pair is named, as R's qr(tol = 1e-7) names it
    with pytest.raises(DataError, match=r"column 'Days' is a linear combination of '\(Intercept\)', 'D2'"):
        design("Reaction ~ D2 + Days + (1 | Subject)", df)


def test_rank_deficient_zero_column(sleep):
    df = sleep.assign(zero=0.0)
    with pytest.raises(DataError, match=r"column 'zero' is zero in every row"):
        design("Reaction ~ Days + zero + (1 | Subject)", df)


def test_rank_deficient_dummy_trap(small):
    df = small.assign(hi=(small["f"] == "hi").astype(float))
    with pytest.raises(DataError, match=r"column 'hi' is a linear combination of '\(Intercept\)', "
                                        r"'f\[T.lo\]', 'f\[T.mid\]'"):
        design("y ~ f + hi + (1 | a)", df)


def test_aliased_columns_agrees_with_matrix_rank():
    rng = np.random.default_rng(0)
    for _ in range(20):
        n, p = 30, 6
        X = rng.normal(size=(n, p))
        k = rng.integers(1, p)
        X[:, k] = X[:, :k] @ rng.normal(size=k)  # column k depends on the earlier ones
        alias = aliased_columns(X)
        assert alias == [k]
        assert p - len(alias) == np.linalg.matrix_rank(X)
    # nearly collinear but above R's 1e-7 tolerance: kept
    x = rng.normal(size=50)
    X = np.column_stack([np.ones(50), x, x + 1e-5 * rng.normal(size=50)])
    assert aliased_columns(X) == []
    X[:, 2] = x + 1e-10 * rng.normal(size=50)
    assert aliased_columns(X) == [2]


def test_constant_response(sleep):
    with pytest.raises(DataError, match=r"response 'c' is constant") as e:
        design("c ~ Days + (1 | Subject)", sleep.assign(c=3.0))
    one_line(e.value)


def test_not_a_dataframe():
    with pytest.raises(DataError, match="pandas DataFrame"):
        build_design(parse_formula("y ~ (1|g)"), {"y": [1, 2], "g": [1, 2]})  # type: ignore[arg-type]


def test_no_random_terms_in_code_built_spec(small):
    with pytest.raises(ModelSpecError, match="no random-effects term"):
        build_design(ModelSpec(response="y", fixed="1 + x"), small)


def test_bad_response_expression(sleep):
    with pytest.raises(ModelSpecError, match=r"response 'Reaction \+\+' is neither a column"):
        design("Reaction ++ ~ Days + (1 | Subject)", sleep)
    with pytest.raises(ModelSpecError, match=r"calls 'open'"):
        design("open(Reaction) ~ Days + (1 | Subject)", sleep)


def test_quoted_and_python_terms(sleep):
    df = sleep.assign(**{"my col": sleep["Days"] ** 2.0, "my g": sleep["Subject"]})
    d = design("Reaction ~ `my col` + {Days + 1} + (`my col` | `my g`)", df)
    assert d.fixed_names == ("(Intercept)", "my col", "Days + 1")
    np.testing.assert_array_equal(d.X[:, 2], sleep["Days"].to_numpy() + 1.0)
    assert d.blocks[0].group == "my g" and d.blocks[0].term_names == ("(Intercept)", "my col")


def test_categorical_fixed_effect_keeps_category_order_and_drops_unused():
    rng = np.random.default_rng(2)
    df = pd.DataFrame({"y": rng.normal(size=30),
                       "f": pd.Categorical(rng.choice(["lo", "mid", "hi"], 30),
                                           categories=["mid", "lo", "hi", "never"]),
                       "g": np.repeat(np.arange(5), 6)})
    d = design("y ~ f + (1 | g)", df)
    # reference = first category ("mid"); the unused "never" gives no column (lme4: drop.unused.levels)
    assert d.fixed_names == ("(Intercept)", "f[T.lo]", "f[T.hi]")
    np.testing.assert_array_equal(d.X[:, 2], (df["f"] == "hi").to_numpy(float))


def test_categorical_group_after_dropna_drops_emptied_level():
    df = pd.DataFrame({"y": [1.0, 2.0, 4.0, 3.0, 7.0, np.nan],
                       "g": pd.Categorical(["b", "b", "a", "a", "c", "c"], categories=["c", "b", "a", "z"])})
    df.loc[4, "y"] = np.nan  # level "c" loses both of its rows
    d = design("y ~ (1 | g)", df, dropna=True)
    assert d.n_dropped == 2 and d.blocks[0].levels == ("b", "a")
    assert d.blocks[0].codes.tolist() == [0, 0, 1, 1]


def test_random_term_without_effects_built_in_code(small):
    with pytest.raises(ModelSpecError, match=r"\(0 \| a\) has no effects"):
        build_design(ModelSpec(response="y", random=(RandomTerm(("a",), "0"),)), small)


def test_malformed_fixed_part_of_code_built_spec(small):
    with pytest.raises(ModelSpecError, match=r"model part 'x \+' is not a valid formula"):
        build_design(ModelSpec(response="y", fixed="x +", random=(RandomTerm(("a",)),)), small)
