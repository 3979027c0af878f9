"""The boundary figure of a two-way study: how often σ̂_B² and σ̂_AB² land on zero, with exact curves.

One panel per (component, value of the other component): the component's boundary rate per fit against its
true value (square-root axis; points ±2 MCSE), and the exact probabilities of the balanced design
(:mod:`compare_mm.twoway.theory`) as lines — REML/ML: P(σ̂ = 0) of the antitonic-regression estimate; ANOVA:
P(σ̂ < 0).  Studies of other models get :func:`compare_mm.report.figures.boundary_figure`.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from .conditions import fmt_column, fmt_value
from .figures import boundary_figure, dodged_rates
from .marks import FigureOut, facet_grid, metric_rows
from .flags import drop_sparse, flagged_pairs
from .load import StudyOutputs
from .style import FitStyle, key_label, legend_below, save
from ..twoway import theory

COMPONENTS = ("sigma_b2", "sigma_ab2")
OTHER = {"sigma_b2": "sigma_ab2", "sigma_ab2": "sigma_b2"}
LABEL = {"sigma_b2": r"$\sigma_B^2$", "sigma_ab2": r"$\sigma_{AB}^2$"}
#: points of each exact curve (each a two-dimensional quadrature for REML/ML)
CURVE_POINTS = 25


def boundary_rate_figure(study: StudyOutputs, style: FitStyle, path: Path) -> FigureOut:
    """The two-way figure for a ``model: two_way`` study, the one-way one otherwise."""
    if study.model == "two_way":
        return twoway_boundary_figure(study, style, path)
    return boundary_figure(study, style, path)


def _design(study: StudyOutputs, cond: pd.Series) -> tuple[int, int, int, float] | None:
    fixed = study.config.get("fixed") or {}
    try:
        vals = [cond.get(k, fixed.get(k)) for k in ("treatments", "blocks", "per_cell")]
        se2 = float(cond.get("sigma_e2", fixed.get("sigma_e2", 1.0)))
        t, b, n = (int(float(v)) for v in vals)
    except (TypeError, ValueError):
        return None  # a list per_cell (unbalanced) or a key not stored: no closed form
    return (t, b, n, se2) if min(t, b, n) >= 2 else None


def _curve(method: str, comp: str, design, other: float, xs: np.ndarray) -> np.ndarray:
    t, b, n, se2 = design
    out = []
    for x in xs:
        sv = {comp: float(x), OTHER[comp]: float(other)}
        args = (t, b, n, sv["sigma_b2"], sv["sigma_ab2"], se2)
        out.append(theory.anova_negative_probability(comp, *args) if method == "ANOVA"
                   else theory.likelihood_zero_probability(comp, method, *args))
    return np.asarray(out)


def twoway_boundary_figure(study: StudyOutputs, style: FitStyle, path: Path) -> FigureOut:
    title = "How often σ̂_B² and σ̂_AB² land on zero"
    caption = ("Share of replicates with the estimate on its boundary per fit (points; bars ±2 Monte Carlo SE, or "
               "the Wilson 95% interval where the share is 0 or 1; hollow points: non-convergence or singular rate "
               "≥ 10 %), against the component's true value, one panel per value of the other component. Lines: "
               "the exact probabilities of the balanced design — REML (solid) and ML (dashed): P(σ̂ = 0), the "
               "estimate being the antitonic regression of the three mean squares; ANOVA (dotted): P(σ̂ < 0), an F "
               "cdf. Posterior fits count replicates whose interval's lower limit is below a tiny threshold.")
    panels = []
    for comp in COMPONENTS:
        rows, _ = drop_sparse(metric_rows(study, "boundary", comp))
        if rows.empty or comp not in rows.columns or OTHER[comp] not in rows.columns:
            continue
        rows = rows.assign(_x=pd.to_numeric(rows[comp], errors="coerce"))
        for other in sorted(pd.to_numeric(rows[OTHER[comp]], errors="coerce").dropna().unique()):
            sub = rows[fmt_column(rows[OTHER[comp]]) == fmt_value(float(other))]
            if not sub.empty:
                panels.append((comp, float(other), sub))
    if not panels:
        return FigureOut("boundary", title, caption, skipped="The study stores no boundary rates of σ_B², σ_AB² "
                                                             "against a grid of both.")
    fig, axes = facet_grid(len(panels))
    handles: dict[str, object] = {}
    flags = flagged_pairs(study)
    fits = style.sort(pd.concat([p[2] for p in panels])["fit"].unique())
    for ax, (comp, other, sub) in zip(axes.flat, panels):
        xmax = float(np.nanmax(sub["_x"])) or 1.0
        dense = np.linspace(0.0, math.sqrt(xmax * 1.03), CURVE_POINTS) ** 2
        design = _design(study, sub.iloc[0])
        if design is not None:
            by_method: dict[str, list[str]] = {}
            for f in fits:
                m = study.method(f)
                if m in ("REML", "ML", "ANOVA") and not study.is_bayes(f):
                    by_method.setdefault(m, []).append(f)
            for m, fs in by_method.items():
                (h,) = ax.plot(dense, _curve(m, comp, design, other, dense), color=style.colour(fs[0]), lw=1.3,
                               alpha=0.85, ls={"REML": "-", "ML": "--", "ANOVA": ":"}[m])
                handles.setdefault(f"exact {m} ({', '.join(fs)})", h)
        dodged_rates(ax, sub, fits, xmax, style, flags, handles)
        grid_x = np.unique(sub["_x"].dropna().to_numpy(dtype=float))
        ax.set_xticks(grid_x)
        ax.set_xticklabels([fmt_value(float(v)) for v in grid_x])
        ax.minorticks_off()
        ax.set_ylim(-0.03, 1.03)
        ax.set_xlabel(LABEL[comp] + " (square-root scale)")
        ax.set_ylabel(f"P({LABEL[comp]} on boundary)")
        ax.set_title(f"{key_label(OTHER[comp])} = {fmt_value(other)}", fontsize=9)
    legend_below(fig, handles, 4)
    save(fig, path)
    return FigureOut("boundary", title, caption, path=path)


__all__ = ["boundary_rate_figure", "twoway_boundary_figure"]
