"""The profiled deviance of many responses of one one-factor design (Q ≤ 2), evaluated as one array program.

Within one study condition every replicate shares X and Z, so of the sufficient statistics of
:mod:`.onefactor` only those involving y differ between replicates: S_i = Z_i'Z_i, A_i = Z_i'X_i and X'X
are computed once, t_i = Z_i'r_i and r'r per replicate (r = y − Xc, the OLS residual, as in
:func:`.onefactor.ols_residual`).  One evaluation at M points (replicate index m_j, θ_j) then follows
:func:`.onefactor.evaluate` with every quantity carrying a leading axis of length M:

    K_ji = (I + S_i D_j)⁻¹ (2 × 2 adjugate in closed form),  log|L_θ|² = Σ_i log det(I + S_i D_j),
    U_ji = K_ji T_ji,  C_j = C0_j − Σ_i T_ji' D_j U_ji,  T_ji = [A_i, t_(m_j) i],

the profiled deviance from a batched Cholesky factor of C_j (Bates et al. 2015, J. Stat. Softw. 67(1),
eqs. 34 and 41; :mod:`.profiled`), and its analytic gradient ∂d/∂D = Σ_i K_i S_i − Σ_i U_i N U_i'.
A point where C_j or I + S_iD_j is not positive definite gets d = inf.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .onefactor import OneFactorProblem
from .profiled import LOG_2PI


@dataclass(frozen=True, eq=False)
class BatchProblem:
    """Shared and per-replicate sufficient statistics of R responses of one one-factor design.

    ``S`` (G, Q, Q) and ``A`` (G, Q, p) are shared; ``t`` (R, G, Q) = Z_i'r_i, ``xr`` (R, p) = X'r,
    ``rr`` (R,) = r'r and ``offset`` (R, p) the OLS coefficients c (β̂ = β̂(r) + c) are per replicate.
    Levels with equal S_i form a class u (U classes, ``Su`` (U, Q, Q), ``count`` levels each); per
    replicate and class ``O`` (R, U·Q·Q, k·k) holds vec(Σ_{i in u} T_i[q]' T_i[r]) in (u, q, r) order,
    T_i[q] the q-th row of T_i = [A_i, t_i] (k = p + 1), and ``C0`` (R, k, k) = [X r]'[X r].
    """

    n: int
    p: int
    G: int
    Q: int
    rows: np.ndarray
    cols: np.ndarray
    S: np.ndarray
    A: np.ndarray
    XX: np.ndarray
    t: np.ndarray
    xr: np.ndarray
    rr: np.ndarray
    offset: np.ndarray
    Su: np.ndarray
    count: np.ndarray
    O: np.ndarray
    C0: np.ndarray
    beta_map: np.ndarray | None = None   # β = beta_map β_c when X is centred (Design.beta_map, :mod:`.centring`)

    @property
    def R(self) -> int:
        return int(self.rr.shape[0])

    def factors(self, theta: np.ndarray) -> np.ndarray:
        """The merged Λ (M, Q, Q) of every row of ``theta`` (M, n_θ)."""
        lam = np.zeros((theta.shape[0], self.Q, self.Q))
        lam[:, self.rows, self.cols] = theta
        return lam


def build_batch(template: OneFactorProblem, X: np.ndarray, Zg: np.ndarray, codes: np.ndarray,
                Y: np.ndarray) -> BatchProblem:
    """The :class:`BatchProblem` of the responses ``Y`` (R, n) of the design whose one-factor problem is
    ``template`` (any response; its y-free statistics S, Z'X, X'X are the shared ones).

    ``Zg`` (n, Q) holds the merged Z columns and ``codes`` (n,) the level of each observation.
    """
    p, G, Q = template.p, template.G, template.Q
    Y = np.asarray(Y, dtype=float)
    if p:
        c = np.linalg.lstsq(X, Y.T, rcond=None)[0].T                       # (R, p)
        r = Y - c @ X.T
    else:
        c, r = np.zeros((Y.shape[0], 0)), Y
    # t[m, i, a] = Σ_{j in group i} Z[j, a] r[m, j]  (one sparse-free product through the level indicator)
    ind = np.zeros((G, codes.shape[0]))
    ind[codes, np.arange(codes.shape[0])] = 1.0
    t = np.stack([r @ (ind * Zg[:, a]).T for a in range(Q)], axis=2)       # (R, G, Q)
    R, k = Y.shape[0], p + 1
    A = np.ascontiguousarray(template.T[:, :, :p])
    XX = np.asarray(template.C0[:p, :p])
    xr = r @ X if p else np.zeros((R, 0))
    rr = np.einsum("mj,mj->m", r, r)
    Su, kind, count = np.unique(template.S.reshape(G, -1), axis=0, return_inverse=True, return_counts=True)
    kind = np.asarray(kind).reshape(-1)
    U = Su.shape[0]
    T = np.concatenate([np.broadcast_to(A, (R, G, Q, p)), t[..., None]], axis=3)          # (R, G, Q, k)
    TT = np.einsum("mgqa,mgrb->mgqrab", T, T).reshape(R, G, -1)
    O = np.zeros((R, U, Q * Q * k * k))
    for u in range(U):
        O[:, u] = TT[:, kind == u].sum(axis=1)
    O = O.reshape(R, U, Q, Q, k, k).reshape(R, U * Q * Q, k * k)
    C0 = np.empty((R, k, k))
    C0[:, :p, :p] = XX
    C0[:, :p, p] = C0[:, p, :p] = xr
    C0[:, p, p] = rr
    return BatchProblem(n=template.n, p=p, G=G, Q=Q, rows=template.rows, cols=template.cols,
                        S=template.S, A=A, XX=XX, t=t, xr=xr, rr=rr, offset=c, Su=Su.reshape(U, Q, Q),
                        count=count.astype(float), O=O, C0=C0, beta_map=template.beta_map)


def _inv_det(Mm: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Inverse and determinant of a stack of 1 × 1 or 2 × 2 matrices (closed form: the adjugate)."""
    if Mm.shape[-1] == 1:
        det = Mm[..., 0, 0]
        with np.errstate(divide="ignore", invalid="ignore"):
            return (1.0 / det)[..., None, None], det
    a, b, c, d = Mm[..., 0, 0], Mm[..., 0, 1], Mm[..., 1, 0], Mm[..., 1, 1]
    det = a * d - b * c
    with np.errstate(divide="ignore", invalid="ignore"):
        w = 1.0 / det
    inv = np.empty_like(Mm)
    inv[..., 0, 0], inv[..., 0, 1], inv[..., 1, 0], inv[..., 1, 1] = d * w, -b * w, -c * w, a * w
    return inv, det


def _profile(C: np.ndarray, p: int, reml: bool, nu: float, want_n: bool):
    """Per point of a stack C (M, k, k), k = p + 1, written out entry by entry (:func:`.profiled.profiled`):
    ok mask, r², log|R_X|², w = (−β̂, 1) = r² C⁻¹[:, p] and, if ``want_n``, N (M, k, k).

    C = LL' column by column; C⁻¹e_p by back substitution of L'x = e_p / L_pp; for REML
    N = blockdiag(M⁻¹, 0) + (ν/r²) ww' with M⁻¹ = L_X⁻ᵀL_X⁻¹ (C⁻¹ = ww'/r² + blockdiag(M⁻¹, 0)).
    """
    k = p + 1
    c = [[C[:, i, j] for j in range(k)] for i in range(k)]
    L = [[None] * k for _ in range(k)]
    ok = np.ones(C.shape[0], dtype=bool)
    for j in range(k):
        s = c[j][j] - sum(L[j][m] * L[j][m] for m in range(j))
        ok &= s > 0.0
        L[j][j] = np.sqrt(np.where(s > 0.0, s, 1.0))
        for i in range(j + 1, k):
            L[i][j] = (c[i][j] - sum(L[i][m] * L[j][m] for m in range(j))) / L[j][j]
    r2 = L[p][p] * L[p][p]
    logdx = sum(np.log(L[j][j]) for j in range(p)) if p else 0.0
    x = [None] * k
    x[p] = 1.0 / r2
    for j in range(p - 1, -1, -1):
        x[j] = -sum(L[i][j] * x[i] for i in range(j + 1, k)) / L[j][j]
    w = np.stack([r2 * xj for xj in x[:p]] + [np.ones_like(r2)], axis=1)
    N = None
    if want_n:
        N = (nu / r2)[:, None, None] * (w[:, :, None] * w[:, None, :])
        if reml and p:
            Li = [[None] * p for _ in range(p)]
            for i in range(p):
                Li[i][i] = 1.0 / L[i][i]
                for j in range(i - 1, -1, -1):
                    Li[i][j] = -sum(L[i][m] * Li[m][j] for m in range(j, i)) * Li[i][i]
            for a in range(p):
                for b in range(a, p):
                    v = sum(Li[m][a] * Li[m][b] for m in range(b, p))
                    N[:, a, b] += v
                    if b != a:
                        N[:, b, a] += v
    return ok, r2, logdx, w, N


@dataclass(frozen=True, eq=False)
class BatchEval:
    """One batched evaluation at M points: deviance (M,), gradient (M, n_θ) or None, β̂(r) (M, p),
    r² (M,), X'V⁻¹X (M, p, p) and D = ΛΛ' (M, Q, Q)."""

    deviance: np.ndarray
    grad: np.ndarray | None
    beta: np.ndarray
    r2: np.ndarray
    XVX: np.ndarray
    D: np.ndarray


def evaluate_batch(bp: BatchProblem, rep: np.ndarray, theta: np.ndarray | None, reml: bool,
                   want_grad: bool = True, cov: np.ndarray | None = None) -> BatchEval:
    """d(θ_j) (ML) or d_R(θ_j) (REML) of replicate ``rep[j]`` for every row j of ``theta`` (module
    docstring), with the analytic gradient when ``want_grad``.  With ``cov`` (M, Q, Q) given instead of
    ``theta``, the points are the relative covariances D_j = ΛΛ' themselves (no gradient).

    Every Q × Q product is written out entry by entry over arrays (M, U) of points × classes of levels
    (numpy's stacked matrix products are slow for tiny matrices); the sums over the levels of a class are
    in ``bp.O``, so a point costs O(U Q² k²) whatever the number of levels.
    """
    rep = np.asarray(rep, dtype=np.intp)
    p, Q = bp.p, bp.Q
    k = p + 1
    if cov is not None:
        if want_grad:
            raise ValueError("evaluate_batch has no gradient with respect to a given covariance.")
        M = cov.shape[0]
        D = [[cov[:, q, r][:, None] for r in range(Q)] for q in range(Q)]
    else:
        theta = np.atleast_2d(np.asarray(theta, dtype=float))
        M = theta.shape[0]
        lam = bp.factors(theta)
        lc = [[lam[:, i, j] for j in range(Q)] for i in range(Q)]
        D = [[sum(lc[q][s] * lc[r][s] for s in range(Q))[:, None] for r in range(Q)] for q in range(Q)]
    S = [[bp.Su[None, :, q, r] for r in range(Q)] for q in range(Q)]
    Mm = [[sum(S[q][s] * D[s][r] for s in range(Q)) + (1.0 if q == r else 0.0) for r in range(Q)]
          for q in range(Q)]
    if Q == 1:
        det = Mm[0][0]
        with np.errstate(divide="ignore", invalid="ignore"):
            K = [[1.0 / det]]
    else:
        det = Mm[0][0] * Mm[1][1] - Mm[0][1] * Mm[1][0]
        with np.errstate(divide="ignore", invalid="ignore"):
            iw = 1.0 / det
        K = [[Mm[1][1] * iw, -Mm[0][1] * iw], [-Mm[1][0] * iw, Mm[0][0] * iw]]
    good = np.all(det > 0.0, axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        logdet = np.log(np.where(det > 0.0, det, 1.0)) @ bp.count
    DK = np.stack([sum(D[q][s] * K[s][r] for s in range(Q)) for q in range(Q) for r in range(Q)], axis=2)
    O = bp.O[rep]                                                             # (M, U·Q·Q, k·k)
    C = bp.C0[rep] - np.einsum("mj,mjc->mc", DK.reshape(M, -1), O).reshape(M, k, k)
    C = 0.5 * (C + np.swapaxes(C, 1, 2))
    nu = float(bp.n - p) if reml else float(bp.n)
    with np.errstate(divide="ignore", invalid="ignore"):
        ok, r2, logdx, w, N = _profile(C, p, reml, nu, want_grad)
        ok &= good & (r2 > 0.0)
        dev = logdet + nu * (1.0 + LOG_2PI + np.log(np.where(ok, r2, 1.0) / nu))
        if reml and p:
            dev = dev + 2.0 * logdx
    dev = np.where(ok, dev, np.inf)
    grad = None
    if want_grad:
        Phi = np.einsum("mc,mjc->mj", N.reshape(M, -1), O).reshape(M, -1, Q, Q)   # Σ_i T_i N T_i' per class
        P = [[Phi[:, :, s, t] for t in range(Q)] for s in range(Q)]
        gd = [[None] * Q for _ in range(Q)]
        for q in range(Q):
            for r in range(q, Q):
                ks = sum(K[q][s] * S[s][r] for s in range(Q)) @ bp.count
                unu = sum(K[q][s] * P[s][t] * K[r][t] for s in range(Q) for t in range(Q)).sum(axis=1)
                gd[q][r] = ks - unu
        for q in range(Q):
            for r in range(q):
                ks = sum(K[q][s] * S[s][r] for s in range(Q)) @ bp.count
                gd[q][r] = 0.5 * (gd[r][q] + ks - sum(K[q][s] * P[s][t] * K[r][t] for s in range(Q)
                                                      for t in range(Q)).sum(axis=1))
                gd[r][q] = gd[q][r]
        grad = np.stack([2.0 * sum(gd[int(rr)][s] * lc[s][int(cc)] for s in range(Q))
                         for rr, cc in zip(bp.rows, bp.cols)], axis=1)
        grad = np.where(ok[:, None], grad, np.nan)
    Dm = np.stack([np.stack([D[q][r][:, 0] for r in range(Q)], axis=1) for q in range(Q)], axis=1)
    return BatchEval(deviance=dev, grad=grad, beta=-w[:, :p], r2=np.where(ok, r2, np.nan), XVX=C[:, :p, :p],
                     D=Dm)


def modes(bp: BatchProblem, ev: BatchEval, rep: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Conditional modes b_i = P_i Z_i'(r_i − X_iβ̂(r)) (M, G, Q) and P_i = D K_i, symmetrised
    (M, G, Q, Q), at the points of ``ev`` (:func:`.onefactor.solution`)."""
    Q = bp.Q
    K, _ = _inv_det(np.eye(Q) + bp.S[None] @ ev.D[:, None])                   # per group (M, G, Q, Q)
    P = ev.D[:, None] @ K
    P = 0.5 * (P + np.swapaxes(P, 2, 3))
    resid = bp.t[rep] - np.einsum("gqa,ma->mgq", bp.A, ev.beta)              # Z_i'(r − Xβ̂)
    b = (P @ resid[..., None])[..., 0]
    return b, P


def design_arrays(design, layout) -> tuple[np.ndarray, np.ndarray]:
    """The merged Z columns (n, Q) in layout order and the level codes (n,) of a one-factor design, as
    :func:`.onefactor.build_one_factor` arranges them."""
    blocks = [design.blocks[t.block] for t in layout.terms]
    Zg = np.column_stack([np.asarray(b.Z_fit, dtype=float) for b in blocks])   # centred (RandomBlock.shift)
    return Zg, np.asarray(blocks[0].codes, dtype=np.intp)
