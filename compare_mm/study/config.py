"""Study configuration: YAML → a validated, frozen :class:`StudyConfig`.

The YAML contract (issue 4; every key below is relied on by users)::

    name: oneway_boundary       # required; a label for outputs
    seed: 20261122              # root of numpy.random.SeedSequence (default 0)
    replicates: 2000            # replicates per condition (≥ 1, required)
    level: 0.95                 # interval level for every fit (0 < level < 1; default 0.95)
    model: oneway               # oneway | random_slope
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

Fit keys: ``name`` (unique; default from backend and method), ``backend`` (reml | statsmodels | pymc),
``method`` (REML | ML, and ANOVA for backend reml on balanced one-way models; ignored by pymc),
``prior`` (a mapping or the name of a preset of ``config/priors/``), ``sampler_preset`` (a name in
``config/samplers/``; see :mod:`compare_mm.study.presets`), ``draws``, ``tune``, ``chains``, ``parameterisation``, ``sampler`` (pymc only),
``covariance`` (unstructured | diagonal; random_slope only, default unstructured), ``interval``
(the fit's primary interval, behind the plain ``coverage``/``mean_width`` metrics: wald | t | profile |
bootstrap for frequentist fits, eti | hdi for pymc — default the first of ``intervals``, else wald, eti for
pymc), ``replicates`` (cap: this fit runs only on the first K replicates of every condition — keeps
expensive fits affordable), ``options`` (a mapping passed to the backend unchanged).

Inference keys (issue 6; validated in :mod:`compare_mm.study.config_tests`)::

    tests: [f_test, lrt_chi2, lrt_chibar2, exact_rlrt, bootstrap_lrt]   # or `tests: all`
    intervals: [wald, profile, bootstrap]     # pymc: [eti, hdi]
    nsim: 10000        # simulations of the exact RLRT's null distribution (default 10,000; unused on
                       #   balanced one-way fits, whose exact RLRT p-value is computed exactly from F)
    bootstrap: 200     # parametric-bootstrap refits per replicate (bootstrap_lrt, bootstrap intervals)
    profile: ml        # profile intervals: ml (lme4's confint convention, default) or reml

``tests`` lists tests of every variance component of the fitted model (σ_A² for one-way; the slope with its
covariance for ``(x | g)``, each variance for ``(x || g)``); ``all`` means every test that applies to
every condition (``bootstrap_lrt`` only when ``bootstrap`` is given).  Tests and the profile and bootstrap
intervals are computed by compare_mm's own fitter, so they are for ``backend: reml`` fits (ANOVA fits: the
F test only).  Each test gives per replicate a row with its statistic and p-value; each interval kind
other than the primary one a row per parameter (schema in :mod:`compare_mm.study.store`).

Every mistake is a :class:`~compare_mm.errors.ConfigError` with one sentence naming the key path.
"""

from __future__ import annotations

import difflib
import hashlib
import itertools
import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from ..errors import ConfigError
from .presets import read_yaml_file, resolve_presets

MODELS = ("oneway", "random_slope")
METHODS = ("REML", "ML", "ANOVA")
INTERVALS = ("wald", "profile", "eti", "hdi", "t")
TESTS = ("f_test", "lrt_chi2", "lrt_chibar2", "exact_rlrt", "bootstrap_lrt")
#: fit keys added for inference; left out of the config hash while unset (old runs still resume)
INFERENCE_KEYS = ("tests", "intervals", "nsim", "bootstrap", "profile")
PYMC_ONLY = ("prior", "draws", "tune", "chains", "parameterisation", "sampler")

#: data-generating keys per model → default (None = required)
MODEL_KEYS: dict[str, dict[str, Any]] = {
    "oneway": {"groups": None, "per_group": None, "sigma_a2": None, "sigma_e2": 1.0, "mu": 0.0},
    "random_slope": {"groups": 18, "x": list(range(10)), "sigma_a2": None, "sigma_b2": None, "rho": 0.0,
                     "sigma_e2": 1.0, "beta0": 0.0, "beta1": 0.0},
}
VARIANCE_KEYS = ("sigma_a2", "sigma_b2")


