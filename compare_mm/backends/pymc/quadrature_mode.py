"""The posterior mode and per-axis scales that centre and size the quadrature grid
(:mod:`compare_mm.backends.pymc.quadrature`): projected Newton on log f with a finite-difference gradient and
Hessian from one batched stencil, and the distances along each axis where log f falls by 2."""

from __future__ import annotations

from typing import Callable

import numpy as np


def _stencil(d: int, e: float) -> np.ndarray:
    """Offsets of the central-difference stencil for a gradient and Hessian: 0, ±e_i, ±e_i ± e_j."""
    out = [np.zeros(d)]
    for i in range(d):
        for sgn in (1, -1):
            v = np.zeros(d)
            v[i] = sgn * e
            out.append(v)
    for i in range(d):
        for j in range(i + 1, d):
            for si, sj in ((1, 1), (1, -1), (-1, 1), (-1, -1)):
                v = np.zeros(d)
                v[i], v[j] = si * e, sj * e
                out.append(v)
    return np.array(out)


def find_mode(logf: Callable[[np.ndarray], np.ndarray], bounded: np.ndarray, start: np.ndarray,
              e: float = 1e-3, iters: int = 60) -> tuple[np.ndarray, float]:
    """The maximiser z* of ``logf`` (points (m, d) → values (m,)) on {z_k ≥ 0 where ``bounded``}: projected Newton steps with the gradient and Hessian from one
    batched central-difference stencil per iteration and a batched backtracking line search; a
    coordinate at its bound with an outward gradient is held there (active set)."""
    d = start.size
    st = _stencil(d, e)
    z = start.astype(float).copy()
    fz = logf(z[None])[0]
    lower = np.where(bounded, 0.0, -np.inf)
    for _ in range(iters):
        centre = np.where(bounded, np.maximum(z, 2 * e), z)
        v = logf(centre + st)
        g = np.array([(v[1 + 2 * i] - v[2 + 2 * i]) / (2 * e) for i in range(d)])
        H = np.diag([(v[1 + 2 * i] + v[2 + 2 * i] - 2 * v[0]) / e**2 for i in range(d)])
        k = 1 + 2 * d
        for i in range(d):
            for j in range(i + 1, d):
                H[i, j] = H[j, i] = (v[k] - v[k + 1] - v[k + 2] + v[k + 3]) / (4 * e * e)
                k += 4
        free = ~((z <= lower + 1e-12) & (g < 0))
        step = np.zeros(d)
        Hf = H[np.ix_(free, free)]
        if free.any():
            try:
                ev = np.linalg.eigvalsh(Hf)
                step[free] = -np.linalg.solve(Hf, g[free]) if ev.max() < 0 else g[free] / max(np.abs(ev).max(), 1.0)
            except np.linalg.LinAlgError:
                step[free] = g[free]
        if not np.all(np.isfinite(step)):
            step = np.where(np.isfinite(g), g, 0.0)
        alphas = 2.0 ** -np.arange(12)
        cand = np.maximum(z[None] + alphas[:, None] * step[None], lower)
        fc = logf(cand)
        b = int(np.argmax(fc))
        if not fc[b] > fz:
            break
        moved = float(np.max(np.abs(cand[b] - z)))
        z, fz = cand[b], fc[b]
        if moved < 1e-7:
            break
    return z, float(fz)


def axis_scales(logf: Callable[[np.ndarray], np.ndarray], bounded: np.ndarray, z0: np.ndarray, lmax: float,
                drop: float = 2.0) -> tuple[np.ndarray, np.ndarray]:
    """Per-axis scales (s⁻, s⁺): the distances from z* along axis k where log f falls by ``drop`` = 2,
    divided by 2 (a Gaussian's SD; robust where log f is far from quadratic, e.g. flat at η = 0).  An axis
    that reaches its bound η = 0 first has s⁻ = s⁺.  log f is evaluated along every axis in one batch at
    geometrically spaced distances 10⁻³ … 10² and the crossing is interpolated linearly."""
    d = z0.size
    t = np.geomspace(1e-3, 1e2, 120)
    pts = []
    for k in range(d):
        for sign in (1.0, -1.0):
            p_ = np.repeat(z0[None], t.size, 0)
            p_[:, k] += sign * t
            pts.append(p_)
    v = logf(np.concatenate(pts)).reshape(d, 2, t.size) - (lmax - drop)
    out = np.full((d, 2), np.nan)
    for k in range(d):
        for side in range(2):
            if side == 1 and bounded[k]:
                v[k, side, t > z0[k]] = np.nan
            gap = v[k, side]
            below = np.flatnonzero(~(gap > 0) & np.isfinite(gap))
            if below.size == 0:
                continue
            i = below[0]
            if i == 0:
                out[k, side] = t[0] / drop
            else:
                a, b = gap[i - 1], gap[i]
                out[k, side] = (t[i - 1] + (t[i] - t[i - 1]) * a / (a - b)) / drop
    hi = np.where(np.isnan(out[:, 0]), np.where(np.isnan(out[:, 1]), 1.0, out[:, 1]), out[:, 0])
    lo = np.where(np.isnan(out[:, 1]), hi, out[:, 1])
    return lo, hi
