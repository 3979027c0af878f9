"""The Backend contract and the registry of backends.

A backend is an object with ``name``, ``supports(spec) -> reason | None`` and
``fit(design, options) -> FitResult``.  Backends are registered by name and imported lazily, so that
``import compare_mm`` never imports PyMC.
"""

from __future__ import annotations

import importlib
from typing import Any, Mapping, Protocol, runtime_checkable

from ..model.design import Design
from ..errors import OptionError, UnsupportedModelError
from ..results.schema import FitResult
from ..model.spec import ModelSpec


@runtime_checkable
class Backend(Protocol):
    """What every backend provides."""

    name: str

    def supports(self, spec: ModelSpec) -> str | None:
        """None if the backend can fit ``spec``, else one sentence saying why not."""

    def fit(self, design: Design, options: Mapping[str, Any]) -> FitResult:
        """Fit the model to the design and return the common result schema."""


#: backend name → "module:attribute" of a zero-argument factory or Backend instance
_REGISTRY: dict[str, str] = {
    "reml": "compare_mm.backends.reml:BACKEND",
    "statsmodels": "compare_mm.backends.statsmodels.backend:BACKEND",
    "pymc": "compare_mm.backends.pymc.backend:BACKEND",
}
_LOADED: dict[str, Backend] = {}


def backend_names() -> tuple[str, ...]:
    """Names of all registered backends."""
    return tuple(_REGISTRY)


def get_backend(name: str) -> Backend:
    """The backend registered under ``name`` (imported on first use)."""
    key = str(name).lower()
    if key not in _REGISTRY:
        raise OptionError(f"Unknown backend {name!r}; choose one of {', '.join(_REGISTRY)}.")
    if key not in _LOADED:
        module, attr = _REGISTRY[key].split(":")
        _LOADED[key] = getattr(importlib.import_module(module), attr)
    return _LOADED[key]


def check_supported(backend: Backend, spec: ModelSpec) -> None:
    """Raise :class:`UnsupportedModelError` if ``backend`` cannot fit ``spec``."""
    reason = backend.supports(spec)
    if reason:
        raise UnsupportedModelError(f"Backend {backend.name!r} cannot fit {spec.formula!r}: {reason}")


def merge_options(options: Mapping[str, Any] | None, defaults: Mapping[str, Any], backend: str,
                  hints: Mapping[str, str] | None = None) -> dict[str, Any]:
    """``defaults`` updated with ``options``; an unknown key or a ``level`` outside (0, 1) is an
    :class:`OptionError` naming it (``hints`` adds a sentence tail for keys users often confuse)."""
    out = dict(defaults)
    for key, value in (options or {}).items():
        if key not in defaults:
            hint = (hints or {}).get(key, "")
            raise OptionError(f"Unknown option {key!r} for backend {backend!r}{hint}; known options: "
                              f"{', '.join(defaults)}.")
        out[key] = value
    if "level" in out:
        try:
            level = float(out["level"])
        except (TypeError, ValueError):
            raise OptionError(f"Option 'level' must be a number between 0 and 1, got {out['level']!r}.") from None
        if not 0.0 < level < 1.0:
            raise OptionError(f"Option 'level' must be between 0 and 1, got {out['level']!r}.")
        out["level"] = level
    return out
