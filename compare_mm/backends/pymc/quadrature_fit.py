"""``sampler="quadrature"`` entry point: Design + options → FitResult (no PyMC, no compile).

The numerics are in :mod:`.quadrature_model` (p(y | ψ) with β and u integrated out), :mod:`.quadrature`
(the adaptive grid over ψ) and :mod:`.quadrature_summary` (marginals in the NUTS result schema).
``draws``, ``tune``, ``chains``, ``cores``, ``target_accept`` and ``parameterisation`` do not apply and are
ignored; ``seed`` is recorded but unused (the result is deterministic).
"""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Any

import numpy as np

from ...errors import UnsupportedModelError
from ...model.design import Design
from ...parallel import blas_single_thread
from ...results.schema import FitResult
from .priors import PriorSet, data_scales
from .quadrature import MAX_EXTENSIONS, coordinates, integrate
from .quadrature_model import build_problem, unsupported_reason
from .quadrature_summary import group_effects, quad_result, summarise_grid
from .tails import lift_powers, moment_orders

TOL = 1e-3
#: options of the NUTS path that the quadrature has no use for (it integrates; nothing is sampled)
NUTS_SETTINGS = ("draws", "tune", "chains", "cores", "target_accept", "parameterisation", "until_converged")


def ignored_settings(options) -> tuple[str, ...]:
    """The warning of a quadrature fit given NUTS settings (``options``: as the user passed them), or ()."""
    given = [k for k in NUTS_SETTINGS if options and k in options]
    if not given:
        return ()
    return (f"sampler='quadrature' integrates the posterior exactly and ignores the NUTS setting"
            f"{'s' * (len(given) > 1)} {', '.join(given)}.",)


def check_supported(design: Design) -> None:
    """Raise UnsupportedModelError with a one-sentence reason when ψ has more than 4 dimensions."""
    reason = unsupported_reason(design)
    if reason is not None:
        raise UnsupportedModelError(f"Backend 'pymc' cannot fit {design.spec.formula!r} by quadrature: {reason}")


def axis_names(co, priors: PriorSet) -> list[str | None]:
    """The parameter on each ψ axis: its SD's name, ``sigma``, or None on the correlation's axis."""
    names: list[str | None] = [None] * co.c.size
    for k, name in list(zip(co.sd_axes, priors.sd_names)) + [(co.sigma_axis, "sigma")]:
        names[k] = name
    return names


@blas_single_thread   # small matrices: BLAS threads only spin (the fit's CPU time was 2× its wall time)
def fit_quadrature(design: Design, opts: dict[str, Any], priors: PriorSet, shown: dict[str, Any],
                   t0: float | None = None, tol: float = TOL, notes: tuple[str, ...] = ()) -> FitResult:
    """The posterior of the PyMC model of ``design`` by quadrature (module docstrings); ``opts`` resolved;
    ``notes``: warnings to add (:func:`ignored_settings`)."""
    t0 = time.perf_counter() if t0 is None else t0
    check_supported(design)
    pb = build_problem(design, priors)
    ds = data_scales(design)
    co = coordinates(pb, ds["sd"], float(ds["sigma"]))
    start = np.full(co.c.size, 1.5)
    if co.rho_axis is not None:
        start[co.rho_axis] = 0.0
    level = opts["level"]
    tails = moment_orders(priors, design)
    integ, qs = integrate(pb, co, start, lambda g, w: summarise_grid(pb, co, design, level, g, w), tol=tol,
                          powers=lift_powers(axis_names(co, priors), tails))
    u_mean, u_sd = group_effects(pb, co, integ.grid, integ.weights)
    qs = replace(qs, u_mean=u_mean, u_sd=u_sd)
    diagnostics = {"sampler": "quadrature", "grid_size": integ.grid.size, "grid_shape": list(integ.grid.logf.shape),
                   "refinements": [{"h": h, "grid_size": n, "change": c} for h, n, c in integ.steps],
                   "integration_error": integ.error, "tolerance": tol,
                   "quadrature_s": time.perf_counter() - t0}
    if integ.grid.open_faces:
        warnings = (f"the quadrature's box still had posterior mass at its faces after {MAX_EXTENSIONS} "
                    f"extensions (a very heavy tail): the tails beyond its {integ.grid.size} points are not "
                    f"integrated, so quantiles and moments may be off.",)
    elif not integ.converged:
        warnings = (f"the quadrature did not reach its tolerance {tol:g} (last change {integ.error:.2g} posterior "
                    f"SDs on a grid of {integ.grid.size} points).",)
    else:
        warnings = ()
    warnings += tuple(notes)
    return quad_result(qs, design, level=level, converged=integ.converged, options=shown,
                       diagnostics=diagnostics, elapsed_s=time.perf_counter() - t0, warnings=warnings,
                       tails=tails)
