"""Fit quality is reported: non-converged and singular fits, boundary rates per variance component, Wilson
intervals for proportions of 0 or 1, robust panels that one absurd value cannot rescale."""

from __future__ import annotations

import math
import re

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
import yaml  # noqa: E402

from compare_mm.backends import base  # noqa: E402
from compare_mm.cli import main  # noqa: E402
from compare_mm.oneway.closed_forms import fit_oneway  # noqa: E402
from compare_mm.report import write_report  # noqa: E402
from compare_mm.report.conditions import condition_frame  # noqa: E402
from compare_mm.report.marks import dot_panel  # noqa: E402
from compare_mm.report.style import FitStyle  # noqa: E402
from compare_mm.results.schema import FitResult, FixefRow, RanefRow, VarCorrRow  # noqa: E402
from compare_mm.study.mcse import proportion, wilson  # noqa: E402
from compare_mm.study.runner import run_study  # noqa: E402
from compare_mm.study.store import read_rows  # noqa: E402


class ShakyBackend(base.BackendBase):
    """The closed-form REML fit, reported non-converged when the first response is positive and singular
    when the second is (or when σ̂_A² = 0, as any honest backend would)."""

    name = "shaky"

    def supports(self, spec):
        return None

    def fit(self, design, options):
        Y = design.y.reshape(design.blocks[0].n_levels, -1)
        e = fit_oneway(Y[None], "REML")
        sa2, se2 = float(e.sigma_a2[0]), float(e.sigma_e2[0])
        return FitResult(
            backend="shaky", method="REML", formula=design.spec.formula, nobs=design.n,
            converged=bool(design.y[0] <= 0), singular=bool(design.y[1] > 0 or e.boundary[0]),
            loglik=float(e.loglik[0]), criterion=None, sigma=math.sqrt(se2),
            fixef=(FixefRow("(Intercept)", float(e.mu[0]), float(e.se_mu[0])),),
            varcorr=(VarCorrRow("g", "(Intercept)", variance=sa2, sd=math.sqrt(sa2)),
                     VarCorrRow("Residual", None, variance=se2, sd=math.sqrt(se2))),
            ranef=tuple(RanefRow("g", lev, "(Intercept)", float(e.blup[0, i]), float(e.blup_condsd[0]))
                        for i, lev in enumerate(design.blocks[0].levels)),
        )


@pytest.fixture
def shaky(monkeypatch):
    monkeypatch.setitem(base._REGISTRY, "shaky", "unused:BACKEND")
    monkeypatch.setitem(base._LOADED, "shaky", ShakyBackend())


def _status(rows: pd.DataFrame, fit: str) -> pd.DataFrame:
    p = rows[(rows.fit == fit) & (rows.row_type == "param")]
    return p.drop_duplicates(["condition", "replicate"])


