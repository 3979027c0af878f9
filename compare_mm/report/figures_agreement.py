"""Validation panel: NUTS against the exact (quadrature) posterior on the replicates both fitted.

A study may fit the same Bayesian model twice — by quadrature (``sampler: quadrature``, exact up to a
stated integration error) on every replicate and by NUTS on a subset.  On the shared replicates the two
posteriors are the same distribution, so for every summary q (posterior median, lower and upper interval
limit) the per-replicate difference d_r = (q_NUTS − q_quad) / sd_quad (in units of the posterior SD) has
mean 0 up to NUTS's Monte Carlo error.  The panel shows, per condition and parameter, the mean of d_r with
±2 MCSE (MCSE = SD(d_r)/√R over the R shared replicates): a bar that excludes 0 says that the sampler is
biased (or has not converged) there; the spread is NUTS's own Monte Carlo noise.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from .conditions import attach_condition, condition_frame
from . import layout
from .marks import FigureOut
from .load import StudyOutputs
from .style import FitStyle, legend_below, param_label, save

#: the posterior summaries compared, as stored in the param rows
QUANTITIES = (("median", "posterior median"), ("lower", "lower interval limit"), ("upper", "upper interval limit"))


def posterior_pairs(study: StudyOutputs) -> list[tuple[str, str]]:
    """(quadrature fit, MCMC fit) pairs of the same backend: every posterior fit with ``sampler:
    quadrature`` against every other posterior fit of its backend."""
    specs = study.fit_specs()
    post = [n for n in specs if study.is_bayes(n)]
    quad = [n for n in post if str(specs[n].get("sampler", "")).lower() == "quadrature"]
    return [(q, m) for q in quad for m in post
            if m not in quad and specs[m].get("backend") == specs[q].get("backend")]


def agreement_table(study: StudyOutputs) -> pd.DataFrame:
    """Mean standardised difference NUTS − quadrature with its MCSE, per pair, condition, parameter and
    quantity, over the replicates where both fits succeeded (module docstring)."""
    cols = ["quadrature", "nuts", "condition", "parameter", "quantity", "replicates", "mean_diff_sd", "mcse",
            "mean_abs_diff_sd"]
    pairs = posterior_pairs(study)
    reps = study.rows(["row_type", "ok", "fit", "condition", "replicate", "parameter", "median", "lower", "upper",
                       "se"], ["param"]) if pairs else None
    if reps is None or reps.empty or not pairs:
        return pd.DataFrame(columns=cols)
    p = reps[(reps["row_type"] == "param") & reps["ok"].astype(bool)]
    out = []
    keys = ["condition", "replicate", "parameter"]
    for quad, nuts in pairs:
        cols_ = keys + ["median", "lower", "upper", "se"]
        a = p.loc[p["fit"] == quad, cols_].astype({"parameter": str})
        b = p.loc[p["fit"] == nuts, cols_].astype({"parameter": str})
        both = a.merge(b, on=keys, how="inner", suffixes=("_q", "_n"))
        if both.empty:
            continue
        for (cond, par), g in both.groupby(["condition", "parameter"]):
            sd = g["se_q"].to_numpy(float)
            for q, _ in QUANTITIES:
                d = (g[f"{q}_n"].to_numpy(float) - g[f"{q}_q"].to_numpy(float)) / sd
                d = d[np.isfinite(d)]
                if d.size == 0:
                    continue
                mcse = float(d.std(ddof=1) / np.sqrt(d.size)) if d.size > 1 else np.nan
                out.append([quad, nuts, int(cond), str(par), q, int(d.size), float(d.mean()), mcse,
                            float(np.abs(d).mean())])
    return pd.DataFrame(out, columns=cols)


def agreement_figure(study: StudyOutputs, style: FitStyle, path: Path) -> FigureOut:
    """One panel per quantity: mean (NUTS − quadrature)/posterior SD per condition and parameter, ±2 MCSE."""
    title = "NUTS against the exact posterior (quadrature) on shared replicates"
    caption = ("Per condition (x) and parameter (colour): the mean over the replicates fitted by both of "
               "(NUTS − quadrature) / posterior SD for the posterior median and the interval limits, with "
               "±2 Monte Carlo SE bars (SD of the differences / √replicates). The quadrature posterior is exact "
               "up to its stated integration error, so bars should straddle the dashed zero line; a bar "
               "that excludes it marks a sampler that is biased or unconverged there.")
    table = agreement_table(study)
    if table.empty:
        return FigureOut("nuts_vs_quadrature", title, caption,
                         skipped="The study has no pair of a quadrature and a NUTS fit with shared replicates.")
    keys = [k for k in study.grid_keys if k in study.summary.columns]
    per_cond = study.summary[["condition"] + keys].drop_duplicates("condition")
    named = attach_condition(per_cond, condition_frame(per_cond, keys), keys)
    label = dict(zip(named["condition"].astype(int), named["math"]))
    # one full-width panel per quantity, stacked: the condition labels need the width (two lines each)
    xs_n = table["condition"].nunique()
    rot, ha = layout.tick_rotation(max(xs_n // 2, 1))
    fig, axes = plt.subplots(len(QUANTITIES), 1, sharex=True, squeeze=False,
                             figsize=(layout.FIG_WIDTH_IN, min(1.45 * len(QUANTITIES) + 0.9 + layout.LEGEND_IN,
                                                               layout.MAX_HEIGHT_IN)))
    params = sorted(table["parameter"].unique())
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    handles: dict[str, object] = {}
    xs = sorted(table["condition"].unique())
    for ax, (q, qlabel) in zip(axes.flat, QUANTITIES):
        sub = table[table["quantity"] == q]
        m = max(len(params), 1)
        for i, par in enumerate(params):
            s = sub[sub["parameter"] == par].set_index("condition").reindex(xs)
            x = np.arange(len(xs)) + (i - (m - 1) / 2) * (0.7 / m)
            h = ax.errorbar(x, s["mean_diff_sd"], yerr=2 * s["mcse"].fillna(0.0), fmt="o", ms=4, capsize=2,
                            color=colours[i % len(colours)], lw=1.1)
            handles.setdefault(param_label(par), h)
        ax.axhline(0.0, color="0.35", lw=1, ls="--", zorder=0)
        ax.set_title(qlabel, loc="left", fontsize="medium")
        ax.set_xticks(np.arange(len(xs)))
        ax.set_xticklabels([str(label.get(c, c)).replace(", ", "\n") for c in xs], rotation=rot, ha=ha)
        ax.margins(x=0.08)
    fig.supylabel("(NUTS − quadrature) / posterior SD", fontsize="medium")
    legend_below(fig, handles, ncol=min(len(handles), 4))
    save(fig, path)
    return FigureOut("nuts_vs_quadrature", title, caption, path=path)


__all__ = ["QUANTITIES", "agreement_figure", "agreement_table", "posterior_pairs"]
