"""The profiled deviance as inference needs it: at (θ, σ), with a coefficient fixed, and its optimum.

Built on the path modules' problems (:mod:`.onefactor`, :mod:`.blocked`, :mod:`.general`, :mod:`.sparse`),
which all hold
T = Z'[X y], C0 = [X y]'[X y] (y replaced by its OLS residual, ``beta_offset`` the OLS fit) and give, at θ,
log|L_θ|² and C = [X y]'V⁻¹[X y] (V = I + ZΛΛ'Z'; see :mod:`.profiled`).  θ is in lme4 order
(:mod:`.theta`), as in ``FitResult.theta``.  From these (Bates et al. 2015, J. Stat. Softw. 67(1), sec. 3):

    ML at σ:    d(θ, σ)   = log|L_θ|² + n log(2πσ²) + r²_θ/σ²
    REML at σ:  d_R(θ, σ) = log|L_θ|² + log|R_X|² + (n − p) log(2πσ²) + r²_θ/σ²

(lmerTest's ``devfun_vp``, Kuznetsova, Brockhoff & Christensen 2017), vcov(β̂) = σ²(R_X'R_X)⁻¹ (lme4's
``vcov``, lmerTest's ``get_covbeta``), and :func:`fix_coefficient`: the model with β_j = b, i.e. x_j moved
into an offset — its profiled deviance is the profile of the deviance over β_j (lme4's ``profile`` of a
fixed effect).  A design without random effects is a linear model: L_θ = I, C = C0.

:func:`fit_theta` minimises d(θ) or d_R(θ) with the backend's optimiser and boundary rule
(:func:`.optimize.optimise_theta`), optionally from a warm start.

Centred slopes (:mod:`.centring`): the problems are built on the centred columns and their θ refers to
them.  :meth:`Surface.objective` and :meth:`Surface.grid_objective` (what the optimiser runs on) take that
θ; every other method takes the user's θ (``FitResult.theta``, what inference passes) and maps it with
:func:`.centring.theta_to_fit`; :attr:`Surface.fitted` is the same surface taking the problem's θ
throughout.  :func:`fit_theta` returns the user's θ.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np
from scipy.linalg.lapack import dpotrf

from ..model.design import Design
from . import blocked, blocked_eval, general, onefactor, sparse
from .centring import beta_to_user, theta_to_fit, theta_to_user
from .optimize import Objective, optimise_theta
from .profiled import LOG_2PI, Profiled, profiled
from .theta import Layout, make_layout

#: a warm start's diagonal θ components are raised to at least this: d is even in each column of Λ, so
#: ∂d/∂θ vanishes at θ = 0 and a gradient method started there could not leave it
WARM_FLOOR = 0.05


@dataclass(frozen=True, eq=False)
class FixedOnlyProblem:
    """A linear model (no random effects): the same fields as the paths' problems, L_θ = I."""

    n: int
    p: int
    T: np.ndarray             # Z'[X y]: no rows
    C0: np.ndarray
    beta_offset: np.ndarray
    beta_map: np.ndarray | None = None


def choose_path(design: Design, path: str = "auto") -> str:
    """The backend's rule (:mod:`compare_mm.backends.reml`): one factor → ``"onefactor"``; else the
    blocked Cholesky (``"blocked"``) when the terms after the first (most levels) hold at most
    :data:`.blocked.REST_MAX` random effects; else dense ``"general"`` up to :data:`.general.DENSE_MAX`
    random effects, ``"sparse"`` beyond; ``"none"`` for a linear model."""
    if not design.blocks:
        return "none"
    if path != "auto":
        return path
    if onefactor.is_one_factor(design):
        return "onefactor"
    if blocked.rest_size(make_layout(design.blocks)) <= blocked.REST_MAX:
        return "blocked"
    q_tot = sum(b.q * b.n_levels for b in design.blocks)
    return "general" if q_tot <= general.DENSE_MAX else "sparse"


