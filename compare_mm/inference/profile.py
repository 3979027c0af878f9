"""Profile-likelihood intervals for SDs, correlations, σ and fixed effects.

For a parameter ψ_k, the profiled deviance is d_k(v) = min { d(φ) : ψ_k(φ) = v } and the profile
statistic ζ(v) = sign(v − ψ̂_k) sqrt(d_k(v) − d(φ̂)); the level-(1 − α) interval is
{ v : |ζ(v)| ≤ sqrt(χ²₁,₁₋α) } (Bates et al. 2015, sec. 5.1; lme4's ``profile`` / ``confint``).

Variance parameters are lme4's: per random-effects term (in lme4's term order) the SDs of its effects
and their correlations (``sd_(Intercept)|Subject``, ``cor_Days.(Intercept)|Subject``), then ``sigma``; the deviance is
d(θ, σ) with G = σ²ΛΛ' rewritten in those parameters.  Fixed effect β_j = b is profiled by fitting the
model with offset x_j b and without column j (θ free, σ and the other β profiled out;
:func:`compare_mm.fitter.extended.fix_coefficient`).

Modes: ``"ml"`` profiles the ML deviance around the ML estimates, even for a REML fit — this is what
lme4's ``confint(method = "profile")`` does (its ``devfun2`` calls ``refitML``), and matches its numbers;
``"reml"`` profiles the REML criterion d_R(θ, σ) around the REML estimates, for the variance parameters
only (the restricted likelihood does not contain β, so fixed effects get no REML profile interval).
A lower limit of exactly 0 for an SD is returned when ζ(0) > −z (the boundary lies inside the interval);
a correlation limit of ±1 likewise.

Designs with two random effects of one grouping factor (``(x | g)``, ``(x || g)``) are profiled by
:func:`compare_mm.inference.batch_profile_slope.profile_many_slope` (the routine studies run on many
responses at once), whose inner minimisations run in coordinates without boundaries; the box-constrained
search below, which can stop on a zero SD where the deviance is stationary (e.g. at |ρ̂| = 1 or σ̂_B = 0),
remains for the other designs and for a response that routine leaves undecided.

The box-constrained search runs in the fitted problem's coordinates (:attr:`Surface.fitted`).  For a term
whose slope the fitter centres internally (:mod:`compare_mm.fitter.centring`) the slope's SD, σ and the
fixed effects are the same there as in the user's; the intercept's SD and the correlation at x = 0, as
written, are profiled as the user's quantities with the slope's SD eliminated
(:mod:`.profile_centred`).  The routine above profiles the centred problem's own ψ and is not used there.
"""

from __future__ import annotations

import warnings

import numpy as np

from ..model.design import Design
from ..errors import OptionError
from ..fitter.centring import beta_to_user, theta_to_user
from ..fitter.extended import fit_theta, fix_coefficient, surface
from ..fitter.batch_fit import BatchFitter, batchable
from ..fitter.theta import make_layout
from ..results.schema import Interval
from ..parallel import blas_single_thread
from .batch_profile_slope import profile_many_slope, slope_design
from .profile_centred import UNSUPPORTED, user_constraints
from .profile_params import VarParam, var_params


def _chol_psd(G: np.ndarray) -> np.ndarray:
    """Lower Cholesky factor of a positive semi-definite matrix (zero pivots give zero columns)."""
    q = G.shape[0]
    L = np.zeros_like(G)
    for j in range(q):
        d = G[j, j] - L[j, :j] @ L[j, :j]
        if d <= 1e-14 * max(G[j, j], 1e-300):
            continue
        L[j, j] = np.sqrt(d)
        L[j + 1:, j] = (G[j + 1:, j] - L[j + 1:, :j] @ L[j, :j]) / L[j, j]
    return L