class FitConfig(BaseModel):
    """One entry of ``fits``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str | None = None
    backend: str = "reml"
    method: str | None = None
    prior: dict[str, Any] | None = None
    draws: int | None = None
    tune: int | None = None
    chains: int | None = None
    parameterisation: str | None = None
    sampler: str | None = None
    covariance: str | None = None
    interval: str | None = None
    replicates: int | None = None
    options: dict[str, Any] = {}
    tests: list[str] | str | None = None
    intervals: list[str] | None = None
    nsim: int | None = None
    bootstrap: int | None = None
    profile: str | None = None

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

    model_config = ConfigDict(extra="forbid", frozen=True)

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
            for key in INFERENCE_KEYS:
                if fit.get(key) is None:
                    fit.pop(key, None)
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
            cond["model"] = model
            key = json.dumps(cond, sort_keys=True)
            if key not in seen:
                seen.add(key)
                out.append(cond)
        return out

    def fit_names(self) -> list[str]:
        """Fit names in config order."""
        return [f.name for f in self.fits]  # type: ignore[misc]


# ---------------------------------------------------------------------------- loading
def load_config(source: str | Path | dict[str, Any]) -> StudyConfig:
    """Read and validate a study (a YAML file path, YAML text is not accepted, or a mapping).

    Raises
    ------
    ConfigError
        One sentence naming the offending key path.
    """
    if isinstance(source, dict):
        data = source
    else:
        path = Path(source)
        if not path.is_file():
            raise ConfigError(f"Study file '{path}' does not exist.")
        data = read_yaml_file(path, "Study file")
    if not isinstance(data, dict):
        raise ConfigError("A study file must be a YAML mapping with keys name, replicates, model, grid, fits.")
    data = resolve_presets(data, None if isinstance(source, dict) else Path(source).parent)
    try:
        cfg = StudyConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_translate(exc, data)) from None
    return _check(cfg)


def _path(loc: tuple) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


_TYPE_WORDS = {
    "int": "an integer", "float": "a number", "string": "a string", "dict": "a mapping",
    "list": "a list", "bool": "true or false", "model": "a mapping",
}


def _lookup(data: Any, loc: tuple) -> Any:
    for part in loc:
        try:
            data = data[part]
        except (KeyError, IndexError, TypeError):
            return None
    return data


def _translate(exc: ValidationError, data: dict[str, Any]) -> str:
    """pydantic's first error → one sentence naming the key path."""
    err = exc.errors()[0]
    loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and p.startswith(("function-", "list["))))
    kind = err["type"]
    if kind == "extra_forbidden":
        key, parent = loc[-1], loc[:-1]
        fields = FitConfig.model_fields if parent[:1] == ("fits",) else StudyConfig.model_fields
        near = difflib.get_close_matches(str(key), list(fields), n=1)
        where = f"{_path(parent)}: " if parent else ""
        hint = f" — did you mean '{near[0]}'?" if near else f"; valid keys are {', '.join(fields)}."
        return f"{where}unknown key '{key}'{hint}"
    if kind == "missing":
        return f"{_path(loc)}: required key is missing."
    value = _lookup(data, loc)
    for word, text in _TYPE_WORDS.items():
        if kind.startswith(word):
            return f"{_path(loc)}: expected {text}, got {value!r}."
    return f"{_path(loc)}: {err['msg']}, got {value!r}."


# ---------------------------------------------------------------------------- semantics
def _number(path: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"{path}: expected a number, got {value!r}.")
    return float(value)


