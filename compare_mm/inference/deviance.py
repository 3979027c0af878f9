"""lme4's profiled deviance of a :class:`~compare_mm.design.Design` as a function of θ (and of (θ, σ)).

Inference needs the deviance surface itself, not just its optimum: profiles evaluate it under
constraints, Satterthwaite differentiates it, the RLRT compares it with and without a variance component.
This module evaluates it from the design matrices, independently of the fitting backend, following
Bates, Mächler, Bolker & Walker (2015), J. Stat. Softw. 67(1), sec. 3:

    G = σ² Λ_θ Λ_θ',   L_θ L_θ' = Λ_θ' Z' Z Λ_θ + I,
    R_X' R_X = X'X − X'ZΛ (L L')⁻¹ Λ'Z'X,
    r²_θ = min_{u, β} ‖y − Xβ − ZΛu‖² + ‖u‖²,

    ML,   σ profiled:  d(θ)      = log|L|² + n (1 + log(2π r²/n))                       (eq. 34)
    REML, σ profiled:  d_R(θ)    = log|L|² + log|R_X|² + (n−p)(1 + log(2π r²/(n−p)))     (eq. 41)
    ML at σ:           d(θ, σ)   = log|L|² + n log(2πσ²) + r²/σ²
    REML at σ:         d_R(θ, σ) = log|L|² + log|R_X|² + (n−p) log(2πσ²) + r²/σ²

The (θ, σ) forms are lmerTest's ``devfun_vp`` (Kuznetsova, Brockhoff & Christensen 2017).  θ holds, per
random-effects term in formula order, the lower triangle of the q×q factor T (column-major, lme4's order)
for ``unstructured`` terms and its diagonal for ``diagonal`` terms; Λ = blockdiag(I_m ⊗ T).
One grouping term is evaluated group-wise (batched q×q algebra, cost independent of n); several terms
through dense Q×Q algebra (Q = Σ m_b q_b), meant for the moderate sizes inference is run on.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
from scipy import linalg, optimize

from ..design import Design, RandomBlock

_LOG2PI = float(np.log(2.0 * np.pi))


@dataclass(frozen=True, eq=False)
class DevianceParts:
    """The pieces of the profiled deviance at one θ."""

    ldL2: float
    ldRX2: float
    r2: float
    beta: np.ndarray
    RXtRX: np.ndarray


def block_theta_size(block: RandomBlock) -> int:
    """Length of a block's part of θ."""
    return block.q * (block.q + 1) // 2 if block.covariance == "unstructured" else block.q


@functools.lru_cache(maxsize=None)
def _triu(q: int) -> tuple[np.ndarray, np.ndarray]:
    return np.triu_indices(q)


def theta_to_factor(theta_b: np.ndarray, q: int, covariance: str) -> np.ndarray:
    """The q×q lower-triangular relative factor T of one block from its part of θ (lme4 order)."""
    T = np.zeros((q, q))
    if q == 1:
        T[0, 0] = theta_b[0]
    elif covariance == "unstructured":
        rows, cols = _triu(q)  # column-major lower triangle = row-major upper of T'
        T[cols, rows] = theta_b
    else:
        T[np.diag_indices(q)] = theta_b
    return T


def factor_to_theta(T: np.ndarray, covariance: str) -> np.ndarray:
    """Inverse of :func:`theta_to_factor`."""
    q = T.shape[0]
    if covariance == "unstructured":
        rows, cols = np.triu_indices(q)
        return T[cols, rows].copy()
    return np.diag(T).copy()


def theta_lower_bounds(blocks: tuple[RandomBlock, ...]) -> np.ndarray:
    """lme4's lower bounds on θ: 0 for diagonal elements of each T, −∞ for off-diagonal ones."""
    out: list[float] = []
    for b in blocks:
        if b.covariance == "unstructured":
            rows, cols = np.triu_indices(b.q)
            out.extend(0.0 if r == c else -np.inf for r, c in zip(rows, cols))
        else:
            out.extend([0.0] * b.q)
    return np.asarray(out, dtype=float)


def block_factors(blocks: tuple[RandomBlock, ...], theta: np.ndarray) -> list[np.ndarray]:
    """The q×q factors T_b of every block from the whole θ."""
    out, k = [], 0
    for b in blocks:
        m = block_theta_size(b)
        out.append(theta_to_factor(np.asarray(theta, float)[k:k + m], b.q, b.covariance))
        k += m
    return out


def dense_z(block: RandomBlock) -> np.ndarray:
    """The block's n × (m q) model matrix, columns level-major (level 0's q effects first)."""
    n, q, m = block.Z.shape[0], block.q, block.n_levels
    Z = np.zeros((n, m * q))
    cols = block.codes[:, None] * q + np.arange(q)[None, :]
    Z[np.arange(n)[:, None], cols] = block.Z
    return Z


