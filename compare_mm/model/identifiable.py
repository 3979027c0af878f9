"""Is the model identifiable on these data?  Checks of the built design (X and the random-effects blocks)
used by :func:`compare_mm.model.design.build_design`, each a one-sentence error naming the term:

- a random-effects term whose columns lie in the span of X (``x + C(g) + (1 | g)``): its variance is
  confounded with the fixed effects;
- a term whose criterion is flat in its θ (the residual contrasts cannot separate its variance from σ²);
- duplicated terms (identical Z columns: only the sum of their variances is identifiable);
- a combination of several covariance parameters along which the criterion is flat;
- a response fitted exactly by [X Z] (no residual noise: the likelihood is unbounded as σ² → 0).

The input checks of the data and formula (columns, levels, rank of X) are in :mod:`.checks`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from ..errors import DataError, ModelSpecError
from .checks import _plural


def _basis(X: np.ndarray) -> np.ndarray:
    """An orthonormal basis of the columns of X (full column rank, checked before)."""
    return np.linalg.qr(X)[0] if X.shape[1] else np.empty((X.shape[0], 0))


def _level_sums(codes: np.ndarray, values: np.ndarray, n_levels: int) -> np.ndarray:
    """Per-level column sums of ``values`` (n × k) → (n_levels × k)."""
    out = np.empty((n_levels, values.shape[1]))
    for k in range(values.shape[1]):
        out[:, k] = np.bincount(codes, weights=values[:, k], minlength=n_levels)
    return out


def check_confounded(X: np.ndarray, fixed_names: Sequence[str], blocks, terms: Sequence[str],
                     Q: np.ndarray | None = None, tol: float = 1e-10) -> None:
    """No effect of a random term may lie wholly in the span of X (``y ~ x + C(g) + (1 | g)``).

    If every column z_(j,e) of effect e of a term (one per level j) is a combination of X's columns, the
    fixed effects absorb those random effects: the residual contrasts (I − P_X)y do not depend on their
    variance, so the REML criterion is flat in it and ML puts it at 0 for no reason in the data — the
    variance is not identifiable.  Tested through ‖(I − P_X) z‖² = ‖z‖² − ‖Q'z‖² per column, and only
    when the term has at most p non-zero columns (they have disjoint supports, so are independent).
    """
    for b, term in zip(blocks, terms):
        for e, ename in enumerate(b.term_names):
            z = b.Z[:, e]
            ss = np.bincount(b.codes, weights=z * z, minlength=b.n_levels)
            if np.count_nonzero(ss) > X.shape[1]:   # independent columns cannot all lie in span(X)
                continue
            Q = _basis(X) if Q is None else Q
            proj = _level_sums(b.codes, Q * z[:, None], b.n_levels)
            res = ss - np.einsum("jk,jk->j", proj, proj)
            if np.all(res <= tol * np.maximum(ss, np.finfo(float).tiny)):
                what = f"{ename!r} of {term}" if b.q > 1 else term
                raise ModelSpecError(
                    f"The random effect {what} is confounded with the fixed effects (each of its columns is a "
                    f"combination of the {_plural(len(fixed_names), 'fixed-effects column')}, e.g. C({b.group}) in "
                    "the fixed part), so its variance is not identifiable; remove it or the fixed term."
                )


def check_flat(X: np.ndarray, blocks, terms: Sequence[str], Q: np.ndarray | None = None,
               max_effects: int = 2000) -> None:
    """The residual contrasts must be able to tell a term's variance from σ².

    With K an orthonormal basis of the residual space of X (n − p dimensions), the restricted
    likelihood depends on a term's variance only through K'V K = σ²(I + θ² K'ZZ'K).  When K'ZZ'K is a
    multiple of the identity (always so when n − p = 1, e.g. 3 rows in 2 groups with ``y ~ x + (1 | g)``),
    θ and σ² enter only through their product and the REML criterion is flat in θ.  K'ZZ'K has at most
    qG non-zero eigenvalues — those of Z'(I − P_X)Z — so it can only be a multiple of I when
    n − p ≤ qG; only then is the (qG × qG) matrix formed.
    """
    n, p = X.shape
    for b, term in zip(blocks, terms):
        m = b.q * b.n_levels
        if n - p > m or m > max_effects:
            continue
        Zf = np.zeros((n, m))
        for e in range(b.q):
            Zf[np.arange(n), b.codes * b.q + e] = b.Z[:, e]
        Q = _basis(X) if Q is None else Q
        R = Zf - Q @ (Q.T @ Zf)
        ev = np.linalg.eigvalsh(R.T @ R)
        top = float(ev[-1])
        nz = ev[ev > 1e-9 * top] if top > 0 else ev[:0]
        if nz.size == n - p and nz[-1] - nz[0] <= 1e-8 * top:
            raise DataError(
                f"The variance of {term} is not identifiable: with {n} observations and {p} fixed effects "
                f"the {_plural(n - p, 'residual contrast')} cannot separate it from the residual variance "
                "(the criterion is flat in it); more observations per group are needed."
            )


def check_duplicate_terms(blocks, terms: Sequence[str]) -> None:
    """Two random terms with the same effect on the same grouping (``(1 | g) + (1 | g)``) split one
    variance arbitrarily between them: their Z columns coincide, so only the sum is identifiable."""
    for i in range(len(blocks)):
        for j in range(i + 1, len(blocks)):
            a, b = blocks[i], blocks[j]
            if a.n_levels != b.n_levels:
                continue
            pairs = np.unique(a.codes.astype(np.int64) * b.n_levels + b.codes)
            if pairs.size != a.n_levels:   # not the same partition of the rows
                continue
            for ea, na in enumerate(a.term_names):
                for eb, nb in enumerate(b.term_names):
                    za, zb = a.Z[:, ea], b.Z[:, eb]
                    if np.allclose(za * float(zb @ zb), zb * float(za @ zb), rtol=1e-10, atol=0.0):
                        same = f"{na!r}" if na == nb else f"{na!r} and {nb!r}"
                        grp = (f"{a.group!r}" if a.group == b.group else
                               f"{a.group!r} and {b.group!r} (the same grouping)")
                        pair = (f"term {terms[i]} appears twice" if terms[i] == terms[j] else
                                f"terms {terms[i]} and {terms[j]} both give {same} per level of {grp}")
                        raise ModelSpecError(
                            f"The random-effects {pair}, so their variances are not separately identifiable "
                            "(only their sum is); remove one of them."
                        )


#: the flat-combination check forms the level × level cross-products Z_e'(I − H)Z_f of every pair of effect
#: columns; above this many entries in total it is skipped (a data set that large has no exact flat direction
#: the earlier checks miss in practice)
COMBINATION_MAX = 4_000_000
#: up to this many entries of n × (levels × effects) the flat-combination check residualises the level
#: columns explicitly (:func:`check_flat_combination`)
RESIDUAL_MAX = 2_000_000


def _variance_parameters(blocks, terms):
    """The linear covariance parameters φ of V = σ²I + Σ_φ φ A_φ: per block its variances and, for an
    unstructured block, its covariances; each as (term, block index, effect e, effect f)."""
    out = []
    for i, (b, term) in enumerate(zip(blocks, terms)):
        pairs = [(e, e) for e in range(b.q)]
        if b.covariance == "unstructured":
            pairs += [(e, f) for e in range(b.q) for f in range(e + 1, b.q)]
        out += [(term, i, e, f) for e, f in pairs]
    return out


def _effect_columns(b) -> np.ndarray:
    """A block's effect columns (n × q) for :func:`check_flat_combination`: orthonormalised for an
    unstructured block (the span of its A_φ is the same for Z and ZT, T invertible, so an uncentred x —
    nearly collinear with the intercept — does not look like a dependence), as they are otherwise."""
    if b.q < 2 or b.covariance != "unstructured":
        return b.Z
    q, r = np.linalg.qr(b.Z)
    d = np.abs(np.diag(r))
    return q if d.min() > 1e-10 * d.max() else b.Z


def check_flat_combination(X: np.ndarray, blocks, terms: Sequence[str], tol: float = 1e-13) -> None:
    """No combination of the covariance parameters may leave the restricted likelihood unchanged.

    The REML criterion depends on φ = (σ², the variances and covariances of every term) only through
    K'VK = σ²I + Σ_φ φ K'A_φK (K an orthonormal basis of the residual space of X; A_φ = Z_eZ_e' for a
    variance, Z_eZ_f' + Z_fZ_e' for a covariance, Z_e the n × levels matrix of effect e of a term).  If
    the matrices K'A_φK and I are linearly dependent, moving φ along the dependence changes nothing: the
    criterion is flat along a combination of several parameters (e.g. ``(trt | g) + (1 | g:trt)`` with a
    two-level trt: [same g and trt] = A_00 − A_01 + 2 A_11).  Dependence is a zero eigenvalue of their
    Gram matrix tr(K'A_iK K'A_jK) = Σ (C_bc ∘ C_ad) for A_i = ab', A_j = cd', C_xy = x'(I − H)y
    (H = X(X'X)⁻¹X'), normalised to unit diagonal; ``tol`` bounds the smallest eigenvalue relative to the
    largest (an exact dependence gives ~1e-16; a slope on x ± 3 at x ≈ 10⁶, the largest scale
    :func:`.checks.check_effect_scale` accepts, ~1e-11).
    """
    params = _variance_parameters(blocks, terms)
    if len(params) < 2:
        return
    n, p = X.shape
    used = sorted({i for _, i, _, _ in params})
    if sum(blocks[i].n_levels * blocks[i].q for i in used) ** 2 > COMBINATION_MAX:
        return
    Q = _basis(X)
    eff = {i: _effect_columns(blocks[i]) for i in used}
    cache: dict = {}
    resid = qz = None
    if n * sum(blocks[i].n_levels * blocks[i].q for i in used) <= RESIDUAL_MAX:
        # small designs: the residualised level columns (I − H)Z_e themselves, projected twice, so that
        # C = R_x'R_y has no cancellation between Z_x'Z_y and Z_x'HZ_y (an effect almost in the span of
        # X — x at a level with one row — left ~1e-12 of rounding in an exact dependence)
        resid = {}
        for i in used:
            b = blocks[i]
            for e in range(b.q):
                Z = np.zeros((n, b.n_levels))
                Z[np.arange(n), b.codes] = eff[i][:, e]
                for _ in range(2):
                    Z -= Q @ (Q.T @ Z)
                resid[(i, e)] = Z
    else:
        qz = {(i, e): _level_sums(blocks[i].codes, Q * eff[i][:, e:e + 1], blocks[i].n_levels).T   # Q'Z_e
              for i in used for e in range(blocks[i].q)}

    def C(x, y):  # x'(I − H)y for two effect columns (levels_x × levels_y)
        if (x, y) not in cache:
            if resid is not None:
                cache[(x, y)] = resid[x].T @ resid[y]
            else:
                bx, by = blocks[x[0]], blocks[y[0]]
                both = np.zeros((bx.n_levels, by.n_levels))
                np.add.at(both, (bx.codes, by.codes), eff[x[0]][:, x[1]] * eff[y[0]][:, y[1]])
                cache[(x, y)] = both - qz[x].T @ qz[y]
        return cache[(x, y)]

    def products(k):  # A_k as a list of (a, b) with A_k = Σ a b'
        _, i, e, f = params[k]
        return [((i, e), (i, e))] if e == f else [((i, e), (i, f)), ((i, f), (i, e))]

    m = len(params) + 1
    G = np.empty((m, m))
    G[0, 0] = n - p
    for i in range(1, m):
        G[0, i] = G[i, 0] = sum(float(np.trace(C(bb, a))) for a, bb in products(i - 1))
        for j in range(i, m):
            G[i, j] = G[j, i] = sum(float(np.sum(C(bb, c) * C(a, d)))
                                    for a, bb in products(i - 1) for c, d in products(j - 1))
    d = np.sqrt(np.diag(G))
    if np.any(d <= 0):
        return   # a term with no residual contrast at all: check_confounded's case
    ev, vec = np.linalg.eigh(G / np.outer(d, d))
    if ev[0] > tol * ev[-1]:
        return
    c = vec[:, 0] / np.abs(vec[:, 0]).max()
    involved = list(dict.fromkeys(params[k - 1][0] for k in range(1, m) if abs(c[k]) > 1e-6))
    names = (["the residual variance"] if abs(c[0]) > 1e-6 else []) + involved
    raise DataError(
        f"The covariance parameters of {_join(names)} are not identifiable: some of them can be changed "
        "together without changing the restricted likelihood (the criterion is flat along a combination "
        "of them); remove one of the terms or simplify its covariance."
    )


def _join(items: list[str]) -> str:
    """'a', 'a and b', 'a, b and c'."""
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


#: [X Z] with at most this many entries is solved densely by :func:`_lsqr_residual`
DENSE_LSQ_MAX = 200_000


def check_residual_noise(y: np.ndarray, X: np.ndarray, blocks, subset: int = 20000, tol: float = 1e-11,
                         seed: int = 0) -> None:
    """The response must not be fitted exactly by the fixed and random effects together.

    If y lies in the span of [X Z] (e.g. y constant within every level of the only grouping factor),
    the residual variance is 0 and the likelihood is unbounded as σ² → 0: there is no estimate.  The
    least-squares residual of y on [X Z] is computed by LSQR (Paige & Saunders 1982; scipy) on the
    sparse, column-scaled [X Z] (densely for small designs).  An exact fit on all rows implies one on any subset, so a random subset
    of rows is tried first and the full data only when the subset is fitted exactly.  "Exactly" is
    relative: below ``tol`` times the spread ‖y − ȳ‖, or 1000 ulp of y (the rounding of y itself).
    """
    n = y.shape[0]
    limit = max(tol * _norm(y - y.mean()), 1e3 * np.finfo(float).eps * _norm(y))
    cols = X.shape[1] + sum(b.q * b.n_levels for b in blocks)
    if n > max(subset, 4 * cols):
        rows = np.sort(np.random.default_rng(seed).choice(n, max(subset, 4 * cols), replace=False))
        if _lsqr_residual(y, X, blocks, rows) > limit * math.sqrt(rows.size / n):
            return
    if _lsqr_residual(y, X, blocks, None) <= limit:
        raise DataError(
            f"The response is fitted exactly by the fixed and random effects{_exact_hint(y, X, blocks, limit)}: there "
            "is no residual variation, so the residual variance is 0 and the likelihood has no maximum."
        )


def _exact_hint(y: np.ndarray, X: np.ndarray, blocks, limit: float) -> str:
    """Why the fit is exact, where a simple reason applies."""
    for b in blocks:
        if b.q == 1 and np.all(b.Z == 1.0) and (len(blocks) == 1 or _lsqr_residual(y, X, [b], None) <= limit):
            return f" (after the fixed effects it is constant within every level of {b.group!r})"
    cols = X.shape[1] + sum(b.q * b.n_levels for b in blocks)
    if cols >= y.shape[0]:
        return f" ({cols} fixed and random effects for {y.shape[0]} observations)"
    return ""


def _lsqr_residual(y: np.ndarray, X: np.ndarray, blocks, rows: np.ndarray | None) -> float:
    """‖y − [X Z]b̂‖ for the least-squares b̂ (rows: a subset, or None for all)."""
    if rows is not None:
        y, X = y[rows], X[rows]
    n, p = X.shape
    idx, val, off = [np.broadcast_to(np.arange(p), (n, p))], [X], p
    for b in blocks:
        codes = b.codes if rows is None else b.codes[rows]
        Z = b.Z if rows is None else b.Z[rows]
        for e in range(b.q):
            idx.append((codes + off)[:, None])
            val.append(Z[:, e:e + 1])
            off += b.n_levels
    k = sum(v.shape[1] for v in val)
    indices = np.concatenate(idx, axis=1).ravel()
    data = np.concatenate(val, axis=1).ravel()
    norms = np.sqrt(np.bincount(indices, weights=data * data, minlength=off))
    norms[norms == 0.0] = 1.0
    if n * off <= DENSE_LSQ_MAX:   # small: dense least squares (SVD), no sparse set-up
        A = np.zeros((n, off))
        A[np.repeat(np.arange(n), k), indices] += data / norms[indices]
        b = np.linalg.lstsq(A, y, rcond=None)[0]
        return _norm(y - A @ b)
    import scipy.sparse as sp  # deferred: scipy.sparse is only needed for large designs
    from scipy.sparse.linalg import lsqr

    A = sp.csr_matrix((data / norms[indices], indices, np.arange(0, n * k + 1, k)), shape=(n, off))
    b = lsqr(A, y, atol=1e-15, btol=1e-15, iter_lim=max(200, 4 * off))[0]
    return _norm(y - A @ b)


def _norm(v: np.ndarray) -> float:
    """‖v‖ without BLAS (whose dot costs milliseconds under thread contention)."""
    return math.sqrt(float(np.square(v).sum()))
