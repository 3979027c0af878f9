"""Bad requests give one-sentence errors that name the term, model or option."""

from __future__ import annotations

import pytest

from compare_mm.errors import ModelSpecError, OptionError
from compare_mm.inference import bootstrap_lrt, compare_models, component_lrt, exact_rlrt, f_test_design
from compare_mm.inference import run_inference


def _one_sentence(msg: str) -> None:
    assert "\n" not in msg and msg.endswith(".") and msg.count(". ") == 0, msg


@pytest.mark.parametrize("call", [
    lambda d: component_lrt(d, "Subject", "Days"),
    lambda d: exact_rlrt(d, "Subject", "Days", nsim=10),
    lambda d: bootstrap_lrt(d, "Subject", "Days", nsim=5, seed=1),
    lambda d: component_lrt(d, "Patient", "(Intercept)"),
])
def test_test_of_a_component_the_model_does_not_have(sleep_design, call):
    with pytest.raises(ModelSpecError) as err:
        call(sleep_design("int"))
    msg = str(err.value)
    _one_sentence(msg)
    assert "Reaction ~ Days + (1 | Subject)" in msg and "no random-effect variance" in msg


def test_reml_lrt_between_models_with_different_fixed_effects(sleepstudy, sleep_design):
    import compare_mm as cm

    null = cm.make_design("Reaction ~ 1 + (1 | Subject)", sleepstudy, method="REML")
    with pytest.raises(ModelSpecError) as err:
        compare_models(null, sleep_design("corr"), method="REML")
    _one_sentence(str(err.value))
    assert "same fixed effects" in str(err.value) and "Days" in str(err.value)


def test_f_test_needs_balanced_oneway(sleep_design):
    with pytest.raises(ModelSpecError) as err:
        f_test_design(sleep_design("int"))
    _one_sentence(str(err.value))


@pytest.mark.parametrize("kwargs,match", [
    (dict(profile="bayes"), "'bayes'"), (dict(bootstrap=-1), "--bootstrap"), (dict(level=1.5), "level"),
    (dict(nsim=0), "nsim"),
])
def test_bad_options_of_run_inference(sleepstudy, kwargs, match):
    import compare_mm as cm

    f = "Reaction ~ Days + (1 | Subject)"
    with pytest.raises(OptionError, match=match) as err:
        run_inference(f, sleepstudy, cm.fit(f, sleepstudy), **kwargs)
    _one_sentence(str(err.value))
