"""The exact columns: the theory's 'no exact value' leaves a cell empty, a bug in the theory propagates."""

from __future__ import annotations

import math

import pytest

from compare_mm.errors import NoExactValueError
from compare_mm.study import exact, summarise_inference
from compare_mm.study.exact import exact_value
from compare_mm.study.summarise_inference import exact_rejection

COND = {"model": "oneway", "groups": 10, "per_group": 5, "sigma_a2": 0.3, "sigma_e2": 1.0}


@pytest.fixture(autouse=True)
def _fresh_caches():
    exact._cached.cache_clear()
    summarise_inference._exact_rejection.cache_clear()
    yield
    exact._cached.cache_clear()
    summarise_inference._exact_rejection.cache_clear()


def test_exact_values_where_the_theory_has_them():
    assert 0.0 < exact_value("oneway", COND, False, "REML", "sigma_a2", "boundary_rate", 0.95) < 1.0
    assert math.isnan(exact_value("oneway", COND, True, "", "sigma_a2", "boundary_rate", 0.95))
    assert 0.0 < exact_rejection("lrt_chibar2", "oneway", COND, "ML", "sigma_a2", 0.95) < 1.0


def test_no_exact_value_leaves_the_cell_empty():
    assert math.isnan(exact_rejection("bootstrap_lrt", "oneway", dict(COND), "REML", "sigma_a2", 0.95))
    with pytest.raises(NoExactValueError):  # what exact_rejection turns into NaN
        summarise_inference.oneway_rejection_probability("bogus", 10, 5, 0.3, 1.0, 0.05)


@pytest.mark.parametrize("error", [ZeroDivisionError, TypeError])
def test_a_bug_in_the_theory_propagates_from_exact_value(monkeypatch, error):
    def broken(*args, **kwargs):
        raise error("bug in the theory")

    monkeypatch.setattr(exact.theory, "boundary_probability", broken)
    with pytest.raises(error, match="bug in the theory"):
        exact_value("oneway", COND, False, "REML", "sigma_a2", "boundary_rate", 0.95)


@pytest.mark.parametrize("error", [ZeroDivisionError, TypeError])
def test_a_bug_in_the_theory_propagates_from_exact_rejection(monkeypatch, error):
    def broken(*args, **kwargs):
        raise error("bug in the theory")

    monkeypatch.setattr(summarise_inference, "oneway_rejection_probability", broken)
    with pytest.raises(error, match="bug in the theory"):
        exact_rejection("f_test", "oneway", COND, "REML", "sigma_a2", 0.95)
