"""Backends: one module or package per backend, each exposing ``BACKEND`` (see :mod:`compare_mm.backends.base`)."""

from .base import (Backend, BackendBase, Prepared, backend_names, capability, check_supported, get_backend,
                   register_backend, unregister_backend)

__all__ = ["Backend", "BackendBase", "Prepared", "backend_names", "capability", "check_supported", "get_backend",
           "register_backend", "unregister_backend"]
