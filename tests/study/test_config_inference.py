"""Study fits requesting tests and interval kinds: validation (one sentence per mistake, naming the key
path), normalisation of `tests: all`, and backward compatibility of the single `interval:` key."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest

from compare_mm.errors import ConfigError
from compare_mm.study.config.load import load_config

BASE = {"name": "t", "seed": 7, "replicates": 10, "model": "oneway",
        "grid": {"groups": [6], "per_group": [3], "sigma_a2": [0.0, 1.0]},
        "fits": [{"name": "reml", "backend": "reml", "method": "REML"},
                 {"name": "ml", "backend": "reml", "method": "ML"},
                 {"name": "anova", "backend": "reml", "method": "ANOVA"}]}
SLOPE = {"name": "s", "replicates": 5, "model": "random_slope", "grid": {"sigma_a2": [1.0]},
         "fixed": {"sigma_b2": 0.1}, "fits": [{"name": "reml", "backend": "reml"}]}
UNBALANCED = dict(BASE, grid={"per_group": [[2, 3, 4, 3]], "sigma_a2": [0.5]}, fits=BASE["fits"][:2])


def _fit(base, i, **keys):
    cfg = copy.deepcopy(base)
    cfg["fits"][i].update(keys)
    return cfg


def _pymc(**keys):
    cfg = copy.deepcopy(BASE)
    cfg["fits"].append(dict({"name": "bayes", "backend": "pymc", "draws": 10, "tune": 10, "chains": 1}, **keys))
    return cfg


CASES = [
    (_fit(BASE, 1, tests=["lrt_chi2", "lrtt"]), "fits[1].tests[1]: unknown test 'lrtt'; did you mean 'lrt_chi2'?"),
    (_fit(BASE, 0, tests=["wilcoxon"]),
     "fits[0].tests[0]: unknown test 'wilcoxon'; choose from f_test, lrt_chi2, lrt_chibar2, exact_rlrt, bootstrap_lrt."),
    (_fit(BASE, 0, tests="some"),
     "fits[0].tests: expected a list of tests or 'all', got 'some'; tests are f_test, lrt_chi2, lrt_chibar2, "
     "exact_rlrt, bootstrap_lrt."),
    (_fit(BASE, 0, tests=[]), "fits[0].tests: the list is empty; name at least one test or leave the key out."),
    (_fit(BASE, 0, tests=["f_test", "f_test"]), "fits[0].tests[1]: 'f_test' is listed twice."),
    (_fit(SLOPE, 0, tests=["f_test"]),
     "fits[0].tests[0]: f_test needs the balanced one-way model in every condition, and this study has model "
     "random_slope."),
    (_fit(UNBALANCED, 0, tests=["lrt_chibar2", "f_test"]),
     "fits[0].tests[1]: f_test needs the balanced one-way model in every condition, and this study has unbalanced "
     "group sizes."),
    (_fit(SLOPE, 0, tests=["exact_rlrt"]),
     "fits[0].tests[0]: exact_rlrt tests a single variance, but dropping the slope of (1 + x | g) also drops its "
     "covariance; use lrt_chibar2, or covariance: diagonal."),
    (_fit(BASE, 2, tests=["lrt_chibar2"]),
     "fits[2].tests[0]: lrt_chibar2 needs a likelihood, and an ANOVA fit has none (ANOVA fits take f_test only)."),
    (_fit(BASE, 0, tests=["bootstrap_lrt"]),
     "fits[0].tests[0]: bootstrap_lrt needs the number of refits as `bootstrap: N` in the same fit."),
    (_fit(BASE, 0, tests=["bootstrap_lrt"], bootstrap=19),
     "fits[0].bootstrap: with 19 refits the smallest bootstrap p-value is 1/20, so bootstrap_lrt can never reject "
     "at alpha = 0.05; use at least 20."),
    (_fit(BASE, 0, bootstrap=0, intervals=["bootstrap"]), "fits[0].bootstrap: must be ≥ 1 refits, got 0."),
    (_fit(BASE, 0, bootstrap=50),
     "fits[0].bootstrap: neither tests (bootstrap_lrt) nor intervals (bootstrap) of this fit use the bootstrap."),
    (_fit(BASE, 0, intervals=["wald", "bootstrap"]),
     "fits[0].bootstrap: bootstrap intervals need the number of refits as `bootstrap: N`."),
    (_fit(BASE, 0, tests=["lrt_chi2"], nsim=500),
     "fits[0].nsim: only the exact_rlrt test takes nsim, and this fit does not request it."),
    (_fit(BASE, 0, tests=["exact_rlrt"], nsim=0), "fits[0].nsim: must be ≥ 1, got 0."),
    (_fit(BASE, 0, intervals=["wald", "profil"]), "fits[0].intervals[1]: unknown interval kind 'profil'; did you mean "
                                                  "'profile'?"),
    (_fit(BASE, 0, intervals=["hdi"]),
     "fits[0].intervals[0]: 'hdi' is not an interval of a reml fit; choose from wald, t, profile, bootstrap, exact, mls."),
    (_fit(BASE, 0, intervals=["wald", "wald"]), "fits[0].intervals[1]: 'wald' is listed twice."),
    (_fit(BASE, 0, intervals=[]),
     "fits[0].intervals: the list is empty; name at least one interval kind or leave the key out."),
    (_fit(BASE, 2, intervals=["profile"]),
     "fits[2].intervals[0]: profile intervals need a likelihood, and an ANOVA fit has none."),
    (_fit(BASE, 0, intervals=["profile"], profile="exact"),
     "fits[0].profile: unknown profile mode 'exact'; choose ml (lme4's convention) or reml."),
    (_fit(BASE, 0, profile="reml"), "fits[0].profile: set, but the fit requests no profile interval."),
    (_fit(UNBALANCED, 0, backend="statsmodels", tests=["lrt_chi2"]),
     "fits[0].tests[0]: tests are computed by compare_mm's own fitter, so they belong to a fit with backend reml, "
     "not statsmodels."),
    (_fit(UNBALANCED, 0, backend="statsmodels", interval="profile"),
     "fits[0].interval: profile intervals are computed by compare_mm's own fitter, so they belong to a fit with "
     "backend reml, not statsmodels."),
    (_pymc(tests="all"),
     "fits[3].tests: tests are computed by compare_mm's own fitter, so they belong to a fit with backend reml, "
     "not pymc."),
    (_pymc(intervals=["eti", "profile"]),
     "fits[3].intervals[1]: 'profile' is not an interval of a pymc fit; choose from eti, hdi."),
    (_fit(BASE, 0, tests=["lrt_chi2", 3]), "fits[0].tests[1]: expected a string, got 3."),
    (_fit(BASE, 0, nsim="many", tests=["exact_rlrt"]), "fits[0].nsim: expected an integer, got 'many'."),
    (_fit(BASE, 0, test=["f_test"]), "fits[0]: unknown key 'test' — did you mean 'tests'?"),
]


@pytest.mark.parametrize("cfg,message", CASES, ids=[m.split(":")[0] + "-" + str(i) for i, (_, m) in enumerate(CASES)])
def test_each_mistake_is_one_sentence_naming_the_key(cfg, message):
    with pytest.raises(ConfigError) as err:
        load_config(cfg)
    assert str(err.value) == message


def test_all_expands_to_the_tests_that_apply():
    cfg = load_config(_fit(_fit(BASE, 0, tests="all", bootstrap=39), 2, tests="all"))
    assert cfg.fits[0].tests == ["f_test", "lrt_chi2", "lrt_chibar2", "exact_rlrt", "bootstrap_lrt"]
    assert cfg.fits[2].tests == ["f_test"]  # ANOVA: no likelihood
    slope = load_config(_fit(SLOPE, 0, tests="all"))
    assert slope.fits[0].tests == ["lrt_chi2", "lrt_chibar2"]  # (x | g): no exact RLRT, no bootstrap without N
    diag = load_config(_fit(SLOPE, 0, tests="all", covariance="diagonal"))
    assert diag.fits[0].tests == ["lrt_chi2", "lrt_chibar2", "exact_rlrt"]
    unb = load_config(_fit(UNBALANCED, 0, tests="all"))
    assert unb.fits[0].tests == ["lrt_chi2", "lrt_chibar2", "exact_rlrt"]


def test_primary_interval_is_first_of_intervals_unless_interval_says():
    cfg = load_config(_fit(_fit(BASE, 0, intervals=["profile", "wald"]), 1, interval="t", intervals=["wald"]))
    assert (cfg.fits[0].interval, cfg.fits[0].intervals, cfg.fits[0].extra_intervals) == \
        ("profile", ["profile", "wald"], ["wald"])
    assert (cfg.fits[1].interval, cfg.fits[1].intervals, cfg.fits[1].extra_intervals) == ("t", ["t", "wald"], ["wald"])
    assert cfg.fits[2].interval == "wald" and cfg.fits[2].intervals is None and not cfg.fits[2].wants_inference


def test_old_configs_keep_their_hash_and_shipped_studies_load():
    # the hash of this config computed by the code before inference keys existed: old runs still --resume
    old = {"name": "h", "seed": 3, "replicates": 10, "model": "oneway",
           "grid": {"groups": [6], "per_group": [3], "sigma_a2": [0.0, 1.0]},
           "fits": [{"name": "reml", "backend": "reml", "method": "REML"},
                    {"name": "t", "backend": "reml", "method": "ML", "interval": "t"}]}
    assert load_config(old).config_hash == "b6037482078063523582998b69e8804d9ba9a8701969bf94ad234d72d6c98241"
    assert load_config(_fit(old, 0, tests=["f_test"])).config_hash != load_config(old).config_hash
    studies = sorted((Path(__file__).parents[2] / "studies").glob("*.yaml"))
    assert len(studies) >= 5 and any(p.name == "oneway_tests.yaml" for p in studies)
    for path in studies:
        load_config(path)
