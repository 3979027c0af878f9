"""Report figures drawn from summary.csv alone: boundary rate, coverage and width, bias and RMSE.

Every Monte Carlo point carries ±2 MCSE bars (the MCSE stored beside each metric in summary.csv), clipped
to the metric's range (proportions to [0, 1], widths and RMSE to ≥ 0: :func:`mcse_bars`); the
exact boundary probability of the balanced one-way model (:func:`compare_mm.oneway.theory.boundary_probability`,
F_{a−1,a(n−1)} cdf at 1/(1+nγ) for REML/ANOVA and at a/((a−1)(1+nγ)) for ML) is drawn as a line, and for
unequal group sizes the one-variance-component theory's curve (:mod:`compare_mm.report.exact_curves`).
"""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from .conditions import attach_condition, condition_frame, fmt_column, fmt_value, varying_keys
from .load import StudyOutputs
from .style import FitStyle, key_label, legend_below, param_label, param_text, save
from . import layout
from ..oneway.theory import boundary_probability
from .flags import drop_sparse, flagged_pairs, is_flagged
from .exact_curves import unbalanced_boundary_curves
from .marks import (MARKS, NONNEGATIVE, PROPORTION, FigureOut, bottom_labels_only, condition_panels, dot_panel,
                    facet_grid, mcse_bars, metric_rows, offaxis_note)

# ----------------------------------------------------------------------------- boundary rate
def _exact_boundary_curves(study: StudyOutputs, facet: dict, xs: np.ndarray, fits: list[str]):
    """(method, fits, curve) for each frequentist method when the facet is a balanced one-way design."""
    if str(facet.get("model", study.model)) != "oneway":  # ``model`` may itself be a grid key
        return []
    fixed = study.config.get("fixed") or {}
    sizes = facet.get("per_group", fixed.get("per_group"))
    if isinstance(sizes, str) and "," in sizes:  # a list of group sizes as summary.csv labels it ("2,3,5")
        sizes = [v for v in sizes.strip("[]").split(",") if v.strip()]
    if isinstance(sizes, (list, tuple)):
        return unbalanced_boundary_curves(study, sizes, facet, fixed, xs, fits)
    try:
        a = int(float(facet.get("groups", fixed.get("groups"))))
        n = float(facet.get("per_group", fixed.get("per_group")))
        se2 = float(facet.get("sigma_e2", fixed.get("sigma_e2", 1.0)))
    except (TypeError, ValueError):
        return []  # unbalanced (per_group is a list) or undetermined: no closed form
    if not n.is_integer() or a < 2 or n < 2 or study.config.get("unbalanced"):
        return []
    by_method: dict[str, list[str]] = {}
    for f in fits:
        m = study.method(f)
        if m in ("REML", "ML", "ANOVA"):
            by_method.setdefault("REML" if m == "ANOVA" else m, []).append(f)
    return [(m, fs, boundary_probability(a, int(n), xs, se2, m)) for m, fs in by_method.items()]


def dodged_rates(ax, sub: pd.DataFrame, fits, xmax: float, style, flags, handles: dict) -> None:
    """Rates with ±2 MCSE bars per fit on a signed square-root x axis (column ``_x``), dodged sideways by
    fit; hollow markers for flagged (condition, fit) pairs; the axis limits keep the outermost marker."""
    fwd = lambda v: np.sign(v) * np.sqrt(np.abs(v))  # noqa: E731 — dodged points left of 0 stay left
    inv = lambda v: np.sign(v) * np.square(v)  # noqa: E731
    m_f = max(len(fits), 1)
    for i, fit in enumerate(fits):
        s = sub[sub["fit"] == fit].sort_values("_x")
        if s.empty:
            continue
        off = (i - (m_f - 1) / 2) * 0.018 * math.sqrt(xmax)
        x = inv(fwd(s["_x"].to_numpy(dtype=float)) + off)
        y = s["value"].to_numpy(dtype=float)
        ci = [s[c].to_numpy(dtype=float) if c in s.columns else None for c in ("ci_lower", "ci_upper")]
        e = mcse_bars(y, s["mcse"].to_numpy(dtype=float), PROPORTION, *ci)
        fl = is_flagged(s, flags)
        h = ax.errorbar(x[~fl], y[~fl], yerr=e[:, ~fl], fmt=style.marker(fit), color=style.colour(fit),
                        ms=4.5, lw=1.1, capsize=2, ls="none")
        if fl.any():
            hh = ax.errorbar(x[fl], y[fl], yerr=e[:, fl], fmt=style.marker(fit), color=style.colour(fit),
                             mfc="none", mew=1.4, ms=5.5, lw=1.1, capsize=2, ls="none")
            handles.setdefault("hollow: non-converged or singular ≥ 10 %", hh)
        handles.setdefault(fit, h)
    ax.set_xscale("function", functions=(fwd, inv))
    pad = (0.05 + 0.018 * (len(fits) - 1) / 2) * math.sqrt(xmax)
    ax.set_xlim(inv(-pad), inv(math.sqrt(xmax) + pad))


