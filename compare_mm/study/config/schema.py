"""Study configuration: YAML → a validated, frozen :class:`StudyConfig`.

The YAML contract (every key below is relied on by users)::

    name: oneway_boundary       # required; a label for outputs
    seed: 20261122              # root of numpy.random.SeedSequence (default 0)
    replicates: 2000            # replicates per condition (≥ 1, required)
    level: 0.95                 # interval level for every fit (0 < level < 1; default 0.95)
    model: oneway               # oneway | random_slope | two_way
    grid:                       # lists; every combination is one condition (YAML order, last fastest)
      groups: [6, 18]
      per_group: [3, 10]
      sigma_a2: [0.0, 0.05, 0.2, 1.0]
    fixed:                      # scalar truths / design values not varied
      mu: 0.0
    fits:
      - {name: reml, backend: reml, method: REML}
      - {name: bayes, backend: pymc, prior: {sd_a: {half_normal: 1.0}}, draws: 1000, tune: 1000, chains: 2}
    chunk_size: 200             # optional: replicates per chunk (the unit of work); default by fit cost
    boundary_threshold: 1.0e-4  # optional: posterior "boundary" = interval lower limit of sigma_a2
                                #   below boundary_threshold × sigma_e2 (true residual variance)
    description: "..."          # optional free text
    cluster: slurm              # optional: a preset of config/clusters/ (compare_mm.study.presets, .clusters)

Keys of the data-generating process (in ``grid`` as lists or in ``fixed`` as scalars, each in at most
one of them; defaults in brackets):

* ``model: oneway`` — ``groups`` (a, ≥ 2), ``per_group`` (n; an integer ≥ 2 for a balanced design, or a
  list of group sizes for an unbalanced one — then ``groups`` may be omitted and must equal the list's
  length if given; inside ``grid`` a list of sizes is one value, e.g. ``per_group: [5, [2, 3, 5, 8]]``),
  ``sigma_a2`` (required, ≥ 0), ``sigma_e2`` [1.0] (> 0), ``mu`` [0.0].
* ``model: random_slope`` — ``groups`` [18], ``x`` [0, 1, …, 9] (covariate values in every group;
  ``fixed`` only), ``sigma_a2`` (intercept variance, required), ``sigma_b2`` (slope variance, required),
  ``rho`` [0.0] (|rho| < 1), ``sigma_e2`` [1.0], ``beta0`` [0.0], ``beta1`` [0.0].
* ``model: two_way`` (randomized complete block design, ``y ~ trt + (1 | block) + (1 | block:trt)``) —
  ``treatments`` (t, ≥ 2; may be omitted when ``trt_effects`` or a list ``per_cell`` gives it),
  ``trt_effects`` [zeros] (α_1 … α_t, a list; inside ``grid`` a list of effects is one value),
  ``blocks`` (b, ≥ 2; may be omitted with a list ``per_cell``), ``per_cell`` (n: an integer ≥ 2 for a
  balanced design, or a t × b list of lists of cell sizes ≥ 1 for an unbalanced one), ``sigma_b2``
  (block variance, required), ``sigma_ab2`` (block × treatment variance, required), ``sigma_e2`` [1.0],
  ``mu`` [0.0]; checked in :mod:`compare_mm.study.config.two_way`.  Balanced two-way conditions get the
  exact F tests of σ_AB² = 0 and σ_B² = 0 as fit ``F-test`` rows, and ``method: ANOVA`` fits (backend reml)
  in closed form (:mod:`compare_mm.twoway`).

Fit keys: ``name`` (unique; default from backend and method), ``backend`` (reml | statsmodels | pymc),
``method`` (REML | ML, and ANOVA for backend reml on balanced one-way models; ignored by pymc),
``prior`` (a mapping or the name of a preset of ``config/priors/``), ``sampler_preset`` (a name in
``config/samplers/``; see :mod:`compare_mm.study.presets`), ``draws``, ``tune``, ``chains``,
``parameterisation``, ``sampler``, ``until_converged`` (pymc only; ``true`` or ``{max_draws, rhat, ess}``:
more rounds of chains until R-hat and ESS meet the targets, see the pymc backend),
``covariance`` (unstructured | diagonal; random_slope only, default unstructured), ``interval``
(the fit's primary interval, behind the plain ``coverage``/``mean_width`` metrics: wald | t | profile |
bootstrap for frequentist fits, eti | hdi for pymc — default the first of ``intervals``, else wald, eti for
pymc), ``replicates`` (cap: this fit runs only on the first K replicates of every condition — keeps
expensive fits affordable), ``exclude_nonconverged`` (true | false, default false: the summary's
metrics of this fit are over all fits that did not raise; true drops the fits whose backend reported
non-convergence from every metric except the fit-quality rates — a summary policy, the stored rows and the
config hash do not depend on it), ``options`` (a mapping passed to the backend unchanged).

Inference keys (validated in :mod:`compare_mm.study.config.inference`)::

    tests: [f_test, lrt_chi2, lrt_chibar2, exact_rlrt, bootstrap_lrt]   # or `tests: all`
    intervals: [wald, profile, bootstrap, exact, mls]     # pymc: [eti, hdi]
    nsim: 10000        # simulations of the exact RLRT's null distribution (default 10,000; unused on
                       #   balanced one-way fits, whose exact RLRT p-value is computed exactly from F)
    bootstrap: 200     # parametric-bootstrap refits per replicate (bootstrap_lrt, bootstrap intervals)
    profile: ml        # profile intervals: ml (lme4's confint convention, default) or reml

Interval kinds of variance components: ``profile`` (profile likelihood, closed at 0: its lower limit of
σ_A² is exactly 0 when the boundary lies inside the interval; vectorised on balanced one-way fits,
:mod:`compare_mm.oneway.profile`), and, for ``backend: reml`` fits of the balanced one-way model (any
method, ANOVA included), ``exact`` — μ by the t interval, σ_e² by SSE/χ², the variance ratio
γ = σ_A²/σ_e² (rows ``parameter: gamma``) and the intraclass correlation (``icc``) by F, lower limits
truncated at 0 — and ``mls``, the modified large-sample interval for σ_A² (Graybill & Wang 1980;
:mod:`compare_mm.oneway.intervals`).  In a study mixing models or designs, ``exact`` and ``mls`` are
computed in the balanced one-way conditions and the others get no rows of these kinds.  They cover some
parameters only, so they are extra kinds (in ``intervals``), never the primary ``interval``.

``tests`` lists tests of every variance component of the fitted model (σ_A² for one-way; the slope with its
covariance for ``(x | g)``, each variance for ``(x || g)``); ``all`` means every test that applies to
every condition (``bootstrap_lrt`` only when ``bootstrap`` is given).  Tests and the profile and bootstrap
intervals are computed by compare_mm's own fitter, so they are for ``backend: reml`` fits (ANOVA fits: the
F test only).  Each test gives per replicate a row with its statistic and p-value; each interval kind
other than the primary one a row per parameter (schema in :mod:`compare_mm.study.row_schema`).

Every mistake is a :class:`~compare_mm.errors.ConfigError` with one sentence naming the key path.
"""