def _int(path: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not (isinstance(value, int) or (isinstance(value, float) and value.is_integer())):
        raise ConfigError(f"{path}: expected an integer, got {value!r}.")
    if value < minimum:
        raise ConfigError(f"{path}: must be ≥ {minimum}, got {value!r}.")
    return int(value)


def _check_value(key: str, path: str, value: Any) -> None:
    """Validate one data-generating value (a grid element or a fixed value)."""
    if key in VARIANCE_KEYS:
        if _number(path, value) < 0:
            raise ConfigError(f"{path}: variance must be ≥ 0, got {value!r}.")
    elif key == "sigma_e2":
        if _number(path, value) <= 0:
            raise ConfigError(f"{path}: residual variance must be > 0, got {value!r}.")
    elif key == "rho":
        if abs(_number(path, value)) >= 1:
            raise ConfigError(f"{path}: correlation must satisfy |rho| < 1, got {value!r}.")
    elif key in ("mu", "beta0", "beta1"):
        _number(path, value)
    elif key == "groups":
        _int(path, value, 2)
    elif key == "per_group":
        if isinstance(value, list):
            if len(value) < 2:
                raise ConfigError(f"{path}: a list of group sizes needs at least 2 groups, got {value!r}.")
            for i, v in enumerate(value):
                _int(f"{path}[{i}]", v, 1)
            if sum(value) <= len(value):
                raise ConfigError(f"{path}: group sizes {value!r} leave no within-group replication.")
        else:
            _int(path, value, 2)
    elif key == "x":
        if not isinstance(value, list) or len(value) < 2:
            raise ConfigError(f"{path}: expected a list of at least 2 covariate values, got {value!r}.")
        for i, v in enumerate(value):
            _number(f"{path}[{i}]", v)
        if len(set(value)) < 2:
            raise ConfigError(f"{path}: the covariate values must not all be equal.")


def _unknown_key(section: str, key: str, models: list[str]) -> ConfigError:
    keys = list(dict.fromkeys(k for m in models for k in MODEL_KEYS[m]))
    near = difflib.get_close_matches(key, keys, n=1)
    label = " or ".join(models)
    hint = f" — did you mean '{near[0]}'?" if near else f"; valid keys for model {label} are {', '.join(keys)}."
    return ConfigError(f"{section}: unknown key '{key}' for model {label}{hint}")


def _check(cfg: StudyConfig) -> StudyConfig:
    if not cfg.name.strip():
        raise ConfigError("name: must not be empty.")
    if "model" in cfg.grid and "model" in cfg.model_fields_set:
        raise ConfigError("model: give the model at the top level or as grid.model, not both.")
    for i, m in enumerate(cfg.models):
        if m not in MODELS:
            where = f"grid.model[{i}]" if "model" in cfg.grid else "model"
            raise ConfigError(f"{where}: unknown model '{m}'; choose one of {', '.join(MODELS)}.")
    if cfg.replicates < 1:
        raise ConfigError(f"replicates: must be ≥ 1, got {cfg.replicates}.")
    if cfg.seed < 0:
        raise ConfigError(f"seed: must be ≥ 0, got {cfg.seed}.")
    if not 0 < cfg.level < 1:
        raise ConfigError(f"level: must lie strictly between 0 and 1, got {cfg.level}.")
    if cfg.chunk_size is not None and cfg.chunk_size < 1:
        raise ConfigError(f"chunk_size: must be ≥ 1, got {cfg.chunk_size}.")
    if cfg.boundary_threshold < 0:
        raise ConfigError(f"boundary_threshold: must be ≥ 0, got {cfg.boundary_threshold}.")
    models = cfg.models
    allowed = {k for m in models for k in MODEL_KEYS[m]}
    for key, values in cfg.grid.items():
        if key == "model":
            continue
        if key not in allowed:
            raise _unknown_key("grid", key, models)
        if key == "x":
            raise ConfigError("grid.x: the covariate values are a list already; put x under fixed.")
        if not values:
            raise ConfigError(f"grid.{key}: needs at least one value.")
        for i, v in enumerate(values):
            _check_value(key, f"grid.{key}[{i}]", v)
    for key, value in cfg.fixed.items():
        if key not in allowed:
            raise _unknown_key("fixed", key, models)
        if key in cfg.grid:
            raise ConfigError(f"fixed.{key}: '{key}' is also in grid; give it in one of them only.")
        _check_value(key, f"fixed.{key}", value)
    for model in models:
        for key, default in MODEL_KEYS[model].items():
            if default is None and key not in cfg.grid and key not in cfg.fixed:
                if key == "groups" and _sizes_given(cfg):
                    continue
                raise ConfigError(f"grid.{key}: required for model {model}; give it in grid (a list) or fixed.")
    if "oneway" in models:
        for cond in _raw_conditions(cfg):
            if cond.get("model", cfg.model) != "oneway":
                continue
            sizes, groups = cond.get("per_group"), cond.get("groups")
            if isinstance(sizes, list) and groups is not None and groups != len(sizes):
                where = "fixed.groups" if "groups" in cfg.fixed else "grid.groups"
                raise ConfigError(f"{where}: {groups} groups do not match per_group's {len(sizes)} group sizes.")
    if not cfg.fits:
        raise ConfigError("fits: needs at least one fit.")
    from .config_fits import check_fit

    fits = [check_fit(cfg, i, f) for i, f in enumerate(cfg.fits)]
    names = [f.name for f in fits]
    for i, name in enumerate(names):
        if name == "F-test":
            raise ConfigError(f"fits[{i}].name: 'F-test' is reserved for the exact F test rows; choose another name.")
        if name in names[:i]:
            raise ConfigError(f"fits[{i}].name: duplicate fit name '{name}'; every fit needs its own name.")
    return cfg.model_copy(update={"fits": fits})


def _sizes_given(cfg: StudyConfig) -> bool:
    values = cfg.grid.get("per_group", [cfg.fixed.get("per_group")])
    return all(isinstance(v, list) for v in values)


def _raw_conditions(cfg: StudyConfig) -> list[dict[str, Any]]:
    keys = list(cfg.grid)
    return [dict(cfg.fixed, **dict(zip(keys, c))) for c in itertools.product(*(cfg.grid[k] for k in keys))]


def balanced_oneway(cfg: StudyConfig) -> bool:
    """True if every condition is a balanced one-way design."""
    return cfg.models == ["oneway"] and all(not isinstance(c.get("per_group"), list) for c in _raw_conditions(cfg))


def condition_label(value: Any) -> Any:
    """A grid value as stored in rows and summary.csv (lists become "2,3,5")."""
    if isinstance(value, list):
        return ",".join(f"{v:g}" if isinstance(v, float) else str(v) for v in value)
    return value
