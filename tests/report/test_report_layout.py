"""Layout rules of the report that need no browser: Markdown cells, symbols, split tables, figure sizes."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

from compare_mm.report import write_report
from compare_mm.report.layout import MAX_HEIGHT_IN, MAX_WIDTH_PX, grid_shape, png_info, split_even
from compare_mm.report.render import _md_table, md_cell, split_columns, symbols_html, symbols_md, with_toc_html


def _cells(line: str) -> list[str]:
    """Cells of a Markdown table row, splitting only at unescaped bars."""
    return [c.strip() for c in re.split(r"(?<!\\)\|", line.strip().strip("|"))]


def test_markdown_cells_escape_bars():
    frame = pd.DataFrame({"model": ["Reaction ~ Days + (Days || Subject)", "Reaction ~ Days + (Days | Subject)"],
                          "σ_A²": [612.1, 6.1209], "σ_B²": [35.07, 0.5]})
    lines = _md_table(frame).strip().splitlines()
    assert all(len(_cells(ln)) == 3 for ln in lines), lines
    assert _cells(lines[2])[0] == r"Reaction ~ Days + (Days \|\| Subject)" and _cells(lines[2])[2] == "35.07"
    assert md_cell("a\nb") == "a b"


def test_sleepstudy_markdown_table_keeps_its_columns():
    from compare_mm.cli.example_cmd import _md

    frame = pd.DataFrame({"model": ["(Days || Subject)"], "sigma_b2": ["35.07"]})
    body = _md(frame).splitlines()[2]
    assert _cells(body) == [r"(Days \|\| Subject)", "35.07"]


def test_symbols_are_real_subscripts():
    assert symbols_html("σ̂_A² < 1 & σ_ε²") == "σ̂<sub>A</sub>² &lt; 1 &amp; σ<sub>ε</sub>²"
    assert symbols_md("How often σ̂_A² lands on zero") == "How often σ̂<sub>A</sub>² lands on zero"
    assert symbols_html("sigma_a2") == "sigma_a2"  # plain identifiers keep their underscores


def test_toc_links_every_heading():
    doc = with_toc_html("<h1>t</h1><p>x</p><h2>A</h2><h3>σ̂<sub>A</sub>²</h3><h2>A</h2>")
    assert doc.index("<nav") < doc.index('<h2 id="a">')
    assert 'href="#a"' in doc and 'href="#a-2"' in doc and '<h3 id="σ-a²">' in doc


def test_wide_tables_split_with_their_keys():
    frame = pd.DataFrame([[f"c{r}", "reml", "μ"] + [f"{r}.{i}" for i in range(20)] for r in range(3)],
                         columns=["condition", "fit", "parameter"] + [f"m{i}" for i in range(20)])
    parts = split_columns(frame)
    assert len(parts) == 3 and all(len(p.columns) <= 10 for p in parts)
    assert all(list(p.columns[:3]) == ["condition", "fit", "parameter"] for p in parts)
    assert sum(len(p.columns) - 3 for p in parts) == 20


def test_grid_and_parts():
    assert grid_shape(4) == (2, 2) and grid_shape(5) == (2, 3) and grid_shape(7) == (3, 3) and grid_shape(1) == (1, 1)
    assert split_even(list(range(7)), 2) == [[0, 1], [2, 3], [4, 5], [6]]


def test_figures_fit_the_column_and_a_screen(study_dir):
    write_report(study_dir)
    pngs = sorted((study_dir / "figures").glob("*.png"))
    assert pngs
    for png in pngs:
        w, h, ppi = png_info(png)
        assert w <= MAX_WIDTH_PX and ppi and w / ppi <= 7.3 and h / ppi <= MAX_HEIGHT_IN + 0.8, (png.name, w, h, ppi)
    text = (study_dir / "report.html").read_text(encoding="utf-8")
    assert "σ̂_A" not in text and "<nav class=\"toc\">" in text
    assert "Only " not in text or "conditions are shown" in text


def _tick_label_boxes(fig, ax):
    fig.canvas.draw()
    r = fig.canvas.get_renderer()
    return [t.get_window_extent(r) for t in ax.get_xticklabels() if t.get_text()]


def test_long_condition_labels_are_turned_until_they_do_not_overlap():
    """dot_panel turns few but long condition labels (the main job's 'random slope, σ_A²=0.5' beside
    'random slope, σ_A²=0') when set flat they would overlap; the rendered boxes of neighbours, read back
    from matplotlib, are then disjoint.  Short labels stay flat."""
    import matplotlib.pyplot as plt

    from compare_mm.report.marks import dot_panel
    from compare_mm.report.style import FitStyle

    for math, turned in ((["oneway, $\\sigma_A^2$=0.5", "random slope, $\\sigma_A^2$=0",
                           "random slope, $\\sigma_A^2$=0.5"], True), (["a=1", "a=2", "a=3"], False)):
        conds = pd.DataFrame({"cond": [0, 1, 2], "label": math, "math": math})
        frame = pd.DataFrame({"cond": [0, 1, 2], "fit": "reml", "value": [0.5, 0.6, 0.55], "mcse": 0.02})
        fig, ax = plt.subplots(figsize=(5.0, 3.4))
        dot_panel(ax, frame, conds, FitStyle(["reml"]))
        fig.tight_layout()
        boxes = _tick_label_boxes(fig, ax)
        rot = ax.get_xticklabels()[0].get_rotation()
        assert (rot != 0) == turned
        if rot == 0:   # flat: neighbours' boxes disjoint
            assert all(a.x1 < b.x0 for a, b in zip(boxes[:-1], boxes[1:])), boxes
        else:          # turned: parallel lines of text one tick spacing apart, sin(rot) × spacing > text height
            r = fig.canvas.get_renderer()
            flat = ax.text(0, 0, math[-1]).get_window_extent(r)
            spacing = boxes[1].x1 - boxes[0].x1
            assert spacing * np.sin(np.radians(rot)) > flat.height
            assert flat.width > spacing     # set flat, these labels would have overlapped
        plt.close(fig)


def test_a_tall_legend_grows_the_figure_instead_of_squeezing_the_panels():
    """Figures are sized for a legend of LEGEND_IN; one of four rows (ten fits × interval kinds, as in
    prior_coverage's coverage figure) used to take its room from the panels — two rows of pair panels
    shrank from ~1.2 to 0.9 in and their y labels ran into each other.  Now the panels keep their height
    (the figure grows, within the height a part may have)."""
    import matplotlib.pyplot as plt

    from compare_mm.report.layout import FIG_WIDTH_IN, LEGEND_IN
    from compare_mm.report.style import legend_below, setup_rc

    heights, figh = {}, {}
    with plt.rc_context(setup_rc()):
        for n in (2, 12):
            fig, axes = plt.subplots(2, 2, figsize=(FIG_WIDTH_IN, 2 * 1.45 + 0.5 + LEGEND_IN + 0.2))
            for k in range(n):
                axes[0, 0].plot([0, 1], [k, k], label=f"prior_{k} (ETI)")
            legend_below(fig, None, 5)
            heights[n] = axes[0, 0].get_position().height * fig.get_figheight()
            figh[n] = fig.get_figheight()
            plt.close(fig)
    assert heights[12] >= 0.9 * heights[2], heights   # squeezed: 0.74×
    assert figh[12] > figh[2] and figh[12] <= MAX_HEIGHT_IN + 0.6 + 1e-9


def test_the_legend_sits_just_under_the_panels_and_they_keep_their_height():
    """The room under the panels is the legend's drawn height (it was an estimate of 0.24 in a row, which
    left 0.3–0.5 in of white space above a four-row legend): for 1 to 4 legend rows the gap between the
    lowest tick label and the legend's top is 0.05–0.3 in, nothing overlaps, and the panels have the
    same height whatever the legend's (the figure shrinks or grows instead)."""
    import matplotlib.pyplot as plt

    from compare_mm.report.layout import FIG_WIDTH_IN, LEGEND_IN
    from compare_mm.report.style import legend_below, setup_rc

    heights = []
    with plt.rc_context(setup_rc()):
        for n in (1, 4, 7, 12):
            fig, axes = plt.subplots(2, 2, figsize=(FIG_WIDTH_IN, 2 * 1.45 + 0.5 + LEGEND_IN + 0.2))
            for ax in axes.ravel():
                ax.set_xticks([0, 1], ["random slope, long label", "oneway"], rotation=35, ha="right")
            for k in range(n):
                axes[0, 0].plot([0, 1], [k, k], label=f"prior_{k} (ETI)")
            legend_below(fig, None, 5)
            r = fig.canvas.get_renderer()
            lowest = min(ax.get_tightbbox(r).y0 for ax in fig.axes) / fig.dpi
            top = fig.legends[0].get_window_extent(r).y1 / fig.dpi
            assert 0.05 <= lowest - top <= 0.3, (n, lowest - top)
            heights.append(axes[0, 0].get_position().height * fig.get_figheight())
            plt.close(fig)
    assert max(heights) - min(heights) < 0.02 * max(heights), heights
