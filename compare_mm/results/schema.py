"""FitResult: the one schema every backend returns (**contract**).

The JSON form (``FitResult.to_json()``, ``compare-mm fit --json``) is::

    {"backend": "reml", "method": "REML", "formula": "...", "nobs": 180,
     "converged": true, "singular": false, "loglik": -871.81, "criterion": 1743.63, "sigma": 25.59,
     "aic": ..., "bic": ...,
     "fixef":   [{"term": "(Intercept)", "estimate": 251.4, "se": 6.82, "df": null, "p_value": null}, ...],
     "varcorr": [{"group": "Subject", "term": "(Intercept)", "term2": null, "variance": 612.1, "sd": 24.74},
                 {"group": "Subject", "term": "(Intercept)", "term2": "Days", "corr": 0.066, "cov": 9.6}, ...,
                 {"group": "Residual", "term": null, "term2": null, "variance": 654.9, "sd": 25.59}],
     "ranef":   [{"group": "Subject", "level": "308", "term": "(Intercept)", "value": 2.26, "condsd": 12.07}],
     "theta": [...], "elapsed_s": 0.002, "warnings": [],
     "optimisation": {...}, "intervals": [...], "posterior": [...], "diagnostics": {...}, "tests": [...]}

Parameter names (``FitResult.estimates()``, intervals, posterior summaries) follow lme4's ``confint``:
fixed-effect term names, ``sd_(Intercept)|Subject``, ``cor_Days.(Intercept)|Subject``, ``sigma``; and,
for variances, ``var_(Intercept)|Subject`` and ``sigma2``.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field, fields
from functools import lru_cache
from statistics import NormalDist
from typing import Any

import numpy as np
import pandas as pd

from .summary import format_html, format_summary


@dataclass(frozen=True)
class FixefRow:
    """One fixed effect: estimate, standard error (posterior SD for a posterior), optional df and p."""

    term: str
    estimate: float
    se: float
    df: float | None = None
    p_value: float | None = None


@dataclass(frozen=True)
class VarCorrRow:
    """One row of VarCorr: a variance (term2 None) or a covariance/correlation (term2 set).

    The residual row has ``group="Residual"`` and ``term=None``.
    """

    group: str
    term: str | None
    term2: str | None = None
    variance: float | None = None
    sd: float | None = None
    corr: float | None = None
    cov: float | None = None

    @property
    def name(self) -> str:
        """lme4 confint name of the SD or correlation this row holds."""
        if self.group == "Residual":
            return "sigma"
        if self.term2 is None:
            return f"sd_{self.term}|{self.group}"
        return f"cor_{self.term2}.{self.term}|{self.group}"

    @property
    def variance_name(self) -> str:
        """Name of the variance this row holds (``var_<term>|<group>``, ``sigma2`` for the residual)."""
        return "sigma2" if self.group == "Residual" else f"var_{self.term}|{self.group}"


@dataclass(frozen=True)
class RanefRow:
    """One conditional mode (BLUP) of a random effect with its conditional SD (lme4's condVar)."""

    group: str
    level: str
    term: str
    value: float
    condsd: float

    @classmethod
    def many(cls, group: str, levels, term: str, values, condsds) -> list["RanefRow"]:
        """The rows of one effect of every level (``levels``, ``values``, ``condsds`` aligned), equal to
        ``RanefRow(group, level, term, value, condsd)`` each; built without the frozen ``__init__``'s
        per-field ``object.__setattr__`` calls, the largest per-fit cost of a batched study fit."""
        new = object.__new__
        out = []
        for lv, v, s in zip(levels, values, condsds):
            r = new(cls)
            r.__dict__.update(group=group, level=lv, term=term, value=v, condsd=s)
            out.append(r)
        return out


@dataclass(frozen=True)
class Interval:
    """An interval for one parameter.

    ``kind`` is one of ``"wald"``, ``"profile"``, ``"bootstrap"``, ``"eti"`` (posterior equal-tailed),
    ``"hdi"`` (posterior highest density).
    """

    parameter: str
    kind: str
    lower: float
    upper: float
    level: float = 0.95

    @property
    def label(self) -> str:
        """Human label: ``"Wald 95%"``, ``"HDI 95%"``."""
        names = {"wald": "Wald", "profile": "Profile", "bootstrap": "Bootstrap", "eti": "ETI", "hdi": "HDI"}
        return f"{names.get(self.kind, self.kind)} {self.level * 100:g}%"


@dataclass(frozen=True)
class PosteriorSummary:
    """Posterior summary of one parameter (Bayesian backends)."""

    parameter: str
    mean: float
    median: float
    mode: float
    sd: float
    eti_lower: float
    eti_upper: float
    hdi_lower: float
    hdi_upper: float
    rhat: float
    ess_bulk: float
    ess_tail: float
    level: float = 0.95


@dataclass(frozen=True)
class Optimisation:
    """How the optimiser went: evaluations of the objective, convergence, message."""

    optimizer: str
    evaluations: int
    converged: bool
    message: str = ""
    gradient_evaluations: int = 0


@dataclass(frozen=True)
class TestResult:
    """A hypothesis test on a fit (inference/)."""

    name: str
    group: str | None
    term: str | None
    statistic: float
    p_value: float
    nsim: int | None = None


@lru_cache(maxsize=512)
def _names_index(names: tuple[str, ...]) -> pd.Index:
    """The (immutable, shared) index of a vcov labelled by ``names``: building a string Index is most of
    the cost of a small labelled matrix, and a study makes thousands with the same names."""
    return pd.Index(list(names))


@dataclass(frozen=True, eq=False)
class FitResult:
    """The result of fitting one model by one backend (**contract**, see the module docstring).

    Point estimates of variance components are in ``varcorr``; for a posterior they are posterior
    means and every parameter's full summary is in ``posterior``.  ``vcov`` is the covariance matrix of
    the fixed effects in ``fixef`` order.  ``idata`` holds ArviZ InferenceData for posterior fits
    (PyMC: built on first use; ``.load()`` gives the ``arviz.InferenceData`` itself).
    """

    backend: str
    method: str
    formula: str
    nobs: int
    converged: bool
    singular: bool
    loglik: float | None
    criterion: float | None
    sigma: float
    fixef: tuple[FixefRow, ...]
    varcorr: tuple[VarCorrRow, ...]
    ranef: tuple[RanefRow, ...] = ()
    theta: tuple[float, ...] = ()
    vcov: np.ndarray | None = None
    aic: float | None = None
    bic: float | None = None
    ngroups: dict[str, int] = field(default_factory=dict)
    elapsed_s: float = 0.0
    warnings: tuple[str, ...] = ()
    optimisation: Optimisation | None = None
    intervals: tuple[Interval, ...] = ()
    posterior: tuple[PosteriorSummary, ...] = ()
    diagnostics: dict[str, Any] = field(default_factory=dict)
    tests: tuple[TestResult, ...] = ()
    options: dict[str, Any] = field(default_factory=dict)
    idata: Any = field(default=None, repr=False)
    #: the :class:`~compare_mm.model.design.Design` the fit was made from (set by ``compare_mm.fit`` and
    #: every backend's ``fit``); not part of the JSON, of equality or of the repr
    design: Any = field(default=None, compare=False, repr=False)
    #: the first line of the printed summary (the backend's ``title``); not part of the JSON
    title: str = field(default="", compare=False, repr=False)
    #: what the printed summary's ``Data:`` line names (the CSV file, or ``DataFrame.attrs["name"]``)
    data_name: str = field(default="", compare=False, repr=False)

    def __post_init__(self) -> None:
        # ``vcov`` is labelled by the fixed-effect names (lme4's vcov() has dimnames)
        if self.vcov is not None and not isinstance(self.vcov, pd.DataFrame):
            v = np.asarray(self.vcov, dtype=float)
            names = tuple(r.term for r in self.fixef)
            if v.shape == (len(names), len(names)):
                idx = _names_index(names)
                object.__setattr__(self, "vcov", pd.DataFrame(v, index=idx, columns=idx, copy=False))

    # ------------------------------------------------------------------ access
    def estimates(self) -> dict[str, float]:
        """Point estimates by canonical (lme4 confint) name, fixed effects first.

        Includes ``sd_*``, ``cor_*``, ``var_*``, ``sigma`` and ``sigma2``.
        """
        out: dict[str, float] = {r.term: r.estimate for r in self.fixef}
        for r in self.varcorr:
            if r.group == "Residual":
                out["sigma"] = r.sd if r.sd is not None else self.sigma
                out["sigma2"] = r.variance if r.variance is not None else self.sigma**2
            elif r.term2 is None:
                out[r.name] = r.sd
                out[r.variance_name] = r.variance
            else:
                out[r.name] = r.corr
        return out

    def interval(self, parameter: str, kind: str) -> Interval | None:
        """The interval of one kind for one parameter, if the result carries it."""
        for iv in self.intervals:
            if iv.parameter == parameter and iv.kind == kind:
                return iv
        return None

    # ------------------------------------------------------------------ export
    def to_dict(self) -> dict[str, Any]:
        """Plain-Python form of the JSON contract (no numpy types, NaN → None)."""
        out: dict[str, Any] = {}
        for f in fields(self):
            if f.name in ("idata", "vcov", "design", "title", "data_name"):
                continue
            out[f.name] = getattr(self, f.name)
        out["fixef"] = [asdict(r) for r in self.fixef]
        out["varcorr"] = [_varcorr_dict(r) for r in self.varcorr]
        out["ranef"] = [asdict(r) for r in self.ranef]
        out["intervals"] = [asdict(r) for r in self.intervals]
        out["posterior"] = [asdict(r) for r in self.posterior]
        out["tests"] = [asdict(r) for r in self.tests]
        out["optimisation"] = asdict(self.optimisation) if self.optimisation else None
        out["theta"] = list(self.theta)
        out["warnings"] = list(self.warnings)
        out["vcov"] = None if self.vcov is None else np.asarray(self.vcov).tolist()
        return _clean(out)

    def to_json(self, indent: int | None = 1) -> str:
        """The JSON contract as a string."""
        return json.dumps(self.to_dict(), indent=indent)

    def to_frame(self) -> pd.DataFrame:
        """One tidy row per parameter: ``parameter, kind, group, term, term2, estimate, se, lower, upper``.

        ``kind`` is ``fixef``, ``sd``, ``cor``, ``variance`` or ``sigma``; the interval columns hold the
        first interval the result carries for that parameter (``interval_kind`` says which).
        """
        rows: list[dict[str, Any]] = []
        for r in self.fixef:
            rows.append(dict(parameter=r.term, kind="fixef", group=None, term=r.term, term2=None,
                             estimate=r.estimate, se=r.se))
        for r in self.varcorr:
            if r.group == "Residual":
                rows.append(dict(parameter="sigma", kind="sigma", group="Residual", term=None, term2=None,
                                 estimate=r.sd, se=None))
            elif r.term2 is None:
                rows.append(dict(parameter=r.name, kind="sd", group=r.group, term=r.term, term2=None,
                                 estimate=r.sd, se=None))
            else:
                rows.append(dict(parameter=r.name, kind="cor", group=r.group, term=r.term, term2=r.term2,
                                 estimate=r.corr, se=None))
        frame = pd.DataFrame(rows, columns=["parameter", "kind", "group", "term", "term2", "estimate", "se"])
        lower, upper, ikind = [], [], []
        for name in frame["parameter"]:
            iv = next((i for i in self.intervals if i.parameter == name), None)
            lower.append(iv.lower if iv else np.nan)
            upper.append(iv.upper if iv else np.nan)
            ikind.append(iv.label if iv else None)
        frame["lower"], frame["upper"], frame["interval_kind"] = lower, upper, ikind
        frame.insert(0, "backend", self.backend)
        frame.insert(1, "method", self.method)
        return frame

    def __str__(self) -> str:
        return format_summary(self)

    def _repr_html_(self) -> str:
        """A compact HTML summary for Jupyter (variance components, fixed effects, convergence)."""
        return format_html(self)


def _varcorr_arrays(cov: np.ndarray, covariance: str):
    """Variances, SDs and (unstructured terms) the pairs ``(i, j, corr, cov)`` of covariance matrices
    ``cov`` (..., q, q): corr = G_ij / (sd_i sd_j), NaN when an SD is 0.  Elementwise, so a stack of R
    matrices gives what R calls on single matrices give, bit for bit."""
    cov = np.asarray(cov, dtype=float)
    var = np.diagonal(cov, axis1=-2, axis2=-1)
    sd = np.sqrt(np.maximum(var, 0.0))
    pairs = []
    if covariance == "unstructured":
        q = cov.shape[-1]
        for i in range(q):
            for j in range(i + 1, q):
                denom = sd[..., i] * sd[..., j]
                pos = denom > 0
                corr = np.where(pos, cov[..., i, j] / np.where(pos, denom, 1.0), math.nan)
                pairs.append((i, j, corr, cov[..., i, j]))
    return var, sd, pairs


def term_varcorr_rows(group: str, names: tuple[str, ...] | list[str], cov: np.ndarray,
                      covariance: str) -> list[VarCorrRow]:
    """lme4's VarCorr rows of one random-effects term with covariance matrix ``cov`` (G block).

    One row per effect (variance, SD), then for unstructured terms one row per pair (i < j) with
    corr = G_ij / (sd_i sd_j) (NaN when an SD is 0) and cov = G_ij.
    """
    var, sd, pairs = _varcorr_arrays(cov, covariance)
    rows = [VarCorrRow(group=group, term=name, variance=float(var[j]), sd=float(sd[j]))
            for j, name in enumerate(names)]
    rows.extend(VarCorrRow(group=group, term=names[i], term2=names[j], corr=float(corr), cov=float(c))
                for i, j, corr, c in pairs)
    return rows


def term_varcorr_columns(group: str, names: tuple[str, ...] | list[str], cov: np.ndarray,
                         covariance: str) -> dict[str, np.ndarray]:
    """:meth:`FitResult.estimates` of one random-effects term for a stack of covariance matrices ``cov``
    (R, q, q): ``sd_*``, ``var_*`` and ``cor_*`` names → arrays (R,), equal to the values
    :func:`term_varcorr_rows` gives matrix by matrix."""
    var, sd, pairs = _varcorr_arrays(cov, covariance)
    out: dict[str, np.ndarray] = {}
    for j, name in enumerate(names):
        row = VarCorrRow(group=group, term=name)
        out[row.name] = sd[..., j]
        out[row.variance_name] = var[..., j]
    for i, j, corr, _ in pairs:
        out[VarCorrRow(group=group, term=names[i], term2=names[j]).name] = corr
    return out


def wald_z(level: float) -> float:
    """z_{(1+level)/2}, the normal quantile of Wald intervals at ``level``."""
    return NormalDist().inv_cdf(0.5 + level / 2.0)


def wald_intervals(fixef: tuple[FixefRow, ...], level: float) -> tuple[Interval, ...]:
    """Wald intervals β̂ ± z_{(1+level)/2} SE for the fixed effects (lme4's confint(method="Wald"))."""
    z = wald_z(level)
    return tuple(Interval(parameter=r.term, kind="wald", lower=r.estimate - z * r.se,
                          upper=r.estimate + z * r.se, level=level) for r in fixef)


def _varcorr_dict(r: VarCorrRow) -> dict[str, Any]:
    d = {"group": r.group, "term": r.term, "term2": r.term2}
    if r.term2 is None:
        d.update(variance=r.variance, sd=r.sd)
    else:
        d.update(corr=r.corr, cov=r.cov)
    return d


def _clean(x: Any) -> Any:
    """Recursively turn numpy scalars/arrays into Python values and non-finite floats into None."""
    if isinstance(x, dict):
        return {str(k): _clean(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_clean(v) for v in x]
    if isinstance(x, np.ndarray):
        return _clean(x.tolist())
    if isinstance(x, (np.bool_, bool)):
        return bool(x)
    if isinstance(x, (np.integer,)):
        return int(x)
    if isinstance(x, (float, np.floating)):
        x = float(x)
        return x if math.isfinite(x) else None
    return x
