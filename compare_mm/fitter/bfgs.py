"""The numerical engines under :mod:`.optimize`: BFGS with a backtracking line search, central-difference
gradients, and the Newton polish and warm-start Hessian built from the analytic gradient.

They know nothing about θ's structure (Λ's columns, the symmetric zero, the boundary rule): that lives in
:mod:`.optimize`.
"""

from __future__ import annotations

import math
from typing import Callable

import numpy as np

#: fun(θ, want_grad) -> (deviance, gradient or None)
Objective = Callable[[np.ndarray, bool], tuple[float, np.ndarray | None]]


def bfgs(fun: Objective, x0: np.ndarray, *, gtol: float = 1e-10, max_iter: int = 500,
         first_step: float = 0.5, H0: np.ndarray | None = None, state: dict | None = None
         ) -> tuple[np.ndarray, float, bool, str]:
    """Unconstrained BFGS with a backtracking (Armijo, quadratic-interpolation) line search.

    Written for the few-parameter, cheap-objective case: no Python-level overhead beyond a handful of
    tiny numpy operations per iteration (scipy's L-BFGS-B spends milliseconds per call in its BLAS
    calls on tiny matrices when OpenBLAS threads compete with other processes).  Stops when
    max|∇d| ≤ gtol · max(1, |d|) or the step is below 1e-12 relative.  The first step (and a
    steepest-descent restart while the curvature condition fails) has inf-norm ``first_step``; later
    ones use the Shanno–Phua scaling.  ``H0``, an initial inverse Hessian (from a warm start), replaces
    both.  Such fixed-length steps can land a θ component exactly on 0, where ∂d/∂θ vanishes by
    symmetry, and BFGS then reports convergence: :func:`.optimize.minimise` checks for that.
    ``state``, a dict if given, receives the final inverse-Hessian approximation as ``state["H"]``
    (None before the first update) for :func:`newton_polish`.
    """
    x = np.array(x0, dtype=float)
    f, g = fun(x, True)
    if not math.isfinite(f) or g is None:
        return x, f, False, "objective not finite at the start"
    k = x.size
    H = None if H0 is None else np.array(H0, dtype=float)
    for it in range(max_iter):
        gmax = float(abs(g).max())
        if gmax <= gtol * max(1.0, abs(f)):
            return _done(state, H, (x, f, True, f"gradient below tolerance after {it} iterations"))
        if H is None:
            p = -g * (first_step / gmax)
        else:
            p = -(H @ g)
        slope = float(g @ p)
        if slope >= 0.0:                                   # not a descent direction: restart
            H, p = None, -g * (first_step / gmax)
            slope = float(g @ p)
        pmax = float(abs(p).max())
        if pmax > 10.0:                                    # keep steps in θ (scale-free) moderate
            p *= 10.0 / pmax
            slope *= 10.0 / pmax
        t = 1.0
        while True:
            xn = x + t * p
            fn, gn = fun(xn, True)
            # Armijo, with room for rounding noise in d (~1e-13 relative) near the optimum
            if math.isfinite(fn) and gn is not None and fn <= f + 1e-4 * t * slope + 1e-14 * abs(f):
                break
            if t * pmax < 1e-14 * max(1.0, float(abs(x).max())):
                return _done(state, H, (x, f, gmax <= 1e3 * gtol * max(1.0, abs(f)), "line search failed"))
            if math.isfinite(fn):                          # minimiser of the interpolating quadratic
                tq = -slope * t * t / (2.0 * (fn - f - slope * t))
                t = min(max(tq, 0.1 * t), 0.5 * t)
            else:
                t *= 0.25
        sv, yv = xn - x, gn - g
        sy = float(sv @ yv)
        yy = float(yv @ yv)
        if sy > 1e-12 * math.sqrt(float(sv @ sv) * yy):
            if H is None:
                H = np.eye(k) * (sy / yy)
            H = inverse_hessian_update(H, sv, yv, sy)
        small = float(abs(sv).max()) <= 1e-12 * max(1.0, float(abs(xn).max())) \
            and abs(fn - f) <= 1e-15 * abs(f)
        x, f, g = xn, fn, gn
        if small:
            return _done(state, H, (x, f, True, "step below tolerance"))
    return _done(state, H, (x, f, False, f"no convergence in {max_iter} iterations"))


def inverse_hessian_update(H: np.ndarray, sv: np.ndarray, yv: np.ndarray, sy: float) -> np.ndarray:
    """BFGS's update of the inverse Hessian H after the step ``sv`` with gradient change ``yv``
    (sy = sv'yv > 0; Nocedal & Wright 2006, eq. 6.17): (I − ρsy')H(I − ρys') + ρss', ρ = 1/sy."""
    rho = 1.0 / sy
    Hy = H @ yv
    svc = sv[:, None]
    return H + ((rho * rho * float(yv @ Hy) + rho) * svc) * sv - rho * (Hy[:, None] * sv + svc * Hy)


def _done(state: dict | None, H: np.ndarray | None, out: tuple) -> tuple:
    if state is not None:
        state["H"] = None if H is None else H.copy()
    return out


def fd_gradient(fun: Objective, rel_step: float = 1e-5) -> Objective:
    """``fun`` with its gradient by central differences (for the path without an analytic gradient)."""

    def fg(x: np.ndarray, want_grad: bool):
        f = fun(x, False)[0]
        if not want_grad or not math.isfinite(f):
            return f, None
        g = np.empty_like(x)
        for k in range(x.size):
            h = rel_step * max(1.0, abs(x[k]))
            e = np.zeros_like(x)
            e[k] = h
            fp, fm = fun(x + e, False)[0], fun(x - e, False)[0]
            if not (math.isfinite(fp) and math.isfinite(fm)):
                return f, None
            g[k] = (fp - fm) / (2.0 * h)
        return f, g

    return fg


