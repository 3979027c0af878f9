"""General path: several grouping factors (crossed, nested, mixed q), dense blocked algebra.

Z (n × q_tot, scipy.sparse) has the columns of each term level-major (level 0's q_t effects, then
level 1's …), terms concatenated in lme4 order; Λ (q_tot × q_tot) is block diagonal with Λ_t repeated
over the levels of term t.  With S = Z'Z and T = Z'[X y] computed once, one evaluation is
(Bates et al. 2015, sec. 3.3–3.4):

    A = Λ'SΛ + I = L L',   log|L_θ|² = 2 Σ log diag L,   Ũ = A⁻¹Λ'T = L⁻ᵀL⁻¹Λ'T,
    R = [X y] − ZΛŨ,   C = R'R + Ũ'Ũ     (penalised cross-products from the residuals, :mod:`.profiled`),

and the analytic gradient, with Z'V⁻¹ZΛ = SΛA⁻¹ (Woodbury, no subtraction), U = Z'V⁻¹[X y] = Z'R (or,
per term with a large Λ_t, from Λ'U = Ũ: :func:`stable_u`), ∂d/∂D = Z'V⁻¹Z − U N U' and Λ'U = Ũ:

    ∂d/∂θ_k = Σ over the positions (r, c) of θ_k in Λ of 2 (∂d/∂D · Λ)[r, c]
            = Σ 2 [(SΛA⁻¹)[r, c] − (U N Ũ')[r, c]]          (as in :mod:`.blocked_eval`).

A is factorised densely, so the path suits q_tot up to about :data:`DENSE_MAX` random effects
(each evaluation costs O(q_tot³) time and O(q_tot²) memory).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from scipy.linalg import solve_triangular
from scipy.linalg.lapack import dpotrf, dpotri

from ..model.design import Design
from .onefactor import ols_residual
from .profiled import Profiled, profiled, residual_products
from .theta import Layout

#: largest total number of random effects for which ``path="auto"`` picks this dense path (measured on
#: crossed (1|a)+(1|b) designs: at q_tot = 600 one evaluation with gradient takes ~0.25 s single-threaded
#: and the whole fit costs about as much as the sparse path's; beyond that the sparse path wins)
DENSE_MAX = 600


@dataclass(frozen=True, eq=False)
class GeneralProblem:
    """Cross-products of a model with several random-effects terms (computed once per data set)."""

    n: int
    p: int
    q_tot: int
    n_theta: int
    offsets: tuple[int, ...]      # first column of each term (layout order)
    lam_rows: np.ndarray          # every non-zero position of Λ …
    lam_cols: np.ndarray
    lam_theta: np.ndarray         # … and the θ component it holds
    S: np.ndarray                 # Z'Z (dense)
    T: np.ndarray                 # Z'[X y]
    C0: np.ndarray                # [X y]'[X y]
    beta_offset: np.ndarray
    XY: np.ndarray                # [X y] (y the OLS residual), for the residuals of :func:`.profiled.residual_products`
    Z: sp.csr_matrix              # Z (n × q_tot)
    term_q: tuple[int, ...]       # q_t of each term (layout order; its levels start at ``offsets``)
    beta_map: np.ndarray | None = None   # β = beta_map β_c when X is centred (Design.beta_map, :mod:`.centring`)

    def factor(self, theta: np.ndarray) -> sp.csr_matrix:
        """The full sparse Λ_θ."""
        return sp.csr_matrix((np.asarray(theta)[self.lam_theta], (self.lam_rows, self.lam_cols)),
                             shape=(self.q_tot, self.q_tot))


def random_design_matrix(design: Design, layout: Layout) -> tuple[sp.csc_matrix, tuple[int, ...]]:
    """Sparse Z with columns level-major per term, terms in layout (lme4) order; term offsets."""
    n = design.n
    rows, cols, vals, offsets, off = [], [], [], [], 0
    for t in layout.terms:
        b = design.blocks[t.block]
        codes = np.asarray(b.codes, dtype=np.intp)
        Zb = np.asarray(b.Z_fit, dtype=float)      # centred slopes (RandomBlock.shift)
        for j in range(t.q):
            rows.append(np.arange(n))
            cols.append(off + codes * t.q + j)
            vals.append(Zb[:, j])
        offsets.append(off)
        off += t.q * t.n_levels
    Z = sp.csc_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(n, off))
    return Z, tuple(offsets)


def lambda_pattern(layout: Layout, offsets: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sparsity pattern of the block-diagonal Λ_θ: (rows, cols, index into θ) of every non-zero, each
    term's q×q lower-triangular factor repeated for its levels at the term's column offset."""
    lr, lc, lt = [], [], []
    for t, o in zip(layout.terms, offsets):
        base = o + t.q * np.arange(t.n_levels)
        for k in range(t.n_theta):
            lr.append(base + t.rows[k])
            lc.append(base + t.cols[k])
            lt.append(np.full(t.n_levels, t.start + k))
    return np.concatenate(lr), np.concatenate(lc), np.concatenate(lt)


