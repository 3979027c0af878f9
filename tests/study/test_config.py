"""Study YAML validation: every malformed config gives ONE sentence naming the key path."""

from __future__ import annotations

import copy

import pytest
import yaml

from compare_mm.cli import main
from compare_mm.errors import ConfigError
from compare_mm.study.config.load import load_config

BASE = {
    "name": "t", "seed": 7, "replicates": 10, "level": 0.95, "model": "oneway",
    "grid": {"groups": [6], "per_group": [3], "sigma_a2": [0.0, 1.0]},
    "fixed": {"mu": 0.0},
    "fits": [{"name": "reml", "backend": "reml", "method": "REML"},
             {"name": "ml", "backend": "reml", "method": "ML"}],
}


def _with(**changes):
    cfg = copy.deepcopy(BASE)
    for path, value in changes.items():
        keys = path.split("__")
        node = cfg
        for k in keys[:-1]:
            node = node[int(k)] if k.isdigit() else node[k]
        last = keys[-1]
        if value is _DELETE:
            del node[last]
        elif last.isdigit():
            node[int(last)] = value
        else:
            node[last] = value
    return cfg


_DELETE = object()
SLOPE = {"name": "s", "replicates": 5, "model": "random_slope", "grid": {"sigma_a2": [1.0]},
         "fixed": {"sigma_b2": 0.1}, "fits": [{"backend": "reml"}]}

CASES = [
    (_with(replicate=10), "unknown key 'replicate' — did you mean 'replicates'?"),
    (_with(replicates=0), "replicates: must be ≥ 1, got 0."),
    (_with(replicates="many"), "replicates: expected an integer, got 'many'."),
    (_with(name=_DELETE), "name: required key is missing."),
    (_with(model="twoway"), "model: unknown model 'twoway'; choose one of oneway, random_slope, two_way."),
    (_with(level=1.5), "level: must lie strictly between 0 and 1, got 1.5."),
    (_with(grid__sigma_a2=[0.0, -0.5]), "grid.sigma_a2[1]: variance must be ≥ 0, got -0.5."),
    (_with(grid__sigma_e2=[0.0]), "grid.sigma_e2[0]: residual variance must be > 0, got 0.0."),
    (_with(grid__sigma_a=[1.0]), "grid: unknown key 'sigma_a' for model oneway — did you mean 'sigma_a2'?"),
    (_with(grid__groups=[1]), "grid.groups[0]: must be ≥ 2, got 1."),
    (_with(grid__per_group=3), "grid.per_group: expected a list, got 3."),
    (_with(fixed__mu="zero"), "fixed.mu: expected a number, got 'zero'."),
    (_with(fixed__sigma_a2=1.0), "fixed.sigma_a2: 'sigma_a2' is also in grid; give it in one of them only."),
    (_with(grid__sigma_a2=_DELETE), "grid.sigma_a2: required for model oneway; give it in grid (a list) or fixed."),
    (_with(fits=[]), "fits: needs at least one fit."),
    (_with(fits__1__backend="stan"), "fits[1].backend: unknown backend 'stan'; choose one of reml, statsmodels, pymc."),
    (_with(fits__1__methd="ML"), "fits[1]: unknown key 'methd' — did you mean 'method'?"),
    (_with(fits__1__method="GLS"), "fits[1].method: unknown method 'GLS'; choose one of REML, ML, ANOVA."),
    (_with(fits__1__name="reml"), "fits[1].name: duplicate fit name 'reml'; every fit needs its own name."),
    (_with(fits__1__draws=100), "fits[1].draws: only pymc fits take 'draws', not backend reml."),
    (_with(fits__1={"name": "q", "backend": "pymc", "sampler": "quadrature", "tune": 10, "options": {"cores": 1}}),
     "fits[1].tune: sampler: quadrature integrates the posterior exactly and takes no NUTS settings; remove "
     "tune, options.cores or use sampler: nutpie."),
    (_with(fits__1__covariance="diagonal"), "fits[1].covariance: only random_slope models have a covariance choice."),
    (_with(grid__per_group=[[2, 3, 4]]),
     "grid.groups: 6 groups do not match per_group's 3 group sizes."),
    (_with(fits__1={"backend": "statsmodels", "method": "ANOVA"}),
     "fits[1].method: ANOVA is valid only for balanced one-way and balanced two_way models with backend reml."),
    (dict(SLOPE, fixed={"sigma_b2": 0.1, "rho": 1.0}), "fixed.rho: correlation must satisfy |rho| < 1, got 1.0."),
    (dict(SLOPE, fixed={"sigma_b2": 0.1, "x": [1, 1, 1]}), "fixed.x: the covariate values must not all be equal."),
    (dict(SLOPE, fits=[{"backend": "reml", "method": "ANOVA"}]),
     "fits[0].method: ANOVA is valid only for balanced one-way and balanced two_way models with backend reml."),
    (dict(SLOPE, fits=[{"backend": "reml", "covariance": "banded"}]),
     "fits[0].covariance: unknown covariance 'banded'; choose unstructured or diagonal."),
    (dict(SLOPE, fixed={}), "grid.sigma_b2: required for model random_slope; give it in grid (a list) or fixed."),
    (_with(fits__1__name="F-test"),
     "fits[1].name: 'F-test' is reserved for the exact F test rows; choose another name."),
    (_with(grid__model=["oneway", "threeway"], model=_DELETE),
     "grid.model[1]: unknown model 'threeway'; choose one of oneway, random_slope, two_way."),
    (_with(grid__model=["oneway", "random_slope"]),
     "model: give the model at the top level or as grid.model, not both."),
    (dict(SLOPE, fits=[{"backend": "reml", "interval": "bca"}]),
     "fits[0].interval: unknown interval kind 'bca'; choose one of wald, profile, eti, hdi, t."),
]


