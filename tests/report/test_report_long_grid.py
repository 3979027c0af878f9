"""A long grid (16 conditions, as in studies/oneway_boundary.yaml) gets figures whose texts do not collide:
fewer panels a row (compare_mm.report.layout.columns_for), condition labels only under the lowest panel of
a shared x axis, wrapped titles and axis labels.  The check reads every text's rendered box back from
matplotlib and asserts that no two overlap — the fit-quality, shrinkage and tests figures failed it when
they put three panels of 16 turned labels side by side."""

from __future__ import annotations

import itertools

import matplotlib.pyplot as plt
import pytest

import compare_mm.report.figures as figures
import compare_mm.report.figures_dist as figures_dist
import compare_mm.report.figures_underest as figures_underest
import compare_mm.report.quality as quality
from compare_mm.report import layout, load_study
from compare_mm.report.style import FitStyle, setup_rc
from compare_mm.study.runner import run_study

STUDY = {"name": "long", "seed": 3, "replicates": 30, "chunk_size": 30, "model": "oneway",
         "grid": {"groups": [6, 18], "per_group": [3, 10], "sigma_a2": [0.0, 0.05, 0.2, 1.0]},
         "fits": [{"name": "reml", "backend": "reml", "method": "REML"},
                  {"name": "ml", "backend": "reml", "method": "ML"},
                  {"name": "anova", "backend": "reml", "method": "ANOVA"},
                  {"name": "reml_t", "backend": "reml", "method": "REML", "interval": "t"}]}


#: the main job's grid (two models, 4 conditions, every condition panel in one row) without its slow fits
QUICK = {"name": "quick", "seed": 4, "replicates": 30, "chunk_size": 30,
         "grid": {"model": ["oneway", "random_slope"], "sigma_a2": [0.0, 0.5]},
         "fixed": {"groups": 10, "per_group": 5, "mu": 0.0, "sigma_b2": 0.05, "rho": 0.0, "beta0": 0.0,
                   "beta1": 1.0, "sigma_e2": 1.0},
         "fits": [{"name": "reml", "backend": "reml", "method": "REML", "covariance": "diagonal"},
                  {"name": "ml", "backend": "reml", "method": "ML", "covariance": "diagonal"}]}


@pytest.fixture(scope="module", params=["long", "quick"])
def long_study(tmp_path_factory, request):
    out = tmp_path_factory.mktemp(request.param) / "out"
    run_study(STUDY if request.param == "long" else QUICK, out, progress=False)
    study = load_study(out)
    s = study.summary  # a non-convergence rate somewhere, as statsmodels has in the boundary study: the
    s.loc[(s["metric"] == "nonconvergence_rate") & (s["fit"] == "ml"), "value"] = 0.1  # third quality panel
    return study


@pytest.fixture
def captured(monkeypatch):
    figs: list = []
    for module in (figures, figures_dist, figures_underest, quality):
        monkeypatch.setattr(module, "save", lambda fig, path: figs.append(fig))
    yield figs
    for f in figs:
        plt.close(f)


def _text_boxes(fig):
    """(axes index, kind, box) of every drawn, non-empty text of the figure's axes."""
    fig.canvas.draw()
    r = fig.canvas.get_renderer()
    out = []
    for i, ax in enumerate(fig.axes):
        if not ax.get_visible():
            continue
        ticks = []
        for axis in (ax.xaxis, ax.yaxis):  # the labels drawn: those of ticks inside the view limits
            lo, hi = sorted(axis.get_view_interval())
            ticks += [t for t, loc in zip(axis.get_ticklabels(), axis.get_ticklocs())
                      if t.get_visible() and t.get_text() and lo - 1e-9 <= loc <= hi + 1e-9]
        for t in ticks:
            out.append((i, "tick" if t.get_rotation() in (0, 90) else "turned", t.get_window_extent(r)))
        for t in (ax.title, ax.xaxis.label, ax.yaxis.label):
            if t.get_visible() and t.get_text():
                out.append((i, "label", t.get_window_extent(r)))
    return out


def _overlaps(boxes, slack: float = 1.0):
    bad = []
    for (i, ki, a), (j, kj, b) in itertools.combinations(boxes, 2):
        if i == j and ki == kj == "turned":  # parallel slanted labels: their boxes overlap, the texts do not
            continue
        w = min(a.x1, b.x1) - max(a.x0, b.x0)
        h = min(a.y1, b.y1) - max(a.y0, b.y0)
        if w > slack and h > slack:
            bad.append((i, ki, a.bounds, j, kj, b.bounds))
    return bad


@pytest.mark.parametrize("make", [quality.quality_figure, figures_dist.shrinkage_figure, figures.tests_figure,
                                  figures.coverage_figure, figures.bias_rmse_figure,
                                  figures_underest.underestimation_figure])
def test_no_two_texts_of_a_long_grid_figure_overlap(long_study, captured, tmp_path, make):
    with plt.rc_context(setup_rc()):
        out = make(long_study, FitStyle(long_study.fit_names()), tmp_path / "f.png")
        assert out.skipped is None, out.skipped
        assert captured
        for fig in captured:
            assert fig.get_figwidth() <= layout.FIG_WIDTH_IN + 1e-9  # wider would be shrunk: smaller fonts
            assert _overlaps(_text_boxes(fig)) == []


def test_three_panels_of_sixteen_turned_labels_side_by_side_would_collide():
    """The premise of the test above: the old layout (three panels a row) overlaps its labels, which is
    why a 16-condition grid now gets one panel a row."""
    assert layout.columns_for(16, 3) == 1 and layout.columns_for(4, 3) == 3 and layout.columns_for(8, 3) == 2
    labels = [f"a={a}, n={n}, $\\sigma_A^2$={s}" for a in (6, 18) for n in (3, 10) for s in (0, 0.05, 0.2, 1)]
    with plt.rc_context(setup_rc()):
        fig, axes = plt.subplots(1, 3, figsize=(layout.FIG_WIDTH_IN, 3.5))
        for ax in axes:
            ax.plot(range(16), [0.5] * 16, "o")
            ax.set_xticks(range(16))
            ax.set_xticklabels(labels, rotation=90)
        fig.tight_layout()
        assert _overlaps(_text_boxes(fig)) != []
        plt.close(fig)
