"""Fit quality, the report's first section: how often each fit failed, did not converge, was singular or sat on
a boundary, and (posteriors) how often its diagnostics were not clean — per condition × fit, each rate with its
Monte Carlo SE, from summary.csv alone.

A condition where a fit's non-convergence or singular rate is at least :data:`HIGH_RATE` is *flagged*: every
table marks that fit's rows with :data:`MARK` and every figure draws its points hollow
(:func:`flagged_pairs`).  :func:`policy_sentence` states how non-converged fits enter the metrics (all fits by
default; ``exclude_nonconverged: true`` on a fit drops them) with the counts behind every figure.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from .conditions import attach_condition, condition_frame
from .flags import HIGH_RATE, MARK, flagged_pairs, is_flagged
from .load import StudyOutputs
from .style import FitStyle, legend_below, save
from .tables import fmt_mc

#: (column title, metric, parameter) of the fit-quality table and figure, in order
QUALITY_COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("failed", "failure_rate", ""),
    ("not converged", "nonconvergence_rate", ""),
    ("singular", "singular_rate", ""),
    ("σ̂_A² on boundary", "boundary_rate", "sigma_a2"),
    ("σ̂_B² on boundary", "boundary_rate", "sigma_b2"),
    ("|ρ̂| = 1", "boundary_rate", "rho"),
    ("R-hat ≥ 1.01", "rhat_rate", ""),
    ("≥ 1 divergence", "divergence_rate", ""),
    ("low ESS", "low_ess_rate", ""),
)
#: columns of the table only (not a rate, so no panel of the figure): a quadrature posterior's check
TABLE_ONLY_COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("integration error (max)", "max_integration_error", ""),
)
#: axis labels of the figure (mathtext, so that no underscore shows)
FIGURE_LABELS = {"σ̂_A² on boundary": r"$\hat\sigma_A^2$ on boundary",
                 "σ̂_B² on boundary": r"$\hat\sigma_B^2$ on boundary", "|ρ̂| = 1": r"$|\hat\rho| = 1$",
                 "R-hat ≥ 1.01": r"$\hat R \geq 1.01$", "low ESS": "ESS < 100 per chain"}
#: (column title, metric) of the conditional-metrics table
CONDITIONAL_COLUMNS: tuple[tuple[str, str], ...] = (
    ("coverage | boundary", "coverage_boundary"), ("coverage | interior", "coverage_interior"),
    ("bias | boundary", "bias_boundary"), ("bias | interior", "bias_interior"),
    ("coverage | clean diagnostics", "coverage_clean"), ("bias | clean diagnostics", "bias_clean"),
)


def _fit_rows(study: StudyOutputs) -> pd.DataFrame:
    s = study.summary
    return s[s["fit"].astype(str) != "F-test"]


def _cell(row: pd.Series) -> str:
    """``value (mcse)``; a proportion of 0 or 1 shows its Wilson 95% interval instead of a zero MCSE."""
    return fmt_mc(row["value"], row["mcse"], row.get("ci_lower", np.nan), row.get("ci_upper", np.nan))


def _first_rows(g: pd.DataFrame, *keys: pd.Series):
    """A look-up ``key tuple → first row of g with those keys values`` (``None`` if there is none): one
    pass over ``keys`` instead of one boolean filter per looked-up key."""
    pos: dict[tuple, int] = {}
    for i, key in enumerate(zip(*(k.to_numpy() for k in keys))):
        pos.setdefault(key, i)
    return lambda key: g.iloc[pos[key]] if key in pos else None


def _wide(study: StudyOutputs, columns) -> pd.DataFrame:
    """condition × fit rows, one column per (title, metric, parameter) in ``columns``."""
    s = _fit_rows(study)
    keys = [k for k in study.grid_keys if k in s.columns]
    conds = condition_frame(study.summary, keys)
    s = attach_condition(s, conds, keys)
    flags = flagged_pairs(study)
    rows = []
    fit_order = {f: i for i, f in enumerate(study.fit_names())}
    for (cond, fit), g in s.groupby(["cond", "fit"], sort=False):
        out = {"_c": cond, "_f": fit_order.get(fit, 999), "condition": g["label"].iloc[0],
               "fit": fit + (f" {MARK}" if (int(g["condition"].iloc[0]), fit) in flags else "")}
        first = _first_rows(g, g["metric"], g["parameter"].astype(str))
        for title, metric, param, *_ in columns:
            hit = first((metric, param))
            out[title] = _cell(hit) if hit is not None else ""
        st = g[g["metric"] == "nonconvergence_rate"]
        if len(st):
            out["n"] = str(int(st["n_ok"].iloc[0] + st["n_failed"].iloc[0]))
        rows.append(out)
    if not rows:
        return pd.DataFrame()
    frame = pd.DataFrame(rows).sort_values(["_c", "_f"]).drop(columns=["_c", "_f"]).reset_index(drop=True)
    keep = [c for c in frame.columns if c in ("condition", "fit", "n") or frame[c].astype(str).ne("").any()]
    return frame[keep].fillna("")


def quality_table(study: StudyOutputs) -> pd.DataFrame:
    """The fit-quality table: per condition × fit, every rate of :data:`QUALITY_COLUMNS` that the study has,
    and the largest integration error of its quadrature posteriors (:data:`TABLE_ONLY_COLUMNS`)."""
    return _wide(study, QUALITY_COLUMNS + TABLE_ONLY_COLUMNS)


def conditional_table(study: StudyOutputs) -> pd.DataFrame:
    """Coverage and bias given a boundary hit / not (frequentist fits) and given clean diagnostics
    (posteriors), per condition × fit × parameter (rows with at least one such metric)."""
    s = _fit_rows(study)
    s = s[s["metric"].isin([m for _, m in CONDITIONAL_COLUMNS])]
    if s.empty:
        return pd.DataFrame()
    keys = [k for k in study.grid_keys if k in s.columns]
    s = attach_condition(s, condition_frame(study.summary, keys), keys)
    flags = flagged_pairs(study)
    from .style import param_text
    rows = []
    fit_order = {f: i for i, f in enumerate(study.fit_names())}
    p_order = {p: i for i, p in enumerate(("mu", "beta0", "beta1", "sigma_a2", "sigma_b2", "rho", "sigma_e2"))}
    for (cond, fit, param), g in sorted(s.groupby(["cond", "fit", "parameter"], sort=False),
                                        key=lambda kv: (kv[0][0], fit_order.get(kv[0][1], 999),
                                                        p_order.get(kv[0][2], 99))):
        out = {"condition": g["label"].iloc[0],
               "fit": fit + (f" {MARK}" if (int(g["condition"].iloc[0]), fit) in flags else ""),
               "parameter": param_text(param)}
        first = _first_rows(g, g["metric"])
        for title, metric in CONDITIONAL_COLUMNS:
            hit = first((metric,))
            out[title] = "" if hit is None else _cell(hit) + _n_of(hit)
        rows.append(out)
    frame = pd.DataFrame(rows)
    keep = [c for c in frame.columns if frame[c].astype(str).ne("").any()]
    return frame[keep]


def _n_of(row: pd.Series) -> str:
    """`` n=27`` from a conditional metric's note (``… over the 27 replicates …``)."""
    note = str(row.get("note", ""))
    parts = note.split("over the ")
    if len(parts) > 1 and parts[1].split(" ")[0].isdigit():
        return f" n={parts[1].split(' ')[0]}"
    return ""