#: :func:`newton_polish` keeps a step that raises d by at most this, relative, if it reduces the gradient
POLISH_FTOL = 1e-12
#: … and stops once max|∇d| ≤ POLISH_GTOL · max(1, |d|) (BFGS stops at 1e-10)
POLISH_GTOL = 1e-13


#: :func:`newton_polish` first tries at most this many quasi-Newton steps with BFGS's inverse Hessian
QN_STEPS = 3


def _polish_accepts(f: float, fn: float, g0: np.ndarray, gn: np.ndarray | None) -> bool:
    """A polishing step is kept if d does not rise beyond rounding and, when it does not fall, |∇d| does
    (at the optimum d changes by ~|g|²/H, below its rounding)."""
    return fn <= f or (fn <= f + POLISH_FTOL * abs(f) and gn is not None
                       and float(np.abs(gn).max()) < float(np.abs(g0).max()))


def _quasi_newton_polish(fun: Objective, x: np.ndarray, f: float, H: np.ndarray
                         ) -> tuple[np.ndarray, float, bool]:
    """Steps x − H∇d with BFGS's inverse Hessian H (updated after each step), kept by
    :func:`_polish_accepts`; (x, f, whether max|∇d| ≤ POLISH_GTOL · max(1, |d|) was reached)."""
    H = np.array(H, dtype=float)
    f0, g0 = fun(x, True)
    for it in range(QN_STEPS + 1):
        if g0 is None or not math.isfinite(f0):
            return x, f, False
        if float(np.abs(g0).max()) <= POLISH_GTOL * max(1.0, abs(f0)):
            return x, f, True
        if it == QN_STEPS:
            break
        step = H @ g0
        if not np.all(np.isfinite(step)) or float(g0 @ step) <= 0.0:
            break
        xn = x - step
        fn, gn = fun(xn, True)
        if not (math.isfinite(fn) and _polish_accepts(f, fn, g0, gn)):
            break
        sv, yv = xn - x, gn - g0
        sy = float(sv @ yv)
        if sy > 0.0:
            H = inverse_hessian_update(H, sv, yv, sy)
        x, f, f0, g0 = xn, fn, fn, gn
    return x, f, False


def newton_polish(fun: Objective, x: np.ndarray, f: float, steps: int = 3, H: np.ndarray | None = None
                  ) -> tuple[np.ndarray, float]:
    """Newton steps on the non-zero components of x (Hessian from central differences of the gradient).

    Each step is kept only if the objective does not increase beyond its rounding (:data:`POLISH_FTOL`)
    and, when it does not decrease, the gradient does; so the polish never makes a fit worse than
    rounding, and it takes θ̂ to the zero of the gradient (to ~1e-12), not just to where d stops changing.
    With ``H``, BFGS's final inverse-Hessian approximation (every component of x non-zero), up to
    :data:`QN_STEPS` quasi-Newton steps under the same rule come first, and the difference Hessian (2k
    gradients) is built only if they stop short of :data:`POLISH_GTOL`: BFGS converges superlinearly, so
    one or two such steps usually get there.
    """
    if H is not None and H.shape == (x.size, x.size) and np.all(x != 0.0):
        x, f, done = _quasi_newton_polish(fun, x, f, H)
        if done:
            return x, f
    for _ in range(steps):
        idx = np.flatnonzero(x != 0.0)
        if idx.size == 0:
            break
        f0, g0 = fun(x, True)
        if g0 is None or float(np.abs(g0[idx]).max()) <= POLISH_GTOL * max(1.0, abs(f0)):
            break
        H = np.empty((idx.size, idx.size))
        for j, k in enumerate(idx):
            h = 1e-5 * max(1.0, abs(x[k]))
            e = np.zeros_like(x)
            e[k] = h
            gp = fun(x + e, True)[1]
            gm = fun(x - e, True)[1]
            if gp is None or gm is None:
                return x, f
            H[:, j] = (gp[idx] - gm[idx]) / (2 * h)
        H = 0.5 * (H + H.T)
        try:
            if np.any(np.linalg.eigvalsh(H) <= 0):
                break
            step = np.linalg.solve(H, g0[idx])
        except np.linalg.LinAlgError:
            break
        if not np.all(np.isfinite(step)):
            break
        xn = x.copy()
        xn[idx] -= step
        fn, gn = fun(xn, True)
        if not _polish_accepts(f, fn, g0[idx], None if gn is None else gn[idx]):
            break
        small = np.max(np.abs(step)) < 1e-10 * max(1.0, np.max(np.abs(x)))
        x, f = xn, fn
        if small:
            break
    return x, f


def warm_hessian(fun: Objective, x: np.ndarray) -> np.ndarray | None:
    """Inverse of the Hessian at ``x`` by forward differences of the gradient, if positive definite."""
    f0, g0 = fun(x, True)
    if g0 is None or not math.isfinite(f0):
        return None
    k = x.size
    H = np.empty((k, k))
    for j in range(k):
        h = 1e-6 * max(1.0, abs(x[j]))
        e = np.zeros(k)
        e[j] = h
        g = fun(x + e, True)[1]
        if g is None:
            return None
        H[:, j] = (g - g0) / h
    H = 0.5 * (H + H.T)
    try:
        Lh = np.linalg.cholesky(H)
    except np.linalg.LinAlgError:
        return None
    Li = np.linalg.inv(Lh)
    return Li.T @ Li
