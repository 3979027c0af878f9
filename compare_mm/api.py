"""The Python API: ``compare_mm.fit`` and ``compare_mm.parse_formula``."""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Any

import pandas as pd

from .backends.base import check_supported, get_backend
from .model.design import Design, build_design
from .errors import DataError, ModelSpecError
from .model.formula import parse_formula
from .results.schema import FitResult
from .model.spec import ModelSpec


def make_design(model: str | ModelSpec, data: pd.DataFrame, *, method: str | None = None,
                dropna: bool = False) -> Design:
    """Formula or spec + DataFrame → validated :class:`~compare_mm.model.design.Design`."""
    spec = parse_formula(model) if isinstance(model, str) else model
    if not isinstance(spec, ModelSpec):
        raise ModelSpecError("The model must be an lme4 formula string or a ModelSpec.")
    if method is not None:
        spec = spec.with_method(method)
    if not isinstance(data, pd.DataFrame):
        raise DataError("The data must be a pandas DataFrame.")
    return build_design(spec, data, dropna=dropna)


def fit(model: str | ModelSpec, data: pd.DataFrame, *, backend: str = "reml", method: str = "REML",
        dropna: bool = False, **options: Any) -> FitResult:
    """Fit a linear mixed model.

    Parameters
    ----------
    model
        An lme4 formula (``"Reaction ~ Days + (Days || Subject)"``) or a :class:`ModelSpec`.
    data
        A pandas DataFrame holding every column the model uses.
    backend
        ``"reml"`` (our fitter), ``"statsmodels"``, ``"pymc"`` or a name given to
        :func:`compare_mm.register_backend`.
    method
        ``"REML"`` or ``"ML"``.  (``ANOVA`` is not a method of any backend: it is the study-only closed
        form of the balanced one-way model, see docs/architecture.md.)
    dropna
        Drop rows with missing values in used columns instead of raising :class:`DataError`.
    **options
        Backend options (e.g. ``prior=…``, ``draws=…`` for PyMC).

    Returns
    -------
    FitResult
        Its ``design`` field holds the :class:`~compare_mm.model.design.Design` it was fitted to (not part
        of the JSON), which :func:`compare_mm.inference.run_inference` works from.
    """
    be = get_backend(backend)
    design = make_design(model, data, method=method, dropna=dropna)
    check_supported(be, design.spec)
    t0 = time.perf_counter()
    result = be.fit(design, options)
    if not result.elapsed_s:
        result = replace(result, elapsed_s=time.perf_counter() - t0)
    if result.design is None:
        result = replace(result, design=design)
    name = getattr(data, "attrs", {}).get("name")
    if isinstance(name, str) and name and not result.data_name:
        result = replace(result, data_name=name)     # the summary's "Data:" line
    return result


__all__ = ["fit", "make_design", "parse_formula"]