def cross_products(design: Design, layout: Layout, y: np.ndarray | None = None) -> tuple[dict, sp.csr_matrix]:
    """The fields shared by the dense and sparse problems, and Z'Z (sparse).

    y is replaced by its OLS residual (``beta_offset`` = the OLS coefficients); T = Z'[X y],
    C0 = [X y]'[X y], [X y] and Z themselves (the penalised residuals, :func:`.profiled.residual_products`)
    and the Λ pattern of :func:`lambda_pattern`.
    """
    y = design.y if y is None else y
    X = design.X_fit                                            # centred with centred slopes (Design.x_shift)
    y, offset = ols_residual(X, y)
    Z, offsets = random_design_matrix(design, layout)
    XY = np.column_stack([X, y])
    lam_rows, lam_cols, lam_theta = lambda_pattern(layout, offsets)
    fields = dict(n=design.n, p=design.p, q_tot=Z.shape[1], n_theta=layout.n_theta, offsets=offsets,
                  lam_rows=lam_rows, lam_cols=lam_cols, lam_theta=lam_theta, T=np.asarray(Z.T @ XY),
                  C0=XY.T @ XY, beta_offset=offset, XY=XY, Z=Z.tocsr(),
                  term_q=tuple(t.q for t in layout.terms), beta_map=design.beta_map)
    return fields, Z.T @ Z


def build_general(design: Design, layout: Layout, y: np.ndarray | None = None) -> GeneralProblem:
    """Z'Z, Z'[X y], [X y]'[X y] and the Λ pattern of a design (module docstring)."""
    fields, ztz = cross_products(design, layout, y)
    return GeneralProblem(S=ztz.toarray(), **fields)


def _factorise(pr: GeneralProblem, theta: np.ndarray):
    lam = pr.factor(theta)
    lam_t = lam.T.tocsr()
    LtS = np.asarray(lam_t @ pr.S)                 # Λ'S
    A = np.asarray(lam_t @ LtS.T)                  # Λ'SΛ
    A[np.diag_indices_from(A)] += 1.0
    L, info = dpotrf(A, lower=1, clean=1)
    if info != 0:
        return None
    return lam, lam_t, LtS, L


def term_factors(pr, theta: np.ndarray) -> list[np.ndarray]:
    """Λ_t (q_t × q_t, lower triangular) of every term, read off Λ's pattern at its first level."""
    out = []
    for o, q in zip(pr.offsets, pr.term_q):
        sel = (pr.lam_rows >= o) & (pr.lam_rows < o + q)
        lam_t = np.zeros((q, q))
        lam_t[pr.lam_rows[sel] - o, pr.lam_cols[sel] - o] = theta[pr.lam_theta[sel]]
        out.append(lam_t)
    return out


def stable_u(pr, theta: np.ndarray, Ut: np.ndarray, U: np.ndarray) -> np.ndarray:
    """U = Z'V⁻¹[X y] with the rows of every term whose Λ_t is large taken from Λ_t'U = Ũ.

    ``U`` is Z'V⁻¹[X y] formed as Z'R (or T − SΛŨ), which subtracts two numbers of the size of Z'[X y]
    from each other: when σ_t ≫ σ the columns of X in the span of Z_t (the intercept under (1 | g), x
    under (x | g)) are almost entirely fitted by ZΛŨ and their rows of U keep only ~ 16 − log10(s θ_t²)
    digits, which left the REML gradient (its term U_X M⁻¹Ũ_X') with 3 digits at σ_A/σ = 10⁶.  The
    normal equations of the penalised least squares, Λ'Z'R = Ũ, give the same rows as Λ_t⁻ᵀŨ_l per level
    l without that subtraction; a term uses them when the triangular solve loses fewer digits than the
    subtraction does, i.e. cond(Λ_t) ≤ min_i (Λ_t)_ii² (a scalar term: θ_t ≥ 1).  Returns U, modified.
    """
    k = Ut.shape[1]
    ends = list(pr.offsets[1:]) + [pr.q_tot]
    for o, e, q, lam_t in zip(pr.offsets, ends, pr.term_q, term_factors(pr, theta)):
        dmin = float(np.min(np.abs(np.diagonal(lam_t))))
        if dmin < 1.0 or (q > 1 and np.linalg.cond(lam_t) > dmin * dmin):
            continue
        blk = Ut[o:e].reshape(-1, q, k).transpose(1, 0, 2).reshape(q, -1)
        sol = solve_triangular(lam_t, blk, lower=True, trans="T", check_finite=False)
        U[o:e] = sol.reshape(q, -1, k).transpose(1, 0, 2).reshape(-1, k)
    return U


