"""Profile-likelihood intervals of many responses of one random-slope design (Q = 2), vectorised.

The intervals of :func:`compare_mm.inference.profile.profile_intervals` — lme4's ζ(v) = sign(v − ψ̂_k)
sqrt(d_k(v) − d̂), d_k the deviance minimised over the other parameters with ψ_k = v, and the limits its
crossings of ±sqrt(χ²_{1,level}) (Bates et al. 2015, sec. 5.1) — for a design whose random effects are
two effects of one grouping factor (``(x | g)``, ``(x || g)``), for R responses at once: every step of
the per-replicate routine is taken by all (replicate, limit) pairs together.

* The bracket of each limit is the per-replicate one (:func:`.profile._find_limit`: from ψ̂_k by the same
  doubling steps, the same bounds), the crossing inside it is found by Illinois steps on ζ(v) − target to
  1e-10 relative (the per-replicate brentq stops at 1e-7), each ζ(v) warm-started from the neighbouring
  solutions.
* d_k(v) is minimised by Newton steps with the gradient and Hessian from central differences of the
  deviance (:mod:`.batch_newton`: eigenvalues made positive, plus a step along a direction of negative
  curvature, which leaves the saddle points where the deviance is even in a coordinate), with
  backtracking, in coordinates where the parameter space has no boundary: with G = σ²ΛΛ' the random-effects covariance and s = σ̂,

  - SD of effect m at v: (log(σ/s), u₁, u₂) with G_mm = v², G_mm' = v s u₁, G_m'm' = s²(u₁² + u₂²)
    (the Cholesky factor of G with m first; ``(x || g)``: u₁ absent);
  - σ at v: G = s²WW', W lower triangular free;
  - the correlation at v: σ profiled out (the deviance d̃ at D = G/σ²), SDs/σ = (e^α, e^β), an SD taken
    as 0 below α, β = :data:`BOUNDARY_LOG` (where d no longer depends on v: the minimum over the boundary
    is reached in finitely many steps); a replicate with an estimated SD of 0 gets [−1, 1] (ζ ≡ 0 there);
  - fixed effect β_j at b (mode ``"ml"``): θ free, d = d̃(θ) + n log(1 + (b − β̂_j(θ))²/(V_jj r²(θ)))
    (σ and β₋ⱼ profiled out; V = (X'V_θ⁻¹X)⁻¹ per unit σ², r² the penalised RSS), the deviance of
    :func:`compare_mm.fitter.extended.fix_coefficient`'s model.

  The deviance at (D, σ) is d̃(D) + ν(q − 1 − log q), q = r²(D)/(νσ²) (:meth:`.extended.Surface.deviance_sigma`
  with d̃ the σ-profiled deviance, ν = n, or n − p for REML).

A replicate is left to the per-replicate routine (None) when its θ̂ is (:meth:`.batch_fit.BatchFitter.optimum`),
or when an inner minimisation or a bracket fails, or an inner minimum falls below d̂ (θ̂ not global).
"""

from __future__ import annotations

import numpy as np

from ..fitter.batch import BatchProblem, evaluate_batch
from ..fitter.batch_fit import BatchFitter
from ..results.schema import Interval
from .batch_newton import minimise as _minimise
from .profile_params import var_params

#: a correlation profile's minimisation that ends with a log(SD/σ) below this, still descending, has
#: its minimum on the boundary
DRIFT_LOG = -5.0
#: relative width at which the crossing search stops
XTOL = 1e-10
#: Illinois steps of the crossing search
MAX_ROOT = 100
#: log(SD/σ) below which a correlation profile's coordinates mean a zero SD (the deviance is flat there)
BOUNDARY_LOG = -10.0


def slope_design(fitter: BatchFitter) -> bool:
    """True for a design this module profiles: two random effects of one grouping factor, fitted as
    written (a centred slope, :mod:`compare_mm.fitter.centring`, would give the centred ψ's intervals)."""
    return fitter.template.Q == 2 and not fitter.layout.centred