def boundary_figure(study: StudyOutputs, style: FitStyle, path: Path) -> FigureOut:
    """Boundary rate (share of σ̂_A² exactly 0) vs σ_A² per fit, ±2 MCSE, exact curves as lines."""
    title = "How often σ̂_A² lands exactly on zero"
    caption = ("Share of replicates with σ̂_A² = 0 per fit (points; bars ±2 Monte Carlo SE, or the Wilson 95% "
               "interval where the share is 0 or 1; hollow points: the fit's non-convergence or singular rate "
               "is ≥ 10 % there); lines: the exact "
               "probability for the balanced one-way model (REML and ANOVA: F cdf at 1/(1+nγ); ML: at "
               "a/((a−1)(1+nγ)), γ = σ_A²/σ_ε²); for unequal group sizes the probability that the "
               "(restricted) likelihood's score at σ_A² = 0 is ≤ 0, a weighted sum of χ²₁ variables, by Imhof's "
               "formula (Crainiceanu & Ruppert 2004) — a local maximum at 0, which exceeds the share of global "
               "maxima at 0 (the exact column of the table) by the rare second interior maximum (0.001–0.002 for "
               "sizes 2, 3, 3, 5, 8, 12, 20). "
               "For posterior fits the rate is the share of replicates whose "
               "interval's lower limit for σ_A² is below a tiny threshold.")
    rows, note = drop_sparse(metric_rows(study, "boundary", "sigma_a2"))
    caption += note
    if rows.empty:
        return FigureOut("boundary", title, caption, skipped="The study stores no boundary-rate rows for σ_A².")
    xkey = "sigma_a2" if "sigma_a2" in study.grid_keys and "sigma_a2" in rows.columns else None
    if xkey is None:
        return _boundary_by_condition(study, style, path, rows, title, caption)
    rows = rows.assign(_x=pd.to_numeric(rows[xkey], errors="coerce"))
    fkeys = [k for k in varying_keys(rows, study.grid_keys) if k != xkey]
    facets = rows[fkeys].drop_duplicates().to_dict("records") if fkeys else [{}]
    fig, axes = facet_grid(len(facets))
    xmax = float(np.nanmax(rows["_x"])) or 1.0
    dense = np.linspace(0.0, math.sqrt(xmax * 1.03), 200) ** 2  # even on the square-root axis
    handles: dict[str, object] = {}
    fits = style.sort(rows["fit"].unique())
    flags = flagged_pairs(study)
    for ax, facet in zip(axes.flat, facets):
        sub = rows
        for k, v in facet.items():
            sub = sub[fmt_column(sub[k]) == fmt_value(v)]
        whole = dict(facet)
        for k in study.grid_keys:
            if k != xkey and k not in whole and k in rows.columns and rows[k].nunique() == 1:
                whole[k] = rows[k].iloc[0]
        for m, fs, curve in _exact_boundary_curves(study, whole, dense, fits):
            (h,) = ax.plot(dense, curve, color=style.colour(fs[0]), lw=1.3, alpha=0.85,
                           ls="-" if m == "REML" else "--")
            handles.setdefault(f"exact {m} ({', '.join(fs)})", h)
        dodged_rates(ax, sub, fits, xmax, style, flags, handles)
        grid_x = np.unique(rows["_x"].dropna().to_numpy(dtype=float))
        ax.set_xticks(grid_x)
        ax.set_xticklabels([fmt_value(float(v)) for v in grid_x], rotation=45 if len(grid_x) > 5 else 0)
        ax.minorticks_off()
        ax.set_ylim(-0.03, 1.03)
        ax.set_xlabel(key_label(xkey) + " (square-root scale)")
        ax.set_ylabel(r"P($\hat\sigma_A^2 = 0$)")
        ax.set_title(", ".join(f"{key_label(k)} = {fmt_value(v)}" for k, v in whole.items()
                               if k in ("groups", "per_group", "sigma_e2") or k in facet) or "all conditions")
    legend_below(fig, handles, 5)
    save(fig, path)
    return FigureOut("boundary", title, caption, path=path)


def _boundary_by_condition(study, style, path, rows, title, caption) -> FigureOut:
    conds = condition_frame(study.summary, study.grid_keys)
    rows = attach_condition(rows, conds, study.grid_keys)
    fig, ax = plt.subplots(figsize=(min(layout.FIG_WIDTH_IN, max(5.0, 0.8 * len(conds) + 2)), 3.4))
    dot_panel(ax, rows, conds, style, bounds=PROPORTION, flags=flagged_pairs(study))
    ax.set_ylabel(r"P($\hat\sigma_A^2 = 0$)")
    ax.set_ylim(-0.03, 1.03)
    legend_below(fig, None, 4)   # inside the axis it would cover points anywhere in [0, 1]
    save(fig, path)
    return FigureOut("boundary", title, caption + " (σ_A² is not varied in this study: one point per condition.)",
                     path=path)


