"""Loading a study: YAML (a path, a string or a dict) → a validated, frozen
:class:`~compare_mm.study.config.schema.StudyConfig`; pydantic's errors become one-sentence ConfigErrors
naming the YAML key.  Every fit is checked by :func:`~compare_mm.study.config.fits.check_fit`."""

from __future__ import annotations

import difflib
import math
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from ...errors import ConfigError
from ..presets import read_yaml_file, resolve_presets
from .fits import check_fit
from . import two_way
from .schema import MODEL_KEYS, MODELS, VARIANCE_KEYS, FitConfig, StudyConfig, _raw_conditions, _sizes_given


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
        if path.is_dir():
            raise ConfigError(f"Study file '{path}' is a directory; give a YAML study file.")
        if not path.is_file():
            raise ConfigError(f"Study file '{path}' does not exist.")
        data = read_yaml_file(path, "Study file")
    if not isinstance(data, dict):
        raise ConfigError("A study file must be a YAML mapping with keys name, replicates, model, grid, fits.")
    _refuse_non_finite(data)
    data = resolve_presets(data, None if isinstance(source, dict) else Path(source).parent)
    try:
        cfg = StudyConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_translate(exc, data)) from None
    return _check(cfg)


def _refuse_non_finite(data: Any, loc: tuple = ()) -> None:
    """A ConfigError naming the key of the first ``.nan`` / ``.inf`` in the study (no key takes one)."""
    if isinstance(data, dict):
        for key, value in data.items():
            _refuse_non_finite(value, loc + (str(key),))
    elif isinstance(data, list):
        for i, value in enumerate(data):
            _refuse_non_finite(value, loc + (i,))
    elif isinstance(data, float) and not math.isfinite(data):
        spelled = ".nan" if math.isnan(data) else (".inf" if data > 0 else "-.inf")
        raise ConfigError(f"{_path(loc)}: {spelled} is not a finite number; give a finite value.")


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


def _check_value(key: str, path: str, value: Any) -> None:
    """Validate one data-generating value (a grid element or a fixed value)."""
    if key in two_way.VALUE_KEYS:
        two_way.check_value(key, path, value)
    elif key in VARIANCE_KEYS:
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
        two_way.integer(path, value, 2)
    elif key == "per_group":
        if isinstance(value, list):
            if len(value) < 2:
                raise ConfigError(f"{path}: a list of group sizes needs at least 2 groups, got {value!r}.")
            for i, v in enumerate(value):
                two_way.integer(f"{path}[{i}]", v, 1)
            if sum(value) <= len(value):
                raise ConfigError(f"{path}: group sizes {value!r} leave no within-group replication.")
        else:
            two_way.integer(path, value, 2)
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
                if model == "two_way" and key in two_way.DERIVED:
                    continue  # checked per condition below
                raise ConfigError(f"grid.{key}: required for model {model}; give it in grid (a list) or fixed.")
    if "oneway" in models:
        for cond in _raw_conditions(cfg):
            if cond.get("model", cfg.model) != "oneway":
                continue
            sizes, groups = cond.get("per_group"), cond.get("groups")
            if isinstance(sizes, list) and groups is not None and groups != len(sizes):
                where = "fixed.groups" if "groups" in cfg.fixed else "grid.groups"
                raise ConfigError(f"{where}: {groups} groups do not match per_group's {len(sizes)} group sizes.")
    if "two_way" in models:
        two_way.check_conditions(cfg, _raw_conditions(cfg))
    if not cfg.fits:
        raise ConfigError("fits: needs at least one fit.")
    fits = [check_fit(cfg, i, f) for i, f in enumerate(cfg.fits)]
    names = [f.name for f in fits]
    for i, name in enumerate(names):
        if name == "F-test":
            raise ConfigError(f"fits[{i}].name: 'F-test' is reserved for the exact F test rows; choose another name.")
        if name in names[:i]:
            raise ConfigError(f"fits[{i}].name: duplicate fit name '{name}'; every fit needs its own name.")
    return cfg.model_copy(update={"fits": fits})
