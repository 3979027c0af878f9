"""The Backend contract, checked the same way for every registered backend (compare_mm.backends.base)."""

from __future__ import annotations

import json
from dataclasses import fields, replace

import numpy as np
import pandas as pd
import pytest

import compare_mm as cm
from compare_mm.backends.base import (CONTRACT, BackendBase, backend_names, get_backend, register_backend,
                                      unregister_backend)
from compare_mm.errors import ModelSpecError, OptionError
from compare_mm.model.spec import ModelSpec

FORMULA = "y ~ x + (1 | g)"
#: tiny sampler settings: the contract, not the posterior, is under test
OPTIONS = {"reml": {}, "statsmodels": {}, "pymc": {"draws": 30, "tune": 30, "chains": 1, "seed": 5}}
#: per backend, a model it cannot fit
CANNOT_FIT = {
    "reml": ModelSpec(response="y", fixed="1 + x"),
    "pymc": ModelSpec(response="y", fixed="1 + x"),
    "statsmodels": cm.parse_formula("y ~ x + (1 | a) + (1 + x | b)"),
}
BACKENDS = [pytest.param(n, marks=pytest.mark.slow) if n == "pymc" else n for n in ("reml", "statsmodels", "pymc")]


def _frame(seed: int = 3) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    g = np.repeat(np.arange(8), 6)
    x = np.tile(np.arange(6.0), 8)
    y = 1.0 + 0.5 * x + rng.normal(0, 0.8, 8)[g] + rng.normal(size=g.size)
    return pd.DataFrame({"y": y, "x": x, "g": [f"g{k}" for k in g]})


def _one_sentence(msg: str) -> bool:
    return "\n" not in msg and msg.endswith(".") and "Traceback" not in msg


def test_every_builtin_backend_is_tested_here():
    assert set(backend_names()) >= set(OPTIONS) and set(OPTIONS) == set(CANNOT_FIT)


@pytest.fixture(scope="module")
def fits() -> dict:
    return {}


def _fit(name, fits):
    if name not in fits:
        fits[name] = cm.fit(FORMULA, _frame(), backend=name, **OPTIONS[name])
    return fits[name]


@pytest.mark.parametrize("name", BACKENDS)
def test_capabilities_and_contract_attributes(name):
    be = get_backend(name)
    assert all(hasattr(be, a) for a in CONTRACT)
    assert be.name == name and isinstance(be.posterior, bool) and isinstance(be.needs_seed, bool)
    assert be.relative_cost > 0 and be.default_interval in be.interval_kinds
    assert set(be.fast_path) <= set(be.methods) | {"ANOVA"} and "{method}" in be.title


@pytest.mark.parametrize("name", BACKENDS)
def test_same_estimate_and_json_keys_as_reml(name, fits):
    ref, res = _fit("reml", fits), _fit(name, fits)
    assert set(res.estimates()) == set(ref.estimates())
    assert set(json.loads(res.to_json())) == set(json.loads(ref.to_json()))
    assert res.backend == name


@pytest.mark.parametrize("name", BACKENDS)
def test_result_carries_its_design_outside_json_and_equality(name, fits):
    res = _fit(name, fits)
    assert res.design is not None and res.design.spec.formula == FORMULA
    d = res.to_dict()
    assert "design" not in d and "title" not in d
    assert "design=" not in repr(res)
    assert replace(res, design=None).to_json() == res.to_json()
    field = {f.name: f for f in fields(type(res))}["design"]
    assert not field.compare and not field.repr


@pytest.mark.parametrize("name", BACKENDS)
def test_prepared_fit_equals_fit_of_design_with_y(name):
    be = get_backend(name)
    design = cm.make_design(FORMULA, _frame())
    y = _frame(seed=11)["y"].to_numpy()
    prepared = be.prepare(design, OPTIONS[name])
    a = prepared.fit(y)
    b = be.fit(design.with_y(y), OPTIONS[name])
    assert a.estimates() == b.estimates()
    assert [r.value for r in a.ranef] == [r.value for r in b.ranef]
    assert a.design is not None and np.array_equal(a.design.y, y)
    if be.needs_seed:  # a seed given to Prepared.fit replaces the option
        c = prepared.fit(y, seed=6)
        assert c.estimates() == be.fit(design.with_y(y), dict(OPTIONS[name], seed=6)).estimates()