from __future__ import annotations

import hashlib
import itertools
import json
from typing import Any

from pydantic import BaseModel, ConfigDict, StrictBool


MODELS = ("oneway", "random_slope", "two_way")
METHODS = ("REML", "ML", "ANOVA")
INTERVALS = ("wald", "profile", "eti", "hdi", "t")
#: extra interval kinds (``intervals`` only; balanced one-way, backend reml)
ONEWAY_INTERVAL_KINDS = ("exact", "mls")
TESTS = ("f_test", "lrt_chi2", "lrt_chibar2", "exact_rlrt", "bootstrap_lrt")
#: fit keys added for inference; left out of the config hash while unset (old runs still resume)
INFERENCE_KEYS = ("tests", "intervals", "nsim", "bootstrap", "profile")
PYMC_ONLY = ("prior", "draws", "tune", "chains", "parameterisation", "sampler", "until_converged")
#: fit keys added later; left out of the config hash while unset (old runs still resume)
LATER_KEYS = INFERENCE_KEYS + ("until_converged",)

#: data-generating keys per model → default (None = required)
MODEL_KEYS: dict[str, dict[str, Any]] = {
    "oneway": {"groups": None, "per_group": None, "sigma_a2": None, "sigma_e2": 1.0, "mu": 0.0},
    "random_slope": {"groups": 18, "x": list(range(10)), "sigma_a2": None, "sigma_b2": None, "rho": 0.0,
                     "sigma_e2": 1.0, "beta0": 0.0, "beta1": 0.0},
    "two_way": {"treatments": None, "trt_effects": None, "blocks": None, "per_cell": None, "sigma_b2": None,
                "sigma_ab2": None, "sigma_e2": 1.0, "mu": 0.0},
}
VARIANCE_KEYS = ("sigma_a2", "sigma_b2", "sigma_ab2")


