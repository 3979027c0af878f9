"""Report tables: the summary with Monte Carlo SEs formatted "0.052 (0.005)", failures, reproducibility."""

from __future__ import annotations

import importlib.metadata as md
import math
from typing import Any

import numpy as np
import pandas as pd

from .conditions import condition_frame, attach_condition
from .flags import MARK
from .load import StudyOutputs
from .style import param_text

#: the packages whose versions make a study reproducible
PACKAGES: tuple[str, ...] = (
    "compare-mm", "numpy", "scipy", "pandas", "statsmodels", "pymc", "pytensor", "arviz", "nutpie",
    "formulaic", "pyarrow", "matplotlib", "dask", "pydantic",
)
KIND_NAMES = {"wald": "Wald", "profile": "Profile", "bootstrap": "Bootstrap", "eti": "ETI", "hdi": "HDI",
              "t": "t", "wald-sd2": "Wald, squared SD limits", "satterthwaite": "Satterthwaite t",
              "profile-sd2": "Profile, squared SD limits", "exact": "exact", "mls": "MLS"}
METRIC_ORDER = ("mean", "bias", "bias_median", "empirical_se", "mean_se", "rmse", "mse", "coverage", "mean_width",
                "coverage (HDI)", "mean_width (HDI)", "boundary_rate", "underestimation_rate", "shrinkage_factor",
                "mse_blup", "mse_raw", "mse_ratio", "rejection_rate", "failure_rate", "nonconvergence_rate",
                "singular_rate", "divergence_rate", "mean_divergences", "rhat_rate", "low_ess_rate", "coverage_boundary",
                "coverage_interior", "bias_boundary", "bias_interior", "coverage_clean", "bias_clean", "mean_elapsed_s")
#: the columns of the on-screen table (the CSV keeps every metric)
KEY_METRICS = ("bias", "rmse", "coverage", "mean_width", "coverage (HDI)", "mean_width (HDI)", "boundary_rate",
               "shrinkage_factor", "mse_ratio", "rejection_rate", "failure_rate", "nonconvergence_rate",
               "singular_rate", "divergence_rate", "rhat_rate")
PARAM_ORDER = ("mu", "beta0", "beta1", "trt2", "trt3", "sigma_a2", "sigma_b2", "sigma_ab2", "rho", "sigma_e2")
GROUP_TEXT = {"u_a": "a_i (intercept effects)", "u_b": "b_i (slope effects)", "": "(fit status)"}


def fmt_mc(value: float, mcse: float | None = None, ci_lower: float | None = None,
           ci_upper: float | None = None) -> str:
    """``value (mcse)`` rounded to the MCSE's first significant digit(s): ``0.052 (0.005)``.

    An MCSE that would need more than 8 decimals (< 2e-8) prints both to 2 significant digits
    (``8.7e-10 (2.1e-10)``).  Without a finite MCSE the value is printed with 4 significant digits; a
    proportion of exactly 0 or 1 with its Wilson 95% interval ``ci_lower``/``ci_upper`` given prints as
    ``0 [0, 0.24]``.
    """
    if value is None or not np.isfinite(value):
        return "–"
    if (value in (0.0, 1.0) and ci_lower is not None and ci_upper is not None and np.isfinite(ci_lower)
            and np.isfinite(ci_upper)):
        return f"{value:.0f} [{ci_lower:.2g}, {ci_upper:.2g}]"
    if mcse is None or not np.isfinite(mcse) or mcse <= 0:
        return f"{value:.4g}"
    e = math.floor(math.log10(mcse))
    dec = -e + (1 if mcse / 10**e < 2 else 0)
    if dec > 8:   # e.g. statsmodels' σ̂_A² ≈ 1e-9 on the boundary: 8 fixed decimals would print "0.00000000"
        return f"{value:.2g} ({mcse:.2g})"
    dec = max(dec, 0)
    return f"{value:.{dec}f} ({mcse:.{dec}f})"


def interval_label(kind: Any, level: float) -> str:
    """``"Wald 95%"`` from a stored interval kind (already-labelled kinds pass through)."""
    if kind is None or (isinstance(kind, float) and math.isnan(kind)) or str(kind) in ("", "nan", "None"):
        return ""
    k = str(kind)
    if "%" in k:
        return k
    return f"{KIND_NAMES.get(k.lower(), k)} {level * 100:g}%"


