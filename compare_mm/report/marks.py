"""The marks every report figure shares: points with ±2 MCSE bars, robust axes, dodged series.

:func:`dot_panel` draws one panel of Monte Carlo estimates per condition (x) and series (fit × interval kind,
dodged) with ±2 MCSE bars clipped to the metric's range (:func:`mcse_bars`; a proportion of 0 or 1 gets its
Wilson 95% interval), the exact values as black dashes, hollow points for flagged (condition, fit) pairs,
and — for metrics that are not proportions — an axis that one extreme value cannot rescale
(:func:`robust_limits`; the value is drawn as a triangle at the edge and listed by :func:`offaxis_note`).
The figure builders are in :mod:`compare_mm.report.figures`, :mod:`~compare_mm.report.figures_dist`,
:mod:`~compare_mm.report.figures_twoway` and :mod:`~compare_mm.report.quality`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from . import layout
from .flags import is_flagged
from .load import StudyOutputs
from .style import FitStyle, param_text
from .tables import KIND_NAMES

#: a panel's axis leaves out values farther than this many robust scales from the panel's median
#: (:func:`robust_limits`; drawn as triangles at the axis edge and listed in the caption) …
OUTLIER_SCALES = 20.0
#: … and farther from the range of the other values (bars included) than this many times its width
OUTLIER_SPANS = 25.0

#: metric names as written by compare_mm.study.summarise (first match wins)
METRICS: dict[str, tuple[str, ...]] = {
    "boundary": ("boundary_rate",),
    "coverage": ("coverage",),
    "width": ("width", "mean_width", "interval_width"),
    "bias": ("bias",),
    "rmse": ("rmse",),
}
KIND_MARKERS = {"": "o", "wald": "o", "profile": "s", "profile-sd2": "s", "exact": "D", "mls": "X", "t": "D",
                "eti": "o", "hdi": "^", "bootstrap": "v",
                "F test": "o", "f_test": "o", "lrt_chi2": "s", "lrt_chibar2": "D", "exact_rlrt": "P",
                "bootstrap_lrt": "X"}
#: the range a proportion (coverage, boundary rate, divergence share …) and its error bars live in
PROPORTION = (0.0, 1.0)
#: the range of a non-negative metric (interval width, RMSE, MSE)
NONNEGATIVE = (0.0, None)


@dataclass
class FigureOut:
    """One report figure: written to ``path``, or skipped with a one-sentence ``skipped`` reason."""

    key: str
    title: str
    caption: str
    path: Path | None = None
    skipped: str | None = None
    #: further images of a figure split to fit a screen and a page (layout.py); ``path`` is the first
    parts: list[Path] = field(default_factory=list)

    @property
    def paths(self) -> list[Path]:
        """Every image of the figure, in order."""
        return ([self.path] if self.path is not None else []) + [p for p in self.parts if p != self.path]


#: per-kind metrics of the coverage and width figures (``coverage_profile``, ``mean_width_exact`` …; the
#: interval kind is in the row's ``interval_kind``) — not the conditional metrics of the fit-quality section
PER_KIND = {"coverage": "coverage_", "width": "mean_width_"}
CONDITIONAL = ("boundary", "interior", "clean")


def metric_rows(study: StudyOutputs, which: str, parameter: str | None = None) -> pd.DataFrame:
    """Summary rows of one metric (by its alias) with finite values, optionally one parameter; for coverage and
    width also the per-interval-kind metrics (profile, exact, MLS, bootstrap intervals)."""
    s = study.summary
    metric = s["metric"].astype(str)
    keep = metric.isin(METRICS.get(which, (which,)))
    if which in PER_KIND:
        suffix = metric.str.slice(len(PER_KIND[which]))
        keep |= metric.str.startswith(PER_KIND[which]) & ~suffix.isin(CONDITIONAL)
    rows = s[keep.to_numpy()]
    if parameter is not None:
        rows = rows[rows["parameter"] == parameter]
    return rows[np.isfinite(rows["value"].to_numpy(dtype=float))]


def interval_column(frame: pd.DataFrame) -> str | None:
    """The summary column naming the interval kind, if the study writes one."""
    for c in ("interval", "interval_kind", "kind"):
        if c in frame.columns and frame[c].notna().any():
            return c
    return None


def mcse_bars(y, mcse, bounds: tuple[float | None, float | None] | None = None, ci_lower=None,
              ci_upper=None) -> np.ndarray:
    """Asymmetric ±2 MCSE error-bar lengths (2 × n, as ``errorbar(yerr=…)`` takes), clipped to ``bounds``.

    A proportion p̂ with MCSE s is drawn from max(lo, p̂ − 2s) to min(hi, p̂ + 2s): a coverage of 1.0 with
    a nonzero MCSE must not draw a bar above 1, nor a boundary rate of 0 one below 0.  A missing MCSE
    draws no bar.  Where the MCSE is 0 (a proportion of exactly 0 or 1) and ``ci_lower``/``ci_upper`` (the
    summary's Wilson 95% interval) are given, the bar is that interval instead of a zero-width one.
    """
    y = np.asarray(y, dtype=float)
    e = 2.0 * np.nan_to_num(np.asarray(mcse, dtype=float), nan=0.0)
    lower, upper = e.copy(), e.copy()
    if ci_lower is not None and ci_upper is not None:
        cl, cu = np.asarray(ci_lower, dtype=float), np.asarray(ci_upper, dtype=float)
        use = (e == 0) & np.isfinite(cl) & np.isfinite(cu)
        lower = np.where(use, np.maximum(y - cl, 0.0), lower)
        upper = np.where(use, np.maximum(cu - y, 0.0), upper)
    if bounds is not None:
        lo, hi = bounds
        if lo is not None:
            lower = np.minimum(lower, np.maximum(y - lo, 0.0))
        if hi is not None:
            upper = np.minimum(upper, np.maximum(hi - y, 0.0))
    return np.nan_to_num(np.vstack([lower, upper]), nan=0.0)


def _series(frame: pd.DataFrame, style: FitStyle) -> list[tuple[str, str, pd.DataFrame]]:
    """(fit, interval kind, rows) per plotted series, in report order."""
    col = interval_column(frame)
    out = []
    for fit in style.sort(frame["fit"].unique()):
        sub = frame[frame["fit"] == fit]
        kinds = [""] if col is None else sorted(sub[col].fillna("").astype(str).unique())
        for k in kinds:
            out.append((fit, k, sub if col is None else sub[sub[col].fillna("").astype(str) == k]))
    return out


def _series_label(fit: str, kind: str) -> str:
    return fit if not kind else f"{fit} ({KIND_NAMES.get(kind, kind)})"


def robust_limits(values, extra=(), below=None, above=None) -> tuple[float, float, np.ndarray] | None:
    """(low, high, off) for a panel whose values include absurd ones, else None (the axis is left to matplotlib).

    A value is *off the axis* when it is (1) more than :data:`OUTLIER_SCALES` robust scales (max of
    1.4826·MAD, 10 % of |median| and 1e-12) from the median of the panel's values and (2) farther from the
    range of the other values — their ±2 MCSE bars (``below``/``above``) and ``extra`` (exact values,
    reference lines) included — than :data:`OUTLIER_SPANS` times that range's width (candidates are taken
    nearest first, each kept one widening the range): a value 20 times the others stays on the axis, one 10⁷
    times does not.  (low, high) is the padded range of the remaining
    values and their bars."""
    v = np.asarray(values, dtype=float)
    fin = np.isfinite(v)
    if fin.sum() < 3:
        return None
    med = float(np.median(v[fin]))
    scale = max(1.4826 * float(np.median(np.abs(v[fin] - med))), 0.1 * abs(med), 1e-12)
    cand = fin & (np.abs(v - med) > OUTLIER_SCALES * scale)
    if not cand.any():
        return None

    def span(keep: np.ndarray) -> tuple[float, float]:
        parts = [v[keep]] + [np.asarray(e, float)[keep] for e in (below, above) if e is not None]
        ex = np.asarray(list(extra), float)
        ex = ex[np.isfinite(ex) & (np.abs(ex - med) <= OUTLIER_SCALES * scale)]
        allv = np.concatenate(parts + [ex])
        allv = allv[np.isfinite(allv)]
        return float(allv.min()), float(allv.max())

    keep = fin & ~cand
    for i in sorted(np.flatnonzero(cand), key=lambda j: abs(v[j] - med)):  # nearest first: the range grows
        lo, hi = span(keep)
        width = max(hi - lo, 1e-12, 1e-3 * max(abs(lo), abs(hi)))
        if (v[i] - hi if v[i] > hi else lo - v[i]) <= OUTLIER_SPANS * width:
            keep[i] = True
    off = fin & ~keep
    if not off.any():
        return None
    lo, hi = span(fin & ~off)
    pad = 0.06 * (hi - lo) if hi > lo else max(0.1 * abs(hi), 0.05)
    return lo - pad, hi + pad, off


def crowded_ticks(ax, labels, gap: float = 0.9) -> bool:
    """Whether ``labels``, set horizontally at ``ax``'s x ticks, would overlap: the mean rendered width of
    two neighbours (the figure's renderer, the axes' current width) above ``gap`` times the tick spacing."""
    ticks = ax.get_xticks()
    if len(ticks) < 2:
        return False
    renderer = ax.figure.canvas.get_renderer()
    probes = [ax.text(0, 0, str(t), fontsize=plt.rcParams["xtick.labelsize"]) for t in labels]
    widths = [t.get_window_extent(renderer).width for t in probes]
    for t in probes:
        t.remove()
    x0, x1 = ax.get_xlim()
    spacing = ax.get_window_extent(renderer).width * (ticks[1] - ticks[0]) / (x1 - x0)
    need = max((a + b) / 2 for a, b in zip(widths[:-1], widths[1:]))     # centred neighbours touch
    return need > gap * spacing


def dot_panel(ax, frame: pd.DataFrame, conds: pd.DataFrame, style: FitStyle, *, ref: float | None = None,
              ref_label: str | None = None,
              bounds: tuple[float | None, float | None] | None = None,
              flags: set[tuple[int, str]] | None = None, robust: bool = True) -> list[str]:
    """Points per condition (x) and series (dodged), ±2 MCSE bars clipped to ``bounds`` (e.g.
    :data:`PROPORTION`; a proportion of 0 or 1: its Wilson 95% interval), optional reference line.

    Exact values (the summary's ``exact`` column) are drawn as black dashes (legend "exact value");
    points of a flagged (condition, fit) (``flags``, :func:`compare_mm.report.flags.flagged_pairs`) are
    hollow.  With ``robust`` (panels that are not proportions) a value far outside the others
    (:func:`robust_limits`) does not rescale the axis: it is drawn as a triangle at the edge.  Returns one
    text per off-axis value (for the caption)."""
    series = _series(frame, style)
    m = max(len(series), 1)
    width = 0.7
    drawn = []
    for i, (fit, kind, sub) in enumerate(series):
        off = (i - (m - 1) / 2) * (width / m)
        x = sub["cond"].to_numpy(dtype=float) + off
        y = sub["value"].to_numpy(dtype=float)
        ci = [sub[c].to_numpy(dtype=float) if c in sub.columns else None for c in ("ci_lower", "ci_upper")]
        e = mcse_bars(y, sub["mcse"].to_numpy(dtype=float), bounds, *ci)
        drawn.append((fit, kind, sub, x, y, e))
    ys = np.concatenate([d[4] for d in drawn]) if drawn else np.array([])
    ex_all = np.concatenate([d[2]["exact"].to_numpy(dtype=float) if "exact" in d[2].columns else np.array([])
                             for d in drawn]) if drawn else np.array([])
    below = np.concatenate([d[4] - d[5][0] for d in drawn]) if drawn else None
    above = np.concatenate([d[4] + d[5][1] for d in drawn]) if drawn else None
    lim = robust_limits(ys, list(ex_all) + ([ref] if ref is not None else []), below, above) \
        if robust and bounds != PROPORTION else None
    offaxis: list[str] = []
    start = 0
    for fit, kind, sub, x, y, e in drawn:
        colour = style.colour(fit)
        mark = KIND_MARKERS.get(kind, style.marker(fit))
        flag = is_flagged(sub, flags or set())
        out = lim[2][start:start + len(y)] if lim is not None else np.zeros(len(y), bool)
        start += len(y)
        inside = ~out
        ax.errorbar(x[inside & ~flag], y[inside & ~flag], yerr=e[:, inside & ~flag], fmt=mark, color=colour,
                    mfc="white" if kind == "hdi" else colour, ms=4.5, lw=1.1, capsize=2, ls="none",
                    label=_series_label(fit, kind))
        if (inside & flag).any():
            ax.errorbar(x[inside & flag], y[inside & flag], yerr=e[:, inside & flag], fmt=mark, color=colour,
                        mfc="none", ms=5.5, mew=1.4, lw=1.1, capsize=2, ls="none")
        if out.any():
            lo, hi = lim[0], lim[1]
            for xi, yi, ci in zip(x[out], y[out], sub.loc[out, "cond"] if "cond" in sub.columns else x[out]):
                top = yi > hi
                ax.plot([xi], [hi if top else lo], marker="^" if top else "v", color=colour, ms=7, ls="none",
                        clip_on=False, zorder=5)
                label = conds.loc[conds["cond"] == ci, "label"]
                where = label.iloc[0] if len(label) else f"condition {ci}"
                param = str(sub["parameter"].iloc[0]) if "parameter" in sub.columns else ""
                offaxis.append(f"{_series_label(fit, kind)}, {param_text(param)}, {where}: {yi:.4g}")
        if "exact" in sub.columns:
            exv = sub["exact"].to_numpy(dtype=float)
            ok = np.isfinite(exv)
            if ok.any():
                ax.plot(x[ok], exv[ok], marker="_", ms=11, mew=2.0, color="black", ls="none", zorder=4,
                        label="exact value")
    if ref is not None:
        ax.axhline(ref, color="0.35", lw=1, ls="--", label=ref_label, zorder=0)
    if lim is not None:
        ax.set_ylim(lim[0], lim[1])
    ax.set_xticks(conds["cond"].to_numpy())
    rot, ha = layout.tick_rotation(len(conds))
    ax.set_xlim(-0.6, len(conds) - 0.4)
    if not rot and crowded_ticks(ax, conds["math"]):
        rot, ha = 35, "right"
    ax.set_xticklabels(conds["math"], rotation=rot, ha=ha, rotation_mode="anchor" if rot and rot < 90 else "default")
    if flags and any(is_flagged(d[2], flags).any() for d in drawn):
        ax.plot([], [], "o", mfc="none", color="0.3", label="hollow: non-converged or singular ≥ 10 %")
    return offaxis


def facet_grid(n: int, ncols: int = layout.MAX_COLS):
    """A figure of n panels wrapped at ≤ ``ncols`` a row, sized for the page (the unused cells hidden)."""
    nrows, ncols = layout.grid_shape(n, ncols)  # wrapped at ≤ 3 panels a row, the page's width (layout.py)
    h = layout.panel_height(ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(layout.FIG_WIDTH_IN, h * nrows + layout.LEGEND_IN + 0.3),
                             squeeze=False)
    for ax in axes.flat[n:]:
        ax.set_visible(False)
    return fig, axes


def condition_panels(n: int, n_conditions: int):
    """A figure of ``n`` condition panels (x: the conditions) wrapped at :func:`layout.columns_for` a row —
    fewer panels a row for a long grid, so that no condition label runs into the next — with room under
    the last row for the condition labels (more when :func:`layout.tick_rotation` turns them 90°); the
    unused cells hidden.  Panels share their x axis: call :func:`bottom_labels_only` once they are drawn."""
    ticks_in = 1.0 if layout.tick_rotation(n_conditions)[0] == 90 else 0.6
    nrows, ncols = layout.condition_grid(n_conditions, n)
    h = min(layout.panel_height(ncols) + 0.5, (layout.MAX_HEIGHT_IN - layout.LEGEND_IN - ticks_in) / nrows)
    fig, axes = plt.subplots(nrows, ncols, figsize=(layout.FIG_WIDTH_IN, h * nrows + layout.LEGEND_IN + ticks_in),
                             squeeze=False, sharex=True)
    for ax in axes.flat[n:]:
        ax.set_visible(False)
    return fig, axes


def bottom_labels_only(axes, n: int) -> None:
    """Condition labels under the lowest drawn panel of each column of a :func:`condition_panels` grid
    only (the panels above share its x axis, and labels turned 90° would otherwise fill the gap)."""
    nrows, ncols = axes.shape
    for k in range(n):
        i, j = divmod(k, ncols)
        if (i + 1) * ncols + j < n:  # a drawn panel below this one
            axes[i, j].tick_params(labelbottom=False)
            axes[i, j].set_xlabel("")
        else:
            axes[i, j].tick_params(labelbottom=True)


def offaxis_note(offaxis: list[str]) -> str:
    """The caption's list of values drawn as triangles at a panel's edge."""
    if not offaxis:
        return ""
    return (" Off the axis (triangles at the panel edge; the axis is clipped to the range of the other values so "
            "that one extreme value does not flatten the rest): " + "; ".join(offaxis) + ".")


#: what every Monte Carlo figure's markers and bars are (appended to the captions)
MARKS = ("Points: Monte Carlo estimates per fit (colour) and interval kind (marker); bars: ±2 Monte Carlo SE, or, "
         "where a proportion is exactly 0 or 1, its Wilson 95% interval; black dashes: exact values where theory "
         "gives one; hollow points: a condition where the fit's non-convergence or singular rate is ≥ 10 % "
         "(† in the tables).")
