"""The Backend contract and the registry of backends.

A backend is an object with

* ``name`` and the capability attributes below, which callers outside :mod:`compare_mm.backends` read
  instead of branching on the backend's name;
* ``supports(spec) -> reason | None``: None if it can fit the spec, else one sentence saying why not;
* ``fit(design, options) -> FitResult``: the fit, with ``result.design`` set to ``design``;
* ``prepare(design, options) -> Prepared``: the per-design work done once (options validated, the
  fitter's layout, a compiled model); ``Prepared.fit(y, seed=None)`` then fits a new response vector for
  the same design and equals ``fit(design.with_y(y), options)`` (with ``seed`` replacing the option).

Capabilities (class attributes; :class:`BackendBase` holds the defaults):

``posterior``         posterior summaries (True) or point estimates (False)
``needs_seed``        the fit draws random numbers: studies pass it a per-replicate ``seed`` option
``compiles``          :meth:`prepare` compiles something worth sharing with forked worker processes
``relative_cost``     cost of one fit relative to our fitter (1.0); sizes study chunks (an optional method
                      ``cost_of(options)`` gives it per fit's options)
``default_interval``  the interval kind of its parameter rows (``"wald"`` or ``"eti"``)
``interval_kinds``    interval kinds a study may request of it
``tests``             hypothesis tests a study may request of it (computed by :mod:`compare_mm.inference`)
``methods``           estimation methods it fits (empty: it takes none, e.g. a posterior)
``fast_path``         methods a study computes by the balanced one-way closed forms instead of calling it
``profiled_optimum``  its θ̂ is the optimum of compare_mm's profiled deviance, so inference reuses it
``title``             the first line of its printed summary (``{method}`` is filled in)

Backends are registered by name and imported lazily (``"module:attribute"``), so that
``import compare_mm`` never imports PyMC; :func:`register_backend` adds one.
"""

from __future__ import annotations

import importlib
from dataclasses import replace
from typing import Any, Mapping, Protocol, runtime_checkable

import numpy as np

from ..model.design import Design
from ..errors import OptionError, UnsupportedModelError
from ..results.schema import FitResult
from ..model.spec import ModelSpec

#: the attributes and methods every backend must have (checked by :func:`register_backend`)
CONTRACT = ("name", "posterior", "needs_seed", "compiles", "relative_cost", "default_interval",
            "interval_kinds", "tests", "methods", "fast_path", "profiled_optimum", "title",
            "supports", "fit", "prepare")


@runtime_checkable
class Prepared(Protocol):
    """A design prepared by a backend: fits new response vectors of that design.

    Optionally it also has ``fit_many(Y, seeds) -> list[FitResult]``: the fits of the rows of ``Y``
    (R, n) with ``seeds[i]`` for row i, equal to ``[fit(Y[i], seeds[i]) for i in range(R)]`` within the
    backend's accuracy contract, done as one batch (the PyMC backend's ``sampler: quadrature``; the reml
    backend on one grouping factor with at most two effects per level).  A study
    chunk calls it once for its replicates when present (:func:`compare_mm.study.chunk._generic_fits`);
    an exception from it sends the chunk back to ``fit`` replicate by replicate.
    """

    design: Design

    def fit(self, y: np.ndarray, seed: int | None = None) -> FitResult:
        """The fit of ``design.with_y(y)`` (``seed`` replaces the ``seed`` option when given)."""


@runtime_checkable
class Backend(Protocol):
    """What every backend provides (module docstring)."""

    name: str
    posterior: bool
    needs_seed: bool
    compiles: bool
    relative_cost: float
    default_interval: str
    interval_kinds: tuple[str, ...]
    tests: tuple[str, ...]
    methods: tuple[str, ...]
    fast_path: tuple[str, ...]
    profiled_optimum: bool
    title: str

    def supports(self, spec: ModelSpec) -> str | None:
        """None if the backend can fit ``spec``, else one sentence saying why not."""

    def fit(self, design: Design, options: Mapping[str, Any]) -> FitResult:
        """Fit the model to the design and return the common result schema."""

    def prepare(self, design: Design, options: Mapping[str, Any]) -> Prepared:
        """The per-design work, done once; its ``fit(y)`` fits a new response of the design."""


class Rebuild:
    """A :class:`Prepared` that simply calls ``backend.fit`` on ``design.with_y(y)`` (no shared work)."""

    def __init__(self, backend: Any, design: Design, options: Mapping[str, Any]):
        self.backend, self.design, self.options = backend, design, dict(options or {})

    def fit(self, y: np.ndarray, seed: int | None = None) -> FitResult:
        options = self.options if seed is None else dict(self.options, seed=seed)
        return self.backend.fit(self.design.with_y(y), options)


