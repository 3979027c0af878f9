"""Report figures drawn from the stored replicate rows: shrinkage, sampling distributions, diagnostics.

Shrinkage (partial pooling): the BLUP of a one-way group mean is μ̂ + w(ȳ_i − μ̂) with the exact factor
w = nσ_A²/(σ_ε² + nσ_A²) (:func:`compare_mm.oneway.theory.shrinkage_factor`); the study stores the raw
and predicted group means of each replicate and the empirical factor (slope of û_i on ȳ_i − μ̂) with its
MCSE in summary.csv.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from .conditions import attach_condition, condition_frame, fmt_column, fmt_value, varying_keys
from .quality import flagged_pairs
from .marks import NONNEGATIVE, PROPORTION, FigureOut, crowded_ticks, dot_panel, mcse_bars, metric_rows
from .load import StudyOutputs
from .rows import diagnostic_rows, group_rows, param_rows
from .style import FitStyle, key_label, legend_below, save
from . import layout

SHRINK_METRICS = ("shrinkage", "shrinkage_factor")
MSE_BLUP_METRICS = ("mse_blup", "mse_pred", "blup_mse")
MSE_RAW_METRICS = ("mse_raw", "raw_mse")


def _pick_replicate(groups: pd.DataFrame, study: StudyOutputs) -> tuple:
    """(condition, replicate) of the one replicate drawn, from the group rows' keys (:func:`group_rows` with
    ``values=False``): among conditions with σ_A² > 0 and the most fits with predictions, the one whose exact
    shrinkage factor is nearest 1/2 (the pull is then most visible); its first replicate."""
    g = groups
    sa = pd.to_numeric(g["sigma_a2"], errors="coerce") if "sigma_a2" in g.columns else None
    if sa is not None and (sa > 0).any():
        g = g[sa > 0]
    nfits = g.groupby(["condition", "replicate"])["fit"].nunique()
    nfits = nfits[nfits == nfits.max()].reset_index()
    shrink = study.summary[study.summary["metric"].isin(SHRINK_METRICS) & study.summary["exact"].notna()]
    cond_ids = nfits["condition"].unique()
    best_cond = cond_ids[0]
    if not shrink.empty and "condition" in shrink.columns:
        ex = shrink.groupby("condition")["exact"].first()
        ex = ex[ex.index.isin(cond_ids)]
        if len(ex):
            best_cond = (ex - 0.5).abs().idxmin()
    rep = nfits.loc[nfits["condition"] == best_cond, "replicate"].min()
    return best_cond, rep


def _pull_panel(ax, one: pd.DataFrame, style: FitStyle, study: StudyOutputs) -> None:
    """Lines from each group's raw deviation ȳ_i − ȳ to its prediction û_i, per fit; 0 = overall mean."""
    fits = style.sort(one["fit"].unique())
    first = one[one["fit"] == fits[0]].drop_duplicates("group")
    raw = first.set_index("group")["raw"]
    labels, ticks = [], []
    if first["true_u"].notna().all():
        ax.scatter(np.full(len(first), -1), first["true_u"], color="0.3", marker="x", s=18, zorder=3)
        for _, r in first.iterrows():
            ax.plot([-1, 0], [r["true_u"], r["raw"]], color="0.75", lw=0.6)
        labels.append("true $a_i$")
        ticks.append(-1)
    ax.scatter(np.zeros(len(raw)), raw.to_numpy(), color="0.15", s=16, zorder=3)
    labels.append("raw\n$\\bar y_i - \\bar y$")
    ticks.append(0)
    for j, fit in enumerate(fits, start=1):
        sub = one[one["fit"] == fit].drop_duplicates("group").set_index("group")
        common = sub.index.intersection(raw.index)
        for gname in common:
            ax.plot([0, j], [raw[gname], sub.at[gname, "pred"]], color=style.colour(fit), lw=0.8, alpha=0.75)
        ax.scatter(np.full(len(common), j), sub.loc[common, "pred"], color=style.colour(fit), s=16, zorder=3)
        labels.append(f"{fit}\n{'posterior mean' if study.is_bayes(fit) else 'BLUP'}")
        ticks.append(j)
    ax.axhline(0.0, color="0.35", ls="--", lw=1, zorder=0)
    ax.set_xticks(ticks)
    ax.set_xlim(min(ticks) - 0.4, max(ticks) + 0.4)
    if crowded_ticks(ax, labels):  # a narrow panel: the names alone (the caption says which are BLUPs)
        labels = [t.split("\n")[0] for t in labels]
    turn = crowded_ticks(ax, labels)
    ax.set_xticklabels(labels, fontsize=8, rotation=35 if turn else 0, ha="right" if turn else "center",
                       rotation_mode="anchor" if turn else "default")
    ax.set_ylabel("group effect\n(from the mean)")
    keys = [k for k in study.grid_keys if k in one.columns]
    cond = "\n".join(f"{key_label(k)}={fmt_value(one[k].iloc[0])}" for k in keys)  # a line per key: the
    ax.set_title(f"one replicate (no. {int(one['replicate'].iloc[0])})\n{cond}", fontsize=9)  # panel is narrow


