"""``model: two_way`` in studies: the DGP's moments, YAML errors, and a small study with exact values."""

from __future__ import annotations

import numpy as np
import pytest

from compare_mm.errors import ConfigError
from compare_mm.study.config.load import load_config
from compare_mm.study.generate import ReplicateStreams, simulate, simulate_twoway_balanced, template_frame, truths
from compare_mm.study.runner import run_study
from compare_mm.twoway import anova, theory

COND = {"model": "two_way", "treatments": 3, "blocks": 5, "per_cell": 3, "trt_effects": [0.0, -1.0, 2.0],
        "sigma_b2": 0.8, "sigma_ab2": 0.3, "sigma_e2": 1.5, "mu": 4.0}


def test_dgp_sample_moments_match_the_model():
    """Treatment means, expected mean squares and the covariances of y within a block, within a cell."""
    R = 4000
    Y, Bfx = simulate_twoway_balanced(COND, seed=11, condition=0, replicates=range(R))
    st = anova.twoway_stats(Y)
    (_, _, _), lam = theory.strata(3, 5, 3, 0.8, 0.3, 1.5)
    for ss, df, l in zip((st.ss_b, st.ss_ab, st.ss_e), st.df, lam):
        ms = ss / df
        assert abs(ms.mean() - l) < 4 * ms.std() / np.sqrt(R)
    want = 4.0 + np.array([0.0, -1.0, 2.0])
    m = st.trt_means.mean(0)
    assert np.all(np.abs(m - want) < 4 * st.trt_means.std(0) / np.sqrt(R))
    assert abs(Bfx.var() - 0.8) < 4 * np.sqrt(2 / (R * 5)) * 0.8
    # Cov(y_ijk, y_i'jk') = σ_B² across treatments of a block; σ_B² + σ_AB² within a cell
    y = Y - Y.mean(0)
    for (a, b_), want_c in ((((0, 0, 0), (1, 0, 0)), 0.8), (((0, 0, 0), (0, 0, 1)), 1.1), (((0, 0, 0), (0, 1, 0)), 0.0)):
        prod = y[(slice(None),) + a] * y[(slice(None),) + b_]
        assert abs(prod.mean() - want_c) < 4 * prod.std() / np.sqrt(R)
    assert truths("two_way", COND) == {"mu": 4.0, "trt2": -1.0, "trt3": 2.0, "sigma_b2": 0.8, "sigma_ab2": 0.3, "sigma_e2": 1.5}


def test_vectorised_draw_equals_the_per_replicate_draw_and_the_design_order():
    Y, _ = simulate_twoway_balanced(COND, seed=3, condition=2, replicates=[0, 5])
    streams = ReplicateStreams(3, 2)
    for k, r in enumerate([0, 5]):
        rep = simulate("two_way", COND, streams(r))
        np.testing.assert_array_equal(rep.y, Y[k].ravel())
    frame = template_frame("two_way", COND)
    assert list(frame["trt"][:3]) == ["t1"] * 3 and list(frame["block"][:4]) == ["b1", "b1", "b1", "b2"]
    uneven = dict(COND, per_cell=[[1, 2, 3, 2, 2], [2, 2, 2, 2, 2], [3, 1, 1, 1, 4]])
    rep = simulate("two_way", uneven, streams(0))
    assert rep.y.size == 30 == len(template_frame("two_way", uneven))


BASE = {"name": "tw", "replicates": 5, "model": "two_way",
        "grid": {"sigma_b2": [0.0, 1.0]},
        "fixed": {"treatments": 3, "blocks": 4, "per_cell": 2, "sigma_ab2": 0.2},
        "fits": [{"name": "reml", "backend": "reml", "method": "REML"}]}


def _with(**fixed):
    cfg = {k: (dict(v) if isinstance(v, dict) else v) for k, v in BASE.items()}
    cfg["fixed"] = {k: v for k, v in dict(BASE["fixed"], **fixed).items() if v is not None}
    return cfg


