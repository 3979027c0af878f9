"""Blocked path: several grouping factors, A = Λ'Z'ZΛ + I factorised in its natural block structure.

MixedModels.jl's blocked Cholesky (Bates et al., JuliaStats/MixedModels.jl, ``src/linalg/``,
``remat.jl``; lme4's term order, Bates et al. 2015, J. Stat. Softw. 67(1), sec. 3) with two blocks.
The terms are in lme4 order (most levels first, :mod:`.theta`), so the first term's random effects
(``m1 = ℓ1·q1`` columns, level-major) come first and every other term's (``m_r`` columns) after them:

    A = [A11  A1r]   A11 = blockdiag_l(Λ1' S11_l Λ1 + I)   (one q1 × q1 block per level: Z_1 has one
        [Ar1  Arr]                                          non-zero per row and effect),
                     Ar1 = Λr' Sr1 Λ1 (sparse, the pattern of Z_r'Z_1), Arr = Λr' Srr Λr + I (dense).

The Cholesky factor L = [L11 0; Lr1 Lrr] is

    L11 = blockdiag_l chol(A11_l)                   (per level, q1 × q1),
    Lr1 = Ar1 L11⁻ᵀ = Λr' Sr1 M1,  M1 = blockdiag_l(Λ1 L11_l⁻ᵀ)   (sparse, fixed pattern),
    Lrr Lrr' = Arr − Lr1 Lr1'                       (the Schur complement: dense, m_r × m_r),

so log|L_θ|² = 2 Σ log diag L11 + 2 Σ log diag Lrr.  With V1 = L⁻¹Λ'T, T = Z'[X y]:

    V1_1 = M1'T_1,  V1_r = Lrr⁻¹(Λr'T_r − Lr1 V1_1),  C = [X y]'[X y] − V1_1'V1_1 − V1_r'V1_r,

the penalised cross-products of :mod:`.profiled` (the last block of MixedModels.jl's factor of the
augmented system [Λ'Z'ZΛ + I, Λ'Z'[X y]; …]).  The symbolic structure (S11 blocks, Sr1's pattern, Srr)
is built once per data set (:func:`build_blocked`); each θ costs a per-level q1 × q1 Cholesky, two sparse
products, one dense m_r × m_r Cholesky.  The deviance, its analytic gradient and the conditional modes
and SDs are in :mod:`.blocked_eval`.

The path suits designs whose later terms have few random effects in total (``m_r`` up to
:data:`REST_MAX`: e.g. 300 items, or 1,128 + 14 levels) whatever the size of the first term.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from scipy.linalg import solve_triangular
from scipy.linalg.lapack import dpotrf

from ..model.design import Design
from .general import cross_products
from .theta import Layout

#: largest number of random effects outside the first term for which ``path="auto"`` picks this path
#: (the Schur complement is dense: m_r² doubles, O(m_r³) per evaluation; 3,000 → 72 MB, ~0.5 s)
REST_MAX = 3000
#: Sr1 is kept dense when at least this fraction of it is non-zero (BLAS beats sparse products there)
DENSE_FILL = 0.1


@dataclass(frozen=True, eq=False)
class BlockedProblem:
    """The fixed structure of A and the cross-products of a design (module docstring)."""

    n: int
    p: int
    q_tot: int
    n_theta: int
    offsets: tuple[int, ...]
    lam_rows: np.ndarray          # every non-zero position of Λ (global) and its θ component
    lam_cols: np.ndarray
    lam_theta: np.ndarray
    T: np.ndarray                 # Z'[X y]  (q_tot × (p + 1))
    C0: np.ndarray                # [X y]'[X y]
    beta_offset: np.ndarray
    S: sp.csr_matrix              # Z'Z (for U = T − SΛŨ in the gradient)
    q1: int
    l1: int
    t1_rows: np.ndarray           # first term: positions of its θ components in Λ1 …
    t1_cols: np.ndarray
    t1_start: int                 # … and their offset in θ
    S11: np.ndarray               # (l1, q1, q1) diagonal blocks of Z_1'Z_1
    Sr1: sp.csr_matrix | np.ndarray   # Z_r'Z_1 (m_r × m1), dense when well filled
    Srr: np.ndarray               # Z_r'Z_r (m_r × m_r), dense
    m1_indices: np.ndarray        # CSR pattern of the block-diagonal M1 (fixed)
    m1_indptr: np.ndarray
    lamr_diagonal: bool           # Λr is diagonal (every later term scalar or ``||``)
    # sparse Sr1 only: the rest rows R_l coupled to level l of the first term (entries e: row, level) and
    # every pair (e, f) of entries of one level — the positions of A⁻¹_rr that the gradient reads
    ent_row: np.ndarray | None = None
    ent_level: np.ndarray | None = None
    seg_start: np.ndarray | None = None     # entry e's pairs are pair_f[seg_start[e]:seg_start[e + 1]]
    pair_f: np.ndarray | None = None
    pair_flat: np.ndarray | None = None     # … at flat positions row_e · m_r + row_f of A⁻¹_rr
    # sparse Sr1 only: each stored entry's row, and each level-pattern entry's position in Sr1.data (−1: none)
    sr1_row: np.ndarray | None = None
    ent_pos: np.ndarray | None = None

    @property
    def m1(self) -> int:
        return self.q1 * self.l1

    @property
    def m_r(self) -> int:
        return self.q_tot - self.m1

    @property
    def scalar_coupling(self) -> bool:
        """Sparse Sr1 with Λ1 scalar and Λr diagonal: every coupling block is Sr1 scaled by rows and
        columns, on Sr1's own pattern (no sparse products)."""
        return self.q1 == 1 and self.lamr_diagonal and sp.issparse(self.Sr1)

    def factor(self, theta: np.ndarray) -> sp.csr_matrix:
        """The full sparse Λ_θ."""
        return sp.csr_matrix((np.asarray(theta)[self.lam_theta], (self.lam_rows, self.lam_cols)),
                             shape=(self.q_tot, self.q_tot))