def _shrinkage_axes(pull: bool, n_cond_panels: int, n_conditions: int):
    """The shrinkage figure's axes, in drawing order (pull panel first).  One row when every condition
    panel has room for its labels (:func:`layout.columns_for`); for a long grid the condition panels are
    stacked on the right, sharing their x axis, beside a pull panel spanning the height."""
    n = int(pull) + n_cond_panels
    if layout.columns_for(n_conditions, n) >= n or n_cond_panels < 2:
        fig, axes = plt.subplots(1, max(n, 1), figsize=(layout.FIG_WIDTH_IN, 3.0 + layout.LEGEND_IN), squeeze=False)
        return fig, list(axes.flat)
    ticks = 1.0
    h = min(2.2, (layout.MAX_HEIGHT_IN - layout.LEGEND_IN - ticks) / n_cond_panels)
    fig = plt.figure(figsize=(layout.FIG_WIDTH_IN, h * n_cond_panels + layout.LEGEND_IN + ticks))
    grid = fig.add_gridspec(n_cond_panels, 2 if pull else 1, width_ratios=[1.0, 1.9] if pull else None)
    axes = [fig.add_subplot(grid[:, 0])] if pull else []
    first = None
    for k in range(n_cond_panels):
        ax = fig.add_subplot(grid[k, -1], sharex=first)
        ax.tick_params(labelbottom=k == n_cond_panels - 1)  # condition labels under the lowest only
        first = first or ax
        axes.append(ax)
    return fig, axes