def formatted_summary(study: StudyOutputs, full: bool = True, flags: set[tuple[int, str]] | None = None
                      ) -> pd.DataFrame:
    """Wide table: one row per (condition, fit, parameter), one column per metric, cells ``value (mcse)``.

    ``interval`` names the kind and level of the interval behind ``coverage``/``mean_width``; HDI
    coverage and width of posterior fits are the separate columns ``coverage (HDI)``/``mean_width (HDI)``.
    ``exact …`` columns hold closed-form values where theory gives one.  ``full=False`` keeps the key
    metrics only (the on-screen table); the CSV has them all.  ``flags`` — (condition, fit) pairs whose
    non-convergence or singular rate is high (:func:`compare_mm.report.flags.flagged_pairs`) — mark that
    fit's rows with "†".
    """
    s = study.summary.copy()
    if s.empty:
        return pd.DataFrame()
    keys = [k for k in study.grid_keys if k in s.columns]
    conds = condition_frame(s, keys)
    s = attach_condition(s, conds, keys)
    kinds = s["interval_kind"].fillna("").astype(str) if "interval_kind" in s.columns else pd.Series("", s.index)
    hdi = (kinds == "hdi") & s["metric"].isin(["coverage", "mean_width"])
    s.loc[hdi, "metric"] = s.loc[hdi, "metric"] + " (HDI)"
    lo = s["ci_lower"] if "ci_lower" in s.columns else pd.Series(np.nan, s.index)
    hi = s["ci_upper"] if "ci_upper" in s.columns else pd.Series(np.nan, s.index)
    s["cell"] = [fmt_mc(v, m, a, b) for v, m, a, b in zip(s["value"], s["mcse"], lo, hi)]
    s["parameter_label"] = s["parameter"].map(lambda p: GROUP_TEXT.get(p) or param_text(p))
    if flags:
        s["fit"] = [f"{f} {MARK}" if (int(c), str(f)) in flags else f for c, f in zip(s["condition"], s["fit"])]
    idx = ["cond", "label", "fit", "parameter_label"]
    wide = s.pivot_table(index=idx, columns="metric", values="cell", aggfunc="first")
    exact = s[s["exact"].notna()].pivot_table(index=idx, columns="metric", values="exact", aggfunc="first")
    ivl = s[s["metric"].isin(["coverage", "mean_width"]) & (kinds != "")]
    ivl = ivl.assign(interval=ivl["interval_kind"].map(lambda k: interval_label(k, study.level)))
    ivl = ivl.groupby(idx)["interval"].first()
    metrics = sorted(wide.columns, key=lambda m: (METRIC_ORDER.index(m) if m in METRIC_ORDER else 99, m))
    if not full:
        metrics = [m for m in metrics if m in KEY_METRICS]
    wide = wide[metrics]
    wide.insert(0, "interval", ivl.reindex(wide.index).fillna(""))
    order = ["interval"]
    for m in metrics:  # each exact value right beside its Monte Carlo estimate
        order.append(m)
        if m in exact.columns:
            wide[f"exact {m}"] = exact[m].reindex(wide.index).map(lambda v: "" if pd.isna(v) else f"{v:.4g}")
            order.append(f"exact {m}")
    wide = wide[order]
    wide = wide.loc[:, [c for c in wide.columns if c == "interval" or wide[c].fillna("").astype(str).ne("").any()]]
    counts = s.groupby(idx)[["n_ok", "n_failed"]].max()
    wide = wide.join(counts)
    fit_order = {f: i for i, f in enumerate(study.fit_names())}
    out = wide.reset_index()
    out["_f"] = out["fit"].map(lambda f: fit_order.get(str(f).removesuffix(f" {MARK}"), 999))
    p_order = {param_text(p): i for i, p in enumerate(PARAM_ORDER)}
    p_order.update({GROUP_TEXT[k]: 50 + i for i, k in enumerate(GROUP_TEXT)})
    out["_p"] = out["parameter_label"].map(lambda p: p_order.get(p, 40))
    out = out.sort_values(["cond", "_f", "_p"]).drop(columns=["_f", "_p", "cond"])
    out = out.rename(columns={"label": "condition", "parameter_label": "parameter"})
    for c in ("n_ok", "n_failed"):
        out[c] = out[c].map(lambda v: "" if pd.isna(v) else str(int(v)))
    return out.fillna("").reset_index(drop=True)


