"""Blocked path: several grouping factors, A = Λ'Z'ZΛ + I factorised in its natural block structure.

MixedModels.jl's blocked Cholesky (Bates et al., JuliaStats/MixedModels.jl, ``src/linalg/``,
``src/pls.jl``; lme4's term order, Bates et al. 2015, J. Stat. Softw. 67(1), sec. 3) with two blocks.
The terms are in lme4 order (most levels first, :mod:`.theta`), so the first term's random effects
(``m1 = ℓ1·q1`` columns, level-major) come first and every other term's (``m_r`` columns) after them:

    A = [A11  A1r]   A11 = blockdiag_l(Λ1' S11_l Λ1 + I)   (one q1 × q1 block per level: Z_1 has one
        [Ar1  Arr]                                          non-zero per row and effect),
                     Ar1 = Λr' Sr1 Λ1 (the pattern of Z_r'Z_1), Arr = Λr' Srr Λr + I (dense).

The Cholesky factor L = [L11 0; Lr1 Lrr] is

    L11 = blockdiag_l chol(A11_l)                   (per level, q1 × q1),
    Lr1 = Λr' Sr1 M1,  M1 = blockdiag_l(Λ1 L11_l⁻ᵀ)   (never formed: only applied to vectors),
    Lrr Lrr' = Ŝ = Λr' H Λr + I,  H = Srr − Sr1 blockdiag_l(W_l) Sr1',  W_l = M1_l M1_l'
             = Λ1 A11_l⁻¹ Λ1'                        (the Schur complement: dense, m_r × m_r),

so log|L_θ|² = 2 Σ log diag L11 + 2 Σ log diag Lrr.  H depends on θ1 alone; it is computed by
:mod:`.blocked_coupling` on a structure fixed per data set (a BLAS rank-k update when Sr1 is well
filled, one sparse matrix–vector product on a precomputed pattern otherwise).  With V1 = L⁻¹Λ'T,
T = Z'[X y]:

    V1_1 = M1'T_1,  V1_r = Lrr⁻¹(Λr'T_r − Λr'Sr1 M1 V1_1),  Ũ = L⁻ᵀV1 = A⁻¹Λ'T,
    R = [X y] − ZΛŨ,  C = R'R + Ũ'Ũ,

the penalised cross-products of :mod:`.profiled` from the residuals of the penalised least squares
(:func:`.profiled.residual_products`).  C equals the last block of MixedModels.jl's factor of the
augmented system [Λ'Z'ZΛ + I, Λ'Z'[X y]; …], i.e. [X y]'[X y] − V1_1'V1_1 − V1_r'V1_r, but that
difference cancels the digits r²_θ has below [X y]'[X y] when some σ_t ≫ σ.  The symbolic structure (S11 blocks, the coupling,
Srr, Λ's pattern) is built once per data set (:func:`build_blocked`); each θ costs per-level q1 × q1
algebra, the coupling update, one dense m_r × m_r Cholesky (``dpotrf``) and an n × (p+1) pass for R.  The deviance, its analytic
gradient and the conditional modes and SDs are in :mod:`.blocked_eval`.

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
from .blocked_coupling import DenseCoupling, SparseCoupling, make_coupling
from .general import cross_products
from .profiled import residual_products
from .theta import Layout

#: largest number of random effects outside the first term for which ``path="auto"`` picks this path.
#: Measured (single-threaded BLAS, crossed ``y ~ x + (1 | a) + (1 | b)``, REML, m_r levels of b, 2·m_r of
#: a, 16·m_r observations): one evaluation with gradient vs the sparse LU path's evaluation without one,
#: m_r = 400: 10 ms vs 51 ms; 1,000: 83 ms vs 448 ms; 2,000: 0.36 s vs 2.3 s; 3,000: 1.1 s vs 8.8 s;
#: 4,500: 3.5 s vs 29 s — and the blocked fit needs 14 evaluations where the sparse one needs ~60 (so a
#: fit: 0.13 s vs 2.6 s at 400, 52 s vs ~30 min at 4,500).  Against the dense general path (q_tot ≤ 600
#: there) the blocked one is faster at every size measured (q_tot = 300: 1.7 vs 9.1 ms; 1,200: 10 vs
#: 153 ms per evaluation with gradient).  So speed sets no crossover in this range; memory does: the
#: dense m_r × m_r blocks peak at 1.17 GB RSS for the whole fit at m_r = 4,500 (growing as m_r²: 2 GB
#: near 5,900), hence 4,500.
REST_MAX = 4500
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
    XY: np.ndarray                # [X y] and Z, for C from the residuals (:func:`.profiled.residual_products`)
    Z: sp.csr_matrix
    term_q: tuple[int, ...]       # q_t per term (:func:`.general.stable_u`)
    S: sp.csr_matrix              # Z'Z (for U = T − SΛŨ in the gradient)
    q1: int
    l1: int
    t1_rows: np.ndarray           # first term: positions of its θ components in Λ1 …
    t1_cols: np.ndarray
    t1_start: int                 # … and their offset in θ
    S11: np.ndarray               # (l1, q1, q1) diagonal blocks of Z_1'Z_1
    coupling: DenseCoupling | SparseCoupling    # Z_r'Z_1 (m_r × m1) and G = Sr1 W Sr1'
    Srr: np.ndarray               # Z_r'Z_r (m_r × m_r), dense
    lamr_diagonal: bool           # Λr is diagonal (every later term scalar or ``||``)
    lamr_theta: np.ndarray        # Λr in CSR order: the θ component of each stored entry …
    lamr_indices: np.ndarray      # … its column, and the row pointers (the pattern is fixed)
    lamr_indptr: np.ndarray
    beta_map: np.ndarray | None = None   # β = beta_map β_c when X is centred (Design.beta_map, :mod:`.centring`)

    @property
    def m1(self) -> int:
        return self.q1 * self.l1

    @property
    def m_r(self) -> int:
        return self.q_tot - self.m1

    def factor(self, theta: np.ndarray) -> sp.csr_matrix:
        """The full sparse Λ_θ."""
        return sp.csr_matrix((np.asarray(theta)[self.lam_theta], (self.lam_rows, self.lam_cols)),
                             shape=(self.q_tot, self.q_tot))

    def lam1(self, theta: np.ndarray) -> np.ndarray:
        """Λ1 (q1 × q1)."""
        out = np.zeros((self.q1, self.q1))
        out[self.t1_rows, self.t1_cols] = theta[self.t1_start:self.t1_start + self.t1_rows.size]
        return out

    def lamr(self, theta: np.ndarray) -> sp.csr_matrix:
        """Λr (m_r × m_r) on its fixed CSR pattern."""
        return sp.csr_matrix((theta[self.lamr_theta], self.lamr_indices, self.lamr_indptr),
                             shape=(self.m_r, self.m_r))


@dataclass(frozen=True, eq=False)
class BlockedFactor:
    """The Cholesky factor of A at one θ (module docstring) and the pieces it was built from."""

    lam1: np.ndarray              # Λ1 (q1 × q1)
    lamr: sp.csr_matrix           # Λr (m_r × m_r)
    dr: np.ndarray | None         # diag(Λr) when Λr is diagonal
    L1: np.ndarray                # (l1, q1, q1) lower
    L1inv: np.ndarray             # (l1, q1, q1) their inverses
    M1b: np.ndarray               # (l1, q1, q1) Λ1 L11_l⁻ᵀ
    W: np.ndarray                 # (l1, q1, q1) W_l = Λ1 A11_l⁻¹ Λ1'
    H: np.ndarray                 # Srr − Sr1 W Sr1' (m_r × m_r, symmetric)
    Lrr: np.ndarray               # chol(Λr'HΛr + I), lower
    logdet: float


def rest_size(layout: Layout) -> int:
    """m_r: the number of random effects outside the first (most levels) term."""
    return sum(t.q * t.n_levels for t in layout.terms[1:])


def build_blocked(design: Design, layout: Layout, y: np.ndarray | None = None,
                  storage: str = "auto") -> BlockedProblem:
    """Z'Z split into the blocks of the module docstring, Z'[X y], [X y]'[X y] and the Λ pattern.

    ``storage`` of the coupling Z_r'Z_1 (:func:`.blocked_coupling.make_coupling`): "auto" (dense when at
    least :data:`DENSE_FILL` of it is non-zero), "dense" or "sparse".
    """
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
    coupling = make_coupling(ztz[m1:, :m1], q1, storage, DENSE_FILL)
    Srr = ztz[m1:, m1:].toarray()
    rest = layout.terms[1:]
    lamr_diagonal = all(t.q == 1 or t.covariance == "diagonal" for t in rest)
    sel = fields["lam_rows"] >= m1
    m_r = Srr.shape[0]
    pat = sp.csr_matrix((fields["lam_theta"][sel] + 1.0, (fields["lam_rows"][sel] - m1,
                                                          fields["lam_cols"][sel] - m1)), shape=(m_r, m_r))
    pat.sort_indices()
    return BlockedProblem(S=ztz, q1=q1, l1=l1, t1_rows=t1.rows, t1_cols=t1.cols, t1_start=t1.start,
                          S11=S11, coupling=coupling, Srr=Srr, lamr_diagonal=lamr_diagonal,
                          lamr_theta=pat.data.astype(np.intp) - 1, lamr_indices=pat.indices,
                          lamr_indptr=pat.indptr, **fields)


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


def sandwich(lamr: sp.csr_matrix, dr: np.ndarray | None, M: np.ndarray, transpose: bool = False
             ) -> np.ndarray:
    """Λr' M Λr (or Λr M Λr' with ``transpose``) for a dense symmetric m_r × m_r matrix M (a scaling
    when Λr is diagonal: ``dr`` its diagonal)."""
    if dr is not None:
        out = M * dr[:, None]
        out *= dr[None, :]
        return out
    lam = lamr if transpose else lamr.T.tocsr()
    Y = np.asarray(lam @ M)
    return np.asarray(lam @ Y.T).T


def factorise(pr: BlockedProblem, theta: np.ndarray) -> BlockedFactor | None:
    """L at θ (module docstring); None if the Schur complement is not positive definite (rounding)."""
    theta = np.asarray(theta, dtype=float)
    q1 = pr.q1
    lam1 = pr.lam1(theta)
    if q1 == 1:
        L1 = np.sqrt(lam1[0, 0] ** 2 * pr.S11 + 1.0)
    else:
        A1 = lam1.T @ pr.S11 @ lam1
        A1 += np.eye(q1)
        L1 = np.linalg.cholesky(A1)
    L1inv = _lower_inverse(L1)
    M1b = lam1 @ np.swapaxes(L1inv, 1, 2)                              # Λ1 L11_l⁻ᵀ
    W = M1b @ np.swapaxes(M1b, 1, 2)
    lamr = pr.lamr(theta)
    dr = lamr.diagonal() if pr.lamr_diagonal else None
    H = pr.coupling.schur_base(pr.Srr, M1b, W)
    Arr = sandwich(lamr, dr, H)
    Arr[np.diag_indices_from(Arr)] += 1.0
    Lrr, info = dpotrf(Arr.T, lower=1, clean=1, overwrite_a=1)          # Arr symmetric: Arr.T is F order
    if info != 0:
        return None
    d1 = np.diagonal(L1, axis1=1, axis2=2)
    logdet = 2.0 * (float(np.log(d1).sum()) + float(np.log(np.diagonal(Lrr)).sum()))
    return BlockedFactor(lam1, lamr, dr, L1, L1inv, M1b, W, H, Lrr, logdet)


def _per_level(blocks: np.ndarray, X: np.ndarray, transpose: bool) -> np.ndarray:
    """blockdiag_l(blocks_l) X (or its transpose times X) for X with m1 rows."""
    l1, q1, _ = blocks.shape
    k = X.shape[1]
    X3 = X.reshape(l1, q1, k)
    out = np.einsum("lba,lbk->lak" if transpose else "lab,lbk->lak", blocks, X3)
    return out.reshape(l1 * q1, k)


def lam_times(pr: BlockedProblem, fac: BlockedFactor, U: np.ndarray) -> np.ndarray:
    """Λ U for U with q_tot rows."""
    m1 = pr.m1
    k = U.shape[1]
    top = np.einsum("ab,lbk->lak", fac.lam1, U[:m1].reshape(pr.l1, pr.q1, k)).reshape(m1, k)
    return np.vstack([top, np.asarray(fac.lamr @ U[m1:])])


def half_solve(pr: BlockedProblem, fac: BlockedFactor) -> tuple[np.ndarray, np.ndarray]:
    """V1 = L⁻¹Λ'T as its two blocks (V1_1: m1 × (p+1), V1_r: m_r × (p+1))."""
    m1 = pr.m1
    V1_1 = _per_level(fac.M1b, pr.T[:m1], transpose=True)
    rhs = np.asarray(fac.lamr.T @ (pr.T[m1:] - pr.coupling.dot(_per_level(fac.M1b, V1_1, False))))
    V1_r = solve_triangular(fac.Lrr, rhs, lower=True, check_finite=False)
    return V1_1, V1_r


