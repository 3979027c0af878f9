"""Equations (1)–(2) of :mod:`.quadrature_model` for two scalar terms on two factors, by eliminating one factor.

``y ~ … + (1 | a) + (1 | b)`` (crossed, or nested as the two-way design's ``(1 | block) + (1 | block:trt)``):
u = (u_a, u_b), one column per level, every observation in one level of each factor.  In the K × K matrix
M = σ²I_K + W̃'W̃ of (1) (K = p + G_a + G_b, W̃ = [XL₀, Z_a s_a, Z_b s_b]) the block of the eliminated
factor e (the one with more levels) is diagonal: Z_e'Z_e = diag(n_j), so

    M = [[M₁₁, M₁₂], [M₂₁, D]],  D = diag(δ_j),  δ_j = σ² + s_e² n_j,

where block 1 holds β and the kept factor k (m₁ = p + G_k).  With d = (s₀, s_k 1_{G_k}) the scaling of the
block-1 columns, C = [X, Z_k]'Z_e (m₁ × G_e), W₁₁ = [X, Z_k]'[X, Z_k], w₁ = [X, Z_k]'r₀ and t = Z_e'r₀,

    S = M₁₁ − M₁₂D⁻¹M₂₁ = dd' ⊙ (W₁₁ − Σ_j ω_j C_jC_j') + σ²I,   ω_j = s_e²/δ_j,
    c = b₁ − M₁₂D⁻¹b₂ = d ⊙ (w₁ − Σ_j ω_j t_j C_j),
    log det M = Σ_j log δ_j + log det S,    b'M⁻¹b = Σ_j ω_j t_j² + c'S⁻¹c

(the Schur complement; Golub & Van Loan 2013, sec. 3.2.11).  ω_j depends on level j only through n_j, so
the sums over j are sums over the U distinct values of n_j of precomputed Σ C_jC_j', Σ t_jC_j, Σ t_j² (U = 1
when balanced): a point costs O(U m₁² + m₁³) instead of the dense Cholesky's O(K³) — for the two-way
design's 3 + 6 + 18 columns, 9 × 9 matrices instead of 27 × 27.  The (β, u_k) block of M⁻¹ is S⁻¹, so
(w, v₁) | ψ, y ~ N(S⁻¹c, σ²S⁻¹); for level j of the eliminated factor, with m_j = s_e (d ⊙ C_j),

    E[v_j] = (s_e t_j − m_j'S⁻¹c) / δ_j,   Var[v_j] = σ² (1/δ_j + m_j'S⁻¹m_j / δ_j²).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

LOG_2PI = float(np.log(2.0 * np.pi))


@dataclass(frozen=True, eq=False)
class TwoFactor:
    """What the elimination needs from a two-factor problem, computed once per data set."""

    keep_sd: int            # which SD (0 or 1) scales the kept factor's columns
    elim_sd: int
    keep: np.ndarray        # the kept factor's u columns (indices into u)
    elim: np.ndarray        # the eliminated factor's u columns
    W11: np.ndarray         # (m₁, m₁) cross-products of [X, Z_k]
    w1: np.ndarray          # (m₁,) [X, Z_k]'r₀
    C: np.ndarray           # (m₁, G_e) [X, Z_k]'Z_e
    t: np.ndarray           # (G_e,) Z_e'r₀
    nj: np.ndarray          # (U,) distinct n_j of the eliminated factor
    count: np.ndarray       # (U,) levels with that n_j
    pattern: np.ndarray     # (G_e,) the n_j pattern of every eliminated level
    P: np.ndarray           # (U, m₁, m₁) Σ C_jC_j' per pattern
    q: np.ndarray           # (U, m₁) Σ t_jC_j per pattern
    r: np.ndarray           # (U,) Σ t_j² per pattern


_CACHE: dict[int, tuple[object, TwoFactor]] = {}


def two_factor(pb) -> TwoFactor:
    """:class:`TwoFactor` of a ``kind == "dense"`` :class:`.quadrature_model.QuadProblem` (cached per
    problem); the factor with more levels is eliminated."""
    hit = _CACHE.get(id(pb))
    if hit is not None and hit[0] is pb:
        return hit[1]
    p = pb.p
    sizes = [int(np.sum(pb.col_sd == k)) for k in (0, 1)]
    e = int(sizes[1] >= sizes[0])
    k = 1 - e
    keep, elim = np.flatnonzero(pb.col_sd == k), np.flatnonzero(pb.col_sd == e)
    ZkX = pb.ZtX[keep]
    W11 = np.block([[pb.XtX, ZkX.T], [ZkX, pb.ZtZ[np.ix_(keep, keep)]]])
    w1 = np.concatenate([pb.Xtr, pb.Ztr[keep]])
    C = np.concatenate([pb.ZtX[elim].T, pb.ZtZ[np.ix_(keep, elim)]], axis=0)
    Dee = pb.ZtZ[np.ix_(elim, elim)]
    n_e = np.diagonal(Dee).copy()
    if np.any(np.abs(Dee - np.diag(n_e)) > 1e-12 * max(1.0, float(n_e.max()))):
        raise ValueError("the eliminated factor's Z'Z is not diagonal: not a scalar term on one factor")
    nj, pattern = np.unique(n_e, return_inverse=True)
    pattern = pattern.reshape(-1)
    U, m1 = nj.size, p + keep.size
    t = pb.Ztr[elim]
    P, q, r = np.zeros((U, m1, m1)), np.zeros((U, m1)), np.zeros(U)
    np.add.at(P, pattern, np.einsum("aj,bj->jab", C, C))
    np.add.at(q, pattern, (C * t[None]).T)
    np.add.at(r, pattern, t * t)
    out = TwoFactor(k, e, keep, elim, W11, w1, C, t, nj, np.bincount(pattern, minlength=U).astype(float),
                    pattern, P, q, r)
    if len(_CACHE) > 64:
        _CACHE.clear()
    _CACHE[id(pb)] = (pb, out)
    return out


def conditional_two(pb, sds: np.ndarray, sigma: np.ndarray, want_u: bool):
    """(log p(y | ψ) (P,), E[β] (P, p), Cov[β] (P, p, p), E[u] (P, G, 1), Var[u] (P, G, 1)) at P points
    (module docstring); u is empty unless ``want_u``.  Points whose S is numerically singular (a probe far
    out on an axis) get log p = −inf and zero moments."""
    tf = two_factor(pb)
    p, P = pb.p, sigma.shape[0]
    s2 = sigma * sigma
    sk, se = sds[:, tf.keep_sd], sds[:, tf.elim_sd]
    d = np.concatenate([np.broadcast_to(pb.s0, (P, p)), np.repeat(sk[:, None], tf.keep.size, 1)], axis=1)
    se2 = se * se
    delta = s2[:, None] + se2[:, None] * tf.nj[None]                       # (P, U)
    with np.errstate(divide="ignore", invalid="ignore"):
        om = se2[:, None] / delta                                          # σ = s_e = 0: NaN (point left out)
    m1 = d.shape[1]
    S = d[:, :, None] * (tf.W11[None] - np.einsum("pu,uab->pab", om, tf.P)) * d[:, None, :]
    S[:, np.arange(m1), np.arange(m1)] += s2[:, None]
    c = d * (tf.w1[None] - om @ tf.q)
    finite = np.isfinite(S).all((1, 2))
    if not finite.all():   # NaN does not make Cholesky fail: give those points a factorable placeholder
        S[~finite] = np.eye(m1)
        c[~finite] = 0.0
    try:
        L = np.linalg.cholesky(S)
        ok = np.ones(P, bool)
    except np.linalg.LinAlgError:
        L, ok = _cholesky_pointwise(S)
    ok &= finite
    with np.errstate(all="ignore"):
        Li = _lower_inverse(L)
        Sinv = np.swapaxes(Li, -1, -2) @ Li
    x1 = np.einsum("pab,pb->pa", Sinv, c)
    with np.errstate(divide="ignore", invalid="ignore"):
        ld = 2.0 * np.log(np.diagonal(L, axis1=-2, axis2=-1)).sum(-1)
        quad = om @ tf.r + np.einsum("pa,pa->p", c, x1)
        K = p + pb.G
        loglik = -0.5 * (pb.n * LOG_2PI + (pb.n - K) * np.log(s2) + np.log(delta) @ tf.count + ld
                         + (pb.rr - quad) / s2)
    ok &= np.isfinite(loglik) & np.isfinite(Sinv).all((1, 2))
    loglik = np.where(ok, loglik, -np.inf)
    beta_mean = pb.m0 + pb.s0 * x1[:, :p]
    beta_cov = s2[:, None, None] * (pb.s0[:, None] * Sinv[:, :p, :p] * pb.s0[None, :])
    beta_mean, beta_cov = np.where(ok[:, None], beta_mean, 0.0), np.where(ok[:, None, None], beta_cov, 0.0)
    if not want_u:
        return loglik, beta_mean, beta_cov, np.zeros(0), np.zeros(0)
    u_mean, u_var = np.zeros((P, pb.G)), np.zeros((P, pb.G))
    u_mean[:, tf.keep] = sk[:, None] * x1[:, p:]
    u_var[:, tf.keep] = s2[:, None] * sk[:, None] ** 2 * np.diagonal(Sinv, axis1=-2, axis2=-1)[:, p:]
    mj = se[:, None, None] * d[:, :, None] * tf.C[None]                    # (P, m₁, G_e)
    dj = delta[:, tf.pattern]                                              # (P, G_e)
    v = (se[:, None] * tf.t[None] - np.einsum("paj,pa->pj", mj, x1)) / dj
    quad_j = np.einsum("paj,pab,pbj->pj", mj, Sinv, mj)
    u_mean[:, tf.elim] = se[:, None] * v
    u_var[:, tf.elim] = s2[:, None] * se2[:, None] * (1.0 / dj + quad_j / (dj * dj))
    keep = ok[:, None]
    return (loglik, beta_mean, beta_cov, np.where(keep, u_mean, 0.0)[..., None],
            np.where(keep, u_var, 0.0)[..., None])


def _lower_inverse(L: np.ndarray) -> np.ndarray:
    """L⁻¹ of a batch of lower-triangular L with positive diagonals, by forward substitution row by row
    (no pivoting, so it does not fail where LU would find an underflowed pivot: a probe far out on an axis
    gives inf/NaN entries instead, and the caller leaves the point out)."""
    m = L.shape[-1]
    Li = np.zeros_like(L)
    for i in range(m):
        row = -np.einsum("pk,pkj->pj", L[:, i, :i], Li[:, :i, :])
        row[:, i] += 1.0
        Li[:, i, :] = row / L[:, i, i][:, None]
    return Li


def _cholesky_pointwise(S: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Cholesky factors of a batch in which some S is not numerically positive definite: those get the
    identity and ``ok`` False."""
    L = np.broadcast_to(np.eye(S.shape[-1]), S.shape).copy()
    ok = np.zeros(S.shape[0], bool)
    for i in range(S.shape[0]):
        try:
            L[i] = np.linalg.cholesky(S[i])
            ok[i] = True
        except np.linalg.LinAlgError:
            pass
    return L, ok
