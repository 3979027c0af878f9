"""Performance measures of a study, each with its Monte Carlo standard error (MCSE).

Formulas follow Morris, White & Crowther (2019), "Using simulation studies to evaluate statistical
methods", Stat. Med. 38:2074–2102, Table 6, with n_sim the number of usable replicates, θ̂_i the
estimates and θ the truth:

* bias = mean(θ̂_i − θ);                        MCSE = sqrt(S²_θ̂ / n_sim), S² the sample variance
* empirical SE = S_θ̂;                           MCSE = S_θ̂ / sqrt(2(n_sim − 1))
* MSE = mean((θ̂_i − θ)²);                       MCSE = sqrt(Σ((θ̂_i − θ)² − MSE)² / (n_sim(n_sim − 1)))
* RMSE = sqrt(MSE);                              MCSE = MCSE(MSE) / (2 RMSE)   (delta method, as SimDesign)
* coverage, boundary rate, rejection rate, failure / non-convergence / singular / divergence / R-hat rates —
  a proportion p:                                MCSE = sqrt(p(1 − p)/n); and ``ci_lower``/``ci_upper``, the
                                                 Wilson 95% interval (nonzero width at p = 0 or 1)
* mean interval width, mean SE, mean of any per-replicate quantity: MCSE = S/sqrt(n)
* ratios of means (pooled shrinkage slope ΣA_r/ΣB_r over replicates r, MSE(BLUP)/MSE(raw)): delta
  method on the replicate-level pairs, var(Ā/B̄) ≈ (S²_A − 2R̂ S_AB + R̂² S²_B) / (n B̄²).

Shrinkage (group rows): the empirical shrinkage factor is the pooled within-replicate regression slope of
the predicted effects on the raw group-mean deviations, Σ_r Σ_i (raw_ri − raw̄_r)(pred_ri − pred̄_r) /
Σ_r Σ_i (raw_ri − raw̄_r)²; its MCSE comes from the replicate-level numerators and denominators.
``mse_blup`` and ``mse_raw`` are the mean squared errors of predicted and raw effects against the realised
u; ``mse_ratio`` = mse_blup / mse_raw (< 1 is the gain from partial pooling).

Fit quality (one row per condition × fit, parameter ""): ``failure_rate``, ``nonconvergence_rate`` (the
backend's flag), ``singular_rate`` (frequentist fits: the fit's singular flag — lme4's ``isSingular``, scale-free
— or any variance component on its boundary), and for posteriors ``rhat_rate`` (max R-hat ≥ 1.01) and
``divergence_rate`` and ``low_ess_rate`` (smallest bulk/tail ESS below 100 per chain); ``boundary_rate`` per variance component (``sigma_a2``; ``sigma_b2``; ``rho`` for |ρ̂| = 1,
:func:`component_boundaries`).  Every row carries ``n_nonconverged`` and ``n_singular`` of its (condition, fit).

Policy: metrics are over every fit that did not raise; a fit with ``exclude_nonconverged: true`` has its
non-converged fits left out of every metric except the fit-quality rates (``excluded`` counts them).
Conditional metrics per parameter: ``coverage_boundary``/``bias_boundary`` and
``coverage_interior``/``bias_interior`` (frequentist fits; replicates with / without a variance component on
its boundary) and ``coverage_clean``/``bias_clean`` (posteriors with max R-hat < 1.01 and no divergence), with
the subset size in ``note``.

Underestimation (frequentist and posterior fits, σ_A², σ_B², σ_AB² with a true value > 0): ``underestimation_rate``,
the share of replicates whose estimated ratio σ̂²/σ̂_ε² is below the true σ²/σ_ε² (a proportion; under the fit's
exclusion policy like the estimate metrics) — the event λ̂ < λ₀ of the one-variance-component theory, whose
exact value the ``exact`` column carries for one-way conditions (:mod:`compare_mm.study.exact`).

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
from .exact import exact_value
from .mcse import Proportion, bias, empirical_se, mean_mcse, mse, proportion, ratio_of_means, rmse, wilson
from .columns import RowBlock, blocks_by
from .row_schema import PARAM_COLUMNS, condition_label
from .integrity import StoredChunks
from .store import read_manifest, read_split_rows, stored_chunks
from .summarise_groups import GroupRows, group_metrics
from .summarise_inference import exact_kind, interval_metrics, test_metrics

SUMMARY_HEAD = ("condition",)
SUMMARY_TAIL = ("fit", "parameter", "metric", "value", "mcse", "exact", "n_ok", "n_failed", "note", "backend",
                "method", "interval_kind", "ci_lower", "ci_upper", "n_nonconverged", "n_singular", "excluded")
#: metrics that are fit-quality rates: always over every fit that did not raise, whatever the policy
QUALITY_METRICS = ("failure_rate", "nonconvergence_rate", "singular_rate", "divergence_rate", "rhat_rate",
                   "mean_divergences", "mean_elapsed_s", "boundary_rate")


#: columns only group rows use, and the columns :func:`group_metrics` reads
GROUP_ONLY = ("group", "raw", "test")
#: columns no param-row metric reads (left out of the per-(condition, fit) copies)
PARAM_UNUSED = ("row_type", "level", "mode")
GROUP_COLUMNS = ("condition", "fit", "parameter", "replicate", "ok", "converged", "estimate", "raw", "truth")


# ---------------------------------------------------------------------------- per-group metrics
#: lme4's ``isSingular`` tolerance on the scale-free relative Cholesky factor θ: a copy of
#: compare_mm.fitter.optimize.SINGULAR_TOL (importing it would load scipy.optimize; a test keeps them equal)
SINGULAR_TOL = 1e-4
#: R-hat at or above which a posterior fit counts as not converged (Vehtari et al. 2021)
RHAT_LIMIT = 1.01
#: the note of a coverage row that is 0 by construction (a posterior's ETI for a variance whose truth is 0);
#: the report leaves such points out of its coverage panels
ZERO_BY_CONSTRUCTION = "coverage 0 by construction"


def _first_per_replicate(rep: np.ndarray, values: np.ndarray, index: pd.Index | None = None) -> pd.Series:
    """``values`` by replicate, the first row of each replicate (as ``drop_duplicates("replicate")``), in order
    of first appearance or reindexed to ``index``."""
    s = pd.Series(values, index=pd.Index(rep, name="replicate"))
    s = s[~s.index.duplicated()]
    return s if index is None else s.reindex(index)


def _wide(g: RowBlock, column: str, index: pd.Index) -> dict[str, pd.Series]:
    """parameter → replicate-indexed ``column`` of the ok param rows of one (condition, fit) (the first row of
    each (replicate, parameter)), reindexed to ``index``; only parameters that have an ok row."""
    ok = g["ok"].astype(bool)
    rep = g["replicate"][ok]
    par = g["parameter"][ok]
    val = g[column].astype(float)[ok]
    out = {}
    for name in ("sigma_e2", "sigma_a2", "sigma_b2", "sigma_ab2", "rho"):
        m = par == name
        if m.any():
            out[name] = _first_per_replicate(rep[m], val[m], index)
    return out


def component_boundaries(g: RowBlock, posterior: bool) -> dict[str, pd.Series]:
    """Per-replicate boundary flags (replicate-indexed boolean Series) of each variance component.

    Scale-free as for a single fit (lme4's ``isSingular``, the rule of :func:`compare_mm.fitter.optimize.is_singular`):
    σ_A² when θ_A = σ̂_A/σ̂_ε < 1e-4 or the stored ``boundary`` flag is set (σ̂_A² exactly 0; ANOVA ≤ 0;
    posteriors: the stored interval rule), σ_B² when σ̂_B/σ̂_ε < 1e-4, and the correlated pair (``rho``)
    when σ̂_B² is not on its boundary but the second diagonal element of θ, σ̂_B·sqrt(1 − ρ̂²)/σ̂_ε, is
    below 1e-4 — |ρ̂| = 1.  Posteriors get σ_A² only (the stored rule).
    """
    ok = g["ok"].astype(bool)
    st = _first_per_replicate(g["replicate"][ok], g["boundary"][ok])
    out: dict[str, pd.Series] = {"sigma_a2": st.astype(bool)}
    if posterior:
        return out
    est = _wide(g, "estimate", st.index)
    se2 = est["sigma_e2"] if "sigma_e2" in est else pd.Series(np.nan, st.index)
    with np.errstate(invalid="ignore", divide="ignore"):
        if "sigma_a2" in est:
            out["sigma_a2"] = out["sigma_a2"] | (np.sqrt(est["sigma_a2"].clip(lower=0) / se2) < SINGULAR_TOL)
        if "sigma_b2" in est:
            tb = np.sqrt(est["sigma_b2"].clip(lower=0) / se2)
            out["sigma_b2"] = tb < SINGULAR_TOL
            if "rho" in est:
                l22 = tb * np.sqrt((1 - est["rho"].clip(-1, 1) ** 2).clip(lower=0))
                out["rho"] = (~out["sigma_b2"]) & ~out["sigma_a2"] & (l22 < SINGULAR_TOL)
        if "sigma_ab2" in est:  # two-way: block × treatment variance
            out["sigma_ab2"] = np.sqrt(est["sigma_ab2"].clip(lower=0) / se2) < SINGULAR_TOL
    return out


def _param_metrics(g: RowBlock, truth: float, posterior: bool, parameter: str,
                   bounds: dict[str, pd.Series] | None = None, hit: pd.Series | None = None,
                   clean: pd.Series | None = None) -> list[tuple]:
    """(metric, value, mcse, note[, interval kind]) for one (condition, fit, parameter) of estimate rows; the kind
    is given where it is not the fit's primary one (a posterior's HDI).

    ``bounds`` are the per-replicate boundary flags of :func:`component_boundaries`; ``hit`` the
    replicate-indexed "some variance component on its boundary" flag behind the conditional metrics
    ``coverage_boundary``/``coverage_interior``/``bias_boundary``/``bias_interior``; ``clean`` (posteriors) the
    "R-hat < 1.01 and no divergence" flag behind ``coverage_clean``/``bias_clean``."""
    ok = g.take(g["ok"].astype(bool))
    est = ok["estimate"].astype(float)
    est = est[np.isfinite(est)]
    out = [("mean", *mean_mcse(est), ""), ("bias", *bias(est, truth), ""), ("empirical_se", *empirical_se(est), ""),
           ("rmse", *rmse(est, truth), ""), ("mse", *mse(est, truth), "")]
    se = ok["se"].astype(float)
    if np.isfinite(se).any():
        out.append(("mean_se", *mean_mcse(se), "model-based SE (posterior SD for posteriors)"))
    elif posterior and se.size and np.isinf(se).all():   # the posterior SD does not exist (backends.pymc.tails)
        out.append(("mean_se", np.inf, np.nan, "posterior SD: infinite in every replicate (the posterior has no "
                                              "finite variance under this prior and number of levels)"))
    elif posterior and se.size and np.isnan(se).all():
        out.append(("mean_se", np.nan, np.nan, "posterior SD: not computed (finite, but its integral converges too "
                                         "slowly under this prior and number of levels)"))
    if posterior:
        med = ok["median"].astype(float)
        med = med[np.isfinite(med)]
        if med.size:
            out.append(("bias_median", *bias(med, truth), "bias of the posterior median"))
    lo, hi = ok["lower"].astype(float), ok["upper"].astype(float)
    fin = np.isfinite(lo) & np.isfinite(hi)
    if fin.any():
        zero_note = ("true value 0: a posterior interval lies inside (0, ∞), so it cannot contain 0 "
                     f"({ZERO_BY_CONSTRUCTION})" if posterior else "") \
            if truth == 0 and parameter.startswith("sigma_") else ""
        out.append(("coverage", *proportion((lo[fin] <= truth) & (truth <= hi[fin])), zero_note))
        out.append(("mean_width", *mean_mcse(hi[fin] - lo[fin]), ""))
    if posterior:
        hlo, hhi = ok["hdi_lower"].astype(float), ok["hdi_upper"].astype(float)
        hfin = np.isfinite(hlo) & np.isfinite(hhi)
        if hfin.any():
            out.append(("coverage", *proportion((hlo[hfin] <= truth) & (truth <= hhi[hfin])), "HDI", "hdi"))
            out.append(("mean_width", *mean_mcse(hhi[hfin] - hlo[hfin]), "HDI", "hdi"))
    reps = ok["replicate"]
    e_all = ok["estimate"].astype(float)
    covered = (lo <= truth) & (truth <= hi)
    for flag, pairs in ((hit, (("boundary", True, "with some variance component on its boundary (a singular fit)"),
                               ("interior", False, "with every variance component off its boundary"))),
                        (clean, (("clean", True, f"with clean diagnostics (max R-hat < {RHAT_LIMIT:g} and no "
                                                 "divergence)"),))):
        if flag is None:
            continue
        f = flag.reindex(reps).fillna(False).to_numpy(bool)
        for name, want, text in pairs:
            sel = f == want
            e = e_all[sel & np.isfinite(e_all)]
            if e.size:
                out.append((f"bias_{name}", *bias(e, truth), f"bias over the {e.size} replicates {text}"))
            c = sel & fin
            if c.any():
                out.append((f"coverage_{name}", *proportion(covered[c]),
                            f"coverage over the {int(c.sum())} replicates {text}"))
    return out


def _boundary_metric(g: RowBlock, posterior: bool, parameter: str,
                     bounds: dict[str, pd.Series] | None) -> tuple | None:
    """``boundary_rate`` of one variance component (σ_A², σ_B², and |ρ| = 1 for a correlated pair), over every
    fit that did not raise (a fit-quality rate: the exclusion policy does not apply)."""
    ok = g.take(g["ok"].astype(bool))
    if parameter == "sigma_a2":
        note = ("posterior: share of replicates whose sigma_a2 interval (the fit's interval: ETI unless "
                "`interval: hdi`) has its lower limit below boundary_threshold × true sigma_e2 — a posterior "
                "is never exactly 0" if posterior
                else "share of replicates with sigma_a2 on its boundary: the estimate exactly 0 (ANOVA: ≤ 0) or, "
                     "scale-free as for a single fit, sigma_a/sigma_e < 1e-4")
        flags = bounds["sigma_a2"] if bounds and "sigma_a2" in bounds else None
        hits = flags.reindex(ok["replicate"]).fillna(False).to_numpy(bool) if flags is not None \
            else ok["boundary"].astype(bool)
        return ("boundary_rate", *proportion(hits), note)
    if bounds and parameter in bounds:
        note = (f"share of replicates with {parameter} on its boundary (its SD / sigma_e < 1e-4, scale-free as "
                "for a single fit; ANOVA: estimate ≤ 0)" if parameter in ("sigma_b2", "sigma_ab2") else
                "share of replicates with |rho| = 1 (a singular correlated pair: sigma_b·sqrt(1 − rho²)/sigma_e "
                "< 1e-4 with sigma_a2 and sigma_b2 off their boundaries)")
        return ("boundary_rate", *proportion(bounds[parameter].reindex(ok["replicate"]).fillna(False)
                                             .to_numpy(bool)), note)
    return None


#: variance components whose ratio to σ_ε² has an ``underestimation_rate``
RATIO_COMPONENTS = ("sigma_a2", "sigma_b2", "sigma_ab2")


def _underestimation_metric(est: dict[str, pd.Series], tru: dict[str, pd.Series], parameter: str) -> tuple | None:
    """``underestimation_rate`` of one variance component: the share of replicates whose estimated ratio
    λ̂ = σ̂²/σ̂_ε² (σ̂² of ``parameter``, both from the same fit) is below the true λ₀ = σ²/σ_ε², with its
    binomial MCSE — the event P(λ̂ < λ₀) of the one-component theory (Crainiceanu & Ruppert 2004), which is
    not the event σ̂² < σ² (σ̂_ε² varies too).  ``est``, ``tru``: :func:`_wide` of the fit's rows for the
    ``estimate`` and ``truth`` columns.  None unless λ₀ > 0 and the fit estimates σ_ε²."""
    if parameter not in est or "sigma_e2" not in est:
        return None
    lam0 = float(tru[parameter].iloc[0]) / float(tru["sigma_e2"].iloc[0])
    if not np.isfinite(lam0) or lam0 <= 0.0:
        return None
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = (est[parameter] / est["sigma_e2"]).to_numpy(dtype=float)
    ratio = ratio[~np.isnan(ratio)]
    if not ratio.size:
        return None
    return ("underestimation_rate", *proportion(ratio < lam0),
            f"share of replicates with {parameter}/sigma_e2 estimated below its true value {lam0:g} "
            "(the ratio of the fit's two estimates, not the event that the variance alone is underestimated)")


def _status_metrics(g: RowBlock, posterior: bool, bounds: dict[str, pd.Series] | None = None,
                    ess_limit: float = 400.0) -> list[tuple]:
    """Fit-level rates over replicates (one status per replicate): failure, non-convergence, singular fit and
    (posteriors) R-hat and divergences."""
    st = g.first_per("replicate")
    out = [("failure_rate", *proportion(~st["ok"].astype(bool)), "fits that raised an exception")]
    ok = st.take(st["ok"].astype(bool))
    out.append(("nonconvergence_rate", *proportion(~ok["converged"].astype(bool)), "backend's convergence flag"))
    if not posterior:
        sing = ok["singular"].astype(bool) if "singular" in ok.columns else np.zeros(len(ok), bool)
        if bounds:  # rows stored before the singular column: the scale-free component rule
            any_b = np.zeros(len(ok), bool)
            for fl in bounds.values():
                any_b |= fl.reindex(ok["replicate"]).fillna(False).to_numpy(bool)
            sing = sing | any_b
        out.append(("singular_rate", *proportion(sing),
                    "singular fit, scale-free as for a single fit (lme4's isSingular: a diagonal element of θ "
                    "below 1e-4 — some variance 0 or |rho| = 1)"))
    out.append(("mean_elapsed_s", *mean_mcse(st["elapsed_s"].astype(float)), "wall time per fit"))
    if posterior:
        div = ok["divergences"].astype(float)
        out.append(("divergence_rate", *proportion(div[np.isfinite(div)] > 0), "share of fits with ≥ 1 divergence"))
        out.append(("mean_divergences", *mean_mcse(div), ""))
        rh = ok["max_rhat"].astype(float)
        out.append(("rhat_rate", *proportion(rh[np.isfinite(rh)] >= RHAT_LIMIT),
                    f"share of fits with max R-hat ≥ {RHAT_LIMIT:g}"))
        ess = ok["min_ess"].astype(float) if "min_ess" in ok.columns else np.array([])
        ess = ess[np.isfinite(ess)]
        if ess.size:
            out.append(("low_ess_rate", *proportion(ess < ess_limit),
                        f"share of fits whose smallest bulk or tail ESS is below {ess_limit:g} (100 per chain, "
                        "Vehtari et al. 2021)"))
        ierr = ok["integration_error"].astype(float) if "integration_error" in ok.columns else np.array([])
        ierr = ierr[np.isfinite(ierr)]
        if ierr.size:   # a quadrature posterior: computed, not sampled; its check is the integration error
            out.append(("max_integration_error", float(np.max(ierr)), np.nan,
                        "largest estimated integration error over the fits (the change of the reported ETI "
                        "ends, median, mean and SD at the last grid refinement, in posterior SDs; above the "
                        "fit's tolerance the fit is flagged non-converged)"))
    errors = st.take(~st["ok"].astype(bool)).series("error")
    if len(errors):
        out[0] = (*out[0][:3], f"fits that raised an exception; most common: {errors.value_counts().index[0]}")
    return out


# ---------------------------------------------------------------------------- summary
def _with_ci(row: dict[str, Any]) -> dict[str, Any]:
    """A summary row with the Wilson interval of a proportion (``ci_lower``/``ci_upper``, NaN otherwise) and
    its value as a plain float."""
    v = row.get("value")
    lo, hi = wilson(float(v), v.n) if isinstance(v, Proportion) else (np.nan, np.nan)
    row["ci_lower"], row["ci_upper"] = lo, hi
    row["value"] = float(v) if v is not None else np.nan
    return row


def summarise_rows(rows: pd.DataFrame, manifest: dict[str, Any]) -> pd.DataFrame:
    """The tidy summary: one row per (condition, fit, parameter, metric) (see module docstring)."""
    from .store import frame_columns

    is_group = rows["row_type"].to_numpy() == "group"
    return _summarise(rows[~is_group], frame_columns(rows[is_group], GROUP_COLUMNS), manifest)


def _summarise(rows: pd.DataFrame, group_arrays: dict[str, Any], manifest: dict[str, Any]) -> pd.DataFrame:
    """:func:`summarise_rows` of the rows that are not group rows and the group rows' arrays
    (:func:`compare_mm.study.store.read_split_rows`)."""
    grid_keys = list(manifest.get("grid_keys", []))
    conditions = manifest.get("conditions", [])
    level = float(manifest.get("level", 0.95))
    default_model = manifest.get("model", "oneway")
    profile_modes = {f.get("name"): f.get("profile") for f in manifest.get("fits", []) if isinstance(f, dict)}
    fit_options = {str(f.get("name")): f for f in manifest.get("fits", []) if isinstance(f, dict)}
    if "singular" in rows.columns and rows["singular"].dtype != bool:  # chunks stored before the column existed read back as NaN (unknown: the
        # component rule of component_boundaries still applies)
        rows = rows.assign(singular=rows["singular"].astype(object).where(rows["singular"].notna(), False)
                           .astype(bool))
    out: list[dict[str, Any]] = []
    row_type = rows["row_type"].to_numpy()
    # only the columns each kind of row uses: a group row per group and replicate makes these frames
    # millions of rows long, and every groupby below copies the columns it is given
    unused = {*GROUP_ONLY, *PARAM_UNUSED, *(k for k in grid_keys if k not in PARAM_COLUMNS)}
    params = rows.loc[row_type == "param", [c for c in rows.columns if c not in unused]]
    group_rows = GroupRows(group_arrays)
    test_sets = {key: g for key, g in rows[row_type == "test"].groupby(["condition", "fit"], sort=False,
                                                                                observed=True)}
    interval_sets = {key: g for key, g in rows[row_type == "interval"].groupby(
        ["condition", "fit"], sort=False, observed=True)}
    for (c, fit), g in blocks_by(params, ["condition", "fit"]):
        cond = conditions[int(c)] if int(c) < len(conditions) else {}
        head = {"condition": int(c), **{k: condition_label(cond.get(k)) for k in grid_keys}}
        model = cond.get("model", default_model)
        backend, method = str(g["backend"][0]), str(g["method"][0])
        posterior = bool(capability(backend, "posterior", False))
        st = g.first_per("replicate")
        st_ok = st["ok"]
        n_ok, n_failed = int(st_ok.sum()), int((~st_ok).sum())
        okst = st.take(st_ok.astype(bool))
        n_nonconv = int((~okst["converged"].astype(bool)).sum())
        exclude = bool(fit_options.get(str(fit), {}).get("exclude_nonconverged", False))
        bounds = component_boundaries(g, posterior) if fit != "F-test" else {}
        st_index = pd.Index(okst["replicate"], name="replicate")  # okst.set_index("replicate").index
        hit = None  # some variance component on its boundary: the singular fit of compare_mm.fit
        if not posterior and bounds:
            hit = pd.Series(okst["singular"], index=st_index).astype(bool) if "singular" in okst.columns \
                else pd.Series(False, st_index)
            for fl in bounds.values():
                hit = hit | fl.reindex(st_index).fillna(False)
        base = dict(head, fit=fit, n_ok=n_ok, n_failed=n_failed, backend=backend, method=method,
                    n_nonconverged=n_nonconv, n_singular=int(hit.sum()) if hit is not None else 0,
                    excluded=n_nonconv if exclude else 0)

        pmode = profile_modes.get(fit)

        def emit(parameter, metric, value, mcse, note="", ikind=""):
            ex = exact_value(model, cond, posterior, method, parameter, metric, level,
                             exact_kind(ikind, pmode) if ikind.startswith("profile") else ikind)
            out.append(_with_ci(dict(base, parameter=parameter, metric=metric, value=value, mcse=mcse,
                                     exact=ex, note=note, interval_kind=ikind)))

        if fit == "F-test":  # one-way: sigma_a2; two-way: sigma_ab2 and sigma_b2
            for parameter, gp in g.groups("parameter"):
                p = gp["p_value"].astype(float)
                truth = float(gp["truth"][0])
                emit(str(parameter), "rejection_rate", *proportion(p[np.isfinite(p)] < 1 - level),
                     f"exact F test of {parameter} = 0 at alpha = {1 - level:g}: "
                     + ("size" if truth == 0 else "power"))
            continue
        used = g  # the rows behind the estimate metrics under the fit's policy
        if exclude and n_nonconv:
            used = g.take(~(g["ok"].astype(bool) & ~g["converged"].astype(bool)))
        clean = None
        if posterior:
            rh = pd.Series(okst["max_rhat"], index=st_index).astype(float)
            dv = pd.Series(okst["divergences"], index=st_index).astype(float)
            clean = (rh.fillna(1.0) < RHAT_LIMIT) & (dv.fillna(0.0) == 0)
        excl_note = f"; {n_nonconv} non-converged fit(s) excluded (exclude_nonconverged)" if exclude and n_nonconv \
            else ""
        all_sets = g.groups("parameter")
        ratio_wide = None  # (estimate, truth) of ``used`` by parameter, built once for the ratio metrics
        used_sets = dict(all_sets) if used is g else dict(used.groups("parameter"))
        for parameter, g_all in all_sets:
            gp = used_sets.get(parameter, g_all.take(slice(0, 0)))
            ikinds = gp.take(gp["ok"].astype(bool)).series("interval_kind")
            ikind = str(ikinds.mode().iloc[0]) if len(ikinds) and (ikinds != "").any() else ""
            for metric, value, mcse, note, *kind in _param_metrics(gp, float(gp["truth"][0]), posterior,
                                                                   parameter, bounds, hit, clean):
                kind_here = kind[0] if kind else ikind  # the HDI rows of a posterior fit name their kind
                emit(parameter, metric, value, mcse, (note + excl_note).lstrip("; "),
                     kind_here if "coverage" in metric or "width" in metric else "")
            bm = _boundary_metric(g_all, posterior, parameter, bounds)
            if bm is not None:
                emit(parameter, *bm)
            if parameter in RATIO_COMPONENTS:
                if ratio_wide is None:
                    ratio_wide = (_wide(used, "estimate", None), _wide(used, "truth", None))
                um = _underestimation_metric(*ratio_wide, parameter)
                if um is not None:
                    emit(parameter, um[0], um[1], um[2], (um[3] + excl_note))
        chains = fit_options.get(str(fit), {}).get("chains") or 4
        for metric, value, mcse, note in _status_metrics(g, posterior, bounds, 100.0 * float(chains)):
            emit("", metric, value, mcse, note)
        for effect, ge in group_rows.effects(int(c), str(fit), bool(exclude and n_nonconv)):
            for metric, value, mcse, note in group_metrics(ge):
                emit(effect, metric, value, mcse, note)
        if (c, fit) in test_sets or (c, fit) in interval_sets:  # tests and extra interval kinds
            n_reps = int(pd.Series(st["replicate"]).nunique())
            extra = []
            keep = (lambda f: f[~(f["ok"].to_numpy(bool) & ~f["converged"].to_numpy(bool))]) if exclude \
                else (lambda f: f)
            if (c, fit) in interval_sets:
                extra += interval_metrics(keep(interval_sets[(c, fit)]), n_reps, model, cond, posterior, method,
                                          level, pmode)
            if (c, fit) in test_sets:
                extra += test_metrics(keep(test_sets[(c, fit)]), n_reps, model, cond, method, level)
            out.extend(_with_ci(dict(base, **m)) for m in extra)
    frame = pd.DataFrame(out)
    cols = list(SUMMARY_HEAD) + grid_keys + list(SUMMARY_TAIL)
    if frame.empty:
        return pd.DataFrame(columns=cols)
    return frame[cols]


def write_summary(out_dir: str | Path, stored: StoredChunks | None = None) -> pd.DataFrame:
    """Recompute ``DIR/summary.csv`` from the stored rows (no refitting) and return it; ``stored``, the
    verified chunks (:func:`compare_mm.study.store.stored_chunks`), is found when not given."""
    out = Path(out_dir)
    manifest = read_manifest(out) or {}
    stored = stored if stored is not None else stored_chunks(out, manifest)
    # the columns no metric reads are not read (a scan of a Parquet column costs the same for every row)
    skip = [*PARAM_UNUSED, *GROUP_ONLY, *(k for k in manifest.get("grid_keys", []) if k not in PARAM_COLUMNS)]
    summary = _summarise(*read_split_rows(out, GROUP_COLUMNS, stored, skip=[c for c in skip if c != "test"]),
                         manifest)
    tmp = out / ".summary.csv.tmp"
    summary.to_csv(tmp, index=False)
    tmp.replace(out / "summary.csv")
    return summary


__all__ = ["bias", "empirical_se", "mean_mcse", "mse", "proportion", "ratio_of_means", "rmse", "summarise_rows",
           "write_summary"]
