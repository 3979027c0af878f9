"""The blocked path's deviance, analytic gradient, conditional modes and conditional SDs.

Built on the factor L = [L11 0; Lr1 Lrr] of :mod:`.blocked`.  The gradient is exact, evaluated through
the blocks rather than the dense q_tot × q_tot matrices of :mod:`.general`.  With Ũ = A⁻¹Λ'T (the
penalised least-squares solutions for every column of [X y]), U = Z'V⁻¹[X y] = T − SΛŨ (Woodbury; note
Λ'U = Ũ) and N = ∂f/∂C from :func:`.profiled.profiled`, differentiating d = log|A| + f(C) with
A = Λ'SΛ + I and C = C0 − T'ΛA⁻¹Λ'T in one θ component k, whose positions in Λ are pos_k:

    ∂ log|A| / ∂θ_k = 2 Σ_{(r,c) ∈ pos_k} (SΛA⁻¹)[r, c],
    ∂ f(C)  / ∂θ_k = −2 Σ_{(r,c) ∈ pos_k} (U N Ũ')[r, c],

which equals :mod:`.general`'s Σ 2((∂d/∂D)Λ)[r, c] since Z'V⁻¹ZΛ = SΛA⁻¹.  Every (r, c) lies in one
level's q_t × q_t diagonal block, so only these entries of A⁻¹ are needed (Takahashi's subset):

    A⁻¹_rr = Lrr⁻ᵀLrr⁻¹ (dense),   P = A⁻¹_r1 = −A⁻¹_rr B,  B = Lr1 L11⁻¹ (m_r × m1),
    (A⁻¹_11)_ll = (L11_l L11_l')⁻¹ − (B'P)_ll          (per level, q1 × q1),

and SΛA⁻¹ on the diagonal blocks is, for the first term, S11_l Λ1 (A⁻¹_11)_ll + ((Λr'Sr1)'P)_ll and, for
the others, (Sr1Λ1 P')[r, c] + (SrrΛr A⁻¹_rr)[r, c].  The conditional SDs are sqrt(σ̂² diag(ΛA⁻¹Λ'))
from the same blocks (lme4's condVar; Bates et al. 2015, sec. 5.1).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from scipy.linalg.lapack import dpotri

from .blocked import (BlockedFactor, BlockedProblem, cross_products_at, full_solve, left_rest, right_blocks,
                      scaled)
from .profiled import Profiled, profiled


def _blockdiag(pr: BlockedProblem, blocks: np.ndarray) -> sp.csr_matrix:
    """The block-diagonal m1 × m1 matrix with the first term's (l1, q1, q1) blocks."""
    return sp.csr_matrix((blocks.ravel(), pr.m1_indices, pr.m1_indptr), shape=(pr.m1, pr.m1))


def _level_blocks(pr: BlockedProblem, K: np.ndarray, P: np.ndarray) -> np.ndarray:
    """Per level l of the first term, the q1 × q1 block Σ_j K[j, l q1 + a] P[j, l q1 + b] of K'P
    (dense K, P: m_r × m1)."""
    q1, l1 = pr.q1, pr.l1
    if q1 == 1:
        return np.einsum("jl,jl->l", K, P)[:, None, None]
    K3, P3 = np.asarray(K).reshape(-1, l1, q1), P.reshape(-1, l1, q1)
    return np.matmul(K3.transpose(1, 2, 0), P3.transpose(1, 0, 2))


def _gather(pr: BlockedProblem, K: sp.csr_matrix) -> np.ndarray:
    """K's values at the entries (row j, level l) of the level pattern, per effect: (n_entries, q1).
    With :attr:`.blocked.BlockedProblem.scalar_coupling` K has Sr1's pattern and is read by position."""
    q1 = pr.q1
    if pr.scalar_coupling:
        return np.where(pr.ent_pos >= 0, K.data[pr.ent_pos], 0.0)[:, None]
    K = K.T.tocsr()                                  # short rows (one per first-term column): fast lookups
    K.sort_indices()
    cols = pr.ent_level[:, None] * q1 + np.arange(q1)[None, :]
    rows = np.broadcast_to(pr.ent_row[:, None], cols.shape)
    return np.asarray(K[cols.ravel(), rows.ravel()]).reshape(cols.shape)


