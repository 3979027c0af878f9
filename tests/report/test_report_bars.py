"""±2 MCSE error bars stay inside a metric's range: proportions (coverage, boundary rate, divergence share)
in [0, 1], widths and RMSE ≥ 0 — checked on the matplotlib artists of figures drawn from a small synthetic
summary.csv whose points sit on the edges with nonzero MCSE (unclipped, the bars would reach 1.06 and −0.1)."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
import yaml
from matplotlib.container import ErrorbarContainer

import compare_mm.report.figures as figures
import compare_mm.report.figures_dist as figures_dist
from compare_mm.report import load_study
from compare_mm.report.marks import NONNEGATIVE, PROPORTION, mcse_bars
from compare_mm.report.flags import MIN_DRAWN
from compare_mm.report.style import FitStyle

FITS = [{"name": "reml", "backend": "reml", "method": "REML"},
        {"name": "bayes", "backend": "pymc", "draws": 100, "tune": 100, "chains": 2}]


def _rows(grid_key: str, grid_values: list) -> list[dict]:
    rows = []

    def add(cond, fit, parameter, metric, value, mcse, interval=""):
        rows.append({grid_key: cond, "fit": fit, "parameter": parameter, "metric": metric, "value": value,
                     "mcse": mcse, "exact": np.nan, "n_ok": 40, "n_failed": 0, "interval_kind": interval})

    for v in grid_values:
        add(v, "reml", "sigma_a2", "boundary_rate", 0.0, 0.05)   # bar would reach −0.1
        add(v, "bayes", "sigma_a2", "boundary_rate", 1.0, 0.03)  # bar would reach 1.06
        add(v, "reml", "mu", "coverage", 1.0, 0.03, "wald")
        add(v, "bayes", "mu", "coverage", 0.0, 0.04, "eti")
        add(v, "reml", "sigma_a2", "coverage", 0.9, 0.2, "wald")  # both ends clipped
        add(v, "reml", "mu", "mean_width", 0.01, 0.05, "wald")
        add(v, "bayes", "mu", "mean_width", 0.5, 0.05, "eti")
        add(v, "reml", "mu", "bias", -0.2, 0.1)
        add(v, "reml", "mu", "rmse", 0.02, 0.03)
        add(v, "bayes", "", "divergence_rate", 1.0 if v == grid_values[0] else 0.0, 0.05)
    return rows


def _study(tmp_path, grid_key: str, grid_values: list):
    out = tmp_path / grid_key
    out.mkdir()
    pd.DataFrame(_rows(grid_key, grid_values)).to_csv(out / "summary.csv", index=False)
    cfg = {"name": "bars", "replicates": 40, "level": 0.95, "model": "oneway", "grid": {grid_key: grid_values},
           "fixed": {"groups": 6, "per_group": 3, "sigma_e2": 1.0} if grid_key == "sigma_a2"
           else {"per_group": 3, "sigma_a2": 0.5, "sigma_e2": 1.0}, "fits": FITS}
    (out / "config.yaml").write_text(yaml.safe_dump(cfg))
    return load_study(out)


@pytest.fixture
def captured(monkeypatch):
    """Figures handed to ``save`` are kept open for inspection instead of being written and closed."""
    figs: list = []
    monkeypatch.setattr(figures, "save", lambda fig, path: figs.append(fig))
    monkeypatch.setattr(figures_dist, "save", lambda fig, path: figs.append(fig))
    yield figs
    for f in figs:
        plt.close(f)


def _bars(ax) -> list[tuple[float, float, float]]:
    """(point y, bar bottom, bar top) of every errorbar point drawn on ``ax``."""
    out = []
    for c in ax.containers:
        if not isinstance(c, ErrorbarContainer):
            continue
        data_line, _caps, barcols = c.lines
        ys = np.asarray(data_line.get_ydata(), float)
        segs = [s for lc in barcols for s in lc.get_segments()]
        assert len(segs) == len(ys)
        out += [(y, float(min(s[:, 1])), float(max(s[:, 1]))) for y, s in zip(ys, segs)]
        for cap in _caps:  # cap markers sit at the bar ends
            cy = np.asarray(cap.get_ydata(), float)
            out += [(v, v, v) for v in cy]
    return out


def _panels(fig, prefix: str) -> list:
    axes = [ax for ax in fig.axes if ax.get_ylabel().startswith(prefix)]
    assert axes, [ax.get_ylabel() for ax in fig.axes]
    return axes


def _check(axes, lo, hi, *, edges_seen: tuple[float, ...]) -> None:
    bars = [b for ax in axes for b in _bars(ax)]
    assert bars
    for y, bottom, top in bars:
        assert (lo is None or bottom >= lo - 1e-12) and (hi is None or top <= hi + 1e-12), (y, bottom, top)
    for edge in edges_seen:  # a point on the edge keeps its bar on the inside: the test sees real bars
        inner = [(b, t) for y, b, t in bars if y == edge and t - b > 0.05]
        assert inner, f"no bar drawn at {edge}"


def test_mcse_bars_clip_to_the_range():
    e = mcse_bars([1.0, 0.0, 0.5, 0.9, np.nan], [0.05, 0.05, 0.05, 0.2, np.nan], PROPORTION)
    np.testing.assert_allclose(e, [[0.1, 0.0, 0.1, 0.4, 0.0], [0.0, 0.1, 0.1, 0.1, 0.0]], atol=1e-15)
    np.testing.assert_allclose(mcse_bars([0.01], [0.05], NONNEGATIVE), [[0.01], [0.1]])
    np.testing.assert_allclose(mcse_bars([-0.2], [0.1]), [[0.2], [0.2]])  # bias: no range, symmetric


def test_coverage_bars_stay_in_unit_interval_and_width_bars_nonnegative(tmp_path, captured):
    study = _study(tmp_path, "sigma_a2", [0.0, 0.5])
    out = figures.coverage_figure(study, FitStyle(study.fit_names()), tmp_path / "c.png")
    assert out.skipped is None and len(captured) == 1
    _check(_panels(captured[0], "coverage"), 0.0, 1.0, edges_seen=(1.0, 0.0))
    _check(_panels(captured[0], "mean width"), 0.0, None, edges_seen=(0.01,))


def test_rmse_bars_nonnegative_bias_bars_free(tmp_path, captured):
    study = _study(tmp_path, "sigma_a2", [0.0, 0.5])
    figures.bias_rmse_figure(study, FitStyle(study.fit_names()), tmp_path / "b.png")
    _check(_panels(captured[0], "RMSE"), 0.0, None, edges_seen=(0.02,))
    bias = [b for ax in _panels(captured[0], "bias") for b in _bars(ax) if b[2] > b[1]]
    assert any(np.isclose(b, -0.4) and np.isclose(t, 0.0) for _, b, t in bias)  # unclipped ±0.2


@pytest.mark.parametrize("grid_key, values", [("sigma_a2", [0.0, 0.5]), ("groups", [6, 18])])
def test_boundary_rate_bars_stay_in_unit_interval(tmp_path, captured, grid_key, values):
    """Both layouts: against σ_A² (a grid key) and one point per condition (σ_A² fixed)."""
    study = _study(tmp_path, grid_key, values)
    out = figures.boundary_figure(study, FitStyle(study.fit_names()), tmp_path / "r.png")
    assert out.skipped is None
    _check(_panels(captured[0], "P("), 0.0, 1.0, edges_seen=(1.0, 0.0))


def test_divergence_share_bars_stay_in_unit_interval(tmp_path, captured):
    study = _study(tmp_path, "sigma_a2", [0.0, 0.5])
    out = figures_dist.diagnostics_figure(study, FitStyle(study.fit_names()), tmp_path / "d.png")
    assert out.skipped is None
    _check(_panels(captured[0], "share with"), 0.0, 1.0, edges_seen=(1.0, 0.0))


def test_a_fit_capped_below_min_drawn_is_left_out_of_the_comparison_figures_and_named(tmp_path, captured):
    """A cross-check fit capped to 10 replicates (``replicates: 10``) is not drawn in the coverage and
    boundary figures — its ±2 MCSE bars would span ~0.3 — and their captions name it with its count; a fit
    with MIN_DRAWN replicates is drawn."""
    study = _study(tmp_path, "sigma_a2", [0.0, 0.5])
    s = study.summary
    s.loc[s["fit"] == "bayes", "n_ok"] = 10
    out = figures.coverage_figure(study, FitStyle(["reml", "bayes"]), tmp_path / "c.png")
    assert "bayes (10 replicates per condition)" in out.caption
    labels = {t.get_text() for f in captured for leg in f.legends for t in leg.get_texts()}
    assert any(l.startswith("reml") for l in labels) and not any(l.startswith("bayes") for l in labels)
    b = figures.boundary_figure(study, FitStyle(["reml", "bayes"]), tmp_path / "b.png")
    assert "bayes (10 replicates per condition)" in b.caption
    s.loc[s["fit"] == "bayes", "n_ok"] = MIN_DRAWN
    for f in captured:
        plt.close(f)
    captured.clear()
    out = figures.coverage_figure(study, FitStyle(["reml", "bayes"]), tmp_path / "c2.png")
    assert "Not drawn" not in out.caption
    labels = {t.get_text() for f in captured for leg in f.legends for t in leg.get_texts()}
    assert any(l.startswith("bayes") for l in labels)


def test_diagnostics_legend_below_the_panels_and_only_for_fits_that_have_the_diagnostic(tmp_path, captured):
    """The Wilson bars of a share span most of the axis, so the legend goes under the panels; a quadrature
    fit (no chains: its R-hat and divergence rows are NaN) gets no empty series and no legend entry."""
    rows = _rows("sigma_a2", [0.0, 0.5])
    for v in (0.0, 0.5):
        rows.append({"sigma_a2": v, "fit": "bayes", "parameter": "", "metric": "rhat_rate", "value": 0.1,
                     "mcse": 0.05, "exact": np.nan, "n_ok": 40, "n_failed": 0, "interval_kind": ""})
        for metric in ("divergence_rate", "rhat_rate"):
            rows.append({"sigma_a2": v, "fit": "quad", "parameter": "", "metric": metric, "value": np.nan,
                         "mcse": np.nan, "exact": np.nan, "n_ok": 40, "n_failed": 0, "interval_kind": ""})
    out = tmp_path / "q"
    out.mkdir()
    pd.DataFrame(rows).to_csv(out / "summary.csv", index=False)
    fits = FITS + [{"name": "quad", "backend": "pymc", "sampler": "quadrature"}]
    cfg = {"name": "bars", "replicates": 40, "level": 0.95, "model": "oneway", "grid": {"sigma_a2": [0.0, 0.5]},
           "fixed": {"groups": 6, "per_group": 3, "sigma_e2": 1.0}, "fits": fits}
    (out / "config.yaml").write_text(yaml.safe_dump(cfg))
    study = load_study(out)
    assert study.is_bayes("quad")
    res = figures_dist.diagnostics_figure(study, FitStyle(study.fit_names()), tmp_path / "d.png")
    assert res.skipped is None and len(captured) == 1
    fig = captured[0]
    assert all(ax.get_legend() is None for ax in fig.axes)
    assert [[t.get_text() for t in leg.get_texts()] for leg in fig.legends] == [["bayes"]]
    assert len(_panels(fig, "share with")) == 2