@pytest.mark.parametrize("config,message", [
    (_with(sigma_ab2=-0.1), "fixed.sigma_ab2: variance must be ≥ 0, got -0.1."),
    (_with(sigma_ab2=None), "grid.sigma_ab2: required for model two_way; give it in grid (a list) or fixed."),
    (_with(treatments=None), "grid.treatments: required for model two_way (or give trt_effects, or per_cell as a "
                             "list of cell sizes); give it in grid (a list) or fixed."),
    (_with(blocks=1), "fixed.blocks: must be ≥ 2, got 1."),
    (_with(per_cell=1), "fixed.per_cell: must be ≥ 2, got 1."),
    (_with(trt_effects=[0.0, 1.0]), "fixed.trt_effects: gives 2 treatments, but treatments gives 3."),
    (_with(trt_effects=[0.0, "a", 1.0]), "fixed.trt_effects[1]: expected a number, got 'a'."),
    (_with(per_cell=[[2, 2, 2, 2], [2, 2, 2]]), "fixed.per_cell[1]: every treatment needs 4 cell sizes (one per "
                                                "block), got 3."),
    (_with(per_cell=[[1, 1], [1, 1], [1, 1]], blocks=None),
     "fixed.per_cell: every cell has one observation, so σ_AB² and σ_E² cannot be separated; some cell needs at "
     "least 2."),
    (_with(per_cell=[[2, 2], [2, 2], [2, 2]]), "fixed.blocks: 4 blocks do not match per_cell's 2 cell sizes per "
                                               "treatment."),
    (_with(groups=6), "fixed: unknown key 'groups' for model two_way; valid keys for model two_way are treatments, "
                      "trt_effects, blocks, per_cell, sigma_b2, sigma_ab2, sigma_e2, mu."),
    (dict(_with(), fits=[{"backend": "reml", "method": "REML", "tests": ["f_test"]}]),
     "fits[0].tests[0]: f_test is the one-way F test; balanced two_way conditions get the exact F tests of "
     "sigma_ab2 and sigma_b2 as fit 'F-test' rows without asking."),
    (dict(_with(per_cell=[[2, 2, 2, 2]] * 3), fits=[{"backend": "reml", "method": "ANOVA"}]),
     "fits[0].method: ANOVA is valid only for balanced one-way and balanced two_way models with backend reml."),
])
def test_yaml_errors_are_one_sentence_naming_the_key(config, message):
    with pytest.raises(ConfigError) as info:
        load_config(config)
    assert str(info.value) == message


def test_derived_keys_fill_the_conditions():
    cfg = load_config(_with(treatments=None, trt_effects=[0.0, 1.0, 2.0, 3.0]))
    c = cfg.conditions()[0]
    assert c["treatments"] == 4 and c["blocks"] == 4
    cfg = load_config(_with(treatments=None, blocks=None, per_cell=[[2, 1], [3, 2], [2, 2]]))
    c = cfg.conditions()[0]
    assert (c["treatments"], c["blocks"], c["trt_effects"]) == (3, 2, [0.0, 0.0, 0.0])


def test_small_study_has_exact_values_beside_its_metrics(tmp_path):
    cfg = {"name": "tw", "seed": 4, "replicates": 30, "model": "two_way",
           "grid": {"sigma_b2": [0.0, 1.0]},
           "fixed": {"treatments": 3, "blocks": 6, "per_cell": 2, "sigma_ab2": 0.3, "trt_effects": [0, 0.5, 1]},
           "fits": [{"name": "reml", "backend": "reml", "method": "REML", "tests": ["lrt_chibar2"]},
                    {"name": "anova", "backend": "reml", "method": "ANOVA", "interval": "t"}]}
    s = run_study(cfg, tmp_path / "out", progress=False).summary
    f = s[(s["fit"] == "F-test") & (s["metric"] == "rejection_rate")]
    assert sorted(f["parameter"].unique()) == ["sigma_ab2", "sigma_b2"] and f["exact"].notna().all()
    for _, r in f.iterrows():
        assert r["exact"] == theory.f_test_power(r["parameter"], 3, 6, 2, r["sigma_b2"], 0.3, 1.0)
    b = s[(s["metric"] == "boundary_rate") & (s["fit"] == "reml")]
    assert set(b["parameter"]) == {"sigma_b2", "sigma_ab2"} and b["exact"].notna().all()
    cov = s[(s["fit"] == "anova") & (s["metric"] == "coverage") & s["parameter"].isin(["trt2", "trt3"])]
    assert len(cov) == 4 and (cov["exact"] == 0.95).all()
    # REML variance moments have no exact value (a boundary component changes the other): empty cells
    rb = s[(s["fit"] == "reml") & (s["metric"] == "bias") & (s["parameter"] == "sigma_ab2")]
    assert rb["exact"].isna().all()
    # the ANOVA fit and the F test see the same replicates as our fitter: contrasts agree exactly
    t = s[(s["metric"] == "mean") & (s["parameter"] == "trt3")].set_index(["condition", "fit"])["value"]
    for c in (0, 1):
        assert t[(c, "anova")] == pytest.approx(t[(c, "reml")], abs=1e-9)
    tests = s[s["metric"].str.startswith(("size_lrt", "power_lrt"))]
    assert set(tests["parameter"]) == {"sigma_b2", "sigma_ab2"}