def test_nonconverged_and_singular_fits_reach_report_table_and_summary_line(tmp_path, shaky, capsys):
    study = {"name": "shaky", "seed": 11, "replicates": 20, "model": "oneway",
             "grid": {"groups": [5], "per_group": [4], "sigma_a2": [0.0, 0.5]},
             "fits": [{"name": "reml", "backend": "reml", "method": "REML"},
                      {"name": "shaky", "backend": "shaky", "method": "REML"},
                      {"name": "shaky_cc", "backend": "shaky", "method": "REML", "exclude_nonconverged": True}]}
    f = tmp_path / "shaky.yaml"
    f.write_text(yaml.safe_dump(study))
    out = tmp_path / "out"
    assert main(["run", str(f), "--out", str(out), "--quiet"]) == 0
    line = capsys.readouterr().out.splitlines()[0]
    rows = read_rows(out)
    st = pd.concat([_status(rows, fit) for fit in ("reml", "shaky", "shaky_cc")])
    n_nonconv = int((~st.converged).sum())
    n_sing = int(st.singular.sum())
    assert 0 < n_nonconv < len(st) and 0 < n_sing < len(st)
    assert f"0 failed fits, {n_nonconv} non-converged, {n_sing} singular" in line
    # summary.csv: the rates per condition equal the counts of the stored rows
    s = pd.read_csv(out / "summary.csv")
    sh = _status(rows, "shaky")
    for c, g in sh.groupby("condition"):
        nc = s[(s.fit == "shaky") & (s.condition == c) & (s.metric == "nonconvergence_rate")].iloc[0]
        sg = s[(s.fit == "shaky") & (s.condition == c) & (s.metric == "singular_rate")].iloc[0]
        assert nc.value == pytest.approx((~g.converged).mean()) and nc.n_nonconverged == (~g.converged).sum()
        assert sg.value == pytest.approx(g.singular.mean()) and sg.n_singular == g.singular.sum()
        assert nc.mcse == pytest.approx(math.sqrt(nc.value * (1 - nc.value) / len(g)))
        # the policy: all fits by default, converged ones only with exclude_nonconverged
        conv = rows[(rows.fit == "shaky_cc") & (rows.condition == c) & (rows.parameter == "mu")
                    & (rows.row_type == "param") & rows.converged]
        mean_cc = s[(s.fit == "shaky_cc") & (s.condition == c) & (s.metric == "mean") & (s.parameter == "mu")].iloc[0]
        assert mean_cc.value == pytest.approx(conv.estimate.mean()) and mean_cc.excluded == (~g.converged).sum()
        assert "excluded" in mean_cc.note
        everything = rows[(rows.fit == "shaky") & (rows.condition == c) & (rows.parameter == "mu")
                          & (rows.row_type == "param")]
        mean_all = s[(s.fit == "shaky") & (s.condition == c) & (s.metric == "mean") & (s.parameter == "mu")].iloc[0]
        assert mean_all.value == pytest.approx(everything.estimate.mean()) and mean_all.excluded == 0
    # the report: fit quality is the first section, flagged fits are marked in the tables
    html = (out / "report.html").read_text()
    md = (out / "report.md").read_text()
    assert html.index(">Fit quality</h2>") < html.index(">Fits compared</h2>")
    assert md.index("## Fit quality") < md.index("## Fits compared")
    quality = pd.read_csv(out / "tables" / "fit_quality.csv", dtype=str).fillna("")
    assert {"not converged", "singular", "σ̂_A² on boundary"} <= set(quality.columns)
    shaky_rows = quality[quality.fit.str.startswith("shaky ")]
    assert len(shaky_rows) == 2 and shaky_rows.fit.str.endswith("†").all()   # rates ≥ 10 %: marked
    assert "shaky&nbsp;†" in html and "shaky †" in md and "non-convergence or singular rate is ≥ 10%" in html
    assert "Non-converged fits behind these metrics" in html and "(excluded)" in html
    assert (out / "figures" / "fit_quality.png").is_file()
    for c, g in sh.groupby("condition"):
        rate = (~g.converged).mean()
        assert any(cell.startswith(f"{rate:.1f}") or cell.startswith(f"{rate:.2f}")
                   for cell in quality["not converged"]), quality["not converged"].tolist()