class _Kind:
    """One profiled parameter: its free coordinates and the deviance at (replicate, value, coordinates)."""

    def __init__(self, bp: BatchProblem, reml: bool, kind: str, m: int, j: int, unstructured: bool,
                 s: np.ndarray):
        self.bp, self.reml, self.kind, self.m, self.j, self.uns, self.s = bp, reml, kind, m, j, unstructured, s
        self.nu = float(bp.n - bp.p) if reml else float(bp.n)
        self.dim = 2 if kind == "cor" else (int(bp.rows.size) if kind == "fixef" else (3 if unstructured else 2))

    def cov(self, rep: np.ndarray, v: np.ndarray, x: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """(G (M, 2, 2), σ (M,) or None when σ is profiled out) at the coordinates ``x``."""
        s = self.s[rep]
        G = np.zeros((x.shape[0], 2, 2))
        if self.kind == "sd":
            m, o = self.m, 1 - self.m
            sigma = s * np.exp(x[:, 0])
            u1, u2 = (x[:, 1], x[:, 2]) if self.uns else (0.0, x[:, 1])
            u1 = np.where(v == 0.0, 0.0, u1)          # at v = 0 only u₁² + u₂² counts: u₁ is left out
            G[:, m, m] = v * v
            G[:, m, o] = G[:, o, m] = v * s * u1
            G[:, o, o] = s * s * (u1 * u1 + u2 * u2)
            return G, sigma
        if self.kind == "sigma":
            w00, w10, w11 = (x[:, 0], x[:, 1], x[:, 2]) if self.uns else (x[:, 0], 0.0, x[:, 1])
            G[:, 0, 0] = s * s * w00 * w00
            G[:, 0, 1] = G[:, 1, 0] = s * s * w00 * w10
            G[:, 1, 1] = s * s * (w10 * w10 + w11 * w11)
            return G, v
        if self.kind == "cor":
            a, b = (np.where(x[:, i] > BOUNDARY_LOG, np.exp(x[:, i]), 0.0) for i in (0, 1))
            G[:, 0, 0], G[:, 1, 1] = a * a, b * b
            G[:, 0, 1] = G[:, 1, 0] = v * a * b
            return G, None
        lam = self.bp.factors(x)                                             # fixed effect: x is θ
        return lam @ np.swapaxes(lam, 1, 2), None

    def deviance(self, rep: np.ndarray, v: np.ndarray, x: np.ndarray) -> np.ndarray:
        G, sigma = self.cov(rep, v, x)
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            D = G if sigma is None else G / (sigma * sigma)[:, None, None]
            ev = evaluate_batch(self.bp, rep, None, self.reml, False, cov=D)
            d = ev.deviance
            if sigma is not None:
                q = ev.r2 / (self.nu * sigma * sigma)
                d = d + self.nu * (q - 1.0 - np.log(q))
            elif self.kind == "fixef":
                V = np.linalg.inv(np.where(np.isfinite(ev.XVX), ev.XVX, 1.0))
                b = ev.beta[:, self.j] + self.bp.offset[rep, self.j]
                d = d + self.bp.n * np.log1p((v - b) ** 2 / (V[:, self.j, self.j] * ev.r2))
        return np.where(np.isfinite(d), d, np.inf)

    def start(self, rep: np.ndarray, G: np.ndarray, theta: np.ndarray) -> np.ndarray:
        """The coordinates of the estimate (G (R, 2, 2) at σ̂, θ̂) of every replicate in ``rep``."""
        s, G, R = self.s[rep], G[rep], rep.size
        if self.kind == "sd":
            m, o = self.m, 1 - self.m
            sd = np.sqrt(G[:, m, m])
            with np.errstate(divide="ignore", invalid="ignore"):
                l10 = np.where(sd > 0.0, G[:, o, m] / sd, 0.0)
            l11 = np.sqrt(np.maximum(G[:, o, o] - l10 * l10, 0.0))
            cols = [np.zeros(R)] + ([l10 / s] if self.uns else []) + [l11 / s]
        elif self.kind == "sigma":
            w00 = np.sqrt(G[:, 0, 0])
            with np.errstate(divide="ignore", invalid="ignore"):
                w10 = np.where(w00 > 0.0, G[:, 1, 0] / w00, 0.0)
            w11 = np.sqrt(np.maximum(G[:, 1, 1] - w10 * w10, 0.0))
            cols = [w00 / s] + ([w10 / s] if self.uns else []) + [w11 / s]
        elif self.kind == "cor":
            cols = [np.log(np.sqrt(G[:, 0, 0]) / s), np.log(np.sqrt(G[:, 1, 1]) / s)]
        else:
            return theta[rep].copy()
        return np.stack(cols, axis=1)


class _Lanes:
    """Every (replicate, parameter, side) lane of one batch as one function: lane i evaluates
    ``kinds[kid[i]]`` on replicate ``rep[i]`` (its first ``dim`` coordinates; the rest are padding the
    deviance does not depend on), all lanes in one :func:`evaluate_batch` call."""

    def __init__(self, kinds: list[_Kind], rep: np.ndarray, kid: np.ndarray):
        self.kinds, self.rep, self.kid = kinds, rep, kid
        k0 = kinds[0]
        self.bp, self.reml, self.nu = k0.bp, k0.reml, k0.nu

    def deviance(self, ids: np.ndarray, v: np.ndarray, x: np.ndarray) -> np.ndarray:
        rep, kid = self.rep[ids], self.kid[ids]
        M = ids.size
        D = np.zeros((M, 2, 2))
        sig = np.full(M, np.nan)
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            for k, kind in enumerate(self.kinds):
                sel = np.flatnonzero(kid == k)
                if sel.size == 0:
                    continue
                G, sigma = kind.cov(rep[sel], v[sel], x[sel, :kind.dim])
                if sigma is None:
                    D[sel] = G
                else:
                    sigma = np.broadcast_to(sigma, (sel.size,))
                    D[sel] = G / (sigma * sigma)[:, None, None]
                    sig[sel] = sigma
            ev = evaluate_batch(self.bp, rep, None, self.reml, False, cov=D)
            d = ev.deviance
            has = np.isfinite(sig)
            q = ev.r2 / (self.nu * np.where(has, sig * sig, 1.0))
            d = np.where(has, d + self.nu * (q - 1.0 - np.log(q)), d)
            for k, kind in enumerate(self.kinds):
                if kind.kind != "fixef":
                    continue
                sel = np.flatnonzero(kid == k)
                if sel.size == 0:
                    continue
                XVX = ev.XVX[sel]
                V = np.linalg.inv(np.where(np.isfinite(XVX), XVX, 1.0))
                b = ev.beta[sel, kind.j] + self.bp.offset[rep[sel], kind.j]
                d[sel] = d[sel] + self.bp.n * np.log1p((v[sel] - b) ** 2 / (V[:, kind.j, kind.j] * ev.r2[sel]))
        return np.where(np.isfinite(d), d, np.inf)


def _zeta(d: np.ndarray, dmin: np.ndarray, v: np.ndarray, est: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore"):
        return np.sign(v - est) * np.sqrt(np.maximum(d - dmin, 0.0))


def _limits(lanes_fn: _Lanes, side: np.ndarray, est: np.ndarray, step: np.ndarray, lo: np.ndarray,
            hi: np.ndarray, dmin: np.ndarray, x_hat: np.ndarray, z: float, edge: np.ndarray, is_sigma: np.ndarray,
            is_cor: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The limit of every lane (side ±1) and a mask of the lanes decided.

    Follows :func:`.profile._find_limit` (bounds ``lo``/``hi``, ±inf for none), then Illinois steps.
    ``edge`` is a correlation lane's least deviance on the zero-SD boundary (+inf for other lanes)."""
    L = side.size
    target = side * z
    bound = np.where(side > 0, hi, lo)
    a, b = est.copy(), est + side * step
    fa = -side * z                                                           # ζ(est) − target = −target
    xa = x_hat.copy()
    xb = x_hat.copy()
    fb = np.full(L, np.nan)
    out = np.full(L, np.nan)
    ok = np.ones(L, dtype=bool)
    state = np.zeros(L, dtype=np.int8)        # 0 bracketing, 1 bracketed, 2 done (bound or failed)

    def zeta_at(lanes, vals, x0):
        pos = ~(is_sigma[lanes] & (vals <= 0.0))                          # σ = 0: d = inf
        xs, dv, cv = x0.copy(), np.full(lanes.size, np.inf), ~pos
        if pos.any():
            xs[pos], dv[pos], cv[pos] = _minimise(lanes_fn, lanes[pos], vals[pos], x0[pos])
        e = edge[lanes]                      # the correlation's profile: the boundary's minimum counts too
        drift = ~cv & is_cor[lanes] & (xs.min(axis=1) < DRIFT_LOG) & (dv >= e)
        dv = np.where(drift, e, np.minimum(dv, e))
        cv = cv | drift
        below = dv < dmin[lanes] - 1e-8 * np.abs(dmin[lanes])
        with np.errstate(invalid="ignore"):   # _zeta of d = inf (discarded by the where) is nan
            zeta = np.where(np.isinf(dv), np.sign(vals - est[lanes]) * np.inf,
                            _zeta(dv, dmin[lanes], vals, est[lanes]))
        return xs, zeta, cv & ~below

    for _ in range(60):
        act = np.flatnonzero(state == 0)
        if act.size == 0:
            break
        hit = np.isfinite(bound[act]) & (side[act] * (b[act] - bound[act]) >= 0.0)
        b[act] = np.where(hit, bound[act], b[act])
        xs, zb, cv = zeta_at(act, b[act], xb[act])
        ok[act] &= cv
        g = zb - target[act]
        cross = cv & (side[act] * g >= 0.0)
        at_bound = cv & hit & ~cross
        go = cv & ~hit & ~cross
        state[act[~cv]] = 3
        out[act[at_bound]] = bound[act[at_bound]]
        state[act[at_bound]] = 2
        state[act[cross]] = 1
        fb[act[cross]], xb[act[cross]] = g[cross], xs[cross]
        ga = act[go]
        a[ga], fa[ga], xa[ga], xb[ga] = b[ga], g[go], xs[go], xs[go]
        b[ga] = est[ga] + side[ga] * np.abs(b[ga] - est[ga]) * 2.0
    ok &= state != 0
    prev = np.full(L, np.inf)
    for it in range(MAX_ROOT):
        act = np.flatnonzero((state == 1) & ok)
        if act.size == 0:
            break
        aa, bb, ffa, ffb = a[act], b[act], fa[act], fb[act]
        width = np.abs(bb - aa)
        fin = width <= XTOL * np.maximum(np.abs(aa) + np.abs(bb), step[act])
        if fin.any():
            out[act[fin]] = np.where(np.abs(ffa[fin]) <= np.abs(ffb[fin]), aa[fin], bb[fin])
            state[act[fin]] = 2
        act, aa, bb, ffa, ffb, width = act[~fin], aa[~fin], bb[~fin], ffa[~fin], ffb[~fin], width[~fin]
        if act.size == 0:
            break
        with np.errstate(invalid="ignore", divide="ignore"):
            c = bb - ffb * (bb - aa) / (ffb - ffa)
        lo_, hi_ = np.minimum(aa, bb), np.maximum(aa, bb)
        bis = ~np.isfinite(c) | ~((c > lo_) & (c < hi_)) | ((width > 0.5 * prev[act]) & (it % 2 == 1))
        c = np.where(bis, 0.5 * (aa + bb), c)
        if it % 2 == 1:
            prev[act] = width
        wa = np.where(np.isfinite(ffb), (c - aa) / (bb - aa), 0.0)
        # a correlation's b may have its minimum at a zero SD: start from a's (interior) then
        wa = np.where(~is_cor[act] | np.all(xb[act] > BOUNDARY_LOG, axis=1), wa, 0.0)
        wa = wa[:, None]
        x0 = xa[act] + wa * (xb[act] - xa[act])
        xs, zc, cv = zeta_at(act, c, x0)
        ok[act] &= cv
        gc = zc - target[act]
        flip = gc * ffb < 0.0                                                # root between c and b: a ← b
        na = np.where(flip, bb, aa)
        nfa = np.where(flip, ffb, np.where(bis, ffa, 0.5 * ffa))
        nxa = np.where(flip[:, None], xb[act], xa[act])
        a[act], fa[act], xa[act] = na, nfa, nxa
        b[act], fb[act], xb[act] = c, gc, xs
        zero = gc == 0.0
        out[act[zero]] = c[zero]
        state[act[zero]] = 2
    return out, ok & (state == 2) & np.isfinite(out)


def profile_many_slope(fitter: BatchFitter, Y: np.ndarray, *, mode: str = "ml",
                       level: float = 0.95) -> list[tuple[Interval, ...] | None]:
    """Per response of ``Y`` (R, n): the intervals :func:`.profile.profile_intervals` gives for the design
    with that response (same names, order, ``kind="profile"``), or None for a replicate left to it.

    Parameters
    ----------
    fitter
        The batched fitter of a design with two random effects of one grouping factor (:func:`slope_design`).
    mode
        ``"ml"`` (lme4's convention: ML profile, fixed effects included) or ``"reml"`` (variance parameters).
    level
        Confidence level.
    """
    from scipy import stats  # deferred: scipy.stats is a heavy import that summarise/report never need
    reml = mode == "reml"
    bp = fitter.problem(Y)
    theta, solved, _ = fitter.optimum(bp, reml)
    out: list[tuple[Interval, ...] | None] = [None] * bp.R
    idx = np.flatnonzero(solved)
    if idx.size == 0:
        return out
    R = bp.R
    nu = float(bp.n - bp.p) if reml else float(bp.n)
    th = np.where(np.isfinite(theta), theta, 0.0)
    ev = evaluate_batch(bp, np.arange(R), th, reml, False)
    dmin = ev.deviance
    sigma = np.sqrt(ev.r2 / nu)
    G = ev.D * (sigma * sigma)[:, None, None]
    good = np.zeros(R, dtype=bool)
    good[idx] = np.isfinite(dmin[idx]) & (sigma[idx] > 0.0)
    z = float(np.sqrt(stats.chi2.ppf(level, 1)))
    uns = bool(np.any(bp.rows != bp.cols))
    merged = fitter.effect_cols
    params = var_params(fitter.design)
    names, specs = [], []
    for p in params:
        names.append(p.name)
        if p.kind == "sd":
            kind = _Kind(bp, reml, "sd", int(merged[p.term][p.i]), -1, uns, sigma)
            est = np.sqrt(np.maximum(G[:, kind.m, kind.m], 0.0))
            specs.append((kind, est, np.where(est > 0.0, 0.2 * est, 0.2 * sigma), 0.0, np.inf))
        elif p.kind == "sigma":
            specs.append((_Kind(bp, reml, "sigma", -1, -1, uns, sigma), sigma, 0.2 * sigma, 0.0, np.inf))
        else:
            sd0, sd1 = np.sqrt(np.maximum(G[:, 0, 0], 0.0)), np.sqrt(np.maximum(G[:, 1, 1], 0.0))
            with np.errstate(invalid="ignore", divide="ignore"):
                est = np.where(sd0 * sd1 > 0.0, G[:, 1, 0] / (sd0 * sd1), 0.0)
            specs.append((_Kind(bp, reml, "cor", -1, -1, uns, sigma), est, 0.25 * (1.0 - np.abs(est)) + 1e-3, -1.0, 1.0))
    if not reml:
        V = np.linalg.inv(np.where(np.isfinite(ev.XVX), ev.XVX, 1.0))
        beta = ev.beta + bp.offset
        for j, nm in enumerate(fitter.design.fixed_names):
            names.append(nm)
            se = sigma * np.sqrt(V[:, j, j])
            specs.append((_Kind(bp, reml, "fixef", -1, j, uns, sigma), beta[:, j], 1.5 * z * se, -np.inf, np.inf))
    lower, upper, ok = _all_limits(specs, idx[good[idx]], dmin, G, th, z, R)
    decided = np.all(ok, axis=1) & good
    for m in np.flatnonzero(decided):
        out[m] = tuple(Interval(nm, "profile", float(lower[m, i]), float(upper[m, i]), level)
                       for i, nm in enumerate(names))
    return out


def _all_limits(specs, rep: np.ndarray, dmin, G, theta, z, R):
    """(lower, upper, decided), each (R, number of parameters), of the parameters ``specs`` — (kind,
    estimate, first step, lower bound, upper bound) each — for the replicates ``rep``, every lane at once."""
    P = len(specs)
    lower, upper, ok = np.full((R, P), np.nan), np.full((R, P), np.nan), np.zeros((R, P), dtype=bool)
    width = max(kind.dim for kind, *_ in specs)
    parts = []
    for k, (kind, est, step, lo, hi) in enumerate(specs):
        est, step = np.broadcast_to(est, (R,)), np.broadcast_to(step, (R,))
        r = rep
        edge = np.full(R, np.inf)
        if kind.kind == "cor":               # an SD estimated at 0: ζ ≡ 0, the interval is [−1, 1]
            free = (G[r, 0, 0] <= 0.0) | (G[r, 1, 1] <= 0.0)
            lower[r[free], k], upper[r[free], k], ok[r[free], k] = -1.0, 1.0, True
            r = r[~free]
            if r.size:
                edge = _edge(kind, r, G, R)
        if r.size == 0:
            continue
        lanes = np.r_[r, r]
        x = np.zeros((lanes.size, width))
        x[:, :kind.dim] = kind.start(lanes, G, theta)
        parts.append(dict(k=np.full(lanes.size, k), rep=lanes, side=np.r_[-np.ones(r.size), np.ones(r.size)],
                          est=est[lanes], step=step[lanes], lo=np.full(lanes.size, lo), hi=np.full(lanes.size, hi),
                          x=x, edge=edge[lanes], sigma=np.full(lanes.size, kind.kind == "sigma"),
                          cor=np.full(lanes.size, kind.kind == "cor")))
    if not parts:
        return lower, upper, ok
    cat = {key: np.concatenate([pt[key] for pt in parts]) for key in parts[0]}
    fn = _Lanes([kind for kind, *_ in specs], cat["rep"], cat["k"])
    val, dec = _limits(fn, cat["side"], cat["est"], cat["step"], cat["lo"], cat["hi"], dmin[cat["rep"]], cat["x"], z,
                       cat["edge"], cat["sigma"], cat["cor"])
    for k in range(P):
        for side, dest in ((-1.0, lower), (1.0, upper)):
            sel = (cat["k"] == k) & (cat["side"] == side)
            dest[cat["rep"][sel], k] = val[sel]
        lo_sel, hi_sel = (cat["k"] == k) & (cat["side"] < 0), (cat["k"] == k) & (cat["side"] > 0)
        ok[cat["rep"][lo_sel], k] = dec[lo_sel] & dec[hi_sel]
    return lower, upper, ok


def _edge(kind: _Kind, rep: np.ndarray, G: np.ndarray, R: int) -> np.ndarray:
    """(R,) the least deviance with one SD at 0 (where the correlation is free), for the replicates ``rep``:
    the SD kind's minimisation at v = 0 for each effect (−inf where one is undecided: nothing is decided)."""
    out = np.zeros(R)
    out[rep] = np.inf
    for m in (0, 1):
        sd = _Kind(kind.bp, kind.reml, "sd", m, -1, kind.uns, kind.s)
        _, d, ok = _minimise(sd, rep, np.zeros(rep.size), sd.start(rep, G, None))
        out[rep] = np.where(ok, np.minimum(out[rep], d), -np.inf)
    return out


__all__ = ["profile_many_slope", "slope_design"]
