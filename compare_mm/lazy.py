"""Public names of a package imported on first use (PEP 562 module ``__getattr__``).

``compare-mm summarise`` and ``compare-mm report`` import a few modules of the package; an ``__init__`` that
imported every public name eagerly made them pay for the fitter, SciPy's optimisers and statistics and the
backends (about 0.5 s of a 2 s rebuild)."""

from __future__ import annotations

import sys
import types
from importlib import import_module


def lazy_exports(package: str, namespace: dict, exports: dict[str, str]):
    """``(__getattr__, __dir__)`` for the ``__init__`` of ``package`` whose globals are ``namespace``:
    ``exports`` maps each public name to the (relative) module defining it; a name is imported when first
    asked for and then kept in ``namespace``."""

    def __getattr__(name: str):
        if name in exports:
            value = getattr(import_module(exports[name], package), name)
            namespace[name] = value
            return value
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    def __dir__():
        return sorted({*namespace, *exports})

    sys.modules[package].__class__ = _exporting(exports)
    return __getattr__, __dir__


def _exporting(exports: dict[str, str]) -> type:
    """A module class that keeps a public name bound to the function, not to the submodule of the same
    name (``compare_mm.inference.satterthwaite`` is both): importing a submodule binds its name on the
    package, which an eager ``from .satterthwaite import satterthwaite`` used to overwrite."""

    class Package(types.ModuleType):
        def __setattr__(self, name, value):
            if name in exports and isinstance(value, types.ModuleType) \
                    and value.__name__ == f"{self.__name__}.{name}" and hasattr(value, name):
                value = getattr(value, name)
            super().__setattr__(name, value)

    return Package
