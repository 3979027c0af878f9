"""The blocked path's deviance, analytic gradient, conditional modes and conditional SDs.

Built on the factor of :mod:`.blocked` (L11 per level, the Schur complement Ŝ = Λr'HΛr + I = Lrr Lrr').
The gradient is exact.  With Ũ = A⁻¹Λ'T (the penalised least-squares solutions for every column of
[X y]), U = Z'V⁻¹[X y] = T − SΛŨ (Woodbury; Λ'U = Ũ, which :func:`.general.stable_u` uses for the
terms with a large Λ_t, where the subtraction cancels) and N = ∂f/∂C from :func:`.profiled.profiled`,
differentiating d = log|A| + f(C) with C = C0 − T'ΛA⁻¹Λ'T (computed from the residuals, equal in exact
arithmetic) in one θ component k, whose positions in Λ are pos_k, the data term is

    ∂ f(C) / ∂θ_k = −2 Σ_{(r,c) ∈ pos_k} (U N Ũ')[r, c],

and the determinant term follows from log|A| = Σ_l log|A11_l| + log|Ŝ| (every (r, c) lies in one
level's diagonal block).  With Ŝ⁻¹ = Lrr⁻ᵀLrr⁻¹ (``dpotri``, dense), Y = Λr Ŝ⁻¹ Λr' and the per-level
blocks Z_l = V_l' Y V_l of :mod:`.blocked_coupling` (V_l: level l's columns of Z_r'Z_1):

    later terms:  ∂ log|A| / ∂θ_k = 2 Σ_{(r,c) ∈ pos_k} (H Λr Ŝ⁻¹)[r, c]     (tr(Ŝ⁻¹ ∂Ŝ), Ŝ symmetric),
    first term:   ∂ log|A| / ∂θ_k = 2 Σ_l Σ_{(r,c) ∈ pos_k} ([S11_l − (I − S11_l W_l) Z_l] Λ1 A11_l⁻¹)[r, c]

(the second from ∂ log|A11_l| and ∂W_l = ∂(Λ1 A11_l⁻¹ Λ1') in tr(Ŝ⁻¹ Λr' ∂H Λr) = −Σ_l tr(∂W_l Z_l)).
Both equal :mod:`.general`'s Σ 2((∂d/∂D)Λ)[r, c], since (SΛA⁻¹) restricted to the diagonal blocks is
what they are: Takahashi's subset of A⁻¹ (its diagonal blocks) is (A⁻¹)_rr = Ŝ⁻¹ and
(A⁻¹)_11,l = A11_l⁻¹ + A11_l⁻¹ Λ1' Z_l Λ1 A11_l⁻¹.  The conditional SDs are sqrt(σ̂² diag(ΛA⁻¹Λ')), i.e.
diag(W_l + W_l Z_l W_l) and diag(Y) (lme4's condVar; Bates et al. 2015, sec. 5.1).  One evaluation with
gradient costs a dense Cholesky, a dense inverse and the coupling's update and adjoint; no Python loop
runs over levels.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.linalg.lapack import dpotri

from .blocked import BlockedFactor, BlockedProblem, cross_products_at, lam_times, sandwich
from .general import stable_u
from .profiled import Profiled, profiled


@dataclass(frozen=True, eq=False)
class Inverse:
    """The pieces of A⁻¹ the gradient and the conditional SDs read (module docstring)."""

    Sinv: np.ndarray              # Ŝ⁻¹ = (A⁻¹)_rr (m_r × m_r, symmetric)
    Y: np.ndarray                 # Λr Ŝ⁻¹ Λr'
    Z: np.ndarray                 # (l1, q1, q1) V_l' Y V_l


def inverse_blocks(pr: BlockedProblem, fac: BlockedFactor) -> Inverse:
    """Ŝ⁻¹ from the Cholesky factor, Y and the coupling's adjoint Z (module docstring)."""
    Ci, _ = dpotri(fac.Lrr, lower=1)
    Sinv = np.tril(Ci)
    Sinv += np.tril(Sinv, -1).T
    Y = sandwich(fac.lamr, fac.dr, Sinv, transpose=True)
    return Inverse(Sinv, Y, pr.coupling.adjoint(Y))