@dataclass(frozen=True, eq=False)
class Surface:
    """The deviance surface of one design: θ layout (lme4 order), path, and the path's problem.

    ``user_theta``: whether the methods other than the objectives take the user's θ (module docstring).
    """

    layout: Layout
    path: str
    problem: object
    user_theta: bool = True

    def to_fit(self, theta: np.ndarray) -> np.ndarray:
        """The problem's θ of a θ these methods take (the user's, mapped by :func:`.centring.theta_to_fit`)."""
        theta = np.asarray(theta, dtype=float)
        return theta_to_fit(self.layout, theta) if self.user_theta and self.layout.centred else theta

    @property
    def fitted(self) -> "Surface":
        """This surface in the problem's own coordinates: θ (the optimiser's) and β (of the centred X)."""
        return replace(self, user_theta=False) if self.user_theta else self

    @property
    def n(self) -> int:
        return int(self.problem.n)

    @property
    def p(self) -> int:
        return int(self.problem.p)

    @property
    def has_grad(self) -> bool:
        """Whether :meth:`objective` returns an analytic gradient."""
        return self.path in ("onefactor", "blocked", "general")

    def objective(self, reml: bool) -> Objective:
        """fun(θ, want_grad) → (d(θ) or d_R(θ), gradient or None): the backend's objective."""
        pr, path = self.problem, self.path
        if path == "onefactor":
            return lambda th, g: onefactor.evaluate(pr, th, reml, g)
        if path == "blocked":
            return lambda th, g: blocked_eval.evaluate(pr, th, reml, g)
        if path == "general":
            return lambda th, g: general.evaluate(pr, th, reml, g)
        if path == "sparse":
            return lambda th, g: sparse.evaluate(pr, th, reml, False)
        return lambda th, g: (profiled(0.0, pr.C0, pr.n, pr.p, reml, False).deviance, None if not g else th[:0])

    def grid_objective(self, reml: bool):
        """fun_grid(θ array) → deviances for a scalar θ on the one-factor path (one call for a whole
        grid, :func:`.onefactor.deviance_grid`); None elsewhere."""
        if self.path == "onefactor" and self.problem.Q == 1:
            pr = self.problem
            return lambda ths: onefactor.deviance_grid(pr, ths, reml)
        return None

    def cross_products(self, theta: np.ndarray) -> tuple[float, np.ndarray | None]:
        """(log|L_θ|², C = [X y]'V⁻¹[X y]) at θ; C is None where Λ'Z'ZΛ + I is not positive definite."""
        pr, theta = self.problem, self.to_fit(theta)
        if self.path == "none":
            return 0.0, pr.C0
        if self.path == "onefactor":
            lam = pr.factor(theta)
            logdet, C, _, _ = onefactor._core(pr, lam @ lam.T, False)
            return logdet, C
        if self.path == "blocked":
            logdet, C, _, _ = blocked.cross_products_at(pr, theta)
            return logdet, C
        if self.path == "general":
            fac = general._factorise(pr, theta)
            if fac is None:
                return math.inf, None
            lam, lam_t, _, L = fac
            logdet, C, _, _ = general.penalised(pr, lam, lam_t, L)
            return logdet, C
        fac = sparse._factorise(pr, theta)
        if fac is None:
            return math.inf, None
        logdet, C, _ = sparse.penalised(pr, *fac)
        return logdet, C

    def at(self, theta: np.ndarray, reml: bool) -> Profiled:
        """The profiled quantities at θ (:func:`.profiled.profiled`); ``beta`` here includes the offset and
        is the user's (mapped by :func:`.centring.beta_to_user`) unless this surface is :attr:`fitted`."""
        logdet, C = self.cross_products(theta)
        if C is None:
            nan = np.full((self.p, self.p), np.nan)
            return Profiled(math.inf, np.full(self.p, np.nan), math.nan, float(self.n), nan, None)
        prof = profiled(logdet, C, self.n, self.p, reml, False)
        beta = prof.beta + self.problem.beta_offset
        if self.user_theta:
            beta = beta_to_user(getattr(self.problem, "beta_map", None), beta)[0]
        return replace(prof, beta=beta)

    def deviance_sigma(self, theta: np.ndarray, sigma: float, reml: bool) -> float:
        """d(θ, σ) (ML) or d_R(θ, σ) (REML), module docstring; inf outside the parameter space."""
        logdet, C = self.cross_products(theta)
        if C is None or not math.isfinite(logdet):
            return math.inf
        n, p = self.n, self.p
        L, info = dpotrf(C, lower=1, clean=1)
        if info != 0:
            return math.inf
        dg = np.diagonal(L)
        r2 = float(dg[p]) ** 2
        s2 = float(sigma) ** 2
        nu = n - p if reml else n
        out = logdet + nu * (LOG_2PI + math.log(s2)) + r2 / s2
        if reml and p:
            out += 2.0 * float(np.log(dg[:p]).sum())
        return float(out)

    def vcov_beta(self, theta: np.ndarray, sigma: float) -> np.ndarray:
        """vcov(β̂) = σ²(R_X'R_X)⁻¹ at (θ, σ) (the user's β unless this surface is :attr:`fitted`)."""
        _, C = self.cross_products(theta)
        p = self.p
        V = float(sigma) ** 2 * np.linalg.inv(C[:p, :p]) if p else np.zeros((0, 0))
        B = getattr(self.problem, "beta_map", None)
        return B @ V @ B.T if self.user_theta and B is not None else V


