"""lme4 formula parsing: every supported form → the expected ModelSpec, and every malformed one → a
one-sentence ModelSpecError naming the offending part."""

from __future__ import annotations

import pytest

from compare_mm.errors import ModelSpecError
from compare_mm.model.formula import parse_formula
from compare_mm.model.spec import ModelSpec, RandomTerm


def RT(group, formula="1", cov="unstructured"):
    return RandomTerm(group=tuple(group.split(":")), formula=formula, covariance=cov)


CASES = [
    # formula, response, fixed, random terms
    ("y ~ x + (1 | g)", "y", "1 + x", [RT("g")]),
    ("y ~ 0 + x + (1|g)", "y", "0 + x", [RT("g")]),
    ("y ~ x - 1 + (1|g)", "y", "0 + x", [RT("g")]),
    ("y ~ (1|g)", "y", "1", [RT("g")]),
    ("y ~ 0 + (1|g)", "y", "0", [RT("g")]),
    ("y ~ 1 + (1|g)", "y", "1", [RT("g")]),
    ("y ~ (1|g) + x", "y", "1 + x", [RT("g")]),
    ("Reaction ~ Days + (Days | Subject)", "Reaction", "1 + Days", [RT("Subject", "1 + Days")]),
    ("Reaction ~ Days + (1 + Days | Subject)", "Reaction", "1 + Days", [RT("Subject", "1 + Days")]),
    ("Reaction ~ Days + (Days || Subject)", "Reaction", "1 + Days",
     [RT("Subject", "1 + Days", "diagonal")]),
    ("y ~ (0 + x | g)", "y", "1", [RT("g", "0 + x")]),
    ("y ~ (-1 + x | g)", "y", "1", [RT("g", "0 + x")]),
    ("y ~ (x - 1 | g)", "y", "1", [RT("g", "0 + x")]),
    ("y ~ (0 + x || g)", "y", "1", [RT("g", "0 + x", "diagonal")]),
    ("y ~ (x + z || g)", "y", "1", [RT("g", "1 + x + z", "diagonal")]),
    ("y ~ (1 | a/b)", "y", "1", [RT("a"), RT("a:b")]),
    ("y ~ (1 | a/b/c)", "y", "1", [RT("a"), RT("a:b"), RT("a:b:c")]),
    ("y ~ (x | a/b)", "y", "1", [RT("a", "1 + x"), RT("a:b", "1 + x")]),
    ("y ~ (1 | a:b)", "y", "1", [RT("a:b")]),
    ("y ~ x + (1 | a) + (1 | b)", "y", "1 + x", [RT("a"), RT("b")]),
    ("y ~ (1 | g) + (0 + x | g)", "y", "1", [RT("g"), RT("g", "0 + x")]),
    # several fixed terms, interactions, categorical fixed effects — normalised by formulaic, ordered
    # by degree as R's terms() orders them
    ("y ~ x + z + w + (1|g)", "y", "1 + x + z + w", [RT("g")]),
    ("y ~ x*z + (1|g)", "y", "1 + x + z + x:z", [RT("g")]),
    ("y ~ x:z + x + (1|g)", "y", "1 + x + x:z", [RT("g")]),
    ("y ~ C(f) + x + (1|g)", "y", "1 + C(f) + x", [RT("g")]),
    ("y ~ x*C(f) + (1|g)", "y", "1 + x + C(f) + x:C(f)", [RT("g")]),
    # quoting survives normalisation: backticked names, {python} terms; redundant parentheses
    ("y ~ `my col` + {x + 1} + (`my col` | g)", "y", "1 + `my col` + {x + 1}", [RT("g", "1 + `my col`")]),
    ("y ~ x + ((1 | g))", "y", "1 + x", [RT("g")]),
    ("y ~ (1 | `my g`)", "y", "1", [RT("my g")]),
    # response expressions are kept as text
    ("log(y) ~ x + (1|g)", "log(y)", "1 + x", [RT("g")]),
    ("Reaction/10 ~ Days + (1|Subject)", "Reaction/10", "1 + Days", [RT("Subject")]),
]


@pytest.mark.parametrize("formula,response,fixed,random", CASES, ids=[c[0] for c in CASES])
def test_parse(formula, response, fixed, random):
    spec = parse_formula(formula)
    assert spec.response == response
    assert spec.fixed == fixed
    assert spec.random == tuple(random)
    assert spec.formula == formula  # the user's text is kept


@pytest.mark.parametrize("formula", [c[0] for c in CASES])
def test_round_trip_to_formula(formula):
    spec = parse_formula(formula)
    again = parse_formula(spec.to_formula())
    assert again == spec


def test_round_trip_of_spec_built_in_code():
    spec = ModelSpec(response="y", fixed="1 + x",
                     random=(RandomTerm(("g",), "1 + x", "diagonal"), RandomTerm(("a", "b"))))
    assert spec.to_formula() == "y ~ 1 + x + (x || g) + (1 | a:b)"
    assert parse_formula(spec.to_formula()) == spec


def test_nested_equals_explicit_expansion():
    assert parse_formula("y ~ (1 | a/b)") == parse_formula("y ~ (1 | a) + (1 | a:b)")


def test_parse_is_cached():
    f = "Reaction ~ Days + (Days || Subject)"
    assert parse_formula(f) is parse_formula(f)


def test_group_names():
    spec = parse_formula("y ~ (1 | a/b) + (1 | c)")
    assert [t.group_name for t in spec.random] == ["a", "a:b", "c"]
    assert spec.group_factors == ("a", "b", "c")


BAD = [
    ("y x + (1|g)", r"no '~'"),
    ("~ x + (1|g)", r"no response"),
    ("  ~ (1|g)", r"no response"),
    ("y ~ (1|g", r"unclosed '\('"),
    ("y ~ x) + (1|g)", r"'\)' without a matching '\('"),
    ("y ~ x + (x | )", r"'\(x \| \)' has no grouping factor"),
    ("y ~ x + ( | g)", r"'\( \| g\)' has nothing before the bar"),
    ("y ~ x + (0 | g)", r"'\(0 \| g\)' has no effects"),
    ("y ~ x | g", r"'\|' outside parentheses"),
    ("y ~ x", r"no random-effects term"),
    ("y ~ x ~ z + (1|g)", r"more than one '~'"),
    ("y ~ x - (1|g)", r"'\(1\|g\)'.*cannot be subtracted"),
    ("y ~ x (1|g)", r"'\(1\|g\)'.*must be added"),
    ("y ~ (1|a+b)", r"grouping factor 'a\+b'"),
    ("y ~ x + $ + (1|g)", r"fixed-effects part 'x \+ \$'"),
    ("y ~ (1 | g | h)", r"more than one bar"),
    ("", r"empty"),
    ("y ~ x + (log(x | g))", r"'\|' that is not between the effects and the grouping factor"),
]


@pytest.mark.parametrize("formula,match", BAD, ids=[b[0] or "empty" for b in BAD])
def test_bad_formula(formula, match):
    with pytest.raises(ModelSpecError, match=match) as info:
        parse_formula(formula)
    msg = str(info.value)
    assert "\n" not in msg and msg.endswith((".", ")")), msg


def test_not_a_string():
    with pytest.raises(ModelSpecError, match="must be a string"):
        parse_formula(None)  # type: ignore[arg-type]