# ----------------------------------------------------------------------------- metric pairs
def _pair_figure(study: StudyOutputs, style: FitStyle, path: Path, left: str, right: str, key: str, title: str,
                 caption: str, left_label: str, right_label: str, left_ref: float | None = None,
                 ref_label: str | None = None, zero_line: bool = False,
                 left_bounds: tuple[float | None, float | None] | None = None,
                 right_bounds: tuple[float | None, float | None] | None = None,
                 left_filter=None) -> FigureOut:
    """Two panels a row (``left`` and ``right`` metric) per parameter; ``left_filter(rows)`` → (rows kept,
    caption note) drops left points that would only mislead (e.g. coverage 0 by construction)."""
    (lrows, note), (rrows, _) = drop_sparse(metric_rows(study, left)), drop_sparse(metric_rows(study, right))
    caption += note
    if left_filter is not None:
        lrows, dropped = left_filter(lrows)
        caption += dropped
    if lrows.empty and rrows.empty:
        return FigureOut(key, title, caption, skipped=f"The study stores no {left} or {right} rows.")
    order = ["mu", "beta0", "beta1", "sigma_a2", "sigma_b2", "rho", "sigma_e2"]
    params = list(dict.fromkeys(list(lrows["parameter"]) + list(rrows["parameter"])))
    params.sort(key=lambda p: order.index(p) if p in order else len(order))
    conds = condition_frame(study.summary, study.grid_keys)
    lrows = attach_condition(lrows, conds, study.grid_keys)
    rrows = attach_condition(rrows, conds, study.grid_keys)
    # two panels a row, the page's width; parameters split over parts so each fits a screen (layout.py)
    rot, _ = layout.tick_rotation(len(conds))
    longest = max((len(str(t)) for t in conds["label"]), default=4)
    tick_in = 0.3 + (0.065 * longest * math.sin(math.radians(rot)) if rot else 0.0)
    row_h = 1.45
    per_part = layout.rows_per_part(row_h, len(params), tick_in + layout.LEGEND_IN + 0.2)
    parts = layout.split_even(params, per_part)
    paths = []
    flags = flagged_pairs(study)
    offaxis: list[str] = []
    for i, part in enumerate(parts):
        fig, axes = plt.subplots(len(part), 2, figsize=(layout.FIG_WIDTH_IN, row_h * len(part) + tick_in +
                                                         layout.LEGEND_IN + 0.2), squeeze=False)
        for r, p in enumerate(part):
            for c, (rows, lab, ref, bounds) in enumerate(((lrows, left_label, left_ref, left_bounds),
                                                          (rrows, right_label, None, right_bounds))):
                ax = axes[r, c]
                sub = rows[rows["parameter"] == p]
                if sub.empty:
                    ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes, color="0.5")
                    ax.set_xticks([])
                else:
                    offaxis += dot_panel(ax, sub, conds, style, ref=ref,
                                         ref_label=ref_label if ref is not None else None, bounds=bounds,
                                         flags=flags)
                    if zero_line and c == 0:
                        ax.axhline(0.0, color="0.35", lw=1, ls="--", zorder=0)
                ax.set_ylabel(f"{lab} of {param_label(p)}")
                if r < len(part) - 1:
                    ax.set_xticklabels([])
        handles: dict[str, object] = {}
        for ax in axes.flat:
            for h, l in zip(*ax.get_legend_handles_labels()):
                handles.setdefault(l, h)
        legend_below(fig, handles, 5)
        paths.append(layout.part_path(path, i))
        save(fig, paths[-1])
    if len(parts) > 1:
        caption += (f" Shown in {len(parts)} parts (parameters "
                    + "; ".join(", ".join(param_text(p) for p in part) for part in parts) + ").")
    return FigureOut(key, title, caption + offaxis_note(offaxis), path=path, parts=paths[1:])


def coverage_figure(study: StudyOutputs, style: FitStyle, path: Path) -> FigureOut:
    """Coverage per fit and parameter (nominal level dashed, ±2 MCSE) with mean interval width beside it."""
    lvl = study.level
    return _pair_figure(
        study, style, path, "coverage", "width", "coverage", "Interval coverage and width",
        f"Left: share of replicates whose {lvl:.0%} interval contains the truth, per fit and interval kind "
        f"(dashed line: nominal {lvl:.0%}; an interval on (0, ∞) can never contain a true variance of 0, so "
        f"posterior coverage of σ_A² = 0 is 0 by construction). Right: mean interval width. " + MARKS,
        "coverage", "mean width", left_ref=lvl, ref_label=f"nominal {lvl:.0%}", left_bounds=PROPORTION,
        right_bounds=NONNEGATIVE, left_filter=_without_zero_by_construction)


