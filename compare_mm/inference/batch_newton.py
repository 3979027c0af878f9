"""Newton minimisation of many small smooth functions at once, derivatives by central differences.

Row j minimises f_j(x) = ``kind.deviance(rep[j], v[j], x)`` over x ∈ ℝᵏ (k ≤ 4) from its start: per
iteration the gradient and Hessian from 1 + 2k + k(k − 1)/2 evaluations (central differences for g and
the diagonal, forward ones for the off-diagonal), all rows in one call; the step −V|Λ|⁻¹V'g with the
Hessian's eigenvalues floored at their rounding level (:data:`CURVATURE_FLOOR`; "modified Newton",
Nocedal & Wright 2006, sec. 3.4) plus half a unit along a direction of negative curvature (which leaves
saddle points such as x = 0 of a function even in x), at most one unit per coordinate, backtracking
(Armijo).  A row has converged when the predicted decrease g'|H|⁻¹g is below 1e-10 (deviance units),
or below 1e-6 while the deviance no longer changes (:data:`STALL`) or no step decreases it; a row whose
line search fails otherwise, or that runs out of iterations, is returned unconverged.
"""

from __future__ import annotations

import numpy as np

#: central-difference step of the inner Newton iterations (coordinates are O(1))
FD_STEP = 1e-4
#: Hessian eigenvalues below this (deviance units, O(1) coordinates) are rounding of the differences
CURVATURE_FLOOR = 1e-3
#: a Newton step changing the deviance by less than this (relative) ends the iterations
STALL = 1e-13
#: inner Newton iterations and line-search halvings
MAX_NEWTON, MAX_HALVE = 60, 40


def minimise(kind, rep: np.ndarray, v: np.ndarray, x0: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """min over x of ``kind.deviance(rep, v, x)`` per row of ``x0`` (module docstring): (x, d, converged).

    ``kind.deviance(rep, v, x)`` evaluates a stack of points (row j: replicate ``rep[j]``, profiled value
    ``v[j]``, coordinates ``x[j]``) and returns inf outside the parameter space."""
    x = np.array(x0, dtype=float)
    A, k = x.shape
    f = kind.deviance(rep, v, x)
    done = ~np.isfinite(f)
    ok = np.zeros(A, dtype=bool)
    h = FD_STEP
    E = np.eye(k)
    pairs = [(i, j) for i in range(k) for j in range(i + 1, k)]
    for _ in range(MAX_NEWTON):
        act = np.flatnonzero(~done)
        if act.size == 0:
            break
        n = act.size
        xa, fa, ra, va = x[act], f[act], rep[act], v[act]
        pts = [xa + h * E[i] for i in range(k)] + [xa - h * E[i] for i in range(k)]
        pts += [xa + h * (E[i] + E[j]) for i, j in pairs]
        fv = kind.deviance(np.tile(ra, len(pts)), np.tile(va, len(pts)), np.concatenate(pts)).reshape(len(pts), n)
        fp, fm = fv[:k].T, fv[k:2 * k].T
        g = (fp - fm) / (2.0 * h)
        H = np.zeros((n, k, k))
        H[:, np.arange(k), np.arange(k)] = (fp + fm - 2.0 * fa[:, None]) / (h * h)
        for c, (i, j) in enumerate(pairs):
            H[:, i, j] = H[:, j, i] = (fv[2 * k + c] - fp[:, i] - fp[:, j] + fa) / (h * h)
        finite = np.all(np.isfinite(g), axis=1) & np.all(np.isfinite(H), axis=(1, 2))
        H = np.where(finite[:, None, None], H, np.eye(k))
        g = np.where(finite[:, None], g, 0.0)
        lam, V = np.linalg.eigh(H)
        lmax = np.maximum(np.abs(lam).max(axis=1), 1e-300)
        floor = np.maximum(1e-6 * lmax, CURVATURE_FLOOR)                  # below: rounding of the differences
        lm = np.maximum(np.abs(lam), floor[:, None])
        gv = np.einsum("aki,ak->ai", V, g)
        step = -np.einsum("aki,ai->ak", V, gv / lm)
        pred = np.einsum("ak,ak->a", g, -step)                               # g'|H|⁻¹g ≥ 0
        neg = lam[:, 0] < -floor
        vmin = V[:, :, 0] * np.where(gv[:, 0] > 0.0, -1.0, 1.0)[:, None]
        step = step + np.where(neg[:, None], 0.5 * vmin, 0.0)
        smax = np.abs(step).max(axis=1)
        step *= np.minimum(1.0, 1.0 / np.maximum(smax, 1e-300))[:, None]
        slope = np.einsum("ak,ak->a", g, step)
        conv = finite & ~neg & (pred <= 1e-10)
        t = np.ones(n)
        searching = finite & ~conv
        accepted = np.zeros(n, dtype=bool)
        fnew = fa.copy()
        for _ls in range(MAX_HALVE):
            s_ = np.flatnonzero(searching & ~accepted)
            if s_.size == 0:
                break
            ft = kind.deviance(ra[s_], va[s_], xa[s_] + t[s_, None] * step[s_])
            good = np.isfinite(ft) & (ft <= fa[s_] + 1e-4 * t[s_] * np.minimum(slope[s_], 0.0))
            accepted[s_[good]] = True
            fnew[s_[good]] = ft[good]
            t[s_[~good]] *= 0.5
        x[act] = np.where(accepted[:, None], xa + t[:, None] * step, xa)
        f[act] = np.where(accepted, fnew, fa)
        stall = np.abs(fa - fnew) <= STALL * np.maximum(1.0, np.abs(fa))
        flat = finite & ~neg & (pred <= 1e-6) & (~accepted | stall)         # no decrease left above rounding
        done[act] = conv | flat | ~finite | (searching & ~accepted)
        ok[act] = conv | flat
    return x, f, ok


__all__ = ["minimise"]