def counts_by_fit(study: StudyOutputs) -> dict[str, dict[str, int]]:
    """fit → {"fits", "nonconverged", "singular", "excluded"} summed over conditions."""
    s = _fit_rows(study)
    out: dict[str, dict[str, int]] = {}
    nc = s[s["metric"] == "nonconvergence_rate"]
    for fit, g in nc.groupby("fit", sort=False):
        get = lambda c: int(pd.to_numeric(g[c], errors="coerce").fillna(0).sum()) if c in g.columns else 0
        out[str(fit)] = {"fits": get("n_ok"), "nonconverged": get("n_nonconverged"),
                         "singular": int(pd.to_numeric(s[(s["metric"] == "singular_rate") & (s["fit"] == fit)]
                                                       .get("n_singular", pd.Series(dtype=float)),
                                                       errors="coerce").fillna(0).sum()),
                         "excluded": get("excluded")}
    order = {f: i for i, f in enumerate(study.fit_names())}
    return dict(sorted(out.items(), key=lambda kv: order.get(kv[0], 999)))


def policy_sentence(study: StudyOutputs) -> str:
    """How non-converged fits enter the metrics, with their counts per fit (printed beside every figure)."""
    counts = counts_by_fit(study)
    if not counts:
        return ""
    parts = []
    for fit, c in counts.items():
        verb = "excluded" if c["excluded"] else "included"
        parts.append(f"{fit} {c['nonconverged']} of {c['fits']} ({verb})")
    return ("Non-converged fits behind these metrics: " + "; ".join(parts) + ". Metrics are over all fits that "
            "did not raise unless a fit sets exclude_nonconverged: true; fit-quality rates always count every fit.")


