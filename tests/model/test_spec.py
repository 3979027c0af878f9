"""ModelSpec / RandomTerm built in code: validation, display, hashing."""

import dataclasses

import pytest

from compare_mm import ModelSpec, ModelSpecError, RandomTerm


def test_spec_built_in_code_prints_lme4_formula():
    spec = ModelSpec(response="Reaction", fixed="1 + Days",
                     random=(RandomTerm(group=("Subject",), formula="1 + Days", covariance="diagonal"),))
    assert spec.formula == "Reaction ~ 1 + Days + (Days || Subject)"
    assert spec.group_factors == ("Subject",)
    assert spec.n_grouping_factors == 1


def test_group_given_as_interaction_string():
    term = RandomTerm(group="a:b")
    assert term.group == ("a", "b") and term.group_name == "a:b"
    assert str(term) == "(1 | a:b)"


def test_spec_is_frozen_and_hashable():
    spec = ModelSpec(response="y", random=(RandomTerm(group=("g",)),))
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.response = "z"  # type: ignore[misc]
    assert {spec: 1}[ModelSpec(response="y", random=(RandomTerm(group=("g",)),))] == 1


def test_with_method_and_bad_method():
    spec = ModelSpec(response="y", random=(RandomTerm(group=("g",)),))
    assert spec.with_method("ml").method == "ML"
    with pytest.raises(ModelSpecError, match="Method 'BAYES'"):
        spec.with_method("bayes")


@pytest.mark.parametrize("kwargs, match", [
    (dict(response=""), "response"),
    (dict(response="y", method="OLS"), "Method 'OLS'"),
])
def test_bad_spec(kwargs, match):
    with pytest.raises(ModelSpecError, match=match):
        ModelSpec(**kwargs)


def test_bad_random_term():
    with pytest.raises(ModelSpecError, match="covariance 'full'.*group 'g'"):
        RandomTerm(group=("g",), covariance="full")  # type: ignore[arg-type]
    with pytest.raises(ModelSpecError, match="grouping factor"):
        RandomTerm(group=())