class BackendBase:
    """Defaults of the capability attributes, a :meth:`prepare` that rebuilds, and :meth:`fit_label`."""

    name = ""
    posterior = False
    needs_seed = False
    compiles = False
    relative_cost = 1.0
    default_interval = "wald"
    interval_kinds: tuple[str, ...] = ("wald", "t")
    tests: tuple[str, ...] = ()
    methods: tuple[str, ...] = ("REML", "ML")
    fast_path: tuple[str, ...] = ()
    profiled_optimum = False
    title = "Linear mixed model fit by {method}"

    def prepare(self, design: Design, options: Mapping[str, Any]) -> Prepared:
        """A :class:`Rebuild` (every response is fitted from scratch), after :meth:`check_options`."""
        self.check_options(design, options)
        return Rebuild(self, design, options)

    def check_options(self, design: Design, options: Mapping[str, Any]) -> None:
        """Validate ``options`` for ``design`` without fitting or compiling (a one-sentence
        :class:`OptionError` naming a bad key); this default checks nothing."""

    def fit_label(self, method: str | None) -> str:
        """The default name of a study fit of this backend: the backend's name, ``_<method>`` for ML."""
        return self.name if method in (None, "REML") else f"{self.name}_{method.lower()}"

    def attach(self, result: FitResult, design: Design) -> FitResult:
        """``result`` carrying its design and this backend's summary title (neither is in the JSON)."""
        return replace(result, design=design, title=self.title)


#: backend name → "module:attribute" of a Backend instance, or the instance itself
_BUILTIN: dict[str, str] = {
    "reml": "compare_mm.backends.reml:BACKEND",
    "statsmodels": "compare_mm.backends.statsmodels.backend:BACKEND",
    "pymc": "compare_mm.backends.pymc.backend:BACKEND",
}
_REGISTRY: dict[str, Any] = dict(_BUILTIN)
_LOADED: dict[str, Any] = {}
#: capability attributes of the built-in backends that are read without importing them (importing the
#: REML backend loads scipy.optimize, a large share of ``compare-mm summarise``); a test keeps these equal
#: to the loaded backends' attributes
_STATIC: dict[str, dict[str, Any]] = {
    "reml": {"posterior": False},
    "statsmodels": {"posterior": False},
    "pymc": {"posterior": True},
}


def backend_names() -> tuple[str, ...]:
    """Names of all registered backends."""
    return tuple(_REGISTRY)


def _missing(obj: Any) -> list[str]:
    return [a for a in CONTRACT if not hasattr(obj, a)]


def _load(target: Any) -> Any:
    if not isinstance(target, str):
        return target
    module, _, attr = target.partition(":")
    return getattr(importlib.import_module(module), attr)


def register_backend(name: str, backend: Any) -> None:
    """Register ``backend`` (an object with the contract, or ``"module:attribute"`` naming one) as ``name``.

    A name already registered, or an object lacking part of the contract, is an :class:`OptionError`.
    """
    key = str(name).lower()
    if not key or key in _REGISTRY:
        raise OptionError(f"A backend named {name!r} is already registered; choose another name.")
    if isinstance(backend, str):
        if ":" not in backend:
            raise OptionError(f"Backend {name!r} must be an object or 'module:attribute', got {backend!r}.")
        try:
            backend = _load(backend)
        except (ImportError, AttributeError) as exc:
            raise OptionError(f"Backend {name!r} cannot be loaded from {backend!r} ({exc}).") from None
    missing = _missing(backend)
    if missing:
        raise OptionError(f"Backend {name!r} lacks the Backend contract's {', '.join(missing)} "
                          f"(see compare_mm.backends.base).")
    _REGISTRY[key] = backend
    _LOADED[key] = backend


def unregister_backend(name: str) -> None:
    """Remove a backend added by :func:`register_backend` (the built-in ones stay)."""
    key = str(name).lower()
    if key in ("reml", "statsmodels", "pymc"):
        raise OptionError(f"The built-in backend {name!r} cannot be removed.")
    _REGISTRY.pop(key, None)
    _LOADED.pop(key, None)


def _loaded(key: str) -> Any:
    if key not in _LOADED:
        _LOADED[key] = _load(_REGISTRY[key])
    return _LOADED[key]


def get_backend(name: str) -> Backend:
    """The backend registered under ``name`` (imported on first use)."""
    key = str(name).lower()
    if key not in _REGISTRY:
        raise OptionError(f"Unknown backend {name!r}; choose one of {', '.join(_REGISTRY)}.")
    return _loaded(key)


def capability(name: str, attribute: str, default: Any = None) -> Any:
    """Capability ``attribute`` of the backend registered as ``name``; ``default`` for a name not
    registered (e.g. read from an old result folder).  Reads an attribute only: it never fits."""
    key = str(name).lower()
    if key not in _REGISTRY:
        return default
    static = _STATIC.get(key, {}) if key not in _LOADED and _REGISTRY[key] == _BUILTIN.get(key) else {}
    if attribute in static:
        return static[attribute]
    return getattr(_loaded(key), attribute, default)


def check_supported(backend: Backend, spec: ModelSpec) -> None:
    """Raise :class:`UnsupportedModelError` if ``backend`` cannot fit ``spec``."""
    reason = backend.supports(spec)
    if reason:
        raise UnsupportedModelError(f"Backend {backend.name!r} cannot fit {spec.formula!r}: {reason}")


def check_level(value: Any, key: str = "level") -> float:
    """``value`` as a level in (0, 1), else a one-sentence :class:`OptionError` (the one check of every
    backend's ``level`` option)."""
    try:
        level = float(value)
    except (TypeError, ValueError):
        raise OptionError(f"Option {key!r} must be a number between 0 and 1, got {value!r}.") from None
    if not 0.0 < level < 1.0:
        raise OptionError(f"Option {key!r} must be between 0 and 1, got {value!r}.")
    return level


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
        out["level"] = check_level(out["level"])
    return out
