"""compare_mm.report: a report drawn from stored rows alone, with valid figures, a self-contained HTML file,
failures shown, and figures skipped with a reason when the study has no data for them."""

from __future__ import annotations

import base64
import re
from pathlib import Path

import matplotlib.image as mpimg
import numpy as np
import pandas as pd
import pytest
from scipy import stats

import compare_mm
import compare_mm.api
import compare_mm.backends.base as backends_base
from compare_mm.report.layout import figure_name
from compare_mm.cli import main
from compare_mm.report import FIGURES, load_study, write_report
from compare_mm.report.figures import _exact_boundary_curves
from compare_mm.report.tables import fmt_mc, formatted_summary

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
ALL_FIGURES = {"boundary_rate", "coverage_width", "bias_rmse", "shrinkage", "sampling_distribution",
               "bayes_diagnostics", "fit_quality"}


def _boom(*args, **kwargs):
    raise AssertionError("the report tried to fit a model")


@pytest.fixture(scope="module")
def reported(study_dir):
    """The synthetic study's report, written once with every way of fitting made to raise."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(compare_mm, "fit", _boom)
        mp.setattr(compare_mm.api, "fit", _boom)
        mp.setattr(backends_base, "get_backend", _boom)
        mp.setattr(compare_mm.api, "get_backend", _boom)
        html = write_report(study_dir)
    return study_dir, html


def test_report_from_stored_rows_alone(reported):
    study_dir, html = reported
    assert html == study_dir / "report.html" and html.is_file()
    assert (study_dir / "report.md").is_file()
    assert {figure_name(p) for p in (study_dir / "figures").glob("*.png")} == ALL_FIGURES
    assert (study_dir / "tables" / "summary_formatted.csv").is_file()


def test_every_figure_is_a_valid_png(reported):
    study_dir, _ = reported
    for path in (study_dir / "figures").glob("*.png"):
        assert path.read_bytes()[:8] == PNG_SIGNATURE, path
        img = mpimg.imread(path)
        assert img.ndim == 3 and img.shape[0] > 200 and img.shape[1] > 300, path
        assert np.ptp(img[..., :3]) > 0.5, f"{path.name} is blank"


def test_html_is_self_contained_and_names_every_fit(reported):
    study_dir, _ = reported
    text = (study_dir / "report.html").read_text()
    uris = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', text)
    figures = sorted((study_dir / "figures").glob("*.png"))
    assert len(uris) == len(figures) and {figure_name(p) for p in figures} == ALL_FIGURES
    assert {base64.b64decode(u) for u in uris} == {p.read_bytes() for p in figures}
    assert not re.search(r'(src|href)="(https?:)?//', text), "the HTML must not load anything from the network"
    assert "<link" not in text and "@media print" in text
    for fit in ("reml", "ml", "bayes"):
        assert f"<td>{fit}</td>" in text
    assert "Reproducibility" in text and "numpy" in text and "seed" in text


def test_markdown_references_the_figure_files(reported):
    study_dir, _ = reported
    md = (study_dir / "report.md").read_text()
    refs = re.findall(r"!\[[^\]]*\]\((figures/[^)]+\.png)\)", md)
    assert sorted(refs) == sorted(f"figures/{p.name}" for p in (study_dir / "figures").glob("*.png"))
    assert {figure_name(Path(r)) for r in refs} == ALL_FIGURES
    assert all((study_dir / r).is_file() for r in refs)


def test_failed_fits_are_shown_not_fatal(failed_study_dir):
    assert write_report(failed_study_dir).is_file()
    text = (failed_study_dir / "report.html").read_text()
    # 7 failed ML fits in each of the 6 conditions
    assert "42 failed fit(s)" in text and "ml: 42" in text
    assert "LinAlgError: Matrix is not positive definite" in text
    md = (failed_study_dir / "report.md").read_text()
    assert "**42 failed fit(s)**" in md
    table = pd.read_csv(failed_study_dir / "tables" / "summary_formatted.csv", dtype=str).fillna("")
    assert set(table.loc[table["fit"] == "ml", "n_failed"]) == {"7"}


def test_a_study_without_bayes_skips_its_figures_with_a_reason(freq_study_dir):
    write_report(freq_study_dir)
    names = {figure_name(p) for p in (freq_study_dir / "figures").glob("*.png")}
    assert names == ALL_FIGURES - {"bayes_diagnostics"}
    text = (freq_study_dir / "report.html").read_text()
    assert "Not shown: The study has no Bayesian fit." in text
    assert "no posterior-median panel" in text


def test_exact_boundary_curve_equals_the_f_distribution(study_dir):
    """The drawn exact curve vs the F cdf computed independently (scipy, in the fixture's own formula)."""
    study = load_study(study_dir)
    xs = np.array([0.0, 0.2, 1.0])
    for a in (6, 18):
        curves = {m: c for m, _, c in _exact_boundary_curves(study, {"groups": a, "per_group": 3}, xs,
                                                            ["reml", "ml", "bayes"])}
        assert set(curves) == {"REML", "ML"}
        ref_reml = stats.f.cdf(1 / (1 + 3 * xs), a - 1, a * 2)
        ref_ml = stats.f.cdf(a / ((a - 1) * (1 + 3 * xs)), a - 1, a * 2)
        np.testing.assert_allclose(curves["REML"], ref_reml, rtol=1e-12)
        np.testing.assert_allclose(curves["ML"], ref_ml, rtol=1e-12)
        stored = study.summary[(study.summary["metric"] == "boundary_rate") & (study.summary["groups"] == a)
                               & (study.summary["fit"] == "reml")].sort_values("sigma_a2")["exact"].to_numpy()
        np.testing.assert_allclose(curves["REML"], stored, rtol=1e-10)


def test_unbalanced_design_draws_the_imhof_curve(study_dir):
    # unequal group sizes: the curve is the one-component theory's P(score at 0 ≤ 0), not the balanced F cdf
    from compare_mm.inference import onevc

    study = load_study(study_dir)
    xs = np.linspace(0.0, 0.6, 50) ** 2
    curves = _exact_boundary_curves(study, {"groups": 4, "per_group": "2,3,5,8"}, xs, ["reml"])
    assert [(m, fs) for m, fs, _ in curves] == [("REML", ["reml"])]
    sp = onevc.oneway_spectrum([2, 3, 5, 8])
    exact = np.array([onevc.boundary_probability(sp, x, "REML") for x in xs])
    assert abs(curves[0][2][0] - exact[0]) < 1e-12          # a knot of the interpolation
    assert np.max(np.abs(curves[0][2] - exact)) < 1e-3      # interpolated between 61 knots
    assert _exact_boundary_curves(study, {"groups": 4, "per_group": "2,3,5,x"}, xs, ["reml"]) == []


@pytest.mark.parametrize("value, mcse, text", [
    (0.0523, 0.0049, "0.052 (0.005)"), (0.9512, 0.0123, "0.951 (0.012)"), (12.3456, 0.31, "12.3 (0.3)"),
    (-0.00012, 0.00004, "-0.00012 (0.00004)"), (0.5, float("nan"), "0.5"), (float("nan"), 0.1, "–"),
    (8.675e-10, 2.068e-10, "8.7e-10 (2.1e-10)"), (3e-8, 4.4e-8, "0.00000003 (0.00000004)"),
])
def test_fmt_mc(value, mcse, text):
    assert fmt_mc(value, mcse) == text


def test_summary_table_names_every_interval_kind(study_dir):
    table = formatted_summary(load_study(study_dir))
    kinds = set(table.loc[table["coverage"] != "", "interval"])
    assert kinds == {"Wald 95%", "ETI 95%"}
    row = table[(table["fit"] == "reml") & (table["parameter"] == "σ_A²")].iloc[0]
    assert re.fullmatch(r"-?\d+\.\d+ \(\d+\.\d+\)", row["bias"])


def test_cli_report(failed_study_dir, tmp_path, capsys):
    assert main(["report", str(failed_study_dir)]) == 0
    assert "report.html" in capsys.readouterr().out
    assert main(["report", str(tmp_path / "missing")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_a_study_without_any_usable_rows_still_reports(study_dir, tmp_path):
    """Header-only summary.csv and no replicates: every figure is skipped with its reason, nothing crashes."""
    out = tmp_path / "empty"
    out.mkdir()
    (out / "config.yaml").write_text((study_dir / "config.yaml").read_text())
    header = (study_dir / "summary.csv").read_text().splitlines()[0]
    (out / "summary.csv").write_text(header + "\n")
    text = write_report(out).read_text()
    assert not list((out / "figures").glob("*.png"))
    assert text.count("Not shown:") == len(FIGURES)        # every figure, the NUTS/quadrature panel too
    assert "The study stores no boundary-rate rows" in text
