"""Minimising the profiled deviance over θ, and the boundary rule.

* :func:`optimise_theta`: the one entry point the backend and inference use.  A single scalar θ (one
  random intercept) is solved exactly by :func:`minimise_scalar`; otherwise :func:`minimise` then
  :func:`rectify`.
* :func:`minimise_scalar`: d(θ) = h(θ²) on θ ≥ 0 is scanned on a grid (0 and four points per decade),
  every bracketed local minimum is solved to rounding by a safeguarded root search on ∂d/∂θ (Brent),
  and the best is compared with θ = 0, which is kept only when the derivative of h at 0 does not point
  inwards (:func:`inward`) and d(0) is no higher.
* :func:`minimise`: BFGS (:func:`.bfgs.bfgs`) with the analytic gradient from lme4's start.  θ is left
  unconstrained: d(θ) is even in each column of Λ, so a negative diagonal is the same model
  (:func:`canonical` flips it back, as MixedModels.jl's ``rectify!`` does), and a variance whose
  optimum is 0 is a smooth interior minimum in θ instead of a bound where ∂d/∂θ vanishes by symmetry
  (which stalls bounded quasi-Newton methods such as L-BFGS-B at spurious zeros).  The same symmetry
  makes every point with a diagonal θ_k = 0 a critical point in θ_k, so a BFGS step that lands on it
  exactly would report convergence there: after BFGS, every diagonal component at (or near) 0 whose
  derivative in θ_k² points inwards is moved off 0 and BFGS restarted.  Newton steps then polish the
  optimum to the zero of the gradient (BFGS's tolerance leaves θ̂ ~1e-9 from it; the batched fitter of
  :mod:`.batch_optimize` must agree with this path to 1e-8): quasi-Newton steps with BFGS's final
  inverse Hessian first, a Hessian by central differences of the analytic gradient (2k gradients) only
  when they stop short (:func:`.bfgs.newton_polish`).  A repeated request for the last θ is answered
  without a new evaluation (:func:`remember_last`).  Without an analytic gradient (the sparse path) BFGS runs on central
  differences; if BFGS fails, Powell's derivative-free method takes over.
* :func:`rectify`: MixedModels.jl's zero check — every diagonal component of θ that ended below
  :data:`ZERO_CANDIDATE` is tried at exactly 0 (with the rest of its column of Λ), the others
  re-optimised, and the zero kept when the derivative at 0 does not point inwards and the objective is
  no worse (relative tolerance :data:`ZERO_FTOL`, a few hundred ulp: rounding of d, nothing more).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np
from scipy.optimize import minimize

from .bfgs import Objective, bfgs, fd_gradient, newton_polish, warm_hessian
from .theta import Layout


#: diagonal θ components below this are candidates for exactly 0 (MixedModels.jl's xtol_zero_abs)
ZERO_CANDIDATE = 1e-3
#: a zero is kept when the objective rises by at most this, relative (rounding of d only: ~500 ulp)
ZERO_FTOL = 1e-13
#: θ_k = INWARD_STEP probes ∂d/∂(θ_k²) at θ_k = 0 through the analytic gradient, g_k / (2 θ_k) …
INWARD_STEP = 1e-4
#: … and by a difference quotient (d(θ_k) − d(0)) / θ_k² where there is no analytic gradient
INWARD_STEP_FD = 1e-2
#: ∂d/∂(θ_k²) at 0 below −INWARD_TOL · max(1, |d|) points inwards (above: rounding noise of the probe)
INWARD_TOL = 1e-10
#: grid of :func:`minimise_scalar`: 0 and four points per decade on [1e-3, 1e3], extended upwards by
#: decades (to :data:`SCALAR_MAX`) while the lowest value is at its upper end
SCALAR_GRID = np.r_[0.0, np.geomspace(1e-3, 1e3, 25)]
SCALAR_MAX = 1e12
#: lme4's isSingular tolerance on the diagonal of θ
SINGULAR_TOL = 1e-4


@dataclass
class Counter:
    """Counts evaluations of an objective."""

    fun: Objective
    evaluations: int = 0
    gradients: int = 0

    def __call__(self, x: np.ndarray, want_grad: bool) -> tuple[float, np.ndarray | None]:
        self.evaluations += 1
        self.gradients += int(want_grad)
        return self.fun(np.asarray(x, dtype=float), want_grad)


def remember_last(fun: Objective) -> Objective:
    """``fun`` that answers a repeated request for its last θ without evaluating again (the polish, the
    restart check and the zero rule each start where the previous step stopped)."""
    last: dict = {}

    def f(x: np.ndarray, want_grad: bool) -> tuple[float, np.ndarray | None]:
        x = np.asarray(x, dtype=float)
        if last and np.array_equal(x, last["x"]) and (not want_grad or last["g"] is not None):
            return last["f"], (last["g"].copy() if want_grad else None)
        fx, gx = fun(x, want_grad)
        last.update(x=x.copy(), f=fx, g=None if gx is None else np.array(gx, dtype=float))
        return fx, gx

    return f


@dataclass(frozen=True)
class OptResult:
    """Outcome of :func:`minimise` / :func:`rectify`."""

    theta: np.ndarray
    fval: float
    converged: bool
    message: str
    optimizer: str


def _f_only(fun: Objective):
    def f(x):
        v = fun(np.asarray(x, dtype=float), False)[0]
        return v if math.isfinite(v) else 1e300

    return f


def canonical(theta: np.ndarray, layout: Layout) -> np.ndarray:
    """θ with every column of every Λ_t sign-flipped to a non-negative diagonal (ΛΛ' is unchanged)."""
    theta = np.array(theta, dtype=float)
    for t in layout.terms:
        for k in range(t.n_theta):
            if t.rows[k] == t.cols[k] and theta[t.start + k] < 0:
                col = t.start + np.flatnonzero(t.cols == t.cols[k])
                theta[col] = -theta[col]
    return theta


def minimise(fun: Objective, x0: np.ndarray, *, has_grad: bool = True, polish: bool = True,
             warm: np.ndarray | None = None, diagonal: np.ndarray | None = None) -> OptResult:
    """Minimise ``fun`` over θ (unconstrained; d is even in each column of Λ, see :func:`canonical`).

    ``warm`` is an optional second start (e.g. a moment estimate, :func:`.onefactor.moment_start`): when
    its objective is lower than at ``x0``, BFGS starts there with the inverse of a difference Hessian.
    ``diagonal`` (the layout's mask of diagonal θ components) enables the restart off spurious zeros
    (module docstring, :func:`_leave_zeros`).
    """
    opt = _minimise_once(fun, x0, has_grad=has_grad, polish=polish, warm=warm)
    if diagonal is None or not np.any(diagonal):
        return opt
    for _ in range(2 * int(np.count_nonzero(diagonal))):
        start = _leave_zeros(fun, opt.theta, diagonal, has_grad)
        if start is None:
            break
        nxt = _minimise_once(fun, start, has_grad=has_grad, polish=polish, warm=None)
        if not nxt.fval < opt.fval:
            break
        opt = OptResult(nxt.theta, nxt.fval, nxt.converged, nxt.message + " (restarted off θ = 0)",
                        nxt.optimizer)
    return opt


def _leave_zeros(fun: Objective, x: np.ndarray, diagonal: np.ndarray, has_grad: bool) -> np.ndarray | None:
    """A start off every diagonal component of ``x`` that sits below :data:`ZERO_CANDIDATE` although
    ∂d/∂(θ_k²) points inwards there; None when there is none.  Each such θ_k is set to the best of a
    few trial values along θ_k (the others held)."""
    x = np.array(x, dtype=float)
    f = fun(x, False)[0]
    moved = False
    for k in np.flatnonzero(diagonal & (np.abs(x) < ZERO_CANDIDATE)):
        col = _column(diagonal, int(k))
        at0 = x.copy()
        at0[col] = 0.0
        if not inward(fun, at0, col, has_grad=has_grad):
            continue
        best_t, best_f = None, f
        for t in (1e-2, 3e-2, 0.1, 0.3, 1.0, 3.0):
            trial = x.copy()
            trial[k] = t
            ft = fun(trial, False)[0]
            if ft < best_f:
                best_t, best_f = t, ft
        if best_t is not None:
            x[k], f, moved = best_t, best_f, True
    return x if moved else None


def _column(diagonal: np.ndarray, k: int) -> np.ndarray:
    """θ indices of the column of Λ_t that starts at diagonal component ``k``: lme4 orders each term's
    lower triangle column-major, so the column is ``k`` and the off-diagonal components that follow it."""
    stop = k + 1
    while stop < diagonal.size and not diagonal[stop]:
        stop += 1
    return np.arange(k, stop)


def _minimise_once(fun: Objective, x0: np.ndarray, *, has_grad: bool, polish: bool,
                   warm: np.ndarray | None) -> OptResult:
    """One run of BFGS (→ Powell if it fails) and the Newton polish: the body of :func:`minimise`."""
    x0 = np.asarray(x0, dtype=float)
    if x0.size == 0:
        return OptResult(x0, fun(x0, False)[0], True, "no covariance parameters", "none")
    ok, x, f, name, msg = False, x0, math.inf, "BFGS", ""
    H0 = None
    if has_grad and warm is not None and fun(warm, False)[0] < fun(x0, False)[0]:
        H0 = warm_hessian(fun, warm)
        if H0 is not None:
            x0 = np.asarray(warm, dtype=float)
    state: dict = {}
    if has_grad:
        x, f, ok, msg = bfgs(fun, x0, H0=H0, state=state)
    else:
        x, f, ok, msg = bfgs(fd_gradient(fun), x0, gtol=1e-8)
        name = "BFGS (difference gradient)"
    if not ok or not math.isfinite(f):
        res2 = minimize(_f_only(fun), x if math.isfinite(f) else x0, method="Powell",
                        options=dict(xtol=1e-10, ftol=1e-15, maxfev=20000))
        if res2.fun < 1e300 and (not math.isfinite(f) or res2.fun <= f):
            x, f = np.asarray(res2.x, dtype=float), float(res2.fun)
        name = f"{name} → Powell"
        msg = f"BFGS: {msg}; Powell: {res2.message}"
        ok = bool(res2.success) and f < 1e300
        state.clear()
    if polish and has_grad and math.isfinite(f) and f < 1e300:
        x, f = newton_polish(fun, x, f, H=state.get("H"))
    return OptResult(x, f, ok, msg, name)


def rectify(fun: Objective, opt: OptResult, layout: Layout, *, has_grad: bool = True) -> OptResult:
    """Try near-zero diagonal components of θ at exactly 0; keep each zero if the objective is no worse."""
    x, f = canonical(opt.theta, layout), opt.fval
    diag = layout.diagonal
    fixed = np.zeros(x.size, dtype=bool)
    for k in np.flatnonzero(diag & (x < ZERO_CANDIDATE)):
        if fixed[k] and x[k] == 0.0:
            continue
        col = layout.column_of(int(k))
        trial_fixed = fixed.copy()
        trial_fixed[col] = True
        trial = x.copy()
        trial[col] = 0.0
        free = np.flatnonzero(~trial_fixed)
        if free.size:
            def sub(z, want_grad, _t=trial, _free=free):
                full = _t.copy()
                full[_free] = z
                fz, gz = fun(full, want_grad)
                return fz, (None if gz is None else gz[_free])

            r = minimise(sub, trial[free], has_grad=has_grad, diagonal=diag[free])
            trial[free] = r.theta
            ft = r.fval
        else:
            ft = fun(trial, False)[0]
        if ft <= f + ZERO_FTOL * abs(f) and not inward(fun, trial, col, has_grad=has_grad):
            x, f, fixed = canonical(trial, layout), ft, trial_fixed
    return OptResult(x, f, opt.converged, opt.message, opt.optimizer)


def inward(fun: Objective, x: np.ndarray, column, *, has_grad: bool = True) -> bool:
    """Whether d decreases as a zero column of some Λ_t leaves 0 (``x`` has the column at 0).

    ``column`` holds the θ indices of the column, its diagonal component first
    (:meth:`.theta.Layout.column_of`).  d is even in the column, so its gradient vanishes there and the
    first-order question is in the variance direction: with the column at εv, d = d(0) + ε² v'G v + O(ε⁴)
    where G is ∂d/∂D restricted to the column's rows, and ∂d/∂θ_(r,c) = 2ε (G v)_r.  So one analytic
    gradient at εe_j (ε = :data:`INWARD_STEP`) per column entry gives G (error O(ε²)); the column points
    inwards when G has an eigenvalue below −:data:`INWARD_TOL` · max(1, |d(0)|).  Without an analytic
    gradient only the diagonal direction is probed: (d(εe_0) − d(0)) / ε² at ε = :data:`INWARD_STEP_FD`.
    """
    x = np.asarray(x, dtype=float)
    column = np.atleast_1d(np.asarray(column, dtype=np.intp))
    f0 = fun(x, False)[0]
    if not math.isfinite(f0):
        return False
    if has_grad:
        G = np.empty((column.size, column.size))
        for j, k in enumerate(column):
            probe = x.copy()
            probe[k] = INWARD_STEP
            fp, gp = fun(probe, True)
            if gp is None or not math.isfinite(fp):
                return False
            G[:, j] = gp[column] / (2.0 * INWARD_STEP)
        lowest = float(np.linalg.eigvalsh(0.5 * (G + G.T))[0])
    else:
        probe = x.copy()
        probe[column[0]] = INWARD_STEP_FD
        fp = fun(probe, False)[0]
        if not math.isfinite(fp):
            return False
        lowest = (fp - f0) / INWARD_STEP_FD ** 2
    return lowest < -INWARD_TOL * max(1.0, abs(f0))


def _polish_scalar(fun: Objective, lo: float, hi: float, has_grad: bool) -> tuple[float, float]:
    """The local minimum of d on [lo, hi] (a bracket from the grid of :func:`minimise_scalar`).

    With the analytic gradient and g(lo) < 0 < g(hi), Brent's root search on g (``scipy.optimize.brentq``,
    to rounding); otherwise Brent's bounded minimiser on d.
    """
    from scipy.optimize import brentq, minimize_scalar

    def g(t):
        return float(fun(np.array([t]), True)[1][0])

    if has_grad:
        try:
            glo, ghi = g(lo), g(hi)
        except (TypeError, IndexError):               # no gradient where d is not finite
            glo = ghi = math.nan
        if glo < 0.0 < ghi:
            t = brentq(g, lo, hi, xtol=1e-15, rtol=4.0 * np.finfo(float).eps, maxiter=200)
            return t, fun(np.array([t]), False)[0]
    r = minimize_scalar(lambda t: _f_only(fun)(np.array([t])), bounds=(lo, hi), method="bounded",
                        options=dict(xatol=1e-12 * max(1.0, hi)))
    return float(r.x), float(r.fun)


#: fun_grid(θ array) -> deviances: the objective vectorised over many scalar θ (optional)
GridObjective = Callable[[np.ndarray], np.ndarray]


def minimise_scalar(fun: Objective, *, has_grad: bool = True, fun_grid: GridObjective | None = None
                    ) -> OptResult:
    """The global minimum over θ ≥ 0 of the profiled deviance of a model with one scalar θ.

    d(θ) = h(θ²) is even, so the problem is one-dimensional on [0, ∞) and needs no start:

    1. d on :data:`SCALAR_GRID` (extended by decades while its lowest value is at the upper end);
    2. every grid point no higher than its neighbours brackets a local minimum, solved by
       :func:`_polish_scalar`; if θ = 0 is the lowest grid point but ∂h/∂λ(0) < 0 (:func:`inward`),
       the minimum lies in (0, first grid point) and is solved there;
    3. the lowest local minimum is compared with θ = 0: 0 is returned only when the derivative at 0
       does not point inwards and d(0) is no higher, within :data:`ZERO_FTOL` relative.

    ``fun_grid``, where the path has one (:func:`.onefactor.deviance_grid`), evaluates step 1 in one call.
    """
    def values(ts):
        if fun_grid is not None:
            out = np.asarray(fun_grid(np.asarray(ts, dtype=float)), dtype=float)
        else:
            out = np.array([fun(np.array([t]), False)[0] for t in ts])
        return [float(v) if math.isfinite(v) else math.inf for v in out]

    grid = [float(t) for t in SCALAR_GRID]
    vals = values(grid)
    while int(np.argmin(vals)) == len(grid) - 1 and grid[-1] < SCALAR_MAX:
        more = [float(t) for t in grid[-1] * 10.0 ** (np.arange(1, 5) / 4.0)]
        grid += more
        vals += values(more)
    f0 = vals[0]
    is_inward = inward(fun, np.zeros(1), [0], has_grad=has_grad)
    best_t, best_f = 0.0, math.inf
    last = len(grid) - 1
    for i in range(1, len(grid)):
        if vals[i] <= vals[i - 1] and (i == last or vals[i] <= vals[i + 1]) and math.isfinite(vals[i]):
            lo, hi = grid[i - 1], grid[min(i + 1, last)]
            t, ft = _polish_scalar(fun, lo if i > 1 else 0.5 * grid[1], hi, has_grad)
            if vals[i] < ft:
                t, ft = grid[i], vals[i]
            if ft < best_f:
                best_t, best_f = t, ft
    if is_inward and not best_f < f0:
        t, ft = _polish_scalar(fun, INWARD_STEP * 1e-4, grid[1], has_grad)
        if ft < best_f:
            best_t, best_f = t, ft
    if not is_inward and f0 <= best_f + ZERO_FTOL * abs(best_f):
        best_t, best_f = 0.0, f0
    ok = math.isfinite(best_f)
    msg = "global 1-D minimum (grid, Brent, comparison with θ = 0)" if ok else "objective not finite"
    if ok and int(np.argmin(vals)) == last:
        # still decreasing at θ = SCALAR_MAX: σ²/σ_A² → 0, the residual variance is numerically zero
        ok, msg = False, f"the deviance still decreases at θ = {grid[-1]:.0e} (σ_A/σ beyond double precision)"
    return OptResult(np.array([best_t]), best_f, ok, msg, "grid + Brent")


def optimise_theta(fun: Objective, layout: Layout, *, has_grad: bool = True, x0: np.ndarray | None = None,
                   warm: np.ndarray | None = None, fun_grid: GridObjective | None = None) -> OptResult:
    """θ̂ of the profiled deviance ``fun`` with the boundary rule: the one path every fit takes.

    One diagonal θ component (a single scalar random-effects term): :func:`minimise_scalar`, exact and
    start-free (``fun_grid`` vectorises its grid).  Otherwise :func:`minimise` from ``x0`` (default
    lme4's start) with the optional ``warm`` start, then :func:`rectify`.
    """
    fun = remember_last(fun)
    if layout.n_theta == 1 and bool(layout.diagonal[0]):
        return minimise_scalar(fun, has_grad=has_grad, fun_grid=fun_grid)
    x0 = layout.start() if x0 is None else np.asarray(x0, dtype=float)
    opt = minimise(fun, x0, has_grad=has_grad, warm=warm, diagonal=layout.diagonal)
    return rectify(fun, opt, layout, has_grad=has_grad)


def is_singular(theta: np.ndarray, layout: Layout, tol: float = SINGULAR_TOL) -> bool:
    """lme4's ``isSingular``: some diagonal component of θ below ``tol`` (θ is scale-free)."""
    return bool(singular_rows(theta, layout, tol))


def singular_rows(theta: np.ndarray, layout: Layout, tol: float = SINGULAR_TOL) -> np.ndarray:
    """:func:`is_singular` of each row of a stack of θ (..., n_θ): an array of flags (a 0-d one for one θ)."""
    return np.any(np.asarray(theta)[..., layout.diagonal] < tol, axis=-1)