class VarParamMap:
    """ψ (lme4's SDs, correlations, σ) ↔ (θ, σ) for one design; θ in lme4 order (``FitResult.theta``)."""

    def __init__(self, design: Design) -> None:
        self.design = design
        self.layout = make_layout(design.blocks)
        self.params = var_params(design)
        self.names = [p.name for p in self.params]

    def to_theta(self, psi: np.ndarray) -> tuple[np.ndarray, float]:
        """(θ, σ) from ψ: G_t = D R D per term, Λ_t = chol(G_t)/σ."""
        psi = np.asarray(psi, dtype=float)
        sigma = float(psi[-1])
        theta = np.zeros(self.layout.n_theta)
        for k, t in enumerate(self.layout.terms):
            sds = np.zeros(t.q)
            R = np.eye(t.q)
            for v, p in zip(psi, self.params):
                if p.term != k:
                    continue
                if p.kind == "sd":
                    sds[p.i] = v
                else:
                    R[p.i, p.j] = R[p.j, p.i] = v
            if t.covariance == "unstructured" and t.q > 1:
                lam = _chol_psd(sds[:, None] * R * sds[None, :]) / sigma
            else:
                lam = np.diag(sds / sigma)
            theta[t.start:t.stop] = lam[t.rows, t.cols]
        return theta, sigma

    def from_theta(self, theta: np.ndarray, sigma: float) -> np.ndarray:
        """ψ from (θ, σ)."""
        theta = np.asarray(theta, dtype=float)
        Gs = [sigma ** 2 * (lam @ lam.T) for lam in (t.factor(theta) for t in self.layout.terms)]
        out = []
        for p in self.params:
            if p.kind == "sigma":
                out.append(sigma)
            elif p.kind == "sd":
                out.append(np.sqrt(max(Gs[p.term][p.i, p.i], 0.0)))
            else:
                G = Gs[p.term]
                s = np.sqrt(G[p.i, p.i] * G[p.j, p.j])
                out.append(G[p.i, p.j] / s if s > 0 else 0.0)
        return np.asarray(out, dtype=float)

    def bounds(self) -> list[tuple[float | None, float | None]]:
        """Box constraints on ψ."""
        return [(0.0, None) if p.kind == "sd" else (-1.0, 1.0) if p.kind == "cor" else (1e-12, None)
                for p in self.params]


def _z(level: float) -> float:
    from scipy import stats  # deferred: scipy.stats is a heavy import that summarise/report never need
    return float(np.sqrt(stats.chi2.ppf(level, 1)))


def _find_limit(zeta, est: float, step: float, target: float, lo: float | None, hi: float | None,
                tol: float) -> float:
    """The v on one side of ``est`` with ζ(v) = target (sign of target gives the side); bounds honoured."""
    from scipy import optimize  # deferred: scipy.optimize is a heavy import that summarise/report never need
    side = np.sign(target)
    bound = hi if side > 0 else lo
    a, b = est, est + side * step
    for _ in range(60):
        if bound is not None and side * (b - bound) >= 0:
            b = bound
            if side * (zeta(b) - target) < 0:
                return float(bound)
            break
        if side * (zeta(b) - target) >= 0:
            break
        a, b = b, est + side * (abs(b - est) * 2.0)
    else:
        return float(np.nan)
    return float(optimize.brentq(lambda v: zeta(v) - target, min(a, b), max(a, b), xtol=tol, rtol=1e-12))