@dataclass(frozen=True, eq=False)
class Inverse:
    """The entries of A⁻¹ the gradient and the conditional SDs read (module docstring)."""

    Ainv: np.ndarray              # A⁻¹_rr (m_r × m_r)
    A11: np.ndarray               # (A⁻¹_11)_ll (l1, q1, q1)
    B: sp.csr_matrix | np.ndarray
    P: np.ndarray | None          # dense Sr1: A⁻¹_r1 (m_r × m1)
    AB: np.ndarray | None         # sparse Sr1: (A⁻¹_rr B) at the level-pattern entries (n_entries, q1)


def inverse_blocks(pr: BlockedProblem, fac: BlockedFactor) -> Inverse:
    """A⁻¹_rr, the first term's diagonal blocks of A⁻¹ and what the off-diagonal terms need: P = A⁻¹_r1
    in full when Sr1 is dense, else A⁻¹_rr B only at the level pattern (Σ_l |R_l|² reads of A⁻¹_rr)."""
    Ainv, info = dpotri(fac.Lrr, lower=1)
    iu = np.triu_indices_from(Ainv, 1)
    Ainv[iu] = Ainv.T[iu]
    Linv = _blockdiag(pr, fac.L1inv)
    own = np.swapaxes(fac.L1inv, 1, 2) @ fac.L1inv                      # (L11_l L11_l')⁻¹
    if not sp.issparse(fac.Lr1):
        B = right_blocks(fac.Lr1, fac.L1inv)
        P = -(Ainv @ B)
        return Inverse(Ainv, own - _level_blocks(pr, B, P), B, P, None)
    B = (scaled(pr, fac.lamr.diagonal(), fac.M1.diagonal() * fac.L1inv[:, 0, 0]) if pr.scalar_coupling
         else (fac.Lr1 @ Linv).tocsr())
    Bg = _gather(pr, B)
    w = np.take(Ainv.ravel(order="K"), pr.pair_flat)                     # A⁻¹_rr symmetric: any order
    AB = np.column_stack([np.add.reduceat(w * Bg[pr.pair_f, b], pr.seg_start) for b in range(pr.q1)])
    return Inverse(Ainv, own + _entry_blocks(pr, Bg, AB), B, None, AB)


def _entry_blocks(pr: BlockedProblem, Kg: np.ndarray, AB: np.ndarray) -> np.ndarray:
    """Per level l: Σ_{e in level l} Kg[e, a] AB[e, b] = (K'A⁻¹_rr B)_ll."""
    q1, l1 = pr.q1, pr.l1
    out = np.empty((l1, q1, q1))
    for a in range(q1):
        for b in range(q1):
            out[:, a, b] = np.bincount(pr.ent_level, weights=Kg[:, a] * AB[:, b], minlength=l1)
    return out


