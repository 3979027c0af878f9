"""PyMC backend: option validation, prior parsing and data-scaled defaults (no sampling, no compiling)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import compare_mm as cm
from compare_mm.backends.pymc.backend import BACKEND, compile_count, resolve_options
from compare_mm.backends.pymc.priors import describe_priors, parse_prior, prior_arrays, resolve_priors
from compare_mm.errors import OptionError
from compare_mm.model.spec import ModelSpec


@pytest.fixture(scope="module")
def sleep():
    df = pd.read_csv(__import__("pathlib").Path(cm.__file__).parent / "data" / "sleepstudy.csv",
                     dtype={"Subject": str})
    return df


@pytest.fixture(scope="module")
def design(sleep):
    return cm.make_design("Reaction ~ Days + (Days || Subject)", sleep)


@pytest.mark.parametrize("options, named", [
    ({"prior": {"sd": {"half_laplace": 1.0}}}, "prior['sd']"),
    ({"prior": {"sd": {"half_normal": -1.0}}}, "prior['sd']"),
    ({"prior": {"sigma": {"exponential": 0}}}, "prior['sigma']"),
    ({"prior": {"sd_a": {"half_student_t": {"nu": -3, "scale": 1}}}}, "prior['sd_a']"),
    ({"prior": {"sd_a": {"inverse_gamma": 1.0}}}, "prior['sd_a']"),
    ({"prior": {"sd_nonsense": {"half_normal": 1.0}}}, "prior['sd_nonsense']"),
    ({"prior": {"fixef": {"half_normal": 1.0}}}, "prior['fixef']"),
    ({"prior": "flat"}, "'prior'"),
    ({"sampler": "stan"}, "'sampler'"),
    ({"parameterisation": "sideways"}, "'parameterisation'"),
    ({"draws": 0}, "'draws'"),
    ({"chains": 1.5}, "'chains'"),
    ({"level": 1.2}, "'level'"),
    ({"target_accept": 0}, "'target_accept'"),
    ({"thin": 2}, "'thin'"),
])
def test_bad_option_names_the_option(design, options, named):
    before = compile_count()
    with pytest.raises(OptionError) as err:
        BACKEND.fit(design, options)
    msg = str(err.value)
    assert named in msg, msg
    assert msg.count(". ") == 0 and "\n" not in msg  # one sentence
    assert compile_count() == before  # validated before anything is built


def test_marginal_needs_one_term(sleep):
    d = cm.make_design("Reaction ~ Days + (1 | Subject) + (0 + Days | Subject)", sleep)
    with pytest.raises(OptionError, match="parameterisation='marginal'"):
        resolve_options(d, {"parameterisation": "marginal"})


def test_supports_needs_a_random_term():
    assert BACKEND.supports(ModelSpec(response="y", fixed="1 + x")) is not None
    assert BACKEND.supports(cm.parse_formula("y ~ x + (x | g)")) is None


def test_registry_finds_backend():
    assert cm.backends.get_backend("pymc") is BACKEND


def test_defaults_scale_with_the_data(design):
    """Default scales are multiples of sd(y), sd(y)/sd(x_j) (defaults.yaml), recomputed per replicate."""
    pri = resolve_priors(design, None)
    arr = prior_arrays(pri, design)
    sy, sx = np.std(design.y, ddof=1), np.std(design.X[:, 1], ddof=1)
    np.testing.assert_allclose(arr["prior_sd"], [sy, sy / sx])
    np.testing.assert_allclose(arr["prior_sigma"], [sy])
    np.testing.assert_allclose(arr["prior_beta_scale"], [2.5 * sy, 2.5 * sy / sx])
    np.testing.assert_allclose(arr["prior_beta_loc"], [np.mean(design.y), 0.0])
    arr10 = prior_arrays(pri, design.with_y(10 * design.y))
    np.testing.assert_allclose(arr10["prior_sd"], 10 * arr["prior_sd"])
    assert pri.structure == resolve_priors(design.with_y(10 * design.y), None).structure


def test_user_priors_are_absolute_and_aliases_resolve(design):
    pri = resolve_priors(design, {
        "sd": {"half_cauchy": 2.0},
        "sd_b": {"half_student_t": {"nu": 4, "scale": 3.0}},
        "sigma": {"exponential": {"lam": 0.5}},
        "Days": {"normal": {"loc": 1.0, "scale": 5.0}},
    })
    arr = prior_arrays(pri, design)
    np.testing.assert_allclose(arr["prior_sd"], [2.0, 3.0])
    np.testing.assert_allclose(arr["prior_sigma"], [2.0])
    assert arr["prior_beta_loc"][1] == 1.0 and arr["prior_beta_scale"][1] == 5.0
    assert [p.family for p in pri.sd] == ["half_cauchy", "half_student_t"]
    assert pri.sd[1].shape == 4.0
    text = describe_priors(pri, design)
    assert text["sd_Days|Subject"] == "HalfStudentT(nu=4, scale=3)"
    assert text["sigma"] == "Exponential(lam=0.5)"
    assert text["sd_(Intercept)|Subject"] == "HalfCauchy(scale=2)"


def test_inverse_gamma_is_on_the_variance(design):
    pri = resolve_priors(design, {"var_(Intercept)|Subject": {"inverse_gamma": {"alpha": 2, "beta": 3}},
                                  "sigma2": {"inverse_gamma": [1.5, 7.0]}})
    assert pri.sd[0].family == "inverse_gamma" and pri.sd[0].shape == 2.0 and pri.sd[0].scale == 3.0
    text = describe_priors(pri, design)
    assert text["var_(Intercept)|Subject"] == "InverseGamma(alpha=2, beta=3) on the variance"
    assert text["sigma2"] == "InverseGamma(alpha=1.5, beta=7) on the variance"


def test_parse_prior_forms():
    assert parse_prior("sd", {"half_normal": 2}, ("half_normal",)).scale == 2.0
    p = parse_prior("sd", {"family": "half_normal", "scale": 3, "autoscale": True}, ("half_normal",))
    assert p.scale == 3.0 and p.autoscale
    assert parse_prior("sd", "half_normal", ("half_normal",)).autoscale  # family only: data-scaled
    assert parse_prior("cor", {"lkj": 4}, ("lkj",)).shape == 4.0


def test_resolved_options(design):
    opts, _ = resolve_options(design, {"parameterisation": "non-centred", "seed": 3})
    assert opts["parameterisation"] == "noncentred" and opts["seed"] == 3
    assert opts["level"] == 0.95 and opts["sampler"] == "nutpie" and opts["draws"] == 1500
    assert 1 <= opts["cores"] <= opts["chains"]


def test_a_correlated_slope_far_from_0_is_refused_by_pymc_only(sleep):
    """Days + 2000 (≈ 700 SD): the default priors on the intercept and its SD at Days = 0 would decide the
    fit (a slope of 0.04 instead of lme4's 10.5, reported converged), so the pymc backend refuses it in one
    sentence; the reml backend fits it (tests/backends/test_centring_lme4.py); at 5 SD, inside the limit
    every backend had before, and for (Days || Subject), pymc accepts it."""
    from compare_mm.errors import UnsupportedModelError
    far = sleep.assign(Days=sleep["Days"] + 2000)
    with pytest.raises(UnsupportedModelError) as err:
        BACKEND.check_options(cm.make_design("Reaction ~ Days + (Days | Subject)", far), {})
    msg = str(err.value)
    assert "(Days | Subject)" in msg and "'Days' around 2004.5" in msg and "reml backend" in msg
    assert len(msg.strip().splitlines()) == 1
    assert cm.fit("Reaction ~ Days + (Days | Subject)", far).converged
    near = sleep.assign(Days=sleep["Days"] + 5 * sleep["Days"].std(ddof=0))
    d_near = cm.make_design("Reaction ~ Days + (Days | Subject)", near)
    assert d_near.blocks[0].centred
    BACKEND.check_options(d_near, {})
    BACKEND.check_options(cm.make_design("Reaction ~ Days + (Days || Subject)", far), {})