class _Profiler:
    """Constrained minimisation of the deviance over ψ with one coordinate fixed (warm-started)."""

    def __init__(self, design: Design, method: str) -> None:
        self.surf = surface(design).fitted           # the problem's θ and β (centred slopes, module docstring)
        self.map = VarParamMap(design)
        self.reml = method == "REML"
        fit = fit_theta(self.surf, self.reml)
        self.fit = fit
        self.psi_hat = self.map.from_theta(fit.theta, fit.sigma)
        self.psi_user = self.map.from_theta(theta_to_user(self.map.layout, fit.theta), fit.sigma)
        self.beta_hat, self.vcov_hat = beta_to_user(design.beta_map, fit.beta,
                                                    self.surf.vcov_beta(fit.theta, fit.sigma))
        self.eliminate, self.unsupported = user_constraints(self.map.layout, self.map.params)
        self.dmin = fit.deviance
        self.scale = np.where(self.psi_hat != 0, np.abs(self.psi_hat), 1.0)
        self.scale[[p.kind == "cor" for p in self.map.params]] = 1.0
        self._cache: dict[int, list[tuple[float, np.ndarray]]] = {}

    def objective(self, psi: np.ndarray) -> float:
        theta, sigma = self.map.to_theta(psi)
        return self.surf.deviance_sigma(theta, sigma, self.reml)

    def _alternatives(self, k: int, v: float) -> list[tuple[tuple[int, ...], object, object]]:
        """The ways to impose the user's ψ_k = v: (the ψ indices held, psi → (d, full ψ), start → a start
        that satisfies it).  ψ_k itself; or, for a user's quantity of a centred term
        (:mod:`.profile_centred`), each elimination of centred coordinates (the best root at each point)."""
        u = self.eliminate.get(k)
        if u is None:
            def put(psi):
                psi = psi.copy()
                psi[k] = v
                return self.objective(psi), psi
            return [((k,), put, lambda psi: psi)]

        def solve(psi, which):
            best, at = np.inf, psi
            for cand in u.candidates(v, psi, which):
                d = self.objective(cand)
                if d < best:
                    best, at = d, cand
            return best, at
        return [(u.fixed(w), lambda psi, w=w: solve(psi, w), lambda psi, w=w: u.feasible(v, psi, w))
                for w in u.solve_for(v)]

    def varpar_profile(self, k: int, v: float) -> float:
        """min over the other ψ of d(ψ) with the user's ψ_k = v (:meth:`_alternatives`)."""
        hist = self._cache.setdefault(k, [])
        # continuation from the estimate's side: the nearest value done between ψ̂_k and v (a value beyond
        # v may have its minimum on a boundary, e.g. a correlation of ±1 at a zero SD, a basin the
        # minimisation would not leave)
        est = self.psi_user[k]
        inner = [h for h in hist if (h[0] - est) * (v - est) >= 0.0 and abs(h[0] - est) <= abs(v - est)]
        start = min(inner, key=lambda h: abs(h[0] - v))[1] if inner else self.psi_hat.copy()
        runs = []
        for fixed, g, feasible in self._alternatives(k, v):
            s0 = feasible(start)
            if np.isfinite(g(s0)[0]):            # an elimination without a root at the start cannot move
                runs.append(self._minimise(fixed, g, s0))
        best = min(runs, key=lambda r: r[0]) if runs else (np.inf, start)
        hist.append((v, best[1]))
        return float(best[0])

    def _minimise(self, fixed: tuple[int, ...], g, start: np.ndarray) -> tuple[float, np.ndarray]:
        """min over ψ without the indices ``fixed`` (from ``start``, box bounds) of g(ψ)[0]; (d, full ψ)."""
        from scipy import optimize  # deferred: scipy.optimize is a heavy import that summarise/report never need
        free = [i for i in range(len(self.psi_hat)) if i not in fixed]
        bnds = self.map.bounds()
        sc = self.scale[free]

        def f(x):
            psi = start.copy()
            psi[free] = x * sc
            return g(psi)[0]

        b = [((lo / s) if lo is not None else None, (hi / s) if hi is not None else None)
             for (lo, hi), s in ((bnds[i], self.scale[i]) for i in free)]
        x0 = np.clip(start[free] / sc, [lo if lo is not None else -np.inf for lo, _ in b],
                     [hi if hi is not None else np.inf for _, hi in b])
        opts = dict(ftol=1e-13, gtol=1e-7)
        # a step can land where d = inf (a far-shifted centring, say): L-BFGS-B's line search backs off,
        # but its finite differences there (inf − inf) made numpy print "invalid value" warnings
        with np.errstate(invalid="ignore"):
            r = optimize.minimize(f, x0, method="L-BFGS-B", bounds=b, options=opts)
            zero = [i for i, q in enumerate(free) if self.map.params[q].kind == "sd" and r.x[i] <= 1e-6]
            probe = r.x.copy()
            probe[zero] = 1e-3
            if zero and f(probe) < r.fun:  # d depends on an SD through its square, so SD = 0 is stationary
                x1, b1 = r.x.copy(), list(b)  # and the minimum lies inside: search from there
                x1[zero] = 0.5
                for i in zero:  # kept off 0 first (a long first step would land on the stationary bound) ...
                    b1[i] = (1e-3, b[i][1])
                r1 = optimize.minimize(f, x1, method="L-BFGS-B", bounds=b1, options=opts)
                # ... then polished with the true bounds from there
                r1 = optimize.minimize(f, r1.x, method="L-BFGS-B", bounds=b, options=opts)
                r = r1 if r1.fun < r.fun else r
        psi = start.copy()
        psi[free] = r.x * sc
        return float(r.fun), g(psi)[1]

    def fixef_profile(self, j: int, b: float, cache: list) -> float:
        """ML-profiled deviance with β_j fixed at b: the model with offset x_j b and without x_j
        (:func:`compare_mm.fitter.extended.fix_coefficient`), θ warm-started from the nearest b done."""
        start = min(cache, key=lambda h: abs(h[0] - b))[1] if cache else self.fit.theta
        fit = fit_theta(fix_coefficient(self.surf, j, b), False, start=start)
        cache.append((b, fit.theta))
        return fit.deviance