class ProfiledDeviance:
    """Deviance evaluator for one design (and optionally another response).

    Parameters
    ----------
    design
        The design; its ``blocks`` may be empty (a linear model: θ is empty, L = I).
    y
        Response to use instead of ``design.y``.
    """

    def __init__(self, design: Design, y: np.ndarray | None = None) -> None:
        self.design = design
        self.blocks = tuple(design.blocks)
        X = np.asarray(design.X, dtype=float)
        yv = np.asarray(design.y if y is None else y, dtype=float)
        self.n, self.p = X.shape
        self.sizes = [block_theta_size(b) for b in self.blocks]
        self.n_theta = int(sum(self.sizes))
        self.lower = theta_lower_bounds(self.blocks)
        self.XtX = X.T @ X
        self.Xty = X.T @ yv
        self.yty = float(yv @ yv)
        self._single = len(self.blocks) == 1
        if self._single:
            b = self.blocks[0]
            m, q = b.n_levels, b.q
            Zb = np.asarray(b.Z, dtype=float)
            codes = np.asarray(b.codes)
            self.ZtZ_g = np.zeros((m, q, q))
            np.add.at(self.ZtZ_g, codes, Zb[:, :, None] * Zb[:, None, :])
            self.ZtX_g = np.zeros((m, q, self.p))
            np.add.at(self.ZtX_g, codes, Zb[:, :, None] * X[:, None, :])
            self.Zty_g = np.zeros((m, q))
            np.add.at(self.Zty_g, codes, Zb * yv[:, None])
            self._ZtXy_g = np.concatenate([self.ZtX_g, self.Zty_g[:, :, None]], axis=2)
        elif self.blocks:
            Z = np.hstack([dense_z(b) for b in self.blocks])
            self.ZtZ, self.ZtX, self.Zty = Z.T @ Z, Z.T @ X, Z.T @ yv

    # ------------------------------------------------------------------ θ
    def split_theta(self, theta: np.ndarray) -> list[np.ndarray]:
        """θ cut into the blocks' parts."""
        theta = np.asarray(theta, dtype=float)
        out, k = [], 0
        for size in self.sizes:
            out.append(theta[k:k + size])
            k += size
        return out

    def factors(self, theta: np.ndarray) -> list[np.ndarray]:
        """The q×q factors T_b of every block."""
        return [theta_to_factor(t, b.q, b.covariance) for t, b in zip(self.split_theta(theta), self.blocks)]

    def start_theta(self) -> np.ndarray:
        """lme4's starting value: T = I for every block."""
        return np.concatenate([factor_to_theta(np.eye(b.q), b.covariance) for b in self.blocks]) \
            if self.blocks else np.zeros(0)

    # ------------------------------------------------------------------ evaluation
    def parts(self, theta: np.ndarray) -> DevianceParts:
        """log|L|², log|R_X|², r², β̂(θ) and R_X'R_X at θ (module docstring)."""
        if not self.blocks:
            cu2, CXtCX, CXtcu, ldL2 = 0.0, 0.0, 0.0, 0.0
        elif self._single:
            T = self.factors(theta)[0]
            M = np.einsum("ji,gjk,kl->gil", T, self.ZtZ_g, T)
            rhs = np.einsum("ji,gjk->gik", T, self._ZtXy_g)                         # (m, q, p + 1)
            sol, ldL2 = _batched_chol_solve(M, rhs)
            cu, CX = sol[:, :, -1], sol[:, :, :-1]
            cu2 = float(np.sum(cu * cu))
            CXtCX = np.einsum("gip,gir->pr", CX, CX)
            CXtcu = np.einsum("gip,gi->p", CX, cu)
        else:
            Lam = linalg.block_diag(*[np.kron(np.eye(b.n_levels), T)
                                      for b, T in zip(self.blocks, self.factors(theta))])
            M = Lam.T @ self.ZtZ @ Lam + np.eye(Lam.shape[0])
            L = np.linalg.cholesky(M)
            cu = linalg.solve_triangular(L, Lam.T @ self.Zty, lower=True)
            CX = linalg.solve_triangular(L, Lam.T @ self.ZtX, lower=True)
            ldL2 = 2.0 * float(np.sum(np.log(np.diag(L))))
            cu2 = float(cu @ cu)
            CXtCX = CX.T @ CX
            CXtcu = CX.T @ cu
        RXtRX = self.XtX - CXtCX
        rhs = self.Xty - CXtcu
        RX = np.linalg.cholesky(RXtRX)
        cb = np.linalg.solve(RX, rhs)
        beta = np.linalg.solve(RX.T, cb)
        r2 = self.yty - cu2 - float(cb @ cb)
        ldRX2 = 2.0 * float(np.sum(np.log(np.diag(RX))))
        return DevianceParts(ldL2=ldL2, ldRX2=ldRX2, r2=max(r2, 1e-300), beta=beta, RXtRX=RXtRX)

    def deviance(self, theta: np.ndarray, method: str) -> float:
        """Profiled deviance d(θ) (ML) or REML criterion d_R(θ), σ profiled out."""
        pt = self.parts(theta)
        if method == "REML":
            nr = self.n - self.p
            return pt.ldL2 + pt.ldRX2 + nr * (1.0 + np.log(2.0 * np.pi * pt.r2 / nr))
        return pt.ldL2 + self.n * (1.0 + np.log(2.0 * np.pi * pt.r2 / self.n))

    def deviance_sigma(self, theta: np.ndarray, sigma: float, method: str) -> float:
        """d(θ, σ) (ML) or d_R(θ, σ) (REML): lmerTest's ``devfun_vp``."""
        pt = self.parts(theta)
        s2 = float(sigma) ** 2
        if method == "REML":
            return pt.ldL2 + pt.ldRX2 + (self.n - self.p) * (_LOG2PI + np.log(s2)) + pt.r2 / s2
        return pt.ldL2 + self.n * (_LOG2PI + np.log(s2)) + pt.r2 / s2

    def sigma_hat(self, theta: np.ndarray, method: str) -> float:
        """σ̂(θ) = sqrt(r²/n) (ML) or sqrt(r²/(n − p)) (REML)."""
        r2 = self.parts(theta).r2
        return float(np.sqrt(r2 / (self.n - self.p if method == "REML" else self.n)))

    def vcov_beta(self, theta: np.ndarray, sigma: float) -> np.ndarray:
        """vcov(β̂) = σ² (R_X'R_X)⁻¹ at (θ, σ) (lmerTest's ``get_covbeta``)."""
        return float(sigma) ** 2 * np.linalg.inv(self.parts(theta).RXtRX)


