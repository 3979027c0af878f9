"""PyMC backend: converged chains by default (parameterisation "auto") and option ``until_converged``.

The sampling tests share one compiled model (the one-way design's marginal form) and keep each fit to
a few seconds; seeds are pinned.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import compare_mm as cm
from compare_mm.backends.pymc.backend import BACKEND, compile_count, resolve_options
from compare_mm.errors import OptionError


def oneway_null(seed: int, groups: int = 10, per_group: int = 5) -> pd.DataFrame:
    """Balanced one-way data with σ_A² = 0 (the boundary), σ² = 1."""
    rng = np.random.default_rng(seed)
    g = np.repeat(np.arange(groups), per_group)
    return pd.DataFrame({"y": rng.normal(0.0, 1.0, g.size), "g": [f"g{k:02d}" for k in g]})


@pytest.fixture(scope="module")
def design():
    return cm.make_design("y ~ 1 + (1 | g)", oneway_null(20261202))


# ------------------------------------------------------------------------------------- options
@pytest.mark.parametrize("value, part", [
    ("yes", "must be true, false or a mapping"),
    (3, "must be true, false or a mapping"),
    ({"max_draw": 4000}, "takes the keys max_draws, rhat, ess, got 'max_draw'"),
    ({"max_draws": 0}, "max_draws an integer ≥ 1"),
    ({"max_draws": 2.5}, "max_draws an integer ≥ 1"),
    ({"rhat": 1.0}, "rhat a number > 1"),
    ({"rhat": "low"}, "rhat a number > 1"),
    ({"ess": -1}, "ess a number ≥ 0"),
    ({"ess": float("nan")}, "ess a number ≥ 0"),
])
def test_bad_until_converged_is_one_sentence(design, value, part):
    before = compile_count()
    with pytest.raises(OptionError) as err:
        BACKEND.fit(design, {"until_converged": value})
    msg = str(err.value)
    assert "'until_converged'" in msg and part in msg, msg
    assert msg.count(". ") == 0 and "\n" not in msg
    assert compile_count() == before


def test_until_converged_values(design):
    assert resolve_options(design, {})[0]["until_converged"] is None
    assert resolve_options(design, {"until_converged": False})[0]["until_converged"] is None
    assert resolve_options(design, {"until_converged": True})[0]["until_converged"] == \
        {"max_draws": 4000, "rhat": 1.01, "ess": 400.0}
    got = resolve_options(design, {"until_converged": {"max_draws": 3000, "ess": 100}})[0]["until_converged"]
    assert got == {"max_draws": 3000, "rhat": 1.01, "ess": 100.0}


def test_auto_parameterisation_per_design(design):
    opts = resolve_options(design, {})[0]
    assert opts["parameterisation"] == "marginal" and opts["parameterisation_option"] == "auto"
    df = oneway_null(1).assign(h=lambda d: [f"h{i % 4}" for i in range(len(d))])
    two = cm.make_design("y ~ 1 + (1 | g) + (1 | h)", df)
    assert resolve_options(two, {"parameterisation": "auto"})[0]["parameterisation"] == "noncentred"
    assert resolve_options(design, {"parameterisation": "noncentred"})[0]["parameterisation"] == "noncentred"


def test_study_fit_key_and_cli_option():
    from compare_mm.cli import fit_cmd
    from compare_mm.study.config.schema import FitConfig

    fit = FitConfig(backend="pymc", until_converged={"max_draws": 2000})
    assert fit.backend_options(0.95)["until_converged"] == {"max_draws": 2000}
    assert "until_converged" not in FitConfig(backend="pymc").backend_options(0.95)
    import argparse

    parser = argparse.ArgumentParser()
    fit_cmd.register(parser.add_subparsers())
    args = parser.parse_args(["fit", "--data", "x.csv", "--formula", "y ~ (1|g)", "--until-converged"])
    assert fit_cmd._sampler_options(args)["until_converged"] is True
    args = parser.parse_args(["fit", "--data", "x.csv", "--formula", "y ~ (1|g)",
                              "--until-converged", '{"ess": 800}', "--target-accept", "0.95"])
    assert fit_cmd._sampler_options(args) == {"until_converged": {"ess": 800}, "target_accept": 0.95}


# ------------------------------------------------------------------------------------- sampling
@pytest.mark.slow
def test_default_converges_at_the_boundary(design):
    """σ_A² = 0, 10 × 5: the defaults (marginal, 1500 + 1000 draws, target_accept 0.95) give every
    R-hat < 1.01 and no divergences."""
    r = BACKEND.fit(design, {"seed": 7})
    d = r.diagnostics
    assert d["parameterisation"] == "marginal" and "auto" in d["parameterisation_note"]
    assert d["divergences"] == 0 and d["max_rhat"] < 1.01 and r.converged
    assert d["rounds"] == 1 and d["total_draws"] == 2 * d["draws"]
    assert len(r.ranef) == 10  # u drawn from its conditional afterwards


@pytest.mark.slow
def test_until_converged_adds_rounds_up_to_the_cap(design):
    """Short chains and an ESS target they cannot meet: rounds are added until max_draws is reached."""
    uc = {"max_draws": 300, "rhat": 1.01, "ess": 5000}
    r = BACKEND.fit(design, {"seed": 3, "draws": 100, "tune": 100, "until_converged": uc})
    d = r.diagnostics
    assert d["rounds"] == 3 and d["chains"] == 6 and d["total_draws"] == 600
    assert d["until_converged"] == dict(uc, ess=5000.0, met=False)
    assert r.idata.posterior["sigma"].shape == (6, 100)
    # targets met at once: one round, the same draws as without the option
    easy = BACKEND.fit(design, {"seed": 3, "draws": 100, "tune": 100,
                                "until_converged": {"rhat": 2.0, "ess": 0}})
    plain = BACKEND.fit(design, {"seed": 3, "draws": 100, "tune": 100})
    assert easy.diagnostics["rounds"] == 1 and easy.diagnostics["until_converged"]["met"]
    assert easy.fixef[0].estimate == plain.fixef[0].estimate