def shrinkage_figure(study: StudyOutputs, style: FitStyle, path: Path) -> FigureOut:
    """Pull towards the overall mean in one replicate; empirical vs exact shrinkage; MSE of BLUPs vs raw means."""
    title = "Shrinkage: partial pooling of group effects"
    caption = ("Left: in one replicate, each group's raw deviation ȳ_i − ȳ (no pooling) joined to its predicted "
               "effect û_i (BLUP of each frequentist fit, posterior mean of each Bayesian fit); every line is "
               "pulled towards the overall mean (dashed, 0); crosses: the realised effects a_i. Middle: "
               "empirical shrinkage factor (slope of û_i on ȳ_i − μ̂ across replicates, ±2 MCSE) against the "
               "exact factor at the true variances, nσ_A²/(σ_ε² + nσ_A²) when balanced (black dashes, legend "
               "\"exact value\"; unequal group sizes and random slopes: the expected slope of the oracle BLUPs, "
               "compare_mm.inference.oracle_shrinkage). Right: mean squared "
               "error of the predicted group effects (points per fit, ±2 Monte Carlo SE; black dashes: the "
               "oracle BLUPs' expected MSE at the true parameters, which fitted variances cannot reach) vs "
               "that of the raw group means for the realised effects (grey crosses; grey dashes: its "
               "expectation).")
    groups = group_rows(study, values=False)  # the keys: which replicate to draw
    summ = study.summary
    if (summ["parameter"] == "u_a").any():  # random intercepts (u_b, the slopes, are in the table)
        summ = summ[summ["parameter"] == "u_a"]
    shrink = summ[summ["metric"].isin(SHRINK_METRICS)]
    mse_b = summ[summ["metric"].isin(MSE_BLUP_METRICS)]
    mse_r = summ[summ["metric"].isin(MSE_RAW_METRICS)]
    if (groups is None or groups.empty) and shrink.empty and mse_b.empty:
        return FigureOut("shrinkage", title, caption,
                         skipped="The study stores no per-group predictions or shrinkage metrics.")
    conds = condition_frame(study.summary, study.grid_keys)
    pull = groups is not None and not groups.empty
    fig, axes = _shrinkage_axes(pull, int(not shrink.empty) + int(not mse_b.empty), len(conds))
    if pull:
        cond, rep = _pick_replicate(groups, study)
        one = group_rows(study, where={"condition": cond, "replicate": rep})
        _pull_panel(axes.pop(0), one, style, study)
    if not shrink.empty:
        ax = axes.pop(0)
        rows = attach_condition(shrink[np.isfinite(shrink["value"])], conds, study.grid_keys)
        dot_panel(ax, rows, conds, style, flags=flagged_pairs(study))  # exact factors: black dashes
        ax.set_ylabel("shrinkage\nfactor $w$")
        ax.set_title("empirical vs exact shrinkage factor", fontsize=9)
    if not mse_b.empty:
        ax = axes.pop(0)
        rows = attach_condition(mse_b[np.isfinite(mse_b["value"])], conds, study.grid_keys)
        dot_panel(ax, rows, conds, style, bounds=NONNEGATIVE, flags=flagged_pairs(study))
        if not mse_r.empty:
            raw = attach_condition(mse_r[np.isfinite(mse_r["value"])], conds, study.grid_keys)
            raw = raw.groupby("cond", as_index=False)[["value", "mcse"]].mean()
            ax.errorbar(raw["cond"], raw["value"],
                        yerr=mcse_bars(raw["value"], raw["mcse"].to_numpy(dtype=float), NONNEGATIVE),
                        fmt="x", color="0.2", ms=6, capsize=2, label="raw group means")
            ex = attach_condition(mse_r[np.isfinite(mse_r["exact"])], conds, study.grid_keys) \
                if "exact" in mse_r.columns else None
            if ex is not None and not ex.empty:
                ex = ex.groupby("cond", as_index=False)["exact"].first()
                ax.plot(ex["cond"], ex["exact"], marker="_", ms=11, mew=2.0, color="0.55", ls="none", zorder=4,
                        label="expected MSE of raw means")
        ax.set_ylabel("MSE of predicted\ngroup effects")
        ax.set_title("MSE: predictions vs raw means", fontsize=9)
    legend_below(fig, None, 6)
    save(fig, path)
    return FigureOut("shrinkage", title, caption, path=path)


# ----------------------------------------------------------------------------- sampling distributions
def _chosen_conditions(est: pd.DataFrame, study: StudyOutputs, limit: int = 4) -> list[dict]:
    keys = [k for k in study.grid_keys if k in est.columns]
    if not keys:
        return [{}]
    combos = est[keys].drop_duplicates()
    vary = [k for k in varying_keys(combos, keys) if k != "sigma_a2"]
    for k in vary:  # other keys at their first (smallest) value: the hardest design
        first = sorted(combos[k].unique(), key=lambda v: (str(type(v)), v))[0]
        combos = combos[combos[k] == first]
    if "sigma_a2" in combos.columns:
        combos = combos.sort_values("sigma_a2")
    recs = combos.to_dict("records")
    if len(recs) > limit:
        idx = np.unique(np.linspace(0, len(recs) - 1, limit).round().astype(int))
        recs = [recs[i] for i in idx]
    return recs