@pytest.mark.parametrize("name", BACKENDS)
def test_unknown_option_is_an_option_error_naming_it(name):
    design = cm.make_design(FORMULA, _frame())
    with pytest.raises(OptionError, match="bogus_key") as err:
        get_backend(name).fit(design, dict(OPTIONS[name], bogus_key=1))
    assert _one_sentence(str(err.value))


@pytest.mark.parametrize("name", BACKENDS)
def test_level_is_validated_in_one_place(name):
    design = cm.make_design(FORMULA, _frame())
    messages = set()
    for call in (lambda: get_backend(name).fit(design, dict(OPTIONS[name], level=1.5)),
                 lambda: get_backend(name).prepare(design, dict(OPTIONS[name], level=1.5))):
        with pytest.raises(OptionError, match="level") as err:
            call()
        assert _one_sentence(str(err.value))
        messages.add(str(err.value))
    assert messages == {"Option 'level' must be between 0 and 1, got 1.5."}


@pytest.mark.parametrize("name", BACKENDS)
def test_supports_gives_one_sentence_for_a_model_it_cannot_fit(name):
    be = get_backend(name)
    assert be.supports(cm.parse_formula(FORMULA)) is None
    reason = be.supports(CANNOT_FIT[name])
    assert isinstance(reason, str) and _one_sentence(reason)


# ---------------------------------------------------------------------------- registration
class Dummy(BackendBase):
    """A backend defined outside the package: our fitter's numbers under another name."""

    name = "dummy"
    title = "Dummy fit by {method}"

    def supports(self, spec):
        return None if spec.random else "the dummy needs a random-effects term."

    def fit(self, design, options):
        res = get_backend("reml").fit(design, options)
        return self.attach(replace(res, backend="dummy"), design)


@pytest.fixture
def dummy():
    register_backend("dummy", Dummy())
    yield
    unregister_backend("dummy")


def test_a_registered_backend_works_end_to_end(dummy):
    res = cm.fit(FORMULA, _frame(), backend="dummy")
    ref = cm.fit(FORMULA, _frame())
    assert res.backend == "dummy" and res.estimates() == ref.estimates()
    assert str(res).startswith("Dummy fit by REML")
    assert get_backend("dummy").prepare(res.design, {}).fit(res.design.y).estimates() == ref.estimates()
    assert "dummy" in backend_names()


def test_register_backend_by_module_attribute_string():
    register_backend("reml_again", "compare_mm.backends.reml:BACKEND")
    try:
        assert get_backend("reml_again") is get_backend("reml")
    finally:
        unregister_backend("reml_again")


@pytest.mark.parametrize("obj, match", [
    (object(), "lacks the Backend contract"),
    ("compare_mm.backends.reml:NOPE", "cannot be loaded"),
    ("no_colon", "module:attribute"),
])
def test_register_backend_rejects_what_lacks_the_contract(obj, match):
    with pytest.raises(OptionError, match=match) as err:
        register_backend("broken", obj)
    assert _one_sentence(str(err.value)) and "broken" not in backend_names()


def test_register_backend_refuses_a_name_clash():
    with pytest.raises(OptionError, match="already registered"):
        register_backend("reml", Dummy())


def test_anova_is_a_study_only_closed_form_not_a_fit_method():
    with pytest.raises(ModelSpecError, match="study") as err:
        cm.fit("y ~ 1 + (1 | g)", _frame(), method="ANOVA")
    assert _one_sentence(str(err.value))


def test_capability_of_a_name_not_registered_is_the_default():
    """A stored folder may name a backend this installation lacks: its rows read the default."""
    from compare_mm.backends.base import capability

    assert capability("no_such_backend", "posterior", "default") == "default"
    assert capability("pymc", "posterior") is True and capability("reml", "posterior") is False


def test_static_capabilities_equal_the_loaded_backends():
    """The capabilities read without importing a built-in backend are the loaded backend's attributes."""
    from compare_mm.backends import base

    for name, attrs in base._STATIC.items():
        backend = base._load(base._BUILTIN[name])  # the module itself, not the registry's cache
        for attribute, value in attrs.items():
            assert getattr(backend, attribute) == value, (name, attribute)
    assert set(base._STATIC) == set(base._BUILTIN)
