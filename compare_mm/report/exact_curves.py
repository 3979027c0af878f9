"""Exact boundary-probability curves of designs without the balanced one-way closed form.

An unbalanced one-way facet gets the one-variance-component theory's curve
(:func:`compare_mm.inference.onevc.boundary_probability`, Imhof's formula), drawn by
:func:`compare_mm.report.figures.boundary_figure` beside the Monte Carlo points.
"""

from __future__ import annotations

import math

import numpy as np

from .load import StudyOutputs


def unbalanced_boundary_curves(study: StudyOutputs, sizes, facet: dict, fixed: dict, xs: np.ndarray,
                                fits: list[str]):
    """(method, fits, curve) of an unbalanced one-way facet: Imhof's P(score at λ = 0 ≤ 0) (a local maximum
    at 0) at each σ_A² of ``xs`` (:func:`compare_mm.inference.onevc.boundary_probability`)."""
    from ..inference import onevc  # deferred: it imports scipy.stats

    try:
        n = np.asarray([float(v) for v in sizes])
        se2 = float(facet.get("sigma_e2", fixed.get("sigma_e2", 1.0)))
    except (TypeError, ValueError):
        return []
    if n.size < 2 or np.any(n < 1) or not np.all(n == np.round(n)):
        return []
    sp = onevc.oneway_spectrum(n)
    by_method: dict[str, list[str]] = {}
    for f in fits:
        m = study.method(f)
        if m in onevc.METHODS:
            by_method.setdefault(m, []).append(f)
    # the curve is smooth in √σ_A²: Imhof's formula at 61 points, interpolated onto xs (≤ 2e-4 off for the
    # sizes of studies/unbalanced_boundary.yaml, far below a line's width)
    knots = np.linspace(0.0, math.sqrt(max(float(np.max(xs)), 1e-12)), 61) ** 2
    return [(m, fs, np.interp(np.sqrt(xs), np.sqrt(knots),
                              [onevc.boundary_probability(sp, x / se2, m) for x in knots]))
            for m, fs in by_method.items()]


__all__ = ["unbalanced_boundary_curves"]