@dataclass(frozen=True, eq=False)
class BlockedFactor:
    """The Cholesky factor of A at one θ (module docstring) and the pieces it was built from."""

    lam: sp.csr_matrix            # Λ (q_tot × q_tot)
    lam1: np.ndarray              # Λ1 (q1 × q1)
    lamr: sp.csr_matrix           # Λr (m_r × m_r)
    L1: np.ndarray                # (l1, q1, q1) lower
    L1inv: np.ndarray             # (l1, q1, q1) their inverses
    M1: sp.csr_matrix             # blockdiag(Λ1 L11_l⁻ᵀ)
    Lr1: sp.csr_matrix | np.ndarray
    Lrr: np.ndarray
    logdet: float
    G: np.ndarray | None = None   # scalar coupling: Sr1 diag(M1²) Sr1' (so Lr1Lr1' = diag(λr) G diag(λr))


def rest_size(layout: Layout) -> int:
    """m_r: the number of random effects outside the first (most levels) term."""
    return sum(t.q * t.n_levels for t in layout.terms[1:])


def build_blocked(design: Design, layout: Layout, y: np.ndarray | None = None) -> BlockedProblem:
    """Z'Z split into the blocks of the module docstring, Z'[X y], [X y]'[X y] and the Λ pattern."""
    if len(layout.terms) < 2:
        raise ValueError("the blocked path needs at least two random-effects terms")
    fields, ztz = cross_products(design, layout, y)
    ztz = ztz.tocsr()
    t1 = layout.terms[0]
    q1, l1 = t1.q, t1.n_levels
    m1 = q1 * l1
    S11 = np.zeros((l1, q1, q1))
    blk = ztz[:m1, :m1].tocoo()
    S11[blk.row // q1, blk.row % q1, blk.col % q1] = blk.data          # block diagonal by construction
    Sr1 = ztz[m1:, :m1].tocsr()
    Sr1.sort_indices()
    if Sr1.nnz >= DENSE_FILL * Sr1.shape[0] * max(1, m1):
        Sr1 = Sr1.toarray()
    Srr = ztz[m1:, m1:].toarray()
    rest = layout.terms[1:]
    lamr_diagonal = all(t.q == 1 or t.covariance == "diagonal" for t in rest)
    ent = _level_pattern(fields, Sr1, m1, q1, l1) if sp.issparse(Sr1) else {}
    if ent:
        ent["sr1_row"] = np.repeat(np.arange(Sr1.shape[0]), np.diff(Sr1.indptr))
        where = sp.csr_matrix((np.arange(1.0, Sr1.nnz + 1), Sr1.indices, Sr1.indptr), shape=Sr1.shape)
        ent["ent_pos"] = np.asarray(where[ent["ent_row"], ent["ent_level"] * q1]).ravel().astype(np.intp) - 1
    lev = np.repeat(np.arange(l1), q1 * q1)
    b = np.tile(np.arange(q1), l1 * q1)
    m1_indices = (lev * q1 + b).astype(np.int32)
    m1_indptr = np.arange(0, m1 * q1 + 1, q1, dtype=np.int32)
    return BlockedProblem(S=ztz, q1=q1, l1=l1, t1_rows=t1.rows, t1_cols=t1.cols, t1_start=t1.start,
                          S11=S11, Sr1=Sr1, Srr=Srr, m1_indices=m1_indices, m1_indptr=m1_indptr,
                          lamr_diagonal=lamr_diagonal, **ent, **fields)


def _level_pattern(fields: dict, Sr1: sp.csr_matrix, m1: int, q1: int, l1: int) -> dict:
    """R_l = the rest rows j with (Λr'Sr1)[j, c] structurally non-zero for a column c of level l (Λr's
    pattern: each later term's lower triangle per level), as entries (row, level), and all pairs of
    entries of one level (:mod:`.blocked_eval` reads A⁻¹_rr there: Σ_l |R_l|² values)."""
    m_r = Sr1.shape[0]
    rest = fields["lam_rows"] >= m1
    lr, lc = fields["lam_rows"][rest] - m1, fields["lam_cols"][rest] - m1
    lam_pat = sp.csr_matrix((np.ones(lr.size), (lr, lc)), shape=(m_r, m_r))
    to_level = sp.csr_matrix((np.ones(m1), (np.arange(m1), np.arange(m1) // q1)), shape=(m1, l1))
    pat = (lam_pat.T @ (abs(Sr1).sign() @ to_level)).tocsc()       # m_r × l1
    pat.sort_indices()
    sizes = np.diff(pat.indptr)
    ent_row = pat.indices.astype(np.intp)
    ent_level = np.repeat(np.arange(l1), sizes)
    reps = sizes[ent_level]                                           # |R_l| for each entry's level
    pair_e = np.repeat(np.arange(ent_row.size), reps)
    start = np.repeat(np.cumsum(reps) - reps, reps)
    pair_f = pat.indptr[ent_level][pair_e] + (np.arange(pair_e.size) - start)
    flat = ent_row[pair_e] * m_r + ent_row[pair_f]
    return dict(ent_row=ent_row, ent_level=ent_level, seg_start=np.cumsum(reps) - reps,
                pair_f=pair_f.astype(np.int32), pair_flat=flat.astype(np.int32 if m_r * m_r < 2**31 else np.int64))


def _lower_inverse(L: np.ndarray) -> np.ndarray:
    """Inverses of a stack of small lower-triangular matrices (closed form for q = 1, 2)."""
    q = L.shape[-1]
    if q == 1:
        return 1.0 / L
    if q == 2:
        out = np.zeros_like(L)
        a, c, d = L[:, 0, 0], L[:, 1, 0], L[:, 1, 1]
        out[:, 0, 0], out[:, 1, 1] = 1.0 / a, 1.0 / d
        out[:, 1, 0] = -c / (a * d)
        return out
    return np.linalg.inv(L)


def factorise(pr: BlockedProblem, theta: np.ndarray) -> BlockedFactor | None:
    """L at θ (module docstring); None if the Schur complement is not positive definite (rounding)."""
    theta = np.asarray(theta, dtype=float)
    q1, m1 = pr.q1, pr.m1
    lam = pr.factor(theta)
    lam1 = np.zeros((q1, q1))
    lam1[pr.t1_rows, pr.t1_cols] = theta[pr.t1_start:pr.t1_start + pr.t1_rows.size]
    A1 = lam1.T @ pr.S11 @ lam1
    A1 += np.eye(q1)
    L1 = np.sqrt(A1) if q1 == 1 else np.linalg.cholesky(A1)
    L1inv = _lower_inverse(L1)
    M1b = lam1 @ np.swapaxes(L1inv, 1, 2)                              # Λ1 L11_l⁻ᵀ
    M1 = sp.csr_matrix((M1b.ravel(), pr.m1_indices, pr.m1_indptr), shape=(m1, m1))
    lamr = lam[m1:, m1:].tocsr()
    lamr_t = lamr.T.tocsr()
    G = None
    if pr.scalar_coupling:
        dr = lamr.diagonal()
        Lr1 = scaled(pr, dr, M1b[:, 0, 0])
        Q = scaled(pr, None, M1b[:, 0, 0])
        G = (Q @ Q.T).toarray()
        LL = dr[:, None] * G * dr[None, :]
    elif sp.issparse(pr.Sr1):
        Lr1 = (lamr_t @ (pr.Sr1 @ M1)).tocsr()
        LL = (Lr1 @ Lr1.T).toarray()
    else:
        Lr1 = left_rest(pr, lamr, right_blocks(pr.Sr1, M1b))
        LL = Lr1 @ Lr1.T
    Arr = lambda_sandwich(pr, lamr, pr.Srr) - LL                       # Λr'SrrΛr − Lr1Lr1'
    Arr[np.diag_indices_from(Arr)] += 1.0
    Lrr, info = dpotrf(Arr, lower=1, clean=1)
    if info != 0:
        return None
    d1 = np.diagonal(L1, axis1=1, axis2=2)
    logdet = 2.0 * (float(np.log(d1).sum()) + float(np.log(np.diagonal(Lrr)).sum()))
    return BlockedFactor(lam, lam1, lamr, L1, L1inv, M1, Lr1, Lrr, logdet, G)


def scaled(pr: BlockedProblem, left: np.ndarray | None, right: np.ndarray | None) -> sp.csr_matrix:
    """diag(left) Sr1 diag(right) on Sr1's pattern (``None``: no scaling on that side)."""
    M = pr.Sr1
    data = M.data.copy()
    if left is not None:
        data *= left[pr.sr1_row]
    if right is not None:
        data *= right[M.indices]
    return sp.csr_matrix((data, M.indices, M.indptr), shape=M.shape)


def right_blocks(D: np.ndarray, blocks: np.ndarray) -> np.ndarray:
    """D · blockdiag_l(blocks_l) for a dense D (m_r × m1) and blocks (l1, q1, q1), or one (q1, q1) block
    for every level."""
    m_r, q1 = D.shape[0], blocks.shape[-1]
    l1 = D.shape[1] // q1
    if blocks.ndim == 2:
        return (np.ascontiguousarray(D).reshape(m_r * l1, q1) @ blocks).reshape(m_r, -1)
    D3 = D.reshape(m_r, l1, q1)
    out = D3[:, :, 0:1] * blocks[None, :, 0, :]
    for a in range(1, q1):                                   # elementwise: tiny stacked matmuls are slow
        out += D3[:, :, a:a + 1] * blocks[None, :, a, :]
    return out.reshape(m_r, -1)


def left_rest(pr: BlockedProblem, lamr: sp.csr_matrix, D: np.ndarray) -> np.ndarray:
    """Λr' D for a dense D with m_r rows (a row scaling when Λr is diagonal)."""
    if pr.lamr_diagonal:
        return lamr.diagonal()[:, None] * D
    return np.asarray(lamr.T.tocsr() @ D)


def lambda_sandwich(pr: BlockedProblem, lamr: sp.csr_matrix, M: np.ndarray) -> np.ndarray:
    """Λr' M Λr for a dense symmetric m_r × m_r matrix M (a scaling when Λr is diagonal)."""
    if pr.lamr_diagonal:
        d = lamr.diagonal()
        return d[:, None] * M * d[None, :]
    Y = np.asarray(lamr.T @ M)
    return np.asarray(lamr.T @ Y.T).T


def half_solve(pr: BlockedProblem, fac: BlockedFactor) -> tuple[np.ndarray, np.ndarray]:
    """V1 = L⁻¹Λ'T as its two blocks (V1_1: m1 × (p+1), V1_r: m_r × (p+1))."""
    m1 = pr.m1
    V1_1 = np.asarray(fac.M1.T @ pr.T[:m1])
    rhs = np.asarray(fac.lamr.T @ pr.T[m1:]) - fac.Lr1 @ V1_1
    V1_r = solve_triangular(fac.Lrr, rhs, lower=True, check_finite=False)
    return V1_1, V1_r


def cross_products_at(pr: BlockedProblem, theta: np.ndarray) -> tuple[float, np.ndarray | None,
                                                                     BlockedFactor | None, tuple | None]:
    """(log|L_θ|², C, the factor, (V1_1, V1_r)); C is None where A is not numerically positive definite."""
    fac = factorise(pr, theta)
    if fac is None:
        return math.inf, None, None, None
    V1_1, V1_r = half_solve(pr, fac)
    C = pr.C0 - V1_1.T @ V1_1 - V1_r.T @ V1_r
    return fac.logdet, C, fac, (V1_1, V1_r)


def full_solve(pr: BlockedProblem, fac: BlockedFactor, V1_1: np.ndarray, V1_r: np.ndarray) -> np.ndarray:
    """Ũ = L⁻ᵀV1 = A⁻¹Λ'T (q_tot × (p+1)): the penalised least-squares solutions, column by column."""
    Ur = solve_triangular(fac.Lrr, V1_r, lower=True, trans="T", check_finite=False)
    rhs = V1_1 - fac.Lr1.T @ Ur
    k = rhs.shape[1]
    U1 = np.einsum("lba,lbk->lak", fac.L1inv, np.asarray(rhs).reshape(pr.l1, pr.q1, k)).reshape(pr.m1, k)
    return np.vstack([U1, Ur])