def sampling_figure(study: StudyOutputs, style: FitStyle, path: Path) -> FigureOut:
    """Histogram of σ̂_A² per frequentist fit (exact zeros as a bar at 0) beside posterior medians."""
    title = "Sampling distribution of σ̂_A²"
    caption = ("Left: distribution of σ̂_A² across replicates per frequentist fit; the share of estimates exactly "
               "0 is drawn as a bar at 0 (the point mass), the rest as a step histogram (share per bin). Right: "
               "the distribution of posterior medians of σ_A² per Bayesian fit. Dotted: the true σ_A².")
    est = param_rows(study)
    if est is None or est.empty:
        return FigureOut("sampling", title, caption, skipped="The study stores no per-replicate estimates.")
    est = est[est["parameter"] == "sigma_a2"]
    if est.empty:
        return FigureOut("sampling", title, caption, skipped="The study stores no per-replicate estimates of σ_A².")
    fits = style.sort(est["fit"].unique())
    freq = [f for f in fits if not study.is_bayes(f)]
    bayes = [f for f in fits if study.is_bayes(f)]
    recs = _chosen_conditions(est, study)
    n_all = len(est[[k for k in study.grid_keys if k in est.columns]].drop_duplicates()) if study.grid_keys else 1
    ncol = 1 + int(bool(bayes))
    row_h = 1.75
    parts = layout.split_even(recs, layout.rows_per_part(row_h, len(recs), layout.LEGEND_IN + 0.7))
    paths: list[Path] = []
    for part_i, part in enumerate(parts):
        fig, axes = plt.subplots(len(part), ncol, figsize=(layout.FIG_WIDTH_IN, row_h * len(part) + 0.7 +
                                                           layout.LEGEND_IN), squeeze=False)
        for r, rec in enumerate(part):
            sub = est
            for k, v in rec.items():
                sub = sub[fmt_column(sub[k]) == fmt_value(v)]
            bvals = sub[sub["fit"].isin(bayes)]
            bvals = bvals["median"].where(bvals["median"].notna(), bvals["estimate"])
            allv = np.concatenate([sub.loc[sub["fit"].isin(freq), "estimate"].to_numpy(dtype=float),
                                   bvals.to_numpy(dtype=float)])
            allv = allv[np.isfinite(allv)]
            if allv.size == 0:
                continue
            lo, hi = min(0.0, np.quantile(allv, 0.005)), np.quantile(allv, 0.99)
            hi = hi if hi > lo else lo + 1.0
            bins = np.linspace(lo, hi, 31)
            bw = bins[1] - bins[0]
            cond = ", ".join(f"{key_label(k)}={fmt_value(v)}" for k, v in rec.items())
            truth = sub["truth"].dropna()
            ax = axes[r, 0]
            for i, fit in enumerate(freq):
                v = sub.loc[sub["fit"] == fit, "estimate"].to_numpy(dtype=float)
                v = v[np.isfinite(v)]
                if v.size == 0:
                    continue
                zero = v == 0.0
                w = np.full(int((~zero).sum()), 1.0 / v.size)
                ax.hist(np.clip(v[~zero], lo, hi), bins=bins, weights=w, histtype="step", color=style.colour(fit),
                        lw=1.3, label=fit)
                if zero.any():
                    m = len(freq)
                    x0 = (i - (m - 1) / 2) * (bw * 0.9 / m)
                    ax.bar(x0, zero.mean(), width=bw * 0.9 / m, color=style.colour(fit), alpha=0.85,
                           edgecolor="black", lw=0.4, label=f"{fit}: σ̂²=0")
            if len(truth):
                ax.axvline(float(truth.iloc[0]), color="black", ls=":", lw=1.2)
            ax.set_ylabel("share of replicates")
            ax.set_title(f"{cond}: frequentist $\\hat\\sigma_A^2$", fontsize=9)
            if bayes:
                ax2 = axes[r, 1]
                for fit in bayes:
                    s = sub[sub["fit"] == fit]
                    v = s["median"].where(s["median"].notna(), s["estimate"]).to_numpy(dtype=float)
                    v = v[np.isfinite(v)]
                    if v.size:
                        ax2.hist(np.clip(v, lo, hi), bins=bins, weights=np.full(v.size, 1.0 / v.size),
                                 histtype="stepfilled", alpha=0.35, color=style.colour(fit), edgecolor=style.colour(fit),
                                 lw=1.2, label=fit)
                if len(truth):
                    ax2.axvline(float(truth.iloc[0]), color="black", ls=":", lw=1.2)
                ax2.set_title(f"{cond}: posterior medians of $\\sigma_A^2$", fontsize=9)
                ax2.sharex(ax)
        for ax in axes[-1, :]:
            ax.set_xlabel(r"estimate of $\sigma_A^2$")
        legend_below(fig, None, 6)
        paths.append(layout.part_path(path, part_i))
        save(fig, paths[-1])
    note = "" if bayes else " (The study has no Bayesian fit, so there is no posterior-median panel.)"
    if len(recs) < n_all:
        shown = "; ".join(", ".join(f"{_text_key(k)} = {fmt_value(v)}" for k, v in rec.items()) for rec in recs)
        note += (f" Only {len(recs)} of the study's {n_all} conditions are shown ({shown}): every other grid "
                 f"key at its first value, σ_A² spread over its grid; the summary table has every condition.")
    return FigureOut("sampling", title, caption + note, path=path, parts=paths[1:])