def gradient(pr: BlockedProblem, fac: BlockedFactor, V1: tuple[np.ndarray, np.ndarray],
             N: np.ndarray) -> np.ndarray:
    """∂d/∂θ (module docstring) at the θ of ``fac``; ``V1`` from :func:`.blocked.half_solve`, ``N`` from
    :func:`.profiled.profiled`."""
    m1, q1 = pr.m1, pr.q1
    Ut = full_solve(pr, fac, *V1)
    U = pr.T - pr.S @ (fac.lam @ Ut)
    rows, cols = pr.lam_rows, pr.lam_cols
    data_part = np.einsum("ik,ik->i", (U @ N)[rows], Ut[cols])
    inv = inverse_blocks(pr, fac)
    H = np.empty(rows.size)
    first = rows < m1
    rr, cr = rows[~first] - m1, cols[~first] - m1
    lam1_bd = fac.lam[:m1, :m1]
    # first term: S11_l Λ1 (A⁻¹_11)_ll + ((Λr'Sr1)'A⁻¹_r1)_ll;
    # the other terms: (Sr1Λ1 A⁻¹_1r)[r, c] + (SrrΛr A⁻¹_rr)[r, c]
    if inv.P is not None:
        cross1 = _level_blocks(pr, left_rest(pr, fac.lamr, pr.Sr1), inv.P)
        K2 = right_blocks(pr.Sr1, fac.lam1)
        if np.array_equal(rr, cr) and np.array_equal(rr, np.arange(rr.size)):
            cross_r = np.einsum("ij,ij->i", K2, inv.P)
        else:
            cross_r = np.einsum("ij,ij->i", K2[rr], inv.P[cr])
    else:
        if pr.scalar_coupling:
            K1, K2 = scaled(pr, fac.lamr.diagonal(), None), scaled(pr, None, np.full(m1, fac.lam1[0, 0]))
        else:
            K1, K2 = (fac.lamr.T @ pr.Sr1).tocsr(), (pr.Sr1 @ lam1_bd).tocsr()
        cross1 = -_entry_blocks(pr, _gather(pr, K1), inv.AB)
        W = (fac.G * fac.lamr.diagonal()[None, :] if fac.G is not None
             else (K2 @ inv.B.T).toarray())                               # Sr1Λ1B' (m_r × m_r)
        cross_r = -np.einsum("ij,ji->i", W[rr], inv.Ainv[:, cr])
    Hb = pr.S11 @ fac.lam1 @ inv.A11 + cross1
    r1, c1 = rows[first], cols[first]
    H[first] = Hb[r1 // q1, r1 % q1, c1 % q1]
    SL = lambda_sandwich_left(pr, fac.lamr)                                # (SrrΛr)' = Λr'Srr
    H[~first] = cross_r + np.einsum("ji,ji->i", SL[:, rr], inv.Ainv[:, cr])
    return np.bincount(pr.lam_theta, weights=2.0 * (H - data_part), minlength=pr.n_theta)


def lambda_sandwich_left(pr: BlockedProblem, lamr: sp.csr_matrix) -> np.ndarray:
    """Λr'Srr (dense; a row scaling when Λr is diagonal)."""
    if pr.lamr_diagonal:
        return lamr.diagonal()[:, None] * pr.Srr
    return np.asarray(lamr.T @ pr.Srr)


def cond_diag(pr: BlockedProblem, fac: BlockedFactor) -> np.ndarray:
    """diag(Λ A⁻¹ Λ') (q_tot,), from the diagonal level blocks of A⁻¹."""
    inv = inverse_blocks(pr, fac)
    Ainv = inv.Ainv
    d1 = np.einsum("ab,lbc,ac->la", fac.lam1, inv.A11, fac.lam1).ravel()
    lamr = fac.lamr
    dr = np.asarray(lamr.multiply(np.asarray(lamr @ Ainv)).sum(axis=1)).ravel()
    return np.r_[d1, dr]


def evaluate(pr: BlockedProblem, theta: np.ndarray, reml: bool, want_grad: bool = True
             ) -> tuple[float, np.ndarray | None]:
    """Profiled deviance (ML or REML) and its analytic gradient (:func:`gradient`)."""
    logdet, C, fac, V1 = cross_products_at(pr, theta)
    if C is None:
        return math.inf, None
    prof = profiled(logdet, C, pr.n, pr.p, reml, want_grad)
    if not want_grad or prof.N is None:
        return prof.deviance, None
    return prof.deviance, gradient(pr, fac, V1, prof.N)


def solution(pr: BlockedProblem, theta: np.ndarray, reml: bool) -> tuple[Profiled, np.ndarray, np.ndarray]:
    """At θ: profiled quantities, conditional modes b = ΛŨw with w = (−β̂, 1), and diag(Λ A⁻¹ Λ')
    (× σ̂² = lme4's condVar)."""
    logdet, C, fac, V1 = cross_products_at(pr, theta)
    prof = profiled(logdet, C, pr.n, pr.p, reml, False)
    Ut = full_solve(pr, fac, *V1)
    b = np.asarray(fac.lam @ (Ut @ np.r_[-prof.beta, 1.0]))
    return prof, b, cond_diag(pr, fac)
