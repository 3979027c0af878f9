"""Studies whose fits request tests and interval kinds: rows, metrics, sizes on the numbers,
profile coverage recomputed directly, identical rows for 1 and 2 workers and under resume, failures."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import optimize, stats

from compare_mm.cli import main
from compare_mm.study.runner import run_study
from compare_mm.study.store import read_rows

TESTS = ("f_test", "lrt_chi2", "lrt_chibar2", "exact_rlrt", "bootstrap_lrt")
KEYS = ["row_type", "condition", "replicate", "fit", "test", "interval_kind", "parameter", "group"]

ALL = {"name": "all", "seed": 3, "replicates": 15, "model": "oneway", "level": 0.95,
       "grid": {"sigma_a2": [0.0]}, "fixed": {"groups": 6, "per_group": 4},
       "fits": [{"name": "reml", "backend": "reml", "method": "REML", "tests": "all", "bootstrap": 20,
                 "intervals": ["wald", "profile"]}]}


@pytest.fixture(scope="module")
def all_study(tmp_path_factory):
    out = tmp_path_factory.mktemp("all") / "out"
    run_study(ALL, out, progress=False)
    return out


def test_tests_all_gives_size_rows_for_every_test_and_profile_coverage(all_study):
    s = pd.read_csv(all_study / "summary.csv")
    fit = s[s.fit == "reml"]
    for test in TESTS:
        row = fit[fit.metric == f"size_{test}"]
        assert len(row) == 1 and row.parameter.iloc[0] == "sigma_a2", test
        p, mcse = float(row.value.iloc[0]), float(row.mcse.iloc[0])
        assert 0 <= p <= 1 and mcse == pytest.approx(np.sqrt(p * (1 - p) / 15)), test
        assert int(row.n_ok.iloc[0]) == 15 and int(row.n_failed.iloc[0]) == 0
    exact = fit.set_index("metric").exact
    assert exact["size_f_test"] == pytest.approx(0.05) and exact["size_exact_rlrt"] == pytest.approx(0.05)
    assert np.isnan(exact["size_bootstrap_lrt"])
    for param in ("mu", "sigma_a2", "sigma_e2"):
        assert len(fit[(fit.parameter == param) & (fit.metric == "coverage_profile")]) == 1
    # wald is the primary interval (plain coverage), so it has no coverage_wald duplicate
    assert not (fit.metric == "coverage_wald").any()
    assert fit[(fit.parameter == "mu") & (fit.metric == "coverage")].interval_kind.iloc[0] == "wald"
    rows = read_rows(all_study)
    assert set(rows.row_type.astype(str)) == {"param", "group", "test", "interval"}
    assert len(rows[rows.row_type == "test"]) == 15 * len(TESTS)


def test_profile_coverage_equals_a_direct_recomputation(all_study):
    from compare_mm.api import make_design
    from compare_mm.inference.profile import profile_intervals
    from compare_mm.study.generate import model_spec, simulate_oneway_balanced, template_frame

    cond = {"model": "oneway", "groups": 6, "per_group": 4, "sigma_a2": 0.0, "sigma_e2": 1.0, "mu": 0.0}
    Y, _, _ = simulate_oneway_balanced(cond, ALL["seed"], 0, range(15))
    design = make_design(model_spec("oneway", None, "REML"), template_frame("oneway", cond))
    lo, hi = [], []
    for y in Y:
        iv = {i.parameter: i for i in profile_intervals(design.with_y(y.ravel()), mode="ml")}["sd_(Intercept)|g"]
        lo.append(max(iv.lower, 0.0) ** 2)
        hi.append(iv.upper ** 2)
    lo, hi = np.array(lo), np.array(hi)
    rows = read_rows(all_study)
    iv_rows = rows[(rows.row_type == "interval") & (rows.parameter == "sigma_a2")].sort_values("replicate")
    # the fast path profiles the variance itself (closed form, vectorised): kind "profile", the same limits
    # as the squared SD limits of the general routine up to that routine's root-finding tolerance
    assert (iv_rows.interval_kind == "profile").all()
    np.testing.assert_allclose(iv_rows.lower, lo, atol=1e-8)
    np.testing.assert_allclose(iv_rows.upper, hi, rtol=1e-6)
    s = pd.read_csv(all_study / "summary.csv")
    got = s[(s.parameter == "sigma_a2") & (s.metric == "coverage_profile")].value.iloc[0]
    assert got == np.mean((lo <= 0.0) & (0.0 <= hi))
    assert (lo == 0).any()  # the boundary: a lower limit of exactly 0 covers σ_A² = 0
    # `compare-mm summarise` recomputes the same summary from the stored rows
    before = pd.read_csv(all_study / "summary.csv")
    assert main(["summarise", str(all_study)]) == 0
    pd.testing.assert_frame_equal(before, pd.read_csv(all_study / "summary.csv"))


def _exact_size(a: int, n: int, method: str, crit: float) -> float:
    """P(LRT > crit) under H₀ computed from the F distribution: the profiled LRT is increasing in
    F = MSA/MSE above the boundary (written out here from the likelihoods, independently of the package)."""
    N, v1, v2 = a * n, a - 1, a * (n - 1)

    def T(F):  # MSE = 1, SSA = v1 F, SSE = v2
        if method == "REML":
            s0 = (v1 * F + v2) / (N - 1)
            return (N - 1) * np.log(s0) - v1 * np.log(F)
        s0 = (v1 * F + v2) / N
        return N * np.log(s0) - a * np.log(v1 * F / a)

    start = 1.0 if method == "REML" else a / v1
    return float(stats.f.sf(optimize.brentq(lambda F: T(F) - crit, start, 100.0, xtol=1e-14), v1, v2))


def test_naive_lrt_size_far_below_alpha_and_mixture_at_its_exact_value(tmp_path):
    # the check: H₀ σ_A² = 0, a = 10, n = 5, 4,000 replicates (closed forms, vectorised)
    reps = 4000
    study = {"name": "size", "seed": 20261122, "replicates": reps, "model": "oneway",
             "grid": {"sigma_a2": [0.0]}, "fixed": {"groups": 10, "per_group": 5},
             "fits": [{"name": m.lower(), "backend": "reml", "method": m,
                       "tests": ["f_test", "lrt_chi2", "lrt_chibar2", "exact_rlrt"]} for m in ("REML", "ML")]}
    s = run_study(study, tmp_path / "o", progress=False).summary.set_index(["fit", "metric"])
    measured = {}
    for fit, method in (("reml", "REML"), ("ml", "ML")):
        for test, crit in (("lrt_chi2", stats.chi2.ppf(0.95, 1)), ("lrt_chibar2", stats.chi2.ppf(0.90, 1))):
            row = s.loc[(fit, f"size_{test}")]
            exact = _exact_size(10, 5, method, crit)
            measured[(fit, test)] = (row.value, row.mcse, exact)
            assert row.exact == pytest.approx(exact, abs=1e-9)
            assert abs(row.value - exact) < 4 * np.sqrt(exact * (1 - exact) / reps), (fit, test, row.value, exact)
        naive = s.loc[(fit, "size_lrt_chi2")]
        assert naive.value < 0.05 - 4 * np.sqrt(0.05 * 0.95 / reps)  # far below the nominal 5%
        assert s.loc[(fit, "size_lrt_chibar2")].value > naive.value
        # the exact RLRT rejects exactly when the F test does (F > F_crit > 1): same size, exact 5%
        assert s.loc[(fit, "size_exact_rlrt")].value == s.loc[(fit, "size_f_test")].value
        assert abs(s.loc[(fit, "size_f_test")].value - 0.05) < 4 * np.sqrt(0.05 * 0.95 / reps)
    print("sizes (value, mcse, exact):", measured)


MIX = {"name": "mix", "seed": 9, "replicates": 4, "chunk_size": 2, "model": "oneway",
       "grid": {"groups": [6], "per_group": [4, [2, 3, 4, 3, 2, 4]], "sigma_a2": [0.4]},
       "fits": [{"name": "reml", "backend": "reml", "method": "REML", "bootstrap": 20, "nsim": 400,
                 "tests": ["lrt_chi2", "lrt_chibar2", "exact_rlrt", "bootstrap_lrt"],
                 "intervals": ["wald", "profile", "bootstrap"]},
                {"name": "ml", "backend": "reml", "method": "ML", "tests": ["lrt_chibar2"], "interval": "profile",
                 "replicates": 2}]}


def test_one_and_two_workers_and_resume_give_identical_rows(tmp_path, rows_of):
    # one process (the serial executor; tests/study/test_workers.py shows it equals workers=1 and local
    # process clusters) vs a Dask cluster of two workers (in-process, to keep the test fast)
    from dask.distributed import LocalCluster

    run_study(MIX, tmp_path / "w1", progress=False)
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None) as cluster:
        run_study(MIX, tmp_path / "w2", scheduler=cluster.scheduler_address, progress=False)
    a, b = rows_of(tmp_path / "w1", KEYS), rows_of(tmp_path / "w2", KEYS)
    assert {"test", "interval"} <= set(a.row_type) and a.ok.all()
    pd.testing.assert_frame_equal(a, b)
    run_study(dict(MIX, chunk_size=3), tmp_path / "c3", progress=False)  # another chunking: same rows
    pd.testing.assert_frame_equal(a, rows_of(tmp_path / "c3", KEYS))
    # both routes ran: closed forms (condition 0, balanced) and the fitter (condition 1, unbalanced)
    t = a[a.row_type == "test"]
    assert set(t[t.condition == 0].test) == set(t[t.condition == 1].test) == {"lrt_chi2", "lrt_chibar2",
                                                                              "exact_rlrt", "bootstrap_lrt"}
    assert np.isfinite(t.p_value).all()
    # the ML fit's primary interval is its profile interval, on the param rows
    ml = a[(a.fit == "ml") & (a.row_type == "param") & (a.parameter == "sigma_a2")]
    # (condition 0 on the vectorised one-way profile, condition 1 the general routine's squared SD limits)
    assert (ml[ml.condition == 0].interval_kind == "profile").all()
    assert (ml[ml.condition == 1].interval_kind == "profile-sd2").all() and np.isfinite(ml.upper).all()

    class Stop(Exception):
        pass

    def stop_after_two(chunk, seen=[]):  # noqa: B006 — counts chunks of this run
        seen.append(chunk)
        if len(seen) == 2:
            raise Stop

    with pytest.raises(Stop):
        run_study(MIX, tmp_path / "r", progress=False, on_chunk=stop_after_two)
    run_study(MIX, tmp_path / "r", resume=True, progress=False)
    pd.testing.assert_frame_equal(a, rows_of(tmp_path / "r", KEYS))


def test_failing_inference_is_recorded_and_the_study_completes(tmp_path, monkeypatch):
    import compare_mm.study.chunk as chunk  # run_chunk calls the replicate_inference it imported

    def boom(*args, **kwargs):
        raise RuntimeError("profile went wrong")

    monkeypatch.setattr(chunk, "replicate_inference", boom)
    monkeypatch.setattr(chunk, "column_path_applies", lambda *a: False)  # the per-replicate route's handling
    study = dict(MIX, replicates=3, grid={"groups": [6], "per_group": [[2, 3, 4, 3, 2, 4]], "sigma_a2": [0.4]},
                 fits=[{"name": "reml", "backend": "reml", "method": "REML", "tests": ["lrt_chibar2"],
                        "intervals": ["wald", "profile"]}])
    res = run_study(study, tmp_path / "o", progress=False)
    rows = read_rows(tmp_path / "o")
    tests = rows[rows.row_type == "test"]
    assert len(tests) == 3 and (~tests.ok).all()
    assert (tests.error == "RuntimeError: profile went wrong").all()
    assert rows[rows.row_type == "param"].ok.all()  # the fit itself is fine
    size = res.summary[res.summary.metric == "power_lrt_chibar2"].iloc[0]
    assert (size.n_ok, size.n_failed) == (0, 3) and "profile went wrong" in size.note