def _text_key(k: str) -> str:
    from .conditions import _TEXT_KEYS

    return _TEXT_KEYS.get(k, k)


# ----------------------------------------------------------------------------- Bayesian diagnostics
def _rate_rows(study: StudyOutputs, conds: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """Divergence rate and share of R-hat > 1.01 per (condition, Bayesian fit), with binomial MCSE."""
    out: dict[str, pd.DataFrame] = {}
    diag = diagnostic_rows(study)
    s = metric_rows(study, "divergence_rate")
    if not s.empty:
        out["divergence"] = attach_condition(s, conds, study.grid_keys)
    s = study.summary[study.summary["metric"].isin(("rhat_rate", "rhat_gt_101", "rhat_share"))]
    if not s.empty:
        out["rhat"] = attach_condition(s, conds, study.grid_keys)
    if diag is not None and not diag.empty:
        keys = [k for k in study.grid_keys if k in diag.columns]
        for name, col, flag in (("divergence", "divergences", diag["divergences"] > 0),
                                ("rhat", "rhat_max", diag["rhat_max"] >= 1.01)):
            if name in out or diag[col].isna().all():
                continue
            d = diag[keys + ["fit"]].copy()
            d["flag"] = flag.astype(float).where(diag[col].notna())   # a fit without it (quadrature): NaN
            g = d.groupby(keys + ["fit"], dropna=False)["flag"].agg(["mean", "count"]).reset_index()
            g["value"], g["mcse"] = g["mean"], np.sqrt(g["mean"] * (1 - g["mean"]) / g["count"].clip(lower=1))
            out[name] = attach_condition(g, conds, study.grid_keys)
    return out


def diagnostics_figure(study: StudyOutputs, style: FitStyle, path: Path) -> FigureOut:
    """Divergence rate and share of fits with R-hat > 1.01, per condition and Bayesian fit (±2 MCSE)."""
    title = "Bayesian sampler diagnostics"
    caption = ("Share of replicates whose sampler reported at least one divergent transition (left) and whose "
               "largest R-hat was ≥ 1.01 (right), per condition and Bayesian fit. Points: Monte Carlo "
               "estimates; bars: ±2 Monte Carlo SE, or the Wilson 95% interval where a share is 0 or 1.")
    bayes = [f for f in study.fit_names() if study.is_bayes(f)]
    if not bayes:
        return FigureOut("diagnostics", title, caption, skipped="The study has no Bayesian fit.")
    conds = condition_frame(study.summary, study.grid_keys)
    rates = _rate_rows(study, conds)
    # a fit without the diagnostic (quadrature has no R-hat) gets no empty series and no legend entry
    rates = {k: v[v["fit"].isin(bayes) & np.isfinite(v["value"].to_numpy(float))] for k, v in rates.items()}
    rates = {k: v for k, v in rates.items() if not v.empty}
    if not rates:
        return FigureOut("diagnostics", title, caption,
                         skipped="The study stores no divergence or R-hat information for its Bayesian fits.")
    rot, _ = layout.tick_rotation(len(conds))
    fig, axes = plt.subplots(1, len(rates), figsize=(layout.FIG_WIDTH_IN, 3.2 + (1.0 if rot == 90 else 0.0)),
                             squeeze=False)
    labels = {"divergence": "share with divergences", "rhat": r"share with $\hat R \geq 1.01$"}
    for ax, (name, rows) in zip(axes.flat, rates.items()):
        dot_panel(ax, rows.drop_duplicates(["cond", "fit"]), conds, style, bounds=PROPORTION,
                  flags=flagged_pairs(study))
        ax.set_ylabel(labels[name])
        ax.set_ylim(bottom=-0.02)
    # below the panels: inside them the legend covered the Wilson bars, which span most of the axis
    legend_below(fig, None, 4)
    save(fig, path)
    return FigureOut("diagnostics", title, caption, path=path)