def surface(design: Design, y: np.ndarray | None = None, path: str = "auto",
            layout: Layout | None = None) -> Surface:
    """The :class:`Surface` of ``design`` (response ``y`` instead of ``design.y`` if given; ``layout``,
    when given, is ``make_layout(design.blocks)`` computed once for several responses)."""
    layout = make_layout(design.blocks) if layout is None else layout
    path = choose_path(design, path)
    if path == "onefactor":
        pr = onefactor.build_one_factor(design, layout, y)
    elif path == "blocked":
        pr = blocked.build_blocked(design, layout, y)
    elif path == "general":
        pr = general.build_general(design, layout, y)
    elif path == "sparse":
        pr = sparse.build_sparse(design, layout, y)
    else:
        yv, offset = onefactor.ols_residual(design.X_fit, design.y if y is None else np.asarray(y, float))
        XY = np.column_stack([design.X_fit, yv])
        pr = FixedOnlyProblem(n=design.n, p=design.p, T=np.zeros((0, design.p + 1)), C0=XY.T @ XY,
                              beta_offset=offset, beta_map=design.beta_map)
    return Surface(layout, path, pr)


def fix_coefficient(surf: Surface, j: int, b: float) -> Surface:
    """The surface of the model with β_j fixed at ``b`` (x_j moved into an offset).

    Every cross-product is linear in the columns of [X y] (y the OLS residual y − Xc), so the new model's
    [X_{−j}, y − x_j b − X_{−j}c_{−j}] = [X y] A with A's columns e_k (k ≠ j) and (c_j − b) e_j + e_{p}:
    T → T A, C0 → A'C0A, and β_{−j} = β̂ + c_{−j}; the several-factor paths' [X y] → [X y] A.

    ``j`` and ``b`` are the user's.  A centred X (:mod:`.centring`, X = X_c N, β_c = Nβ) has β_c,j = β_j
    for every j but the intercept, which is fixed in the problem's coordinates; the intercept mixes them,
    so for it A is applied to the user's columns [X y] = [X_c y] diag(N, 1) (offset c → N⁻¹c), and the
    new problem has the user's columns (without the intercept, X_{−0} is not collinear with it).  The new
    surface's β are its problem's (the profiles read its criterion and θ only).
    """
    pr = surf.problem
    p = pr.p
    c = np.asarray(pr.beta_offset, dtype=float)
    Bm = getattr(pr, "beta_map", None)
    to_user = Bm is not None and bool(np.any(np.delete(Bm[j], j) != 0.0))
    if to_user:
        c = Bm @ c
    keep = [k for k in range(p) if k != j]
    A = np.zeros((p + 1, p))
    A[keep, np.arange(p - 1)] = 1.0
    A[j, p - 1] = c[j] - float(b)
    A[p, p - 1] = 1.0
    if to_user:
        D = np.eye(p + 1)
        D[:p, :p] = np.linalg.inv(Bm)                     # N: [X y] = [X_c y] D
        A = D @ A
    T = np.ascontiguousarray(pr.T @ A)
    changes = dict(p=p - 1, T=T, C0=A.T @ pr.C0 @ A, beta_offset=c[keep], beta_map=None)
    if surf.path in ("blocked", "general", "sparse"):
        changes["XY"] = pr.XY @ A                  # the residuals of C (:func:`.profiled.residual_products`)
    if surf.path == "onefactor":
        changes["fast"] = onefactor._fast_arrays(pr.S, T)
        if pr.W is not None:
            changes["W"] = A.T @ pr.W @ A
    return Surface(surf.layout, surf.path, replace(pr, **changes), surf.user_theta)