def penalised(pr: GeneralProblem, lam: sp.csr_matrix, lam_t: sp.csr_matrix, L: np.ndarray):
    """(log|L_θ|², C, R, Ũ) at the factor L of A (module docstring)."""
    logdet = 2.0 * float(np.log(np.diagonal(L)).sum())
    V1 = solve_triangular(L, np.asarray(lam_t @ pr.T), lower=True, check_finite=False)
    Ut = solve_triangular(L, V1, lower=True, trans="T", check_finite=False)       # A⁻¹Λ'T
    C, R = residual_products(pr.XY, pr.Z, np.asarray(lam @ Ut), Ut)
    return logdet, C, R, Ut


def evaluate(pr: GeneralProblem, theta: np.ndarray, reml: bool, want_grad: bool = True
             ) -> tuple[float, np.ndarray | None]:
    """Profiled deviance (ML or REML) and its analytic gradient (module docstring)."""
    theta = np.asarray(theta, dtype=float)
    fac = _factorise(pr, theta)
    if fac is None:
        return math.inf, None
    lam, lam_t, LtS, L = fac
    logdet, C, R, Ut = penalised(pr, lam, lam_t, L)
    prof = profiled(logdet, C, pr.n, pr.p, reml, want_grad)
    if not want_grad or prof.N is None:
        return prof.deviance, None
    Ainv, _ = dpotri(L, lower=1)
    iu = np.triu_indices_from(Ainv, 1)
    Ainv[iu] = Ainv.T[iu]
    rows, cols = pr.lam_rows, pr.lam_cols
    U = stable_u(pr, theta, Ut, np.asarray(pr.Z.T @ R))                               # Z'V⁻¹[X y]
    H = np.einsum("ji,ji->i", LtS[:, rows], Ainv[:, cols])                          # (SΛA⁻¹)[r, c]
    data_part = np.einsum("ik,ik->i", (U @ prof.N)[rows], Ut[cols])                 # (U N Ũ')[r, c]
    grad = np.bincount(pr.lam_theta, weights=2.0 * (H - data_part), minlength=pr.n_theta)
    return prof.deviance, grad


def solution(pr: GeneralProblem, theta: np.ndarray, reml: bool) -> tuple[Profiled, np.ndarray, np.ndarray]:
    """At θ: profiled quantities, conditional modes b = Λ A⁻¹ Λ'Z'(y − Xβ̂) (q_tot,) and
    diag(Λ A⁻¹ Λ') (q_tot,), which times σ̂² is lme4's condVar."""
    theta = np.asarray(theta, dtype=float)
    lam, lam_t, LtS, L = _factorise(pr, theta)
    logdet, C, _, Ut = penalised(pr, lam, lam_t, L)
    prof = profiled(logdet, C, pr.n, pr.p, reml, False)
    b = np.asarray(lam @ (Ut @ np.r_[-prof.beta, 1.0]))                            # ΛA⁻¹Λ'Z'(y − Xβ̂)
    Li_Lt = solve_triangular(L, lam_t.toarray(), lower=True, check_finite=False)
    diag = np.einsum("ij,ij->j", Li_Lt, Li_Lt)
    return prof, b, diag


def level_blocks(X: np.ndarray, n_levels: int, q: int) -> np.ndarray:
    """(n_levels, q, q) blocks X_l'X_l of the column groups of X (columns level-major, q per level)."""
    Xr = X.reshape(X.shape[0], n_levels, q)
    return np.einsum("rlj,rlk->ljk", Xr, Xr)


def cond_blocks(pr: GeneralProblem, theta: np.ndarray, k: int, n_levels: int) -> np.ndarray:
    """Per level of term k (layout order), the q × q block of Λ A⁻¹ Λ' (× σ̂² = lme4's condVar with the
    covariances within a level): the Gram matrices of the columns of L⁻¹Λ' that belong to the level."""
    theta = np.asarray(theta, dtype=float)
    lam, lam_t, _, L = _factorise(pr, theta)
    o, q = pr.offsets[k], pr.term_q[k]
    X = solve_triangular(L, lam_t[:, o:o + q * n_levels].toarray(), lower=True, check_finite=False)
    return level_blocks(X, n_levels, q)