# ----------------------------------------------------------------------------- failures
def _has_message(col: pd.Series) -> np.ndarray:
    """Rows whose error text is neither missing, blank nor ``"None"`` (judged once per category for the
    stored categorical column: it has a cell for every stored row)."""
    def blank(text: str) -> bool:
        return text.strip() == "" or text == "None"

    if isinstance(col.dtype, pd.CategoricalDtype):
        bad = np.array([not blank(str(c)) for c in col.cat.categories] + [False])
        codes = col.cat.codes.to_numpy()
        return bad[np.where(codes >= 0, codes, len(bad) - 1)]
    err = col.astype(object)
    return (err.notna() & ~err.astype(str).map(blank)).to_numpy(bool)


def failures(study: StudyOutputs, max_messages: int = 5) -> dict[str, Any]:
    """Failed fits: total, per fit, and the first distinct messages (from replicates and the manifest)."""
    out: dict[str, Any] = {"total": 0, "by_fit": {}, "messages": []}
    stored = study.row_columns() or []
    err_col = next((c for c in ("error", "error_message", "message") if c in stored), None)
    rep = study.rows([err_col, "condition", "replicate", "fit"]) if err_col is not None else None
    if rep is not None and err_col is not None:
        bad = rep[_has_message(rep[err_col])]
        id_cols = [c for c in ("condition", "replicate", "fit") if c in bad.columns]
        uniq = bad.drop_duplicates(id_cols) if id_cols else bad
        out["total"] = int(len(uniq))
        if "fit" in uniq.columns:
            out["by_fit"] = {str(k): int(v) for k, v in uniq["fit"].value_counts().items()}
        for _, r in uniq.iterrows():
            msg = str(r[err_col]).strip().splitlines()[0][:300]
            where = ", ".join(f"{c}={r[c]}" for c in id_cols)
            if msg not in [m for _, m in out["messages"]]:
                out["messages"].append((where, msg))
            if len(out["messages"]) >= max_messages:
                break
    man = study.manifest
    for key in ("failures", "n_failed", "failed"):
        v = man.get(key)
        if isinstance(v, (int, float)) and not out["total"]:
            out["total"] = int(v)
        elif isinstance(v, dict) and not out["by_fit"]:
            out["by_fit"] = {str(k): int(x) for k, x in v.items() if isinstance(x, (int, float))}
        elif isinstance(v, list) and not out["messages"]:
            out["messages"] = [("", str(m)[:300]) for m in v[:max_messages]]
            out["total"] = out["total"] or len(v)
    if not out["total"] and "n_failed" in study.summary.columns:
        nf = study.summary.groupby("fit")["n_failed"].max().fillna(0)
        if nf.sum() > 0:
            out["by_fit"] = {str(k): int(v) for k, v in nf.items() if v > 0}
            out["total"] = int(sum(out["by_fit"].values()))
    return out


# ----------------------------------------------------------------------------- reproducibility
def package_versions() -> dict[str, str]:
    """Installed versions (importlib.metadata) of the packages a study depends on."""
    out = {}
    for p in PACKAGES:
        try:
            out[p] = md.version(p)
        except md.PackageNotFoundError:
            out[p] = "not installed"
    return out


def reproducibility(study: StudyOutputs) -> dict[str, Any]:
    """Seed, replicates, run time, versions (the run's from the manifest, else the current ones), config."""
    man, cfg = study.manifest, study.config
    versions = man.get("versions") or man.get("package_versions")
    info: dict[str, Any] = {
        "study": study.name,
        "seed": cfg.get("seed", man.get("seed", "")),
        "replicates": cfg.get("replicates", man.get("replicates", "")),
        "level": study.level,
        "config hash": man.get("config_hash", man.get("hash", "")),
    }
    for k in ("status", "started", "finished", "elapsed_s", "executor", "workers", "scheduler", "platform"):
        if k in man:
            v = man[k]
            if k == "elapsed_s" and isinstance(v, (int, float)):
                n = len(man["sessions"]) if isinstance(man.get("sessions"), list) else 1
                k, v = "run time", (f"{v:.1f} s (wall clock, the sum of the run's {n} sessions: it was "
                                    f"interrupted and resumed)" if n > 1 else f"{v:.1f} s (wall clock)")
            info[k.replace("_", " ")] = v
    info["versions_source"] = "recorded with the run (manifest.json)" if isinstance(versions, dict) \
        else "installed when the report was written (the manifest records none)"
    info["versions"] = {str(k): str(v) for k, v in versions.items()} if isinstance(versions, dict) \
        else package_versions()
    info["config_text"] = study.config_text
    return info