def quality_figure(study: StudyOutputs, style: FitStyle, path: Path):
    """One panel per fit-quality rate present with a nonzero value somewhere: points per condition and fit
    (±2 MCSE; a rate of 0 or 1 gets its Wilson 95% interval), hollow where the fit is flagged."""
    from .marks import PROPORTION, FigureOut, bottom_labels_only, condition_panels, dot_panel

    title = "Fit quality: failures, non-convergence, singular and boundary fits"
    caption = ("Per condition (x) and fit (colour, marker): the share of fits that failed, did not converge, were "
               "singular (as compare_mm.fit flags a single fit: a diagonal element of the relative Cholesky "
               "factor below 1e-4), had each variance component on its boundary, or (posteriors) had R-hat ≥ 1.01 "
               "or a divergence. Points: Monte Carlo estimates; bars: ±2 Monte Carlo SE, or the Wilson 95% "
               f"interval where a rate is 0 or 1; hollow points: the fit's non-convergence or singular rate is "
               f"≥ {HIGH_RATE:.0%} in that condition (marked {MARK} in the tables). Panels whose rate is 0 "
               "everywhere are left out.")
    s = _fit_rows(study)
    panels = []
    for label, metric, param in QUALITY_COLUMNS:
        rows = s[(s["metric"] == metric) & (s["parameter"].astype(str) == param)]
        rows = rows[np.isfinite(rows["value"].to_numpy(float))]
        if len(rows) and (rows["value"] > 0).any():
            panels.append((label, rows))
    if not panels:
        return FigureOut("fit_quality", title, caption,
                         skipped="No fit failed, none was non-converged, singular or on a boundary.")
    conds = condition_frame(study.summary, study.grid_keys)
    flags = flagged_pairs(study)
    fig, axes = condition_panels(len(panels), len(conds))  # one screen tall
    for ax, (label, rows) in zip(axes.flat, panels):
        dot_panel(ax, attach_condition(rows, conds, study.grid_keys).assign(interval_kind=""), conds, style,
                  bounds=PROPORTION, flags=flags)
        ax.set_ylim(-0.03, 1.03)
        ax.set_ylabel(FIGURE_LABELS.get(label, label))
    bottom_labels_only(axes, len(panels))
    legend_below(fig, None, 5)
    save(fig, path)
    return FigureOut("fit_quality", title, caption, path=path)


__all__ = ["HIGH_RATE", "MARK", "conditional_table", "counts_by_fit", "flagged_pairs", "is_flagged",
           "policy_sentence", "quality_figure", "quality_table"]
