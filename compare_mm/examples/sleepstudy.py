"""The lecture's sleepstudy exercise (``compare-mm example sleepstudy``).

Belenky et al. (2003) sleep-deprivation data (lme4's ``sleepstudy``, shipped in ``compare_mm/data``):
``Reaction/10 ~ Days + (Days || Subject)`` (independent random intercept and slope by Subject) and
``Reaction/10 ~ Days + (Days | Subject)`` (correlated), fitted by REML with our fitter, statsmodels
MixedLM and PyMC, and compared with lme4 1.1-31's published fits (``compare_mm/data/sleepstudy_lme4.json``).

lme4's numbers are for ``Reaction``; for ``Reaction/10`` they follow exactly by scaling y → y/c, c = 10:
fixed effects, SEs, SDs and conditional modes ÷ c, variances ÷ c², correlations unchanged, and the
log-likelihood shifted by + n·log c for ML but by + (n − p)·log c for REML — the REML criterion
(Bates et al. 2015, eq. 34) depends on y only through (n − p)·log r², so only n − p terms rescale.
Every comparison below is made in the Reaction/10 scale.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

import numpy as np
import pandas as pd

from ..errors import CompareMMError
from ..results.schema import FitResult
from ..api import fit

SCALE = 10.0
MODELS: dict[str, str] = {
    "independent": "Reaction/10 ~ Days + (Days || Subject)",
    "correlated": "Reaction/10 ~ Days + (Days | Subject)",
}
LME4_KEYS: dict[str, str] = {
    "independent": "sleepstudy | Reaction ~ Days + (Days || Subject) | REML",
    "correlated": "sleepstudy | Reaction ~ Days + (Days | Subject) | REML",
}
#: rows of the comparison table: (label, canonical FitResult name or special key)
QUANTITIES: tuple[tuple[str, str], ...] = (
    ("β₀ (Intercept)", "(Intercept)"), ("β₁ Days", "Days"),
    ("σ_A (sd intercept)", "sd_(Intercept)|Subject"), ("σ_B (sd slope)", "sd_Days|Subject"),
    ("ρ (correlation)", "cor_Days.(Intercept)|Subject"), ("σ_ε (residual sd)", "sigma"),
    ("σ_A²", "var_(Intercept)|Subject"), ("σ_B²", "var_Days|Subject"), ("σ_ε²", "sigma2"),
    ("SE β₀ (PyMC: posterior SD)", "se_(Intercept)"), ("SE β₁ (PyMC: posterior SD)", "se_Days"),
    ("REML logLik", "loglik"),
)


def load_sleepstudy() -> pd.DataFrame:
    """The sleepstudy data shipped with the package (Subject as a string factor)."""
    with resources.files("compare_mm").joinpath("data", "sleepstudy.csv").open("r") as fh:
        data = pd.read_csv(fh, dtype={"Subject": str})
    data.attrs["name"] = "sleepstudy"
    return data


def load_lme4() -> dict[str, Any]:
    """lme4 1.1-31's fits of sleepstudy (for Reaction, not Reaction/10)."""
    with resources.files("compare_mm").joinpath("data", "sleepstudy_lme4.json").open("r") as fh:
        return json.load(fh)


def lme4_scaled(entry: dict[str, Any], nobs: int, c: float = SCALE) -> dict[str, float]:
    """lme4's estimates for ``Reaction/c`` from its fit to ``Reaction`` (module docstring), by canonical name."""
    out: dict[str, float] = {}
    for term, v in entry["fixef"].items():
        out[term] = v / c
        out[f"se_{term}"] = entry["se"][term] / c
    for row in entry["varcorr"]:
        grp = "Subject" if str(row["grp"]).startswith("Subject") else row["grp"]
        if grp == "Residual":
            out["sigma"], out["sigma2"] = row["sdcor"] / c, row["vcov"] / c**2
        elif row["var2"] is None:
            out[f"sd_{row['var1']}|{grp}"] = row["sdcor"] / c
            out[f"var_{row['var1']}|{grp}"] = row["vcov"] / c**2
        else:
            out[f"cor_{row['var2']}.{row['var1']}|{grp}"] = row["sdcor"]
    p = len(entry["fixef"])
    shift = (nobs - p) if entry["method"] == "REML" else nobs
    out["loglik"] = entry["logLik"] + shift * math.log(c)
    return out


