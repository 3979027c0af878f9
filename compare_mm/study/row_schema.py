"""The schema of the per-replicate rows of a study (**contract**): column → dtype → meaning.

The store writes these columns in this order (the condition's grid keys are inserted after ``replicate``,
a list value such as unbalanced group sizes as "2,3,5"); the runner builds its rows from them, the
report reads them, and the test fixtures build rows with them.  String columns are stored as Parquet
dictionaries (pandas categoricals).

Kinds of rows (``row_type``): ``param`` (one per replicate, fit and canonical parameter), ``group`` (one
per replicate, fit, random effect and group), and, for fits that request them, ``test`` and ``interval``:

Test rows (one per replicate, fit, requested test and tested variance component)
    parameter    the variance tested: ``sigma_a2`` (intercept effects) or ``sigma_b2`` (slope effects; with
                 ``(x | g)`` the slope's variance and its covariance are removed together); two-way:
                 ``sigma_b2`` (blocks) or ``sigma_ab2`` (block × treatment)
    truth        the true value of that variance (0: the row is under H₀ and counts towards the size)
    estimate     the test statistic (F for ``f_test``; the deviance or REML-criterion difference for the
                 LRTs — the fit's method; the exact RLRT is always REML-based)
    p_value      the p-value (naive χ², χ̄² mixture, exact F, exact RLRT — computed exactly on the balanced
                 one-way fast path, simulated with ``nsim`` draws elsewhere — or parametric bootstrap)
    level        the study's level; the test rejects when p_value < 1 − level
    ok, error    False and the message when computing the test raised (the fit's own rows stay ok)
Interval rows (one per replicate, fit, requested interval kind other than the fit's primary one, and
canonical parameter)
    estimate     the fit's point estimate
    lower, upper, interval_kind, level   as on param rows; NaN (kind "") where the kind gives no interval
                 for that parameter (e.g. Wald for a variance component of our fitter, profile for μ in
                 REML-profile mode)
    parameter    as on param rows, plus ``gamma`` (σ_A²/σ_e²) and ``icc`` (σ_A²/(σ_A² + σ_e²)) for the
                 ``exact`` kind (truth and estimate computed from the variances)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Column:
    """One column of the rows: its name, its dtype (``str``, ``int``, ``float`` or ``bool``), its meaning."""

    name: str
    dtype: str
    meaning: str


#: every column of the rows, in stored order
COLUMNS: tuple[Column, ...] = (
    Column("row_type", "str",
           "``\"param\"``, ``\"group\"``, ``\"test\"`` or ``\"interval\"`` (the last two only for fits that "
           "request ``tests`` / ``intervals``)"),
    Column("condition", "int",
           "condition index (0-based, order of ``manifest[\"conditions\"]``)"),
    Column("replicate", "int",
           "replicate index within the condition (0-based)"),
    Column("fit", "str",
           "fit name from the config (``\"F-test\"`` for the exact F test of σ_A² = 0)"),
    Column("backend", "str",
           "the fit's backend"),
    Column("method", "str",
           "the fit's method (\"\" for pymc; \"F\" for the F test)"),
    Column("parameter", "str",
           "param rows: canonical name ``mu`` | ``beta0`` | ``beta1`` | ``sigma_a2`` | ``sigma_b2`` | ``rho`` | "
           "``sigma_e2`` (F test: ``sigma_a2``); two-way: ``mu``, ``trt2`` … (α_i − α_1), ``sigma_b2``, "
           "``sigma_ab2``, ``sigma_e2`` (F tests: ``sigma_ab2``, ``sigma_b2``); group rows: ``u_a`` (intercept effects), ``u_b`` (slope "
           "effects); test rows: the variance tested"),
    Column("truth", "float",
           "the true value (group rows: the realised random effect u_i; test rows: the tested variance, 0 under H₀)"),
    Column("estimate", "float",
           "point estimate (posterior mean for pymc; F statistic for the F test; group rows: the predicted "
           "effect — BLUP / conditional mode / posterior mean; test rows: the test statistic)"),
    Column("se", "float",
           "standard error (posterior SD; group rows: conditional SD); NaN where the backend gives none"),
    Column("lower", "float",
           "lower limit of the interval used for coverage"),
    Column("upper", "float",
           "upper limit of the interval used for coverage"),
    Column("interval_kind", "str",
           "``wald`` | ``t`` | ``profile`` | ``exact`` | ``mls`` | ``eti`` | ``hdi`` …, ``wald-sd2`` when a variance interval was "
           "obtained by squaring an SD interval"),
    Column("level", "float",
           "the study's level (a test rejects when p_value < 1 − level)"),
    Column("median", "float",
           "posterior median (posterior fits only; NaN otherwise)"),
    Column("mode", "float",
           "posterior mode (posterior fits only; NaN otherwise)"),
    Column("hdi_lower", "float",
           "lower HDI limit at ``level`` (posterior fits only; NaN otherwise)"),
    Column("hdi_upper", "float",
           "upper HDI limit at ``level`` (posterior fits only; NaN otherwise)"),
    Column("p_value", "float",
           "the F test's p-value; test rows: the test's p-value (NaN otherwise)"),
    Column("ok", "bool",
           "False if the fit (test rows: the test) raised; then estimates are NaN and ``error`` holds the message"),
    Column("error", "str",
           "\"\" or ``ExceptionType: message``"),
    Column("converged", "bool",
           "the backend's convergence flag"),
    Column("boundary", "bool",
           "σ̂_A² exactly 0 (ANOVA: ≤ 0); for posteriors: the lower limit of the fit's sigma_a2 interval below "
           "``boundary_threshold`` × true σ_e²"),
    Column("singular", "bool",
           "the fit's own singular flag, scale-free as for a single fit (lme4's ``isSingular``: a diagonal "
           "element of the relative Cholesky factor θ below 1e-4 — σ̂_A² = 0, σ̂_B² = 0 or |ρ̂| = 1); "
           "closed-form one-way fits: σ̂_A² = 0; posteriors: False"),
    Column("divergences", "float",
           "number of divergent transitions (NaN for non-posterior fits)"),
    Column("max_rhat", "float",
           "largest R-hat over the fit's parameters (NaN for non-posterior fits)"),
    Column("min_ess", "float",
           "smallest bulk or tail effective sample size over the fit's parameters (NaN for non-posterior fits)"),
    Column("integration_error", "float",
           "quadrature posteriors (``sampler: quadrature``): the estimated integration error — the largest "
           "change of the reported ETI ends, median, mean and SD at the last grid refinement, in posterior SDs, "
           "to be below the fit's tolerance (1e-3); NaN for every other fit"),
    Column("elapsed_s", "float",
           "wall time of the fit (vectorised closed-form fits: the chunk's time / replicates)"),
    Column("group", "float",
           "group rows: group index i (0-based, generation order)"),
    Column("raw", "float",
           "group rows: no-pooling estimate of the effect, ȳ_i − ȳ (one-way) or per-group OLS coefficient minus "
           "its mean over groups (random slope)"),
    Column("test", "str",
           "test rows: ``f_test`` | ``lrt_chi2`` | ``lrt_chibar2`` | ``exact_rlrt`` | ``bootstrap_lrt`` (\"\" on"
           " other rows)"),
)

#: column order of the rows (grid keys are inserted after ``replicate``)
PARAM_COLUMNS: tuple[str, ...] = tuple(c.name for c in COLUMNS)
STRING_COLUMNS: tuple[str, ...] = tuple(c.name for c in COLUMNS if c.dtype == "str")
BOOL_COLUMNS: tuple[str, ...] = tuple(c.name for c in COLUMNS if c.dtype == "bool")
INT_COLUMNS: tuple[str, ...] = tuple(c.name for c in COLUMNS if c.dtype == "int")
#: value of a column a row does not set (NaN for the float columns)
DEFAULTS: dict[str, Any] = {**{c: "" for c in STRING_COLUMNS}, "ok": True, "converged": True, "boundary": False,
                           "singular": False}


__all__ = ["BOOL_COLUMNS", "COLUMNS", "Column", "DEFAULTS", "INT_COLUMNS", "PARAM_COLUMNS", "STRING_COLUMNS",
           "condition_label"]


def condition_label(value: Any) -> Any:
    """A grid value as stored in rows and summary.csv (lists become "2,3,5")."""
    if isinstance(value, list):
        return ",".join(f"{v:g}" if isinstance(v, float) else str(v) for v in value)
    return value
