"""The coupling of the blocked path: G = Sr1 blockdiag_l(W_l) Sr1' and its adjoint, on a fixed structure.

With the first term's random effects eliminated (:mod:`.blocked`), the later terms see

    H(θ1) = Srr − G,   G = Σ_l V_l W_l V_l',   W_l = Λ1 (Λ1'S11_lΛ1 + I)⁻¹ Λ1'   (q1 × q1),

where V_l = Sr1[:, columns of level l] (m_r × q1, the couplings Z_r'Z_1 of level l).  G is MixedModels.jl's
rank update L22 ← A22 − L21 L21' (``src/linalg/rankUpdate.jl``) written for the relative factor: it
depends on θ1 only through the W_l.  The exact gradient and the conditional variances need its adjoint,
the per-level q1 × q1 blocks

    Z_l = V_l' Y V_l                    for a symmetric m_r × m_r matrix Y (Y = Λr Ŝ⁻¹ Λr').

Two storages, chosen once per data set by :func:`make_coupling`:

* :class:`DenseCoupling` (Sr1 well filled): G = F F' with F = Sr1 · blockdiag(Λ1 L11_l⁻ᵀ) by one BLAS
  rank-k update (``dsyrk``, m_r² m1 flops), and Z from Y Sr1 (one ``dgemm``).
* :class:`SparseCoupling`: every entry G[i, j] (i ≤ j) is a fixed linear combination of the W_l[a, b]
  (a ≤ b) of the levels l whose rows include both i and j, with coefficients
  V_l[i, a] V_l[j, b] + [a ≠ b] V_l[i, b] V_l[j, a].  These are the rows of one sparse matrix K, built
  once (the symbolic step: Σ_l r_l(r_l + 1)/2 · q1(q1 + 1)/2 entries, r_l = rows of level l), so that
  G's stored entries are K w (one sparse matrix–vector product per θ) and the adjoint is K'(c ∘ y)
  with y = Y at the same entries and c = 2 off the diagonal (Σ_ij Y_ij G_ij counts i ≠ j twice).

No per-evaluation sparse structure is allocated by either storage.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from scipy.linalg.blas import dsyrk

#: the sparse storage is used only while K has at most this many entries (12 bytes each: 360 MB)
SPARSE_MAX_ENTRIES = 30_000_000


def right_blocks(D: np.ndarray, blocks: np.ndarray) -> np.ndarray:
    """D · blockdiag_l(blocks_l) for a dense D (m × l1·q1, columns level-major) and blocks (l1, q1, q1)."""
    m, (l1, q1, _) = D.shape[0], blocks.shape
    if q1 == 1:
        return D * blocks[None, :, 0, 0]
    D3 = D.reshape(m, l1, q1)
    out = np.empty((m, l1, q1))
    tmp = np.empty((m, l1))
    for b in range(q1):                       # elementwise: tiny stacked matmuls are slow
        np.multiply(D3[:, :, 0], blocks[None, :, 0, b], out=out[:, :, b])
        for a in range(1, q1):
            np.multiply(D3[:, :, a], blocks[None, :, a, b], out=tmp)
            out[:, :, b] += tmp
    return out.reshape(m, l1 * q1)


def level_blocks(D: np.ndarray, E: np.ndarray, q1: int) -> np.ndarray:
    """Per level l the q1 × q1 block D_l' E_l of D'E (D, E dense m × l1·q1, columns level-major)."""
    m = D.shape[0]
    l1 = D.shape[1] // q1
    if q1 == 1:
        return np.einsum("jl,jl->l", D, E)[:, None, None]
    D3, E3 = D.reshape(m, l1, q1), E.reshape(m, l1, q1)
    out = np.empty((l1, q1, q1))
    for a in range(q1):
        for b in range(q1):
            out[:, a, b] = np.einsum("jl,jl->l", D3[:, :, a], E3[:, :, b])
    return out


def _symmetrise_lower(M: np.ndarray) -> np.ndarray:
    """The symmetric matrix whose lower triangle is M's (M's upper triangle ignored)."""
    out = np.tril(M)
    out += np.tril(out, -1).T
    return out


@dataclass(frozen=True, eq=False)
class DenseCoupling:
    """Sr1 stored densely (module docstring)."""

    Sr1: np.ndarray               # m_r × m1, C order
    q1: int

    kind = "dense"

    def schur_base(self, Srr: np.ndarray, M1b: np.ndarray, W: np.ndarray) -> np.ndarray:
        """H = Srr − G (full symmetric), G = F F' with F = Sr1 · blockdiag(M1b), M1b_l M1b_l' = W_l."""
        F = right_blocks(self.Sr1, M1b)
        H = np.array(Srr, order="F")
        H = dsyrk(-1.0, F.T, beta=1.0, c=H, trans=1, lower=1, overwrite_c=1)   # lower: Srr − F F'
        return _symmetrise_lower(H)

    def adjoint(self, Y: np.ndarray) -> np.ndarray:
        """Z_l = V_l' Y V_l (l1, q1, q1) for a symmetric Y."""
        return level_blocks(self.Sr1, Y @ self.Sr1, self.q1)

    def dot(self, X: np.ndarray) -> np.ndarray:
        """Sr1 X."""
        return self.Sr1 @ X

    def tdot(self, X: np.ndarray) -> np.ndarray:
        """Sr1' X."""
        return self.Sr1.T @ X


