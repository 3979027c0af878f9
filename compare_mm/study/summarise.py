"""Performance measures of a study, each with its Monte Carlo standard error (MCSE).

Formulas follow Morris, White & Crowther (2019), "Using simulation studies to evaluate statistical
methods", Stat. Med. 38:2074–2102, Table 6, with n_sim the number of usable replicates, θ̂_i the
estimates and θ the truth:

* bias = mean(θ̂_i − θ);                        MCSE = sqrt(S²_θ̂ / n_sim), S² the sample variance
* empirical SE = S_θ̂;                           MCSE = S_θ̂ / sqrt(2(n_sim − 1))
* MSE = mean((θ̂_i − θ)²);                       MCSE = sqrt(Σ((θ̂_i − θ)² − MSE)² / (n_sim(n_sim − 1)))
* RMSE = sqrt(MSE);                              MCSE = MCSE(MSE) / (2 RMSE)   (delta method, as SimDesign)
* coverage, boundary rate, rejection rate, failure / non-convergence / divergence rates — a proportion p:
                                                 MCSE = sqrt(p(1 − p)/n)
* mean interval width, mean SE, mean of any per-replicate quantity: MCSE = S/sqrt(n)
* ratios of means (pooled shrinkage slope ΣA_r/ΣB_r over replicates r, MSE(BLUP)/MSE(raw)): delta
  method on the replicate-level pairs, var(Ā/B̄) ≈ (S²_A − 2R̂ S_AB + R̂² S²_B) / (n B̄²).

Shrinkage (group rows): the empirical shrinkage factor is the pooled within-replicate regression slope of
the predicted effects on the raw group-mean deviations, Σ_r Σ_i (raw_ri − raw̄_r)(pred_ri − pred̄_r) /
Σ_r Σ_i (raw_ri − raw̄_r)²; its MCSE comes from the replicate-level numerators and denominators.
``mse_blup`` and ``mse_raw`` are the mean squared errors of predicted and raw effects against the realised
u; ``mse_ratio`` = mse_blup / mse_raw (< 1 is the gain from partial pooling).

Tests and extra interval kinds requested by a fit (``tests``, ``intervals``): ``size_<test>`` /
``power_<test>`` and ``coverage_<kind>`` / ``mean_width_<kind>``, see :mod:`compare_mm.study.summarise_inference`.

Exact values (:mod:`compare_mm.oneway.theory`) are attached for balanced one-way conditions: boundary
probability (REML, ML, ANOVA), E[σ̂_A²] − σ_A² (bias), coverage of the t and Wald intervals for μ, the
BLUP shrinkage factor, and the F test's size/power.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..backends.base import capability
from .config.schema import condition_label
from .exact import exact_value
from .mcse import bias, empirical_se, mean_mcse, mse, proportion, ratio_of_means, rmse
from .store import read_manifest, read_rows
from .summarise_inference import exact_kind, interval_metrics, test_metrics

SUMMARY_HEAD = ("condition",)
SUMMARY_TAIL = ("fit", "parameter", "metric", "value", "mcse", "exact", "n_ok", "n_failed", "note", "backend",
                "method", "interval_kind")


#: columns only group rows use, and the columns :func:`_group_metrics` reads
GROUP_ONLY = ("group", "raw", "test")
GROUP_COLUMNS = ("condition", "fit", "parameter", "replicate", "ok", "estimate", "raw", "truth")


# ---------------------------------------------------------------------------- per-group metrics
def _param_metrics(g: pd.DataFrame, truth: float, posterior: bool, parameter: str) -> list[tuple]:
    """(metric, value, mcse, note[, interval kind]) for one (condition, fit, parameter) of estimate rows; the kind
    is given where it is not the fit's primary one (a posterior's HDI)."""
    ok = g[g["ok"]]
    est = ok["estimate"].to_numpy(float)
    est = est[np.isfinite(est)]
    out = [("mean", *mean_mcse(est), ""), ("bias", *bias(est, truth), ""), ("empirical_se", *empirical_se(est), ""),
           ("rmse", *rmse(est, truth), ""), ("mse", *mse(est, truth), "")]
    se = ok["se"].to_numpy(float)
    if np.isfinite(se).any():
        out.append(("mean_se", *mean_mcse(se), "model-based SE (posterior SD for posteriors)"))
    if posterior:
        med = ok["median"].to_numpy(float)
        med = med[np.isfinite(med)]
        if med.size:
            out.append(("bias_median", *bias(med, truth), "bias of the posterior median"))
    lo, hi = ok["lower"].to_numpy(float), ok["upper"].to_numpy(float)
    fin = np.isfinite(lo) & np.isfinite(hi)
    if fin.any():
        zero_note = ("true value 0: a posterior interval lies inside (0, ∞), so it cannot contain 0 (coverage 0 "
                     "by construction)" if posterior else "") if truth == 0 and parameter.startswith("sigma_") else ""
        out.append(("coverage", *proportion((lo[fin] <= truth) & (truth <= hi[fin])), zero_note))
        out.append(("mean_width", *mean_mcse(hi[fin] - lo[fin]), ""))
    if posterior:
        lo, hi = ok["hdi_lower"].to_numpy(float), ok["hdi_upper"].to_numpy(float)
        fin = np.isfinite(lo) & np.isfinite(hi)
        if fin.any():
            out.append(("coverage", *proportion((lo[fin] <= truth) & (truth <= hi[fin])), "HDI", "hdi"))
            out.append(("mean_width", *mean_mcse(hi[fin] - lo[fin]), "HDI", "hdi"))
    if parameter == "sigma_a2":
        note = ("posterior: share of replicates whose sigma_a2 interval (the fit's interval: ETI unless "
                "`interval: hdi`) has its lower limit below boundary_threshold × true sigma_e2 — a posterior "
                "is never exactly 0" if posterior
                else "share of replicates with the estimate of sigma_a2 exactly 0 (ANOVA: ≤ 0)")
        out.append(("boundary_rate", *proportion(ok["boundary"].to_numpy(bool)), note))
    return out


def _status_metrics(g: pd.DataFrame, posterior: bool) -> list[tuple]:
    """Fit-level rates over replicates (one status per replicate)."""
    st = g.drop_duplicates("replicate")
    out = [("failure_rate", *proportion(~st["ok"].to_numpy(bool)), "fits that raised an exception")]
    ok = st[st["ok"]]
    out.append(("nonconvergence_rate", *proportion(~ok["converged"].to_numpy(bool)), "backend's convergence flag"))
    out.append(("mean_elapsed_s", *mean_mcse(st["elapsed_s"].to_numpy(float)), "wall time per fit"))
    if posterior:
        div = ok["divergences"].to_numpy(float)
        out.append(("divergence_rate", *proportion(div[np.isfinite(div)] > 0), "share of fits with ≥ 1 divergence"))
        out.append(("mean_divergences", *mean_mcse(div), ""))
        rh = ok["max_rhat"].to_numpy(float)
        out.append(("rhat_rate", *proportion(rh[np.isfinite(rh)] > 1.01), "share of fits with max R-hat > 1.01"))
    errors = st.loc[~st["ok"], "error"]
    if len(errors):
        out[0] = (*out[0][:3], f"fits that raised an exception; most common: {errors.value_counts().index[0]}")
    return out


def _group_metrics(g: pd.DataFrame) -> list[tuple]:
    """Shrinkage metrics from group rows of one (condition, fit, effect)."""
    ok = g[g["ok"] & np.isfinite(g["estimate"]) & np.isfinite(g["raw"])]
    if ok.empty:
        return []
    raw = ok["raw"].to_numpy(float)
    pred = ok["estimate"].to_numpy(float)
    u = ok["truth"].to_numpy(float)
    rep = ok["replicate"].to_numpy()
    _, inv = np.unique(rep, return_inverse=True)
    k = inv.max() + 1
    cnt = np.bincount(inv, minlength=k)
    rc = raw - (np.bincount(inv, raw, k) / cnt)[inv]
    pc = pred - (np.bincount(inv, pred, k) / cnt)[inv]
    A, B = np.bincount(inv, rc * pc, k), np.bincount(inv, rc * rc, k)
    mb = np.bincount(inv, (pred - u) ** 2, k) / cnt
    mr = np.bincount(inv, (raw - u) ** 2, k) / cnt
    return [
        ("shrinkage_factor", *ratio_of_means(A, B),
         "pooled within-replicate slope of predicted effects on raw group-mean deviations"),
        ("mse_blup", *mean_mcse(mb), "mean squared error of predicted effects vs realised u"),
        ("mse_raw", *mean_mcse(mr), "mean squared error of raw group-mean deviations vs realised u"),
        ("mse_ratio", *ratio_of_means(mb, mr), "mse_blup / mse_raw (< 1: gain from partial pooling)"),
    ]


# ---------------------------------------------------------------------------- summary
def summarise_rows(rows: pd.DataFrame, manifest: dict[str, Any]) -> pd.DataFrame:
    """The tidy summary: one row per (condition, fit, parameter, metric) (see module docstring)."""
    grid_keys = list(manifest.get("grid_keys", []))
    conditions = manifest.get("conditions", [])
    level = float(manifest.get("level", 0.95))
    default_model = manifest.get("model", "oneway")
    profile_modes = {f.get("name"): f.get("profile") for f in manifest.get("fits", []) if isinstance(f, dict)}
    out: list[dict[str, Any]] = []
    row_type = rows["row_type"].to_numpy()
    # only the columns each kind of row uses: a group row per group and replicate makes these frames
    # millions of rows long, and every groupby below copies the columns it is given
    params = rows.loc[row_type == "param", [c for c in rows.columns if c not in GROUP_ONLY]]
    groups = rows.loc[row_type == "group", [c for c in GROUP_COLUMNS if c in rows.columns]]
    group_sets = {key: g for key, g in groups.groupby(["condition", "fit"], sort=False, observed=True)}
    test_sets = {key: g for key, g in rows[row_type == "test"].groupby(["condition", "fit"], sort=False,
                                                                                observed=True)}
    interval_sets = {key: g for key, g in rows[row_type == "interval"].groupby(
        ["condition", "fit"], sort=False, observed=True)}
    for (c, fit), g in params.groupby(["condition", "fit"], sort=False, observed=True):
        cond = conditions[int(c)] if int(c) < len(conditions) else {}
        head = {"condition": int(c), **{k: condition_label(cond.get(k)) for k in grid_keys}}
        model = cond.get("model", default_model)
        backend, method = str(g["backend"].iloc[0]), str(g["method"].iloc[0])
        posterior = bool(capability(backend, "posterior", False))
        st = g.drop_duplicates("replicate")
        n_ok, n_failed = int(st["ok"].sum()), int((~st["ok"]).sum())
        base = dict(head, fit=fit, n_ok=n_ok, n_failed=n_failed, backend=backend, method=method)

        pmode = profile_modes.get(fit)

        def emit(parameter, metric, value, mcse, note="", ikind=""):
            ex = exact_value(model, cond, posterior, method, parameter, metric, level,
                             exact_kind(ikind, pmode) if ikind.startswith("profile") else ikind)
            out.append(dict(base, parameter=parameter, metric=metric, value=value, mcse=mcse,
                            exact=ex, note=note, interval_kind=ikind))

        if fit == "F-test":
            p = g["p_value"].to_numpy(float)
            truth = float(g["truth"].iloc[0])
            emit("sigma_a2", "rejection_rate", *proportion(p[np.isfinite(p)] < 1 - level),
                 f"exact F test of sigma_a2 = 0 at alpha = {1 - level:g}: "
                 + ("size" if truth == 0 else "power"))
            continue
        for parameter, gp in g.groupby("parameter", sort=False, observed=True):
            ikinds = gp.loc[gp["ok"], "interval_kind"]
            ikind = str(ikinds.mode().iloc[0]) if len(ikinds) and (ikinds != "").any() else ""
            for metric, value, mcse, note, *kind in _param_metrics(gp, float(gp["truth"].iloc[0]), posterior,
                                                                   parameter):
                kind_here = kind[0] if kind else ikind  # the HDI rows of a posterior fit name their kind
                emit(parameter, metric, value, mcse, note, kind_here if "coverage" in metric or "width" in metric
                     else "")
        for metric, value, mcse, note in _status_metrics(g, posterior):
            emit("", metric, value, mcse, note)
        gg = group_sets.get((c, fit))
        for effect, ge in ([] if gg is None else gg.groupby("parameter", sort=False, observed=True)):
            for metric, value, mcse, note in _group_metrics(ge):
                emit(effect, metric, value, mcse, note)
        if (c, fit) in test_sets or (c, fit) in interval_sets:  # tests and extra interval kinds
            n_reps = int(st["replicate"].nunique())
            extra = []
            if (c, fit) in interval_sets:
                extra += interval_metrics(interval_sets[(c, fit)], n_reps, model, cond, posterior, method, level,
                                          pmode)
            if (c, fit) in test_sets:
                extra += test_metrics(test_sets[(c, fit)], n_reps, model, cond, method, level)
            out.extend(dict(base, **m) for m in extra)
    frame = pd.DataFrame(out)
    cols = list(SUMMARY_HEAD) + grid_keys + list(SUMMARY_TAIL)
    if frame.empty:
        return pd.DataFrame(columns=cols)
    return frame[cols]


def write_summary(out_dir: str | Path) -> pd.DataFrame:
    """Recompute ``DIR/summary.csv`` from the stored rows (no refitting) and return it."""
    out = Path(out_dir)
    manifest = read_manifest(out) or {}
    summary = summarise_rows(read_rows(out), manifest)
    tmp = out / ".summary.csv.tmp"
    summary.to_csv(tmp, index=False)
    tmp.replace(out / "summary.csv")
    return summary


__all__ = ["bias", "empirical_se", "mean_mcse", "mse", "proportion", "ratio_of_means", "rmse", "summarise_rows",
           "write_summary"]
