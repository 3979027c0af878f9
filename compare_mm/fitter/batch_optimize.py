"""θ̂ of many responses of one one-factor design at once, with the per-replicate path's boundary rule.

The batched evaluations of :mod:`.batch` drive two vectorised optimisers that reproduce
:func:`.optimize.optimise_theta` replicate by replicate:

* one scalar θ (a random intercept): :func:`.optimize.minimise_scalar` vectorised — the same grid
  (:data:`.optimize.SCALAR_GRID`) for every replicate in one evaluation, the bracketed local minimum
  solved to rounding by a safeguarded Illinois (regula falsi) root search on ∂d/∂θ, the same
  :func:`.optimize.inward` probe at θ = 0 and the same comparison with d(0) (:data:`.optimize.ZERO_FTOL`);
* several θ (``(x || g)``, ``(x | g)``): from the per-replicate path's start (lme4's, or the moment start
  of :func:`.onefactor.moment_start` when its deviance is lower), Newton steps with the Hessian by central
  differences of the analytic gradient (positive definite, else a steepest-descent step) and a
  backtracking line search, each replicate masked out as it converges; signs flipped to a non-negative
  diagonal (:func:`.optimize.canonical`).

Every replicate whose outcome the per-replicate rule might decide differently is flagged instead of
guessed: more than one bracketed local minimum, a minimum at the top of the grid (the per-replicate path
extends the grid), a bracket without a sign change of ∂d/∂θ, a boundary comparison or an inward probe
within a margin of its threshold, a Newton run that does not converge, and any diagonal θ component
below :data:`.optimize.ZERO_CANDIDATE` (where the per-replicate path applies its zero rule, ``rectify``).
The caller fits those replicates by the per-replicate path.
"""

from __future__ import annotations

import numpy as np

from .batch import BatchProblem, evaluate_batch
from .optimize import INWARD_STEP, INWARD_TOL, SCALAR_GRID, ZERO_CANDIDATE, ZERO_FTOL

#: a comparison closer than this (relative to |d|) to its threshold is left to the per-replicate path
MARGIN = 1e-11
#: an inward probe within this fraction of its threshold (relative) is left to the per-replicate path
INWARD_MARGIN = 0.1
#: root search tolerances of :func:`.optimize._polish_scalar` (``brentq``'s xtol and rtol)
XTOL, RTOL = 1e-15, 4.0 * np.finfo(float).eps


def _grad1(bp: BatchProblem, rep: np.ndarray, t: np.ndarray, reml: bool) -> np.ndarray:
    return evaluate_batch(bp, rep, t[:, None], reml, True).grad[:, 0]


def _root(bp: BatchProblem, rep: np.ndarray, lo: np.ndarray, hi: np.ndarray, glo: np.ndarray,
          ghi: np.ndarray, reml: bool) -> tuple[np.ndarray, np.ndarray]:
    """The root of ∂d/∂θ in [lo, hi] (g(lo) < 0 < g(hi)) per replicate, to XTOL + RTOL·θ: Illinois steps,
    a bisection whenever the bracket has not halved in two steps.  Returns (root, converged)."""
    a, fa, b, fb = lo.copy(), glo.copy(), hi.copy(), ghi.copy()
    width = np.abs(b - a)
    done = width <= XTOL + RTOL * np.abs(b)
    prev = np.full_like(width, np.inf)
    for it in range(200):
        act = np.flatnonzero(~done)
        if act.size == 0:
            break
        aa, ba, fa_, fb_ = a[act], b[act], fa[act], fb[act]
        c = ba - fb_ * (ba - aa) / (fb_ - fa_)
        lo_, hi_ = np.minimum(aa, ba), np.maximum(aa, ba)
        bis = ~((c > lo_) & (c < hi_)) | (np.abs(ba - aa) > 0.5 * prev[act]) & (it % 2 == 1)
        c = np.where(bis, 0.5 * (aa + ba), c)
        gc = _grad1(bp, rep[act], c, reml)
        bad = ~np.isfinite(gc)
        flip = gc * fb_ < 0.0
        if it % 2 == 1:
            prev[act] = np.abs(ba - aa)
        new_a = np.where(flip, ba, aa)
        new_fa = np.where(flip, fb_, np.where(bis, fa_, 0.5 * fa_))
        a[act], fa[act], b[act], fb[act] = new_a, new_fa, c, gc
        fin = (np.abs(c - new_a) <= XTOL + RTOL * np.abs(c)) | (gc == 0.0) | bad
        done[act] = fin
        fb[act[bad]] = np.nan
    return b, done & np.isfinite(fb)