def test_random_slope_at_zero_slope_variance_reports_boundary_and_singular_rates(tmp_path):
    study = {"name": "rs0", "seed": 3, "replicates": 16, "model": "random_slope",
             "grid": {"sigma_b2": [0.0]}, "fixed": {"groups": 6, "sigma_a2": 0.5, "x": [0, 1, 2, 3]},
             "fits": [{"name": "diag", "backend": "reml", "method": "REML", "covariance": "diagonal"},
                      {"name": "full", "backend": "reml", "method": "REML"}]}
    out = tmp_path / "rs0"
    run_study(study, out, progress=False)
    rows = read_rows(out)
    s = pd.read_csv(out / "summary.csv")
    for fit in ("diag", "full"):
        p = rows[(rows.fit == fit) & (rows.row_type == "param")]
        est = p.pivot_table(index="replicate", columns="parameter", values="estimate")
        st = _status(rows, fit).set_index("replicate")
        tb = np.sqrt(est["sigma_b2"].clip(lower=0) / est["sigma_e2"])
        b_hits = tb < 1e-4
        got = s[(s.fit == fit) & (s.metric == "boundary_rate") & (s.parameter == "sigma_b2")].iloc[0]
        assert got.value == pytest.approx(b_hits.mean())
        sing = s[(s.fit == fit) & (s.metric == "singular_rate")].iloc[0]
        assert sing.value == pytest.approx(st.singular.mean()) and sing.n_singular == st.singular.sum()
        if fit == "full":  # |ρ̂| = 1: the second diagonal element of θ is 0 while σ̂_B² is not
            rho_hits = (~b_hits) & (tb * np.sqrt(1 - est["rho"].clip(-1, 1) ** 2) < 1e-4)
            got = s[(s.fit == fit) & (s.metric == "boundary_rate") & (s.parameter == "rho")].iloc[0]
            assert got.value == pytest.approx(rho_hits.mean())
            assert (st.singular | b_hits | rho_hits).sum() >= 1
    diag_b = s[(s.fit == "diag") & (s.metric == "boundary_rate") & (s.parameter == "sigma_b2")].iloc[0]
    assert diag_b.value > 0  # at σ_B² = 0 the diagonal fit puts σ̂_B² on its boundary
    write_report(out)
    quality = pd.read_csv(out / "tables" / "fit_quality.csv", dtype=str).fillna("")
    assert {"σ̂_B² on boundary", "singular"} <= set(quality.columns)
    assert "|ρ̂| = 1" in quality.columns


def test_wilson_interval_matches_a_hand_computation():
    z = 1.959963984540054
    # p̂ = 0 of n = 20: [0, z²/(n + z²)]
    lo, hi = wilson(0.0, 20)
    assert lo == 0.0 and hi == pytest.approx(z * z / (20 + z * z), rel=1e-12)
    # p̂ = 3/10, by the formula written out
    n, p = 10, 0.3
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    assert wilson(p, n) == pytest.approx((centre - half, centre + half), rel=1e-12)
    assert wilson(1.0, 20) == pytest.approx((20 / (20 + z * z), 1.0), rel=1e-12)
    # proportion() carries n, so summary rows get the interval
    value, mcse = proportion(np.zeros(20, bool))
    assert value == 0 and mcse == 0 and value.n == 20


def test_one_absurd_value_does_not_rescale_the_panel():
    conds = condition_frame(pd.DataFrame({"n": [3, 5, 10, 20]}), ["n"])
    frame = pd.DataFrame({"n": [3, 5, 10, 20] * 2, "cond": [0, 1, 2, 3] * 2, "condition": [0, 1, 2, 3] * 2,
                          "fit": ["reml"] * 4 + ["statsmodels"] * 4, "parameter": "mu",
                          "value": [0.31, 0.29, 0.30, 0.28, 0.33, 2.4e6, 0.30, 0.29],
                          "mcse": [0.01] * 8, "exact": [0.3, 0.3, 0.3, 0.3] + [np.nan] * 4, "interval_kind": ""})
    fig, ax = plt.subplots()
    off = dot_panel(ax, frame, conds, FitStyle(["reml", "statsmodels"]))
    lo, hi = ax.get_ylim()
    assert hi < 1.0 and lo > 0.0, (lo, hi)   # the axis is the range of the sane values
    assert len(off) == 1 and "statsmodels" in off[0] and "2.4e+06" in off[0]
    labels = ax.get_legend_handles_labels()[1]
    assert "exact value" in labels
    edge = [ln for ln in ax.lines if ln.get_marker() == "^"]
    assert edge and edge[0].get_ydata()[0] == pytest.approx(hi)
    plt.close(fig)