def gradient(pr: BlockedProblem, theta: np.ndarray, fac: BlockedFactor, Ut: np.ndarray,
             N: np.ndarray) -> np.ndarray:
    """∂d/∂θ (module docstring) at θ, with ``fac`` and Ũ from :func:`.blocked.cross_products_at`, ``N``
    from :func:`.profiled.profiled`."""
    m1, q1 = pr.m1, pr.q1
    U = stable_u(pr, theta, Ut, pr.T - pr.S @ lam_times(pr, fac, Ut))
    rows, cols = pr.lam_rows, pr.lam_cols
    data_part = np.einsum("ik,ik->i", (U @ N)[rows], Ut[cols])
    inv = inverse_blocks(pr, fac)
    H = np.empty(rows.size)
    first = rows < m1
    # first term: [S11_l − (I − S11_l W_l) Z_l] Λ1 A11_l⁻¹, with Λ1 A11_l⁻¹ = M1b_l L11_l⁻¹
    lam_a = fac.M1b @ fac.L1inv
    Hb = (pr.S11 - (np.eye(q1) - pr.S11 @ fac.W) @ inv.Z) @ lam_a
    r1, c1 = rows[first], cols[first]
    H[first] = Hb[r1 // q1, r1 % q1, c1 % q1]
    # later terms: (H Λr Ŝ⁻¹)[r, c]
    if fac.dr is not None:     # Λr diagonal: positions (r, r), listed term by term, not in order of r
        H[~first] = np.einsum("ij,ij->i", fac.H, inv.Sinv * fac.dr[None, :])[rows[~first] - m1]
    else:
        rr, cr = rows[~first] - m1, cols[~first] - m1
        X = np.asarray(fac.lamr.T @ fac.H)                              # (HΛr)' (H symmetric)
        H[~first] = np.einsum("ij,ij->i", X.T[rr], inv.Sinv[cr])
    return np.bincount(pr.lam_theta, weights=2.0 * (H - data_part), minlength=pr.n_theta)


def cond_diag(pr: BlockedProblem, fac: BlockedFactor) -> np.ndarray:
    """diag(Λ A⁻¹ Λ') (q_tot,), from the diagonal blocks of A⁻¹ (module docstring)."""
    inv = inverse_blocks(pr, fac)
    W = fac.W
    d1 = np.diagonal(W + W @ inv.Z @ W, axis1=1, axis2=2).ravel()
    return np.r_[d1, np.diagonal(inv.Y)]


def evaluate(pr: BlockedProblem, theta: np.ndarray, reml: bool, want_grad: bool = True
             ) -> tuple[float, np.ndarray | None]:
    """Profiled deviance (ML or REML) and its analytic gradient (:func:`gradient`)."""
    theta = np.asarray(theta, dtype=float)
    logdet, C, fac, Ut = cross_products_at(pr, theta)
    if C is None:
        return math.inf, None
    prof = profiled(logdet, C, pr.n, pr.p, reml, want_grad)
    if not want_grad or prof.N is None:
        return prof.deviance, None
    return prof.deviance, gradient(pr, theta, fac, Ut, prof.N)


def solution(pr: BlockedProblem, theta: np.ndarray, reml: bool) -> tuple[Profiled, np.ndarray, np.ndarray]:
    """At θ: profiled quantities, conditional modes b = ΛŨw with w = (−β̂, 1), and diag(Λ A⁻¹ Λ')
    (× σ̂² = lme4's condVar)."""
    logdet, C, fac, Ut = cross_products_at(pr, theta)
    prof = profiled(logdet, C, pr.n, pr.p, reml, False)
    b = lam_times(pr, fac, Ut @ np.r_[-prof.beta, 1.0][:, None]).ravel()
    return prof, b, cond_diag(pr, fac)


def cond_blocks(pr: BlockedProblem, theta: np.ndarray, k: int, n_levels: int) -> np.ndarray:
    """Per level of term k (layout order), the q × q block of Λ A⁻¹ Λ' (× σ̂² = condVar with the
    covariances within a level): W_l + W_l Z_l W_l for the first term, the blocks of Λr Ŝ⁻¹ Λr' after it."""
    _, _, fac, _ = cross_products_at(pr, np.asarray(theta, dtype=float))
    inv = inverse_blocks(pr, fac)
    if k == 0:
        return fac.W + fac.W @ inv.Z @ fac.W
    o, q = pr.offsets[k] - pr.m1, pr.term_q[k]
    Y = inv.Y[o:o + q * n_levels, o:o + q * n_levels].reshape(n_levels, q, n_levels, q)
    return Y[np.arange(n_levels), :, np.arange(n_levels), :]