@dataclass(frozen=True, eq=False)
class ThetaFit:
    """Optimum of the profiled deviance: θ̂ (lme4 order; the user's, :mod:`.centring`), σ̂, β̂, the
    criterion there, and the method."""

    theta: np.ndarray
    sigma: float
    beta: np.ndarray
    deviance: float
    reml: bool
    converged: bool = True

    @property
    def method(self) -> str:
        return "REML" if self.reml else "ML"


def fit_theta(surf: Surface, reml: bool, start: np.ndarray | None = None) -> ThetaFit:
    """Minimise d(θ) (ML) or d_R(θ) (REML) as the backend does (:func:`.optimize.optimise_theta`: a scalar
    θ exactly; else BFGS from lme4's start with the moment warm start on the one-factor path, then the
    boundary rule), or from ``start`` (lme4 order; its diagonal components raised to
    :data:`WARM_FLOOR`; ignored for a scalar θ, which needs no start)."""
    layout = surf.layout
    fun = surf.objective(reml)
    if start is not None and len(start) == layout.n_theta:
        x0 = np.array(surf.to_fit(start), dtype=float)
        diag = layout.diagonal
        x0[diag] = np.maximum(np.abs(x0[diag]), WARM_FLOOR)
        warm = None
    else:
        x0 = layout.start()
        warm = (onefactor.moment_start(surf.problem)
                if surf.path == "onefactor" and layout.n_theta > 1 else None)
    opt = optimise_theta(fun, layout, has_grad=surf.has_grad, x0=x0, warm=warm,
                         fun_grid=surf.grid_objective(reml))
    prof = surf.fitted.at(opt.theta, reml)
    theta, beta = opt.theta, prof.beta
    if surf.user_theta:                     # the user's θ and β (centred slopes and X, :mod:`.centring`)
        theta = theta_to_user(layout, theta) if layout.centred else theta
        beta = beta_to_user(getattr(surf.problem, "beta_map", None), beta)[0]
    return ThetaFit(theta=theta, sigma=math.sqrt(prof.r2 / prof.nu), beta=beta,
                    deviance=float(prof.deviance), reml=reml, converged=opt.converged)


def fit_design(design: Design, reml: bool | None = None, start: np.ndarray | None = None,
               y: np.ndarray | None = None) -> ThetaFit:
    """:func:`fit_theta` of a design (``reml`` defaults to ``design.spec.method == "REML"``)."""
    reml = design.spec.method == "REML" if reml is None else bool(reml)
    return fit_theta(surface(design, y), reml, start)


class Refitter:
    """:func:`fit_design` for many responses of one design (a study replicate's bootstrap): the θ layout and
    the numerical path are chosen once; ``fit(y)`` equals ``fit_design(design, reml, y=y)``."""

    def __init__(self, design: Design, reml: bool | None = None):
        self.design = design
        self.reml = design.spec.method == "REML" if reml is None else bool(reml)
        self.layout = make_layout(design.blocks)
        self.path = choose_path(design)

    def fit(self, y: np.ndarray) -> ThetaFit:
        return fit_theta(surface(self.design, y, self.path, self.layout), self.reml)


__all__ = ["FixedOnlyProblem", "Refitter", "Surface", "ThetaFit", "choose_path", "fit_design", "fit_theta",
           "fix_coefficient", "surface"]