@dataclass(frozen=True, eq=False)
class SparseCoupling:
    """Sr1 stored sparsely, G and its adjoint through the fixed matrix K (module docstring)."""

    Sr1: sp.csr_matrix            # m_r × m1
    Sr1t: sp.csr_matrix           # its transpose (row-oriented, for Sr1' X)
    q1: int
    K: sp.csr_matrix              # (stored entries of G) × (l1 · q1(q1+1)/2)
    pos: np.ndarray               # flat position i·m_r + j (i ≤ j) of each stored entry of G …
    pos_t: np.ndarray             # … and j·m_r + i of the entries with i < j (the other triangle)
    off: np.ndarray               # mask of the stored entries with i < j
    weight: np.ndarray            # c: 2 for i < j, 1 on the diagonal
    ab: tuple[np.ndarray, np.ndarray]   # the pairs a ≤ b of K's columns within a level

    kind = "sparse"

    def _w(self, W: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(W[:, self.ab[0], self.ab[1]]).ravel()

    def schur_base(self, Srr: np.ndarray, M1b: np.ndarray, W: np.ndarray) -> np.ndarray:
        """H = Srr − G (full symmetric): G's stored entries are K w, w = the W_l[a, b] with a ≤ b."""
        g = self.K @ self._w(W)
        H = np.array(Srr)
        flat = H.reshape(-1)
        flat[self.pos] -= g
        flat[self.pos_t] -= g[self.off]
        return H

    def adjoint(self, Y: np.ndarray) -> np.ndarray:
        """Z_l = V_l' Y V_l (l1, q1, q1) for a symmetric Y: K'(c ∘ y), halved off the diagonal of Z_l."""
        y = Y.reshape(-1)[self.pos] * self.weight
        z = (self.K.T @ y).reshape(-1, self.ab[0].size)
        q1 = self.q1
        out = np.empty((z.shape[0], q1, q1))
        a, b = self.ab
        scale = np.where(a == b, 1.0, 0.5)
        out[:, a, b] = z * scale
        out[:, b, a] = z * scale
        return out

    def dot(self, X: np.ndarray) -> np.ndarray:
        return np.asarray(self.Sr1 @ X)

    def tdot(self, X: np.ndarray) -> np.ndarray:
        return np.asarray(self.Sr1t @ X)


def _sparse_structure(Sr1: sp.csr_matrix, q1: int) -> dict | None:
    """K and the positions of :class:`SparseCoupling`, or None when K would exceed SPARSE_MAX_ENTRIES."""
    m_r, m1 = Sr1.shape
    l1 = m1 // q1
    coo = Sr1.tocoo()
    level, a_of = coo.col // q1, coo.col % q1
    # entries e = distinct (level, row), sorted by level then row; V[e, a] the coupling value
    key = level.astype(np.int64) * m_r + coo.row
    uniq, ent = np.unique(key, return_inverse=True)
    V = np.zeros((uniq.size, q1))
    V[ent, a_of] = coo.data
    ent_level, ent_row = uniq // m_r, uniq % m_r
    sizes = np.bincount(ent_level, minlength=l1)
    nab = q1 * (q1 + 1) // 2
    if int((sizes * (sizes + 1) // 2).sum()) * nab > SPARSE_MAX_ENTRIES:
        return None
    # pairs (e, f), e ≤ f, of entries of one level (rows ascending within a level, so row_e ≤ row_f)
    end = np.cumsum(sizes)[ent_level]
    reps = end - np.arange(uniq.size)
    pe = np.repeat(np.arange(uniq.size), reps)
    pf = pe + (np.arange(pe.size) - np.repeat(np.cumsum(reps) - reps, reps))
    flat = ent_row[pe].astype(np.int64) * m_r + ent_row[pf]
    ab = np.triu_indices(q1)
    cols, vals = [], []
    for k, (a, b) in enumerate(zip(*ab)):
        v = V[pe, a] * V[pf, b]
        if a != b:
            v = v + V[pe, b] * V[pf, a]
        cols.append(ent_level[pe] * nab + k)
        vals.append(v)
    # rows by flat position (a counting sort, no argsort), then only the positions that occur
    full = sp.csr_matrix((np.concatenate(vals), (np.tile(flat, nab), np.concatenate(cols))),
                         shape=(m_r * m_r, l1 * nab))
    counts = np.diff(full.indptr)
    pos = np.flatnonzero(counts)
    K = sp.csr_matrix((full.data, full.indices, np.r_[0, np.cumsum(counts[pos])]), shape=(pos.size, l1 * nab))
    i, j = pos // m_r, pos % m_r
    off = i < j
    itype = np.int32 if m_r * m_r < 2**31 else np.int64
    return dict(K=K, pos=pos.astype(itype), pos_t=(j * m_r + i)[off].astype(itype), off=off,
                weight=np.where(off, 2.0, 1.0), ab=(ab[0].astype(np.intp), ab[1].astype(np.intp)))


def make_coupling(Sr1: sp.csr_matrix, q1: int, storage: str, dense_fill: float):
    """The coupling of Sr1 (m_r × m1): ``storage`` "dense", "sparse" or "auto" (dense when at least
    ``dense_fill`` of Sr1 is non-zero, or when the sparse K would be too large)."""
    Sr1 = sp.csr_matrix(Sr1)
    Sr1.sort_indices()
    m_r, m1 = Sr1.shape
    if storage == "auto":
        storage = "dense" if Sr1.nnz >= dense_fill * m_r * max(1, m1) else "sparse"
    if storage == "sparse":
        st = _sparse_structure(Sr1, q1)
        if st is not None:
            return SparseCoupling(Sr1=Sr1, Sr1t=Sr1.T.tocsr(), q1=q1, **st)
    return DenseCoupling(Sr1=np.ascontiguousarray(Sr1.toarray()), q1=q1)