def _two_effects(design: Design, mode: str, level: float) -> tuple[Interval, ...] | None:
    """The intervals of a design with two random effects of one grouping factor by
    :func:`.batch_profile_slope.profile_many_slope` (one response; its inner minimisations have no
    boundary to stick on, see there), or None for other designs and for a response it leaves undecided."""
    layout = make_layout(design.blocks)
    if not batchable(design, layout) or layout.centred:   # it profiles the centred problem's own ψ
        return None
    fitter = BatchFitter(design, layout)
    if not slope_design(fitter):
        return None
    return profile_many_slope(fitter, np.asarray(design.y, dtype=float)[None, :], mode=mode, level=level)[0]


@blas_single_thread
def profile_intervals(design: Design, *, mode: str = "ml", level: float = 0.95,
                      parameters: list[str] | None = None) -> tuple[Interval, ...]:
    """Profile-likelihood intervals (module docstring) with ``kind="profile"``.

    Parameters
    ----------
    design
        The model's design (the method of the original fit does not matter in ``"ml"`` mode).
    mode
        ``"ml"`` (lme4's convention) or ``"reml"``.
    level
        Confidence level.
    parameters
        Names to profile (default: every SD, correlation, σ and, in ``"ml"`` mode, fixed effect).
    """
    mode = str(mode).lower()
    if mode not in ("ml", "reml"):
        raise OptionError(f"The profile mode must be 'ml' or 'reml', not {mode!r}.")
    got = _two_effects(design, mode, level)
    if got is not None:
        return tuple(iv for iv in got if parameters is None or iv.parameter in parameters)
    return box_profile_intervals(design, mode=mode, level=level, parameters=parameters)


def box_profile_intervals(design: Design, *, mode: str, level: float,
                          parameters: list[str] | None = None) -> tuple[Interval, ...]:
    """:func:`profile_intervals` by the box-constrained search of :class:`_Profiler` (ψ with bounds,
    warm-started along each profile), for every design."""
    method = "ML" if mode == "ml" else "REML"
    prof = _Profiler(design, method)
    z = _z(level)
    out: list[Interval] = []
    for k, p in enumerate(prof.map.params):
        if parameters is not None and p.name not in parameters:
            continue
        if k in prof.unsupported:
            warnings.warn(f"{p.name}: {UNSUPPORTED}.", RuntimeWarning, stacklevel=2)
            out.append(Interval(p.name, "profile", float("nan"), float("nan"), level))
            continue
        est = float(prof.psi_user[k])
        prof._cache.pop(k, None)

        def zeta(v, k=k, est=est):
            dv = max(prof.varpar_profile(k, v) - prof.dmin, 0.0)
            return float(np.sign(v - est) * np.sqrt(dv))

        lo_b, hi_b = prof.map.bounds()[k]
        if p.kind == "cor":
            step = 0.25 * (1.0 - abs(est)) + 1e-3
        else:
            step = 0.2 * est if est > 0 else 0.2 * prof.fit.sigma
        tol = 1e-7 * max(abs(est), 1.0)
        lower = _find_limit(zeta, est, step, -z, lo_b if p.kind != "sigma" else 0.0, hi_b, tol)
        prof._cache.pop(k, None)
        upper = _find_limit(zeta, est, step, z, lo_b, hi_b, tol)
        out.append(Interval(p.name, "profile", lower, upper, level))
    if mode == "ml":
        se = np.sqrt(np.diag(prof.vcov_hat))
        for j, name in enumerate(design.fixed_names):
            if parameters is not None and name not in parameters:
                continue
            est = float(prof.beta_hat[j])
            cache: list = []

            def zeta_b(b, j=j, est=est, cache=cache):
                dv = max(prof.fixef_profile(j, b, cache) - prof.dmin, 0.0)
                return float(np.sign(b - est) * np.sqrt(dv))

            tol = 1e-7 * max(abs(est), se[j])
            lower = _find_limit(zeta_b, est, 1.5 * z * se[j], -z, None, None, tol)
            upper = _find_limit(zeta_b, est, 1.5 * z * se[j], z, None, None, tol)
            out.append(Interval(name, "profile", lower, upper, level))
    return tuple(out)


__all__ = ["VarParam", "VarParamMap", "box_profile_intervals", "profile_intervals", "var_params"]