@pytest.mark.parametrize("config,message", CASES, ids=[m.split(":")[0][:30] for _, m in CASES])
def test_malformed_config_gives_one_sentence(config, message):
    with pytest.raises(ConfigError) as info:
        load_config(config)
    text = str(info.value)
    assert text == message
    assert "\n" not in text and text.endswith((".", "?"))


def test_unknown_prior_names_the_fit_key():
    cfg = dict(SLOPE, fits=[{"name": "b", "backend": "pymc", "prior": {"sd_a": {"half_gauss": 1.0}}}])
    with pytest.raises(ConfigError) as info:
        load_config(cfg)
    text = str(info.value)
    assert text.startswith("fits[0].prior: ") and "half_gauss" in text and "\n" not in text


def test_valid_config_defaults_and_conditions():
    base_config = copy.deepcopy(BASE)
    base_config["grid"]["per_group"] = [3, [2, 4, 6, 3, 3, 3]]
    cfg = load_config(base_config)
    conds = cfg.conditions()
    assert len(conds) == 4
    assert conds[2]["per_group"] == [2, 4, 6, 3, 3, 3] and conds[2]["groups"] == 6
    sizes_only = dict(base_config, grid={"per_group": [[2, 4, 6]], "sigma_a2": [1.0]})
    assert load_config(sizes_only).conditions()[0]["groups"] == 3
    assert conds[0]["sigma_e2"] == 1.0 and conds[0]["mu"] == 0.0
    assert [f.interval for f in cfg.fits] == ["wald", "wald"]
    assert len(cfg.config_hash) == 64
    base_config["replicates"] = 11
    assert load_config(base_config).config_hash != cfg.config_hash


def test_bad_yaml_file(tmp_path):
    p = tmp_path / "bad.yaml"
    p.write_text("name: x\nfits: [\n")
    with pytest.raises(ConfigError, match=r"is not valid YAML at line \d+, column \d+"):
        load_config(p)


def test_cli_exits_2_with_one_line(tmp_path, capsys):
    p = tmp_path / "bad.yaml"
    p.write_text(yaml.safe_dump(_with(replicate=3)))
    code = main(["run", str(p), "--out", str(tmp_path / "out"), "--no-report", "--quiet"])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert err == "compare-mm run: error: unknown key 'replicate' — did you mean 'replicates'?"
    assert not (tmp_path / "out").exists()