def test_posterior_quality_rates_and_coverage_given_clean_diagnostics():
    from compare_mm.study.row_schema import DEFAULTS, PARAM_COLUMNS
    from compare_mm.study.summarise import summarise_rows

    n = 12
    rng = np.random.default_rng(4)
    rhat = np.where(np.arange(n) % 4 == 0, 1.05, 1.001)          # 3 of 12 with R-hat ≥ 1.01
    div = np.where(np.arange(n) % 6 == 1, 2.0, 0.0)              # 2 of 12 with divergences
    ess = np.where(np.arange(n) < 5, 150.0, 900.0)               # 5 of 12 below 100 per chain (2 chains)
    lower = rng.normal(-1, 0.5, n)
    rows = []
    for r in range(n):
        for p, truth in (("mu", 0.0), ("sigma_a2", 0.5), ("sigma_e2", 1.0)):
            row = {c: DEFAULTS.get(c, np.nan) for c in PARAM_COLUMNS}
            row.update(row_type="param", condition=0, replicate=r, fit="bayes", backend="pymc", method="",
                       parameter=p, truth=truth, estimate=truth + 0.1, se=0.3, lower=lower[r], upper=1.0,
                       interval_kind="eti", converged=bool(rhat[r] < 1.01 and div[r] == 0), divergences=div[r],
                       max_rhat=rhat[r], min_ess=ess[r], elapsed_s=0.1)
            rows.append(row)
    frame = pd.DataFrame(rows)
    manifest = {"grid_keys": [], "conditions": [{"model": "oneway", "groups": 5, "per_group": [2, 3, 4, 5, 6]}],
                "fits": [{"name": "bayes", "backend": "pymc", "chains": 2}]}
    s = summarise_rows(frame, manifest)
    get = lambda m, p="": s[(s.metric == m) & (s.parameter == p)].iloc[0]
    assert get("rhat_rate").value == pytest.approx(3 / 12)
    assert get("divergence_rate").value == pytest.approx(2 / 12)
    assert get("low_ess_rate").value == pytest.approx(5 / 12)
    clean = (rhat < 1.01) & (div == 0)
    want = ((lower <= 0.0) & (0.0 <= 1.0))[clean].mean()
    got = get("coverage_clean", "mu")
    assert got.value == pytest.approx(want) and f"over the {clean.sum()} replicates" in got.note
    assert np.isfinite(got.ci_lower) and got.ci_lower <= got.value <= got.ci_upper
    assert "singular_rate" not in set(s.metric)  # a posterior is never singular


def test_a_large_but_sane_value_stays_on_the_axis():
    from compare_mm.report.marks import robust_limits

    v = np.array([0.005, 0.006, 0.004, 0.17, 0.27, 0.007])
    bars = np.full(6, 0.01)
    assert robust_limits(v, (), v - bars, v + bars) is None
    v[3] = 2e6
    lo, hi, off = robust_limits(v, (), v - bars, v + bars)
    assert off.tolist() == [False, False, False, True, False, False] and hi < 1


def test_exclude_nonconverged_can_be_switched_on_resume(tmp_path, shaky):
    study = {"name": "policy", "seed": 2, "replicates": 12, "model": "oneway",
             "grid": {"groups": [5], "per_group": [4], "sigma_a2": [0.3]},
             "fits": [{"name": "shaky", "backend": "shaky", "method": "REML"}]}
    out = tmp_path / "p"
    first = run_study(study, out, progress=False).summary
    study["fits"][0]["exclude_nonconverged"] = True
    again = run_study(study, out, resume=True, progress=False)
    assert again.chunks_run == 0  # the policy is not part of the config hash: nothing is refitted
    s = again.summary
    n_nc = int(first[first.metric == "nonconvergence_rate"].n_nonconverged.iloc[0])
    assert n_nc > 0 and (s[s.metric == "mean"].excluded == n_nc).all()
    assert (first[first.metric == "mean"].excluded == 0).all()


def test_number_cells_are_right_aligned_rate_intervals_included():
    from compare_mm.report.render import _html_table

    frame = pd.DataFrame({"fit": ["reml †", "ml"], "singular": ["0.57 (0.04)", "0 [0, 0.025]"],
                          "coverage": ["0.94 (0.03) n=85", "1 [0.72, 1]"], "interval": ["Wald 95%", "ETI 95%"]})
    cells = re.findall(r"<td( class=num)?>(.*?)</td>", _html_table(frame))
    assert [(bool(c), v) for c, v in cells] == [
        (False, "reml&nbsp;†"), (True, "0.57 (0.04)"), (True, "0.94 (0.03) n=85"), (False, "Wald 95%"),
        (False, "ml"), (True, "0 [0, 0.025]"), (True, "1 [0.72, 1]"), (False, "ETI 95%")]