def lme4_blups(entry: dict[str, Any], c: float = SCALE) -> pd.DataFrame:
    """lme4's conditional modes for ``Reaction/c`` (÷ c), one row per Subject: ``â_i``, ``b̂_i``."""
    b = entry["blups"]
    df = pd.DataFrame({"Subject": b["grp"], "term": b["term"], "value": np.asarray(b["condval"], float) / c})
    wide = df.pivot(index="Subject", columns="term", values="value")
    wide.columns = ["â_i" if t == "(Intercept)" else "b̂_i" for t in wide.columns]
    return wide


def format_table(frame: pd.DataFrame) -> pd.DataFrame:
    """Numbers as text: 6 significant digits, relative differences as 1.2e-08, missing as '—'."""
    out = frame.copy().astype(object)
    for col in out.columns:
        rel = "rel. diff" in str(col)
        out[col] = [("—" if v is None or (isinstance(v, float) and math.isnan(v)) else
                     (f"{v:.1e}" if rel else f"{v:.6g}") if isinstance(v, (float, np.floating)) else v)
                    for v in frame[col]]
    return out


def fit_values(fit: FitResult) -> dict[str, float]:
    """Point estimates by canonical name (posterior fits: posterior medians) plus SEs and logLik."""
    est = dict(fit.estimates())
    for s in fit.posterior:
        est[s.parameter] = s.median
    if fit.posterior:
        names = {s.parameter for s in fit.posterior}
        for name in list(est):  # variances from SD medians when the posterior has no variance summary
            if name.startswith("var_") and name not in names and f"sd_{name[4:]}" in names:
                est[name] = est[f"sd_{name[4:]}"] ** 2
        if "sigma2" not in names and "sigma" in names:
            est["sigma2"] = est["sigma"] ** 2
    for r in fit.fixef:
        est[f"se_{r.term}"] = r.se
    if fit.loglik is not None and not fit.posterior:
        est["loglik"] = fit.loglik
    return est


def _interval(fit: FitResult, name: str) -> str:
    for s in fit.posterior:
        if s.parameter == name:
            return f"[{s.eti_lower:.4g}, {s.eti_upper:.4g}]"
    return ""


