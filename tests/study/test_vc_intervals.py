"""Interval kinds for variance components in studies: `exact` (χ², F) and `mls` intervals of the balanced
one-way model, the vectorised profile interval; validation messages; coverage on 2,000 replicates within
4 MCSE of the exact value where there is one, else of the nominal level."""

from __future__ import annotations

import copy

import numpy as np
import pandas as pd
import pytest

from compare_mm.errors import ConfigError
from compare_mm.oneway.intervals import closed_form_intervals
from compare_mm.oneway.profile import oneway_profile_intervals
from compare_mm.study.config.load import load_config
from compare_mm.study.generate import simulate_oneway_balanced
from compare_mm.study.runner import run_study
from compare_mm.study.store import read_rows

BASE = {"name": "t", "seed": 7, "replicates": 10, "model": "oneway",
        "grid": {"groups": [6], "per_group": [3], "sigma_a2": [0.0, 1.0]},
        "fits": [{"name": "reml", "backend": "reml", "method": "REML"},
                 {"name": "anova", "backend": "reml", "method": "ANOVA"}]}


def _with(base, i, **keys):
    cfg = copy.deepcopy(base)
    cfg["fits"][i].update(keys)
    return cfg


SLOPE = {"name": "s", "replicates": 5, "model": "random_slope", "grid": {"sigma_a2": [1.0]},
         "fixed": {"sigma_b2": 0.1}, "fits": [{"name": "reml", "backend": "reml"}]}
UNBALANCED = dict(BASE, grid={"per_group": [[2, 3, 4, 3]], "sigma_a2": [0.5]}, fits=BASE["fits"][:1])
SM = dict(BASE, fits=[{"name": "sm", "backend": "statsmodels", "method": "REML"}])

CASES = [
    (_with(SLOPE, 0, intervals=["wald", "exact"]),
     "fits[0].intervals[1]: exact intervals exist for the balanced one-way model only, and every condition of this "
     "study has model random_slope."),
    (_with(UNBALANCED, 0, intervals=["mls"]),
     "fits[0].intervals[0]: mls intervals exist for the balanced one-way model only, and every condition of this "
     "study has unbalanced group sizes."),
    (_with(SM, 0, intervals=["wald", "mls"]),
     "fits[0].intervals[1]: mls intervals come from the ANOVA mean squares (Graybill & Wang) of the balanced "
     "one-way model, computed by compare_mm's own fitter, so they belong to a fit with backend reml, not "
     "statsmodels."),
    (_with(BASE, 0, interval="exact"),
     "fits[0].interval: exact intervals exist for some parameters only (exact: mu, sigma_e2, gamma, icc; mls: "
     "sigma_a2), so they cannot be the fit's primary interval; list them under intervals."),
]


@pytest.mark.parametrize("cfg, message", CASES)
def test_config_errors_are_one_sentence(cfg, message):
    with pytest.raises(ConfigError) as err:
        load_config(cfg)
    assert str(err.value) == message


def test_exact_and_mls_are_never_the_default_primary_and_anova_may_use_them():
    cfg = load_config(_with(_with(BASE, 0, intervals=["exact", "mls", "profile"]), 1, intervals=["mls"]))
    assert (cfg.fits[0].interval, cfg.fits[0].extra_intervals) == ("profile", ["exact", "mls"])
    assert (cfg.fits[1].interval, cfg.fits[1].extra_intervals) == ("wald", ["mls"])


def test_a_mixed_study_gets_exact_and_mls_rows_in_its_balanced_one_way_conditions_only(tmp_path):
    mixed = {"name": "mixed", "seed": 1, "replicates": 3, "grid": {"model": ["oneway", "random_slope"]},
             "fixed": {"groups": 6, "per_group": 4, "sigma_a2": 0.5, "sigma_b2": 0.05, "x": [0, 1, 2, 3]},
             "fits": [{"name": "reml", "backend": "reml", "intervals": ["wald", "exact", "mls"]}]}
    run_study(mixed, tmp_path / "o", progress=False)
    rows = read_rows(tmp_path / "o")
    iv = rows[rows.row_type == "interval"]
    assert set(iv.condition) == {0} and set(iv.interval_kind.astype(str)) >= {"exact", "mls"}
    assert np.isfinite(iv[iv.interval_kind.isin(["exact", "mls"])].upper).all()


def test_pymc_cannot_request_exact():
    cfg = copy.deepcopy(BASE)
    cfg["fits"].append({"name": "bayes", "backend": "pymc", "draws": 10, "tune": 10, "chains": 1,
                        "intervals": ["eti", "exact"]})
    with pytest.raises(ConfigError, match=r"^fits\[2\]\.intervals\[1\]: exact intervals come from .* not pymc\.$"):
        load_config(cfg)