class FitConfig(BaseModel):
    """One entry of ``fits``."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    name: str | None = None
    backend: str = "reml"
    method: str | None = None
    prior: dict[str, Any] | None = None
    draws: int | None = None
    tune: int | None = None
    chains: int | None = None
    parameterisation: str | None = None
    sampler: str | None = None
    until_converged: bool | dict[str, Any] | None = None
    covariance: str | None = None
    interval: str | None = None
    replicates: int | None = None
    options: dict[str, Any] = {}
    tests: list[str] | str | None = None
    intervals: list[str] | None = None
    nsim: int | None = None
    bootstrap: int | None = None
    profile: str | None = None
    exclude_nonconverged: StrictBool = False

    @property
    def extra_intervals(self) -> list[str]:
        """Requested interval kinds other than the primary ``interval`` (one interval row each)."""
        return [k for k in (self.intervals or []) if k != self.interval]

    @property
    def test_list(self) -> list[str]:
        """The requested tests (``all`` expanded by validation)."""
        return list(self.tests) if isinstance(self.tests, list) else []

    @property
    def wants_inference(self) -> bool:
        """True if the fit asks for any test or any interval beyond what the backend returns."""
        kinds = set(self.intervals or []) | {self.interval}
        return bool(self.test_list) or bool(kinds & {"profile", "bootstrap"})

    def backend_options(self, level: float) -> dict[str, Any]:
        """The options handed to ``backend.fit`` (seed added per replicate by the runner)."""
        out: dict[str, Any] = dict(self.options)
        out["level"] = level
        for key in PYMC_ONLY:
            value = getattr(self, key)
            if value is not None:
                out[key] = value
        return out


class StudyConfig(BaseModel):
    """A whole study file."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    name: str
    seed: int = 0
    replicates: int
    level: float = 0.95
    model: str = "oneway"
    grid: dict[str, list[Any]] = {}
    fixed: dict[str, Any] = {}
    fits: list[FitConfig]
    chunk_size: int | None = None
    boundary_threshold: float = 1e-4
    description: str = ""
    cluster: dict[str, Any] | None = None  # resolved by compare_mm.study.presets; not in the hash

    # ------------------------------------------------------------------ derived
    @property
    def config_hash(self) -> str:
        """sha256 of the canonical JSON of the validated config (what ``--resume`` compares)."""
        data = self.model_dump(mode="json")
        data.pop("cluster", None)  # where the chunks run does not change the rows
        for fit in data.get("fits", []):
            for key in LATER_KEYS:
                if fit.get(key) is None:
                    fit.pop(key, None)
            fit.pop("exclude_nonconverged", None)  # a summary policy: the rows do not depend on it
        text = json.dumps(data, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()

    @property
    def grid_keys(self) -> list[str]:
        """Grid keys in YAML order (the columns of summary.csv)."""
        return list(self.grid)

    @property
    def models(self) -> list[str]:
        """The models of the study: ``[model]``, or the values of ``grid.model`` in a mixed study."""
        return list(self.grid["model"]) if "model" in self.grid else [self.model]

    def conditions(self) -> list[dict[str, Any]]:
        """Every combination of grid values (last key fastest), merged with fixed values and defaults.

        Each condition holds its ``model`` and only the keys of that model; in a mixed study
        (``grid.model``) combinations that differ only in keys of the other model are dropped.
        """
        keys = list(self.grid)
        out, seen = [], set()
        for combo in itertools.product(*(self.grid[k] for k in keys)):
            raw = dict(zip(keys, combo))
            model = raw.get("model", self.model)
            allowed = MODEL_KEYS[model]
            cond: dict[str, Any] = {k: v for k, v in allowed.items() if v is not None}
            cond.update({k: v for k, v in self.fixed.items() if k in allowed})
            cond.update({k: v for k, v in raw.items() if k in allowed})
            if model == "oneway" and isinstance(cond.get("per_group"), list):
                cond["groups"] = len(cond["per_group"])
            if model == "two_way":
                _complete_two_way(cond)
            cond["model"] = model
            key = json.dumps(cond, sort_keys=True)
            if key not in seen:
                seen.add(key)
                out.append(cond)
        return out

    def fit_names(self) -> list[str]:
        """Fit names in config order."""
        return [f.name for f in self.fits]  # type: ignore[misc]


def _complete_two_way(cond: dict[str, Any]) -> None:
    """Fill a two-way condition's derived keys: t and b from a list ``per_cell`` or ``trt_effects``, and
    ``trt_effects`` zeros when not given (validated already)."""
    cells = cond.get("per_cell")
    if isinstance(cells, list):
        cond.setdefault("treatments", len(cells))
        cond.setdefault("blocks", len(cells[0]))
    if "treatments" not in cond and isinstance(cond.get("trt_effects"), list):
        cond["treatments"] = len(cond["trt_effects"])
    if "trt_effects" not in cond and "treatments" in cond:
        cond["trt_effects"] = [0.0] * int(cond["treatments"])


def balanced_two_way(cfg: "StudyConfig") -> bool:
    """True if every condition is a balanced two-way design."""
    return cfg.models == ["two_way"] and all(not isinstance(c.get("per_cell"), list) for c in _raw_conditions(cfg))


# ---------------------------------------------------------------------------- loading
def _sizes_given(cfg: StudyConfig) -> bool:
    values = cfg.grid.get("per_group", [cfg.fixed.get("per_group")])
    return all(isinstance(v, list) for v in values)


def _raw_conditions(cfg: StudyConfig) -> list[dict[str, Any]]:
    keys = list(cfg.grid)
    return [dict(cfg.fixed, **dict(zip(keys, c))) for c in itertools.product(*(cfg.grid[k] for k in keys))]


def balanced_oneway(cfg: StudyConfig) -> bool:
    """True if every condition is a balanced one-way design."""
    return cfg.models == ["oneway"] and all(not isinstance(c.get("per_group"), list) for c in _raw_conditions(cfg))


