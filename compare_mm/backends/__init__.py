"""Backends: one module or package per backend, each exposing ``BACKEND`` (see :mod:`compare_mm.backends.base`)."""

from .base import Backend, backend_names, check_supported, get_backend

__all__ = ["Backend", "backend_names", "check_supported", "get_backend"]