def _without_zero_by_construction(rows: pd.DataFrame) -> tuple[pd.DataFrame, str]:
    """Coverage rows without the posterior coverages of 0 of a variance whose truth is 0, and the caption
    sentence naming what was left out (the tables keep them).

    Such a coverage is fixed by construction, not estimated: an equal-tailed interval lies inside (0, ∞)
    (the summary's note says so, :data:`compare_mm.study.summarise.ZERO_BY_CONSTRUCTION`), and an HDI can
    reach 0 only where the posterior density of the variance is largest at 0 — always under a prior with
    finite SD density at 0 (coverage 1), never under an inverse gamma (coverage 0).  Drawn, the zeros
    stretched a panel whose other points lie in 0.85–1 down to 0."""
    from ..study.summarise import ZERO_BY_CONSTRUCTION

    if "note" not in rows.columns:
        return rows, ""
    marked = rows["note"].astype(str).str.contains(ZERO_BY_CONSTRUCTION, regex=False).to_numpy()
    if not marked.any():
        return rows, ""
    key = list(zip(*(rows[c].astype(str) for c in ("condition", "fit", "parameter") if c in rows.columns)))
    at_zero = {k for k, z in zip(key, marked) if z}
    zero = np.array([k in at_zero for k in key], bool) & (rows["value"].to_numpy(float) == 0)
    if not zero.any():
        return rows, ""
    gone = rows[zero]
    what = "; ".join(f"{param_text(p)}: {', '.join(dict.fromkeys(g['fit'].astype(str)))}"
                     for p, g in gone.groupby("parameter", sort=False))
    return rows[~zero], (" Not drawn: posterior coverages of 0 for a variance whose true value is 0, which are "
                         "0 by construction — an equal-tailed interval lies inside (0, ∞), and an HDI reaches 0 "
                         f"only where the posterior density is largest there, never under an inverse-gamma prior "
                         f"({what}); the tables list them.")


def bias_rmse_figure(study: StudyOutputs, style: FitStyle, path: Path) -> FigureOut:
    """Bias (zero line dashed) and RMSE per fit and parameter, ±2 MCSE."""
    return _pair_figure(
        study, style, path, "bias", "rmse", "bias_rmse", "Bias and RMSE of the point estimates",
        "Bias (left; dashed line: zero) and root mean squared error (right) of each fit's point estimate "
        "(posterior fits: the point estimate the study records). " + MARKS,
        "bias", "RMSE", zero_line=True, right_bounds=NONNEGATIVE)


def tests_figure(study: StudyOutputs, style: FitStyle, path: Path) -> FigureOut:
    """Rejection rates of the tests (the exact F test's ``rejection_rate``, ``size_<test>``/``power_<test>``)
    per condition, fit and test, with the exact rejection probabilities where the summary has them."""
    alpha = 1 - study.level
    title = "Size and power of the tests of a variance component"
    caption = (f"Share of replicates whose test rejects at α = {alpha:g}, per condition (x), fit (colour) and test "
               f"(marker; in the legend after the fit). Dashed line: α (the nominal size, relevant where the "
               f"true variance is 0). " + MARKS)
    s = study.summary
    m = s["metric"].astype(str)
    rows = s[(m == "rejection_rate") | m.str.startswith(("size_", "power_"))]
    rows = rows[np.isfinite(rows["value"].to_numpy(float))]
    if rows.empty:
        return FigureOut("tests", title, caption, skipped="The study has no tests.")
    test = rows["metric"].astype(str).str.replace(r"^(size|power)_", "", regex=True)
    test = test.where(test != "rejection_rate", "F test")
    rows = rows.assign(interval_kind=test.to_numpy())
    conds = condition_frame(study.summary, study.grid_keys)
    rows = attach_condition(rows, conds, study.grid_keys)
    params = list(dict.fromkeys(rows["parameter"].astype(str)))
    fig, axes = condition_panels(len(params), len(conds))
    for ax, p in zip(axes.flat, params):
        dot_panel(ax, rows[rows["parameter"].astype(str) == p], conds, style, ref=alpha, ref_label=f"α = {alpha:g}",
                  bounds=PROPORTION, flags=flagged_pairs(study))
        ax.set_ylim(-0.03, 1.03)
        ax.set_ylabel(f"rejection rate, test of {param_label(p)} = 0")
    bottom_labels_only(axes, len(params))
    legend_below(fig, None, 4)
    save(fig, path)
    return FigureOut("tests", title, caption, path=path)
