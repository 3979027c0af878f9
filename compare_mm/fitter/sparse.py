"""General path for many random effects: a sparse LU of A = Λ'Z'ZΛ + I (scipy.sparse / SuperLU).

Same quantities as :mod:`.general` (Bates et al. 2015, sec. 3), without ever forming a dense
q_tot × q_tot matrix.  CHOLMOD (scikit-sparse) is not a dependency, so A — symmetric positive definite —
is factorised by SuperLU with a symmetric fill-reducing ordering and no pivoting, which makes
log|A| = Σ log|U_ii|.  This path has no analytic gradient: :func:`compare_mm.fitter.optimize.minimise`
then uses Powell's derivative-free method.  The conditional SDs need the diagonal blocks of A⁻¹, taken
from solves with blocks of unit vectors (cost grows like q_tot × fill-in).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from scipy.sparse.linalg import splu

from ..model.design import Design
from .general import cross_products
from .profiled import Profiled, profiled, residual_products
from .theta import Layout


@dataclass(frozen=True, eq=False)
class SparseProblem:
    """Sparse cross-products of a model with many random effects (computed once per data set)."""

    n: int
    p: int
    q_tot: int
    n_theta: int
    offsets: tuple[int, ...]
    lam_rows: np.ndarray
    lam_cols: np.ndarray
    lam_theta: np.ndarray
    S: sp.csc_matrix              # Z'Z
    T: np.ndarray                 # Z'[X y]
    C0: np.ndarray
    beta_offset: np.ndarray
    XY: np.ndarray                # [X y] and Z (:func:`.profiled.residual_products`)
    Z: sp.csr_matrix
    term_q: tuple[int, ...]
    beta_map: np.ndarray | None = None   # β = beta_map β_c when X is centred (Design.beta_map, :mod:`.centring`)

    def factor(self, theta: np.ndarray) -> sp.csc_matrix:
        """The full sparse Λ_θ."""
        return sp.csc_matrix((np.asarray(theta)[self.lam_theta], (self.lam_rows, self.lam_cols)),
                             shape=(self.q_tot, self.q_tot))


def build_sparse(design: Design, layout: Layout, y: np.ndarray | None = None) -> SparseProblem:
    """Z'Z (sparse), Z'[X y], [X y]'[X y] and the Λ pattern of a design."""
    fields, ztz = cross_products(design, layout, y)
    return SparseProblem(S=ztz.tocsc(), **fields)


def _factorise(pr: SparseProblem, theta: np.ndarray):
    lam = pr.factor(theta)
    lam_t = lam.T.tocsc()
    A = (lam_t @ pr.S @ lam + sp.identity(pr.q_tot, format="csc")).tocsc()
    try:
        lu = splu(A, permc_spec="MMD_AT_PLUS_A", diag_pivot_thresh=0.0, options=dict(SymmetricMode=True))
    except RuntimeError:
        return None
    return lam, lam_t, lu


def penalised(pr: SparseProblem, lam: sp.csc_matrix, lam_t: sp.csc_matrix, lu) -> tuple[float, np.ndarray,
                                                                                          np.ndarray]:
    """(log|L_θ|², C, Ũ = A⁻¹Λ'T) from the LU factors of A."""
    logdet = float(np.log(np.abs(lu.U.diagonal())).sum())
    Ut = lu.solve(np.asarray(lam_t @ pr.T))
    C, _ = residual_products(pr.XY, pr.Z, np.asarray(lam @ Ut), Ut)
    return logdet, C, Ut


def evaluate(pr: SparseProblem, theta: np.ndarray, reml: bool, want_grad: bool = False
             ) -> tuple[float, None]:
    """Profiled deviance (ML or REML); no gradient on this path."""
    fac = _factorise(pr, np.asarray(theta, dtype=float))
    if fac is None:
        return math.inf, None
    logdet, C, _ = penalised(pr, *fac)
    return profiled(logdet, C, pr.n, pr.p, reml, False).deviance, None


def solution(pr: SparseProblem, theta: np.ndarray, reml: bool, chunk: int = 512
             ) -> tuple[Profiled, np.ndarray, np.ndarray]:
    """At θ: profiled quantities, b = Λ A⁻¹ Λ'Z'(y − Xβ̂) and diag(Λ A⁻¹ Λ') (× σ̂² = condVar)."""
    lam, lam_t, lu = _factorise(pr, np.asarray(theta, dtype=float))
    logdet, C, Ut = penalised(pr, lam, lam_t, lu)
    prof = profiled(logdet, C, pr.n, pr.p, reml, False)
    b = np.asarray(lam @ (Ut @ np.r_[-prof.beta, 1.0]))
    # diag(Λ A⁻¹ Λ') = Σ_j (Λ' e_i)_j … computed as rowsum((Λ A⁻¹) ∘ Λ) in column blocks
    diag = np.zeros(pr.q_tot)
    lam_csr = lam.tocsr()
    for start in range(0, pr.q_tot, chunk):
        stop = min(start + chunk, pr.q_tot)
        rhs = lam_t[:, start:stop].toarray()                # columns e_i'Λ for rows i of Λ
        sol = lu.solve(rhs)                                 # A⁻¹ Λ' e_i
        diag[start:stop] = np.einsum("ij,ji->i", lam_csr[start:stop].toarray(), sol)
    return prof, b, diag


def cond_blocks(pr: SparseProblem, theta: np.ndarray, k: int, n_levels: int, chunk: int = 512) -> np.ndarray:
    """Per level of term k (layout order), the q × q block of Λ A⁻¹ Λ' (× σ̂² = condVar with the
    covariances within a level), in chunks of whole levels."""
    lam, lam_t, lu = _factorise(pr, np.asarray(theta, dtype=float))
    o, q = pr.offsets[k], pr.term_q[k]
    lam_csr = lam.tocsr()
    out = np.empty((n_levels, q, q))
    per = max(1, chunk // q)
    for l0 in range(0, n_levels, per):
        l1 = min(l0 + per, n_levels)
        r0, r1 = o + q * l0, o + q * l1
        sol = lu.solve(lam_t[:, r0:r1].toarray())                  # A⁻¹ Λ' e_i for the chunk's rows i
        full = lam_csr[r0:r1].toarray() @ sol                        # (Λ A⁻¹ Λ')[rows, rows]
        m = l1 - l0
        out[l0:l1] = full.reshape(m, q, m, q)[np.arange(m), :, np.arange(m), :]
    return out