R = 2000
COVER = {"name": "vc", "seed": 20261202, "replicates": R, "model": "oneway", "level": 0.95,
         "grid": {"sigma_a2": [0.0, 0.5]}, "fixed": {"groups": 20, "per_group": 5},
         "fits": [{"name": "reml", "backend": "reml", "method": "REML",
                   "intervals": ["wald", "profile", "exact", "mls"], "profile": "reml"},
                  {"name": "ml", "backend": "reml", "method": "ML", "interval": "profile"}]}


@pytest.fixture(scope="module")
def cover_study(tmp_path_factory):
    out = tmp_path_factory.mktemp("vc") / "out"
    run_study(COVER, out, progress=False)
    return out


def test_rows_equal_the_closed_forms_on_the_same_data(cover_study):
    rows = read_rows(cover_study)
    iv = rows[(rows.row_type == "interval") & (rows.condition == 0)]
    cond = {"model": "oneway", "groups": 20, "per_group": 5, "sigma_a2": 0.0, "sigma_e2": 1.0, "mu": 0.0}
    Y, _, _ = simulate_oneway_balanced(cond, COVER["seed"], 0, range(R))
    for kind in ("exact", "mls"):
        for param, lim in closed_form_intervals(Y, kind, 0.95).items():
            got = iv[(iv.interval_kind == kind) & (iv.parameter == param)].sort_values("replicate")
            assert len(got) == R
            np.testing.assert_array_equal(got.lower.to_numpy(), lim.lower)
            np.testing.assert_array_equal(got.upper.to_numpy(), lim.upper)
    prof = oneway_profile_intervals(Y, "reml", 0.95)["sigma_a2"]
    got = iv[(iv.interval_kind == "profile") & (iv.parameter == "sigma_a2")].sort_values("replicate")
    np.testing.assert_array_equal(got.lower.to_numpy(), prof.lower)
    assert (got.lower == 0).mean() > 0.5  # closed at 0: most replicates at σ_A² = 0 put 0 inside
    g = iv[(iv.interval_kind == "exact") & (iv.parameter == "gamma")]
    assert (g.truth == 0).all() and np.isfinite(g.estimate).all()


def test_coverage_within_4_mcse_of_exact_or_nominal(cover_study):
    s = pd.read_csv(cover_study / "summary.csv")
    cov = s[s.metric.str.startswith("coverage") & s.interval_kind.isin(["profile", "exact", "mls"])
            & ~s.metric.str.endswith(("_boundary", "_interior", "_clean"))]   # not the conditional metrics
    checked = {}
    for _, r in cov.iterrows():
        ref = r.exact if np.isfinite(r.exact) else 0.95
        mcse = np.sqrt(ref * (1 - ref) / r.n_ok)  # MCSE at the reference value (never 0)
        checked[(r.fit, r.sigma_a2, r.parameter, r.metric)] = (r.value, ref)
        assert r.n_ok == R
        assert abs(r.value - ref) <= 4 * mcse, (r.fit, r.sigma_a2, r.parameter, r.metric, r.value, ref)
    # exact coverage is the nominal level for the χ²/t intervals, and for the F intervals when σ_A² > 0;
    # closed at 0, the F, MLS and profile intervals of σ_A² = 0 have exact coverage above it
    ex = cov.set_index(["fit", "sigma_a2", "parameter", "metric"]).exact
    assert ex[("reml", 0.5, "gamma", "coverage_exact")] == pytest.approx(0.95)
    assert ex[("reml", 0.0, "sigma_e2", "coverage_exact")] == pytest.approx(0.95)
    assert ex[("reml", 0.0, "icc", "coverage_exact")] == pytest.approx(0.975)
    assert ex[("reml", 0.0, "sigma_a2", "coverage_mls")] == pytest.approx(0.975)
    assert 0.975 < ex[("reml", 0.0, "sigma_a2", "coverage_profile")] < 0.99
    assert 0.975 < ex[("ml", 0.0, "sigma_a2", "coverage")] < 0.99
    assert np.isnan(ex[("reml", 0.5, "sigma_a2", "coverage_mls")])
    assert len(checked) == 2 * (2 + 4 + 1) + 2 * 3  # reml: profile 2 (REML: no mu), exact 4, mls 1; ml: 3
    print({k: tuple(round(v, 4) for v in vals) for k, vals in checked.items()})
