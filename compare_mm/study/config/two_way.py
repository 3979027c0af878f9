"""Validation of the ``model: two_way`` keys of a study (meaning in :mod:`compare_mm.study.config.schema`):
``treatments``, ``blocks``, ``per_cell``, ``trt_effects``; each mistake one sentence naming the key path."""

from __future__ import annotations

from typing import Any

from ...errors import ConfigError

#: two-way keys that may be derived from the others (so not required on their own)
DERIVED = ("treatments", "trt_effects", "blocks")
VALUE_KEYS = ("treatments", "blocks", "per_cell", "trt_effects")


def integer(path: str, value: Any, minimum: int) -> int:
    """``value`` as an int ≥ ``minimum`` (an integral float is accepted), or a ConfigError naming ``path``."""
    if isinstance(value, bool) or not (isinstance(value, int) or (isinstance(value, float) and value.is_integer())):
        raise ConfigError(f"{path}: expected an integer, got {value!r}.")
    if value < minimum:
        raise ConfigError(f"{path}: must be ≥ {minimum}, got {value!r}.")
    return int(value)


def check_value(key: str, path: str, value: Any) -> None:
    """Validate one two-way value (a grid element or a fixed value)."""
    if key in ("treatments", "blocks"):
        integer(path, value, 2)
    elif key == "trt_effects":
        if not isinstance(value, list) or len(value) < 2:
            raise ConfigError(f"{path}: expected a list of at least 2 treatment effects (one per treatment), "
                              f"got {value!r}.")
        for i, v in enumerate(value):
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                raise ConfigError(f"{path}[{i}]: expected a number, got {v!r}.")
    elif key == "per_cell":
        if not isinstance(value, list):
            integer(path, value, 2)
            return
        if len(value) < 2 or not all(isinstance(r, list) for r in value):
            raise ConfigError(f"{path}: a list of cell sizes must be a list of at least 2 rows (one per treatment), "
                              f"each a list of one size per block, got {value!r}.")
        b = len(value[0])
        if b < 2:
            raise ConfigError(f"{path}[0]: needs at least 2 blocks, got {value[0]!r}.")
        for i, row in enumerate(value):
            if len(row) != b:
                raise ConfigError(f"{path}[{i}]: every treatment needs {b} cell sizes (one per block), "
                                  f"got {len(row)}.")
            for j, v in enumerate(row):
                integer(f"{path}[{i}][{j}]", v, 1)
        if all(v == 1 for row in value for v in row):
            raise ConfigError(f"{path}: every cell has one observation, so σ_AB² and σ_E² cannot be separated; "
                              f"some cell needs at least 2.")


def _where(cfg, key: str) -> str:
    return f"fixed.{key}" if key in cfg.fixed else f"grid.{key}"


def check_conditions(cfg, raw_conditions: list[dict[str, Any]]) -> None:
    """t and b of every two-way condition are given (or derivable) and agree between keys."""
    for cond in raw_conditions:
        if cond.get("model", cfg.model) != "two_way":
            continue
        cells = cond.get("per_cell")
        ts: list[tuple[str, int]] = []
        if cond.get("treatments") is not None:
            ts.append(("treatments", int(cond["treatments"])))
        if isinstance(cond.get("trt_effects"), list):
            ts.append(("trt_effects", len(cond["trt_effects"])))
        if isinstance(cells, list):
            ts.append(("per_cell", len(cells)))
        if not ts:
            raise ConfigError("grid.treatments: required for model two_way (or give trt_effects, or per_cell as a "
                              "list of cell sizes); give it in grid (a list) or fixed.")
        for key, t in ts[1:]:
            if t != ts[0][1]:
                raise ConfigError(f"{_where(cfg, key)}: gives {t} treatments, but {ts[0][0]} gives {ts[0][1]}.")
        if isinstance(cells, list):
            if cond.get("blocks") is not None and int(cond["blocks"]) != len(cells[0]):
                raise ConfigError(f"{_where(cfg, 'blocks')}: {cond['blocks']} blocks do not match per_cell's "
                                  f"{len(cells[0])} cell sizes per treatment.")
        elif cond.get("blocks") is None:
            raise ConfigError("grid.blocks: required for model two_way with a balanced per_cell; give it in grid "
                              "(a list) or fixed.")


__all__ = ["DERIVED", "VALUE_KEYS", "check_conditions", "check_value"]