@dataclass
class SleepstudyResult:
    """Fits and tables of the exercise; ``errors`` holds the one-line reason a backend was not shown."""

    data: pd.DataFrame
    fits: dict[tuple[str, str], FitResult] = field(default_factory=dict)
    errors: dict[tuple[str, str], str] = field(default_factory=dict)
    lme4: dict[str, dict[str, float]] = field(default_factory=dict)
    lme4_blups: dict[str, pd.DataFrame] = field(default_factory=dict)

    # ------------------------------------------------------------------ tables
    def variance_components(self) -> pd.DataFrame:
        """The lecture's REML estimates of σ_A², σ_B², σ_ε² (and ρ) for both models, Reaction/10 scale."""
        rows = []
        for model in MODELS:
            fit = self.fits.get((model, "reml"))
            if fit is None:
                continue
            e = fit.estimates()
            rows.append({"model": MODELS[model], "σ_A²": e.get("var_(Intercept)|Subject"),
                         "σ_B²": e.get("var_Days|Subject"), "σ_ε²": e.get("sigma2"),
                         "ρ": e.get("cor_Days.(Intercept)|Subject"),
                         "REML logLik": fit.loglik})
        return pd.DataFrame(rows)

    def fixed_effects(self) -> pd.DataFrame:
        """β̂ and SE per model (REML)."""
        rows = []
        for model in MODELS:
            fit = self.fits.get((model, "reml"))
            for r in (fit.fixef if fit else ()):
                rows.append({"model": model, "term": r.term, "estimate": r.estimate, "SE": r.se,
                             "t": r.estimate / r.se if r.se else np.nan})
        return pd.DataFrame(rows)

    def random_effects(self) -> pd.DataFrame:
        """Predicted random effects (conditional modes) per Subject for both models, with lme4's."""
        frames = []
        for model in MODELS:
            fit = self.fits.get((model, "reml"))
            if fit is None:
                continue
            df = pd.DataFrame([{"Subject": r.level, "term": r.term, "value": r.value} for r in fit.ranef])
            wide = df.pivot(index="Subject", columns="term", values="value")
            tag = "||" if model == "independent" else "|"
            wide.columns = [f"{'â_i' if c == '(Intercept)' else 'b̂_i'} ({tag})" for c in wide.columns]
            blups = self.lme4_blups.get(model)
            for col in list(wide.columns):
                frames.append(wide[[col]])
                if blups is not None:
                    frames.append(blups[[col.split(" ")[0]]].rename(columns=lambda c: f"lme4 {col}"))
        return pd.concat(frames, axis=1).reset_index() if frames else pd.DataFrame()

    def comparison(self, model: str) -> pd.DataFrame:
        """lme4 (scaled to Reaction/10) vs our REML (with relative difference), statsmodels, PyMC."""
        ref = self.lme4.get(model, {})
        ours = self.fits.get((model, "reml"))
        sm = self.fits.get((model, "statsmodels"))
        bayes = self.fits.get((model, "pymc"))
        vals = {k: fit_values(f) for k, f in (("ours", ours), ("sm", sm), ("bayes", bayes)) if f is not None}
        rows = []
        for label, name in QUANTITIES:
            if name not in ref and name not in vals.get("ours", {}):
                continue
            r: dict[str, Any] = {"quantity": label, "lme4 (÷10)": ref.get(name)}
            o = vals.get("ours", {}).get(name)
            r["compare_mm REML"] = o
            lm = ref.get(name)
            r["rel. diff vs lme4"] = (abs(o - lm) / abs(lm) if o is not None and lm not in (None, 0) else
                                      (abs(o - lm) if o is not None and lm is not None else None))
            if "sm" in vals or (model, "statsmodels") in self.errors:
                r["statsmodels REML"] = vals.get("sm", {}).get(name)
            if "bayes" in vals or (model, "pymc") in self.errors:
                r["PyMC posterior median"] = vals.get("bayes", {}).get(name) if name != "loglik" else None
                r["PyMC 95% ETI"] = _interval(bayes, name) if bayes is not None else ""
            if bayes is None and (model, "pymc") not in self.errors:
                r["quantity"] = label.replace(" (PyMC: posterior SD)", "")
            rows.append(r)
        return pd.DataFrame(rows)


def run_sleepstudy(*, bayes: bool = True, statsmodels: bool = True, draws: int = 500, tune: int = 500,
                   chains: int = 2, seed: int = 20261122, models: tuple[str, ...] = tuple(MODELS)
                   ) -> SleepstudyResult:
    """Fit the models (default both) with every requested backend; a backend that fails is recorded in
    ``errors``, not raised.  Our REML fit is always made (the panel plot and the comparison need it)."""
    data = load_sleepstudy()
    res = SleepstudyResult(data=data)
    ref = load_lme4()
    for model in models:
        formula = MODELS[model]
        res.lme4[model] = lme4_scaled(ref[LME4_KEYS[model]], nobs=len(data))
        res.lme4_blups[model] = lme4_blups(ref[LME4_KEYS[model]])
        res.fits[(model, "reml")] = fit(formula, data, backend="reml", method="REML")
        backends: list[tuple[str, dict[str, Any]]] = []
        if statsmodels:
            backends.append(("statsmodels", {}))
        if bayes:
            backends.append(("pymc", dict(draws=draws, tune=tune, chains=chains, seed=seed)))
        for backend, opts in backends:
            try:
                res.fits[(model, backend)] = fit(formula, data, backend=backend, method="REML", **opts)
            except CompareMMError as exc:
                res.errors[(model, backend)] = str(exc)
            except Exception as exc:  # a broken optional backend must not stop the exercise  # noqa: BLE001
                res.errors[(model, backend)] = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
    return res


__all__ = ["MODELS", "format_table", "lme4_blups", "SleepstudyResult", "lme4_scaled", "load_lme4", "load_sleepstudy", "run_sleepstudy"]