def cross_products_at(pr: BlockedProblem, theta: np.ndarray) -> tuple[float, np.ndarray | None,
                                                                     BlockedFactor | None,
                                                                     np.ndarray | None]:
    """(log|L_θ|², C, the factor, Ũ); C is None where A is not numerically positive definite.

    C = R'R + Ũ'Ũ from the residuals of the penalised least-squares solutions Ũ = :func:`full_solve`
    (:func:`.profiled.residual_products`), not C0 − V1_1'V1_1 − V1_r'V1_r, which cancels at large σ_t/σ."""
    fac = factorise(pr, theta)
    if fac is None:
        return math.inf, None, None, None
    Ut = full_solve(pr, fac, *half_solve(pr, fac))
    C, _ = residual_products(pr.XY, pr.Z, lam_times(pr, fac, Ut), Ut)
    return fac.logdet, C, fac, Ut


def full_solve(pr: BlockedProblem, fac: BlockedFactor, V1_1: np.ndarray, V1_r: np.ndarray) -> np.ndarray:
    """Ũ = L⁻ᵀV1 = A⁻¹Λ'T (q_tot × (p+1)): the penalised least-squares solutions, column by column."""
    Ur = solve_triangular(fac.Lrr, V1_r, lower=True, trans="T", check_finite=False)
    # Lr1'Ur = M1'Sr1'Λr Ur
    rhs = V1_1 - _per_level(fac.M1b, pr.coupling.tdot(np.asarray(fac.lamr @ Ur)), transpose=True)
    U1 = _per_level(fac.L1inv, rhs, transpose=True)
    return np.vstack([U1, Ur])
