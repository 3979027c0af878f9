"""The underestimation figure: how often a fit's estimated variance ratio falls below the true one.

One point per condition and fit: the ``underestimation_rate`` of summary.csv — the share of replicates
with λ̂ = σ̂_A²/σ̂_ε² < λ₀ = σ_A²/σ_ε² (σ_B², σ_AB² likewise, one panel per component) — with ±2 MCSE bars
clipped to [0, 1] (the Wilson interval at 0 or 1), and the summary's ``exact`` column as the black dash
(:func:`compare_mm.report.marks.dot_panel`): the F cdf of the balanced one-way model
(:func:`compare_mm.oneway.theory.variance_ratio_cdf`) and for unequal group sizes the score-sign probability
of the one-variance-component theory with its multimodal correction
(:func:`compare_mm.inference.onevc.underestimation_probability_global`).
"""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd

from . import layout
from .conditions import attach_condition, condition_frame
from .flags import drop_sparse, flagged_pairs
from .load import StudyOutputs
from .marks import PROPORTION, FigureOut, dot_panel, metric_rows
from .style import FitStyle, legend_below, save

METRIC = "underestimation_rate"
LABEL = {"sigma_a2": r"P($\hat\sigma_A^2/\hat\sigma_\varepsilon^2 < \sigma_A^2/\sigma_\varepsilon^2$)",
         "sigma_b2": r"P($\hat\sigma_B^2/\hat\sigma_\varepsilon^2 < \sigma_B^2/\sigma_\varepsilon^2$)",
         "sigma_ab2": r"P($\hat\sigma_{AB}^2/\hat\sigma_\varepsilon^2 < \sigma_{AB}^2/\sigma_\varepsilon^2$)"}
CAPTION = ("Share of replicates whose estimated variance ratio σ̂_A²/σ̂_ε² (a fit's two estimates) lies below the "
           "true ratio σ_A²/σ_ε², per condition with σ_A² > 0 and fit (points; bars ±2 Monte Carlo SE, or the Wilson "
           "95% interval where the share is 0 or 1; hollow points: non-convergence or singular rate ≥ 10 %). This "
           "is the event λ̂ < λ₀ of the finite-sample theory, not σ̂_A² < σ_A². Black dashes: its exact "
           "probability — balanced one-way designs: an F cdf (REML and ANOVA at 1, ML at a/(a − 1)); "
           "unequal group sizes (REML, ML; Crainiceanu & Ruppert 2004): the probability that the (restricted) likelihood's "
           "score at λ₀ is negative, a weighted sum of χ²₁ variables by Imhof's formula, plus a correction for "
           "the rare likelihoods with two local maxima from 100,000 spectral draws (at most 4e-4, its Monte Carlo "
           "SE below 1e-4). A share above ½ means the estimator is more often too small than too large.")


def underestimation_figure(study: StudyOutputs, style: FitStyle, path: Path) -> FigureOut:
    """``underestimation_rate`` per condition and fit, one panel per variance component, exact dashes."""
    title = "How often the estimated variance ratio falls below the true one"
    panels = []
    note = ""
    for comp in LABEL:
        rows, n = drop_sparse(metric_rows(study, METRIC, comp))
        if not rows.empty:
            panels.append((comp, rows))
            note = note or n
    if not panels:
        return FigureOut("underestimation", title, CAPTION,
                         skipped="The study stores no underestimation rates (no variance component with a true "
                                 "value above 0, or a summary written before the metric existed).")
    # only the conditions that have the metric (σ² > 0) get a tick
    conds = condition_frame(pd.concat([r for _, r in panels]), study.grid_keys)
    width = min(layout.FIG_WIDTH_IN, max(5.0, 0.8 * len(conds) + 2))
    fig, axes = plt.subplots(len(panels), 1, figsize=(width, 3.4 * len(panels)), squeeze=False)
    flags = flagged_pairs(study)
    for ax, (comp, rows) in zip(axes[:, 0], panels):
        dot_panel(ax, attach_condition(rows, conds, study.grid_keys), conds, style,
                  bounds=PROPORTION, flags=flags, ref=0.5, ref_label="½ (median-unbiased)")
        ax.set_ylabel(LABEL[comp])
        ax.set_ylim(-0.03, 1.03)
    legend_below(fig, None, 4)
    save(fig, path)
    return FigureOut("underestimation", title, CAPTION + note, path=path)


__all__ = ["underestimation_figure"]