def scalar_batch(bp: BatchProblem, reml: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """θ̂ (R,), d(θ̂) (R,) and a mask of the replicates solved here, for one scalar θ (module docstring;
    :func:`.optimize.minimise_scalar` step by step)."""
    R = bp.R
    grid = np.asarray(SCALAR_GRID, dtype=float)
    K = grid.size
    reps = np.arange(R)
    vals = evaluate_batch(bp, np.repeat(reps, K), np.tile(grid, R)[:, None], reml, False).deviance.reshape(R, K)
    scale = np.maximum(1.0, np.abs(vals[:, :1]))
    ok = np.all(np.isfinite(vals), axis=1) & (np.argmin(vals, axis=1) < K - 1)
    diff = np.diff(vals, axis=1)                                              # v[i+1] − v[i]
    ok &= np.all(np.abs(diff) > MARGIN * scale, axis=1)                       # no near-ties in the scan
    # local minima i ≥ 1: v[i] ≤ v[i−1] and (i last or v[i] ≤ v[i+1])
    is_min = diff <= 0.0
    is_min = is_min & np.c_[~is_min[:, 1:], np.ones((R, 1), bool)]
    n_min = is_min.sum(axis=1)
    ok &= n_min <= 1
    interior = n_min == 1                       # no local minimum above 0: d increases from θ = 0
    i = np.argmax(is_min, axis=1) + 1
    lo = np.where(i > 1, grid[np.maximum(i - 1, 0)], 0.5 * grid[1])
    hi = grid[np.minimum(i + 1, K - 1)]
    g2 = _grad1(bp, np.r_[reps, reps], np.r_[lo, hi], reml)
    glo, ghi = g2[:R], g2[R:]
    ok &= ~interior | ((glo < 0.0) & (ghi > 0.0))
    t = np.zeros(R)
    idx = np.flatnonzero(ok & interior)
    if idx.size:
        root, conv = _root(bp, idx, lo[idx], hi[idx], glo[idx], ghi[idx], reml)
        t[idx] = root
        ok[idx] &= conv
    ft = evaluate_batch(bp, reps, t[:, None], reml, False).deviance
    vi = vals[reps, i]
    use_grid = vi < ft
    t = np.where(use_grid, grid[i], t)
    best = np.where(interior, np.where(use_grid, vi, ft), np.inf)
    f0 = vals[:, 0]
    # inward at 0: ∂d/∂(θ²) from the analytic gradient at θ = INWARD_STEP
    slope = _grad1(bp, reps, np.full(R, INWARD_STEP), reml) / (2.0 * INWARD_STEP)
    thr = -INWARD_TOL * np.maximum(1.0, np.abs(f0))
    ok &= np.isfinite(slope) & (np.abs(slope - thr) > INWARD_MARGIN * np.abs(thr))
    inward = slope < thr
    ok &= ~(inward & ~(best < f0))                                            # the per-replicate path probes (0, grid[1])
    with np.errstate(invalid="ignore"):
        zero_thr = best + ZERO_FTOL * np.abs(best)
        ok &= ~interior | (np.abs(f0 - zero_thr) > MARGIN * np.abs(best))
    zero = ~inward & (~interior | (f0 <= zero_thr))
    t = np.where(zero, 0.0, t)
    best = np.where(zero, f0, best)
    return t, best, ok & np.isfinite(best)


def canonical_batch(bp: BatchProblem, theta: np.ndarray, diagonal: np.ndarray) -> np.ndarray:
    """Every column of Λ with a negative diagonal sign-flipped (:func:`.optimize.canonical`, batched)."""
    theta = theta.copy()
    for k in np.flatnonzero(diagonal):
        col = np.flatnonzero(bp.cols == bp.cols[k])
        neg = theta[:, k] < 0.0
        theta[np.ix_(neg, col)] = -theta[np.ix_(neg, col)]
    return theta


def newton_batch(bp: BatchProblem, x0: np.ndarray, reml: bool, *, rep: np.ndarray | None = None,
                 free: np.ndarray | None = None, max_iter: int = 40) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Newton's method on every row of ``x0`` (R, k) at once (module docstring): row i is replicate
    ``rep[i]`` (default i); only the components in ``free`` (default all) move.  Returns θ (R, k), d (R,)
    and a mask of the rows that converged (a full Newton step below 1e-9 relative)."""
    R, k = x0.shape
    rep = np.arange(R) if rep is None else np.asarray(rep, dtype=np.intp)
    fi = np.arange(k) if free is None else np.flatnonzero(free)
    kf = fi.size
    x = np.array(x0, dtype=float)
    f = np.full(R, np.inf)
    done = np.zeros(R, dtype=bool)
    ok = np.zeros(R, dtype=bool)
    for _ in range(max_iter):
        act = np.flatnonzero(~done)
        if act.size == 0:
            break
        A = act.size
        xa = x[act]
        h = 1e-5 * np.maximum(1.0, np.abs(xa[:, fi]))                       # (A, kf)
        shifts = []
        for sign in (1.0, -1.0):
            for j in range(kf):
                xs = xa.copy()
                xs[:, fi[j]] += sign * h[:, j]
                shifts.append(xs)
        ev = evaluate_batch(bp, np.tile(rep[act], 2 * kf + 1), np.concatenate([xa] + shifts), reml, True)
        fa = ev.deviance[:A]
        g = ev.grad[:A][:, fi]
        gp = ev.grad[A:(kf + 1) * A][:, fi].reshape(kf, A, kf)
        gm = ev.grad[(kf + 1) * A:][:, fi].reshape(kf, A, kf)
        H = np.moveaxis((gp - gm) / (2.0 * h.T[:, :, None]), 0, 2)           # H[a, :, j]
        H = 0.5 * (H + np.swapaxes(H, 1, 2))
        finite = np.isfinite(fa) & np.all(np.isfinite(g), axis=1) & np.all(np.isfinite(H), axis=(1, 2))
        Hs = np.where(finite[:, None, None], H, np.eye(kf))
        pd = finite & (np.linalg.eigvalsh(Hs)[:, 0] > 0.0)
        gs = np.where(finite[:, None], g, 0.0)
        step = -np.linalg.solve(np.where(pd[:, None, None], Hs, np.eye(kf)), gs[:, :, None])[:, :, 0]
        gmax = np.maximum(np.abs(gs).max(axis=1), 1e-300)
        step = np.where(pd[:, None], step, -gs * (0.5 / gmax)[:, None])
        smax = np.abs(step).max(axis=1)
        step *= np.minimum(1.0, 2.0 / np.maximum(smax, 1e-300))[:, None]
        smax = np.abs(step).max(axis=1)
        slope = np.einsum("ak,ak->a", gs, step)
        xscale = np.maximum(1.0, np.abs(xa).max(axis=1))
        tiny = pd & (smax <= 1e-10 * xscale)                                 # converged: step below ~rounding
        t = np.ones(A)
        searching = finite & ~tiny
        accepted = np.zeros(A, dtype=bool)
        fnew = fa.copy()
        for _ls in range(30):
            s_ = np.flatnonzero(searching & ~accepted)
            if s_.size == 0:
                break
            trial = xa[s_].copy()
            trial[:, fi] += t[s_, None] * step[s_]
            ft = evaluate_batch(bp, rep[act[s_]], trial, reml, False).deviance
            good = np.isfinite(ft) & (ft <= fa[s_] + 1e-4 * t[s_] * slope[s_] + 1e-14 * np.abs(fa[s_]))
            accepted[s_[good]] = True
            fnew[s_[good]] = ft[good]
            bad = s_[~good]
            t[bad] *= 0.5
            searching[bad] &= t[bad] * smax[bad] > 1e-14 * xscale[bad]
        # a tiny Newton step changes d below its rounding: taken without a line search (θ̂ is the zero of g)
        move = accepted | tiny
        xn = xa.copy()
        xn[:, fi] += np.where(move[:, None], t[:, None] * step, 0.0)
        x[act] = xn
        f[act] = np.where(accepted, fnew, fa)
        if np.any(tiny):
            ti = np.flatnonzero(tiny)
            f[act[ti]] = evaluate_batch(bp, rep[act[ti]], xn[ti], reml, False).deviance
        small = accepted & pd & (t == 1.0) & (smax <= 1e-9 * xscale)
        failed = ~finite | (~accepted & ~tiny)
        conv = tiny | small
        done[act] = conv | failed
        ok[act] = conv & ~failed
    return x, f, ok & np.isfinite(f)


def _lowest_eig(G: np.ndarray) -> np.ndarray:
    """Lowest eigenvalue of each symmetric part of a stack of 1 × 1 or 2 × 2 matrices (closed form)."""
    if G.shape[-1] == 1:
        return G[:, 0, 0]
    a, d, b = G[:, 0, 0], G[:, 1, 1], 0.5 * (G[:, 0, 1] + G[:, 1, 0])
    return 0.5 * (a + d) - np.sqrt(0.25 * (a - d) ** 2 + b * b)


def inward_batch(bp: BatchProblem, rep: np.ndarray, x: np.ndarray, column: np.ndarray, reml: bool
                 ) -> tuple[np.ndarray, np.ndarray]:
    """:func:`.optimize.inward` for every row of ``x`` (the column of Λ at 0): (inward, undecided), the
    second marking a lowest eigenvalue within :data:`INWARD_MARGIN` of the threshold."""
    f0 = evaluate_batch(bp, rep, x, reml, False).deviance
    m = column.size
    probes = []
    for j in range(m):
        pj = x.copy()
        pj[:, column[j]] = INWARD_STEP
        probes.append(pj)
    g = evaluate_batch(bp, np.tile(rep, m), np.concatenate(probes), reml, True).grad
    G = np.stack([g[j * rep.size:(j + 1) * rep.size][:, column] for j in range(m)], axis=2) / (2.0 * INWARD_STEP)
    lowest = _lowest_eig(G)
    thr = -INWARD_TOL * np.maximum(1.0, np.abs(f0))
    undecided = ~np.isfinite(lowest) | ~np.isfinite(f0) | (np.abs(lowest - thr) <= INWARD_MARGIN * np.abs(thr))
    return lowest < thr, undecided


def rectify_batch(bp: BatchProblem, x: np.ndarray, f: np.ndarray, conv: np.ndarray, diagonal: np.ndarray,
                  reml: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`.optimize.rectify` for the rows of ``x`` (canonical θ̂ of every replicate) with one diagonal
    component below :data:`.optimize.ZERO_CANDIDATE`: its column of Λ set to 0, the other components
    re-optimised (:func:`newton_batch`), the zero kept when d is no worse (:data:`.optimize.ZERO_FTOL`)
    and the column does not point inwards.  Returns θ, d and the mask of replicates decided: no candidate,
    or one candidate whose zero is kept with every comparison clear of its threshold and the other
    diagonal components above the candidate bound; the rest are left to the per-replicate path (so are
    the zeros the rule rejects: θ̂ is then a tiny interior optimum).  A row whose Newton run did not
    converge (e.g. stopped on θ_k = 0 exactly, where ∂d/∂θ_k vanishes) is decided by the same test."""
    x, f = x.copy(), f.copy()
    cand = diagonal[None, :] & (x < ZERO_CANDIDATE)
    n_cand = cand.sum(axis=1)
    ok = conv & (n_cand == 0)
    one = np.flatnonzero(np.isfinite(f) & (n_cand == 1))
    which = np.argmax(cand[one], axis=1) if one.size else np.zeros(0, dtype=np.intp)
    for c in np.unique(which):
        sel = one[which == c]
        column = np.flatnonzero(bp.cols == bp.cols[c])
        trial = x[sel].copy()
        trial[:, column] = 0.0
        free = np.ones(x.shape[1], dtype=bool)
        free[column] = False
        if free.any():
            xs, fs, cs = newton_batch(bp, trial, reml, rep=sel, free=free)
            xs = canonical_batch(bp, xs, diagonal)
            cs &= np.all(xs[:, diagonal & free] >= ZERO_CANDIDATE, axis=1)
        else:
            xs, fs = trial, evaluate_batch(bp, sel, trial, reml, False).deviance
            cs = np.isfinite(fs)
        # the per-replicate rule keeps the zero when d(zero) ≤ d(θ̂) + ZERO_FTOL·|d|, θ̂ its own (BFGS)
        # optimum, which is ≥ ours up to rounding: half the tolerance keeps the decision clear of rounding
        below = fs <= f[sel] + 0.5 * ZERO_FTOL * np.abs(f[sel])
        inward, undecided = inward_batch(bp, sel, xs, column, reml)
        keep = cs & below & ~undecided & ~inward
        x[sel[keep]] = xs[keep]
        f[sel[keep]] = fs[keep]
        ok[sel[keep]] = True
    return x, f, ok
