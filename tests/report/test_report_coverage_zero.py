"""Posterior coverage of a variance whose true value is 0 is fixed by construction (an equal-tailed interval
lies inside (0, ∞); an HDI reaches 0 only where the density is largest at 0, never under an inverse gamma):
the coverage panel leaves those zeros out and says so, so that they do not stretch the axis to 0."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pytest

from compare_mm.report.figures import coverage_figure
from compare_mm.report.load import load_study
from compare_mm.report.style import FitStyle
from compare_mm.study.runner import run_study

STUDY = {"name": "zero", "seed": 3, "replicates": 30, "model": "oneway",
         "grid": {"sigma_a2": [0.0, 0.5]}, "fixed": {"groups": 6, "per_group": 4},
         "fits": [{"name": "reml", "backend": "reml", "intervals": ["profile"]},
                  {"name": "hn", "backend": "pymc", "sampler": "quadrature"},
                  {"name": "ig", "backend": "pymc", "sampler": "quadrature", "prior": "inverse_gamma"}]}


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    out = tmp_path_factory.mktemp("zero") / "s"
    run_study(STUDY, out, progress=False)
    return load_study(out)


def test_zero_by_construction_coverages_are_left_out_and_named(study, tmp_path):
    s = study.summary
    cov = s[(s["metric"] == "coverage") & (s["parameter"] == "sigma_a2") & (s["sigma_a2"] == 0.0)]
    # the summary keeps them: ETI 0 for both posteriors, HDI 1 (half-normal: the variance's density is
    # largest at 0) and 0 (inverse gamma: zero density at 0)
    got = {(f, k): float(v) for f, k, v in zip(cov["fit"], cov["interval_kind"], cov["value"])}
    assert got[("hn", "eti")] == 0 and got[("ig", "eti")] == 0
    assert got[("hn", "hdi")] == 1 and got[("ig", "hdi")] == 0
    import compare_mm.report.figures as figures

    shown = []
    real_save = figures.save

    def keep(fig, path):
        shown.append(fig)
        return real_save(fig, path)

    figures.save = keep
    try:
        out = coverage_figure(study, FitStyle(study.fit_names()), tmp_path / "cov.png")
    finally:
        figures.save = real_save
    assert "Not drawn: posterior coverages of 0 for a variance whose true value is 0" in out.caption
    assert "σ_A²: hn, ig" in out.caption or "hn, ig" in out.caption
    # the σ_A² coverage axis of the first figure: no point at 0 is drawn
    ax = next(a for a in shown[0].axes if a.get_ylabel().startswith("coverage of") and "sigma_A" in a.get_ylabel())
    ys = [y for line in ax.lines for y in np.asarray(line.get_ydata(), float) if np.isfinite(y)]
    assert ys and min(ys) > 0.0
    assert ax.get_ylim()[0] > 0.0


def test_a_study_without_such_points_has_no_sentence(study, tmp_path):
    from compare_mm.report.figures import _without_zero_by_construction
    from compare_mm.report.marks import metric_rows

    rows = metric_rows(study, "coverage")
    rows = rows[rows["sigma_a2"] != 0.0]
    kept, note = _without_zero_by_construction(rows)
    assert note == "" and len(kept) == len(rows)