def _batched_chol_solve(A: np.ndarray, B: np.ndarray) -> tuple[np.ndarray, float]:
    """Solve L_g S_g = B_g with L_g L_g' = A_g + I for every group g; return (S, Σ_g log|L_g|²).

    q = 1 and q = 2 in closed form (vectorised over groups), larger q through batched LAPACK.
    """
    q = A.shape[1]
    if q == 1:
        l11 = np.sqrt(A[:, 0, 0] + 1.0)
        return B / l11[:, None, None], 2.0 * float(np.sum(np.log(l11)))
    if q == 2:
        l11 = np.sqrt(A[:, 0, 0] + 1.0)
        l21 = A[:, 1, 0] / l11
        l22 = np.sqrt(A[:, 1, 1] + 1.0 - l21 * l21)
        s1 = B[:, 0, :] / l11[:, None]
        s2 = (B[:, 1, :] - l21[:, None] * s1) / l22[:, None]
        return np.stack([s1, s2], axis=1), 2.0 * float(np.sum(np.log(l11) + np.log(l22)))
    M = A + np.eye(q)
    L = np.linalg.cholesky(M)
    return np.linalg.solve(L, B), 2.0 * float(np.sum(np.log(np.diagonal(L, axis1=1, axis2=2))))


@dataclass(frozen=True, eq=False)
class ThetaFit:
    """Optimum of the profiled deviance: θ̂, σ̂, β̂ and the deviance there."""

    theta: np.ndarray
    sigma: float
    beta: np.ndarray
    deviance: float
    method: str


def fit_theta(dev: ProfiledDeviance, method: str, start: np.ndarray | None = None) -> ThetaFit:
    """Minimise the profiled deviance over θ ≥ lower bounds (L-BFGS-B; a second start from θ̂/2).

    After convergence each diagonal θ component below 1e-4 is tried at exactly 0 and kept there if the
    deviance is no worse (MixedModels.jl's ``rectify!``), so boundary fits land exactly on the boundary.
    """
    if dev.n_theta == 0:
        th = np.zeros(0)
    else:
        f = lambda t: dev.deviance(t, method)  # noqa: E731
        x0 = dev.start_theta() if start is None else np.maximum(np.asarray(start, float), dev.lower)
        bounds = [(lo if np.isfinite(lo) else None, None) for lo in dev.lower]
        r = optimize.minimize(f, x0, method="L-BFGS-B", bounds=bounds,
                              options=dict(ftol=1e-13, gtol=1e-8, maxiter=2000))
        th = np.maximum(np.asarray(r.x, float), dev.lower)
        if start is None:  # a second start guards against a poor local optimum from T = I
            r2 = optimize.minimize(f, 0.5 * th + 0.01, method="L-BFGS-B", bounds=bounds,
                                   options=dict(ftol=1e-13, gtol=1e-8, maxiter=2000))
            if r2.fun < f(th):
                th = np.maximum(np.asarray(r2.x, float), dev.lower)
        th = rectify(dev, th, method)
    pt = dev.parts(th)
    return ThetaFit(theta=th, sigma=dev.sigma_hat(th, method), beta=pt.beta,
                    deviance=dev.deviance(th, method), method=method)


def rectify(dev: ProfiledDeviance, theta: np.ndarray, method: str, tol: float = 1e-4) -> np.ndarray:
    """Set each small bounded θ component to exactly 0 when that does not raise the deviance."""
    th = np.array(theta, dtype=float)
    for k in np.flatnonzero((dev.lower == 0.0) & (th < tol)):
        trial = th.copy()
        trial[k] = 0.0
        if dev.deviance(trial, method) <= dev.deviance(th, method) + 1e-10:
            th = trial
    return th


__all__ = ["DevianceParts", "ProfiledDeviance", "ThetaFit", "block_factors", "dense_z", "factor_to_theta", "fit_theta",
           "rectify", "theta_lower_bounds", "theta_to_factor"]
