"""Fast path: every random-effects term on ONE grouping factor.

Several terms on the same factor (``(x || g)``, ``(1 | g) + (0 + x | g)``) are merged into one block with
Q = Σ q_t effects per level and a block-diagonal Λ (Q × Q).  With S_i = Z_i'Z_i (Q × Q) and
T_i = Z_i'[X_i y_i] (Q × (p+1)) computed once, one evaluation at θ with D = ΛΛ' costs O(G Q³):

    K_i = (I + S_i D)⁻¹,   log|L_θ|² = Σ_i log det(I + S_i D)   (det(I + Λ'S_iΛ) = det(I + S_i D)),
    Z_i'V_i⁻¹[X_i y_i] = K_i T_i =: U_i   (push-through identity Z'(I + ZDZ')⁻¹ = (I + Z'ZD)⁻¹Z'),
    C = [X y]'[X y] − Σ_i T_i' D U_i       (Woodbury: V_i⁻¹ = I − Z_i D K_i Z_i'),
    ∂d/∂D = Σ_i K_i S_i − Σ_i U_i N U_i'   (see :mod:`.profiled`),  ∂d/∂θ_k = 2 (sym(∂d/∂D) Λ)[r_k, c_k].

q = 1 and q = 2 are written out in closed form over arrays of groups; larger Q uses batched ``numpy.linalg``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from ..model.design import Design
from .profiled import LOG_2PI, Profiled, profiled
from .theta import Layout


@dataclass(frozen=True, eq=False)
class OneFactorProblem:
    """Sufficient statistics of a one-factor model (computed once per data set).

    ``S`` (G × Q × Q) holds Z_i'Z_i, ``T`` (G × Q × (p+1)) Z_i'[X_i y_i], ``C0`` [X y]'[X y]; ``fast``
    holds the same numbers rearranged for the closed-form Q = 1 and Q = 2 evaluations.
    """

    n: int
    p: int
    G: int
    Q: int
    rows: np.ndarray          # Λ position of each θ component (merged Q × Q factor)
    cols: np.ndarray
    S: np.ndarray
    T: np.ndarray
    C0: np.ndarray
    effect_term: tuple[int, ...]   # term index (in layout order) of each of the Q effects
    effect_index: tuple[int, ...]  # index of each effect within its term
    fast: dict = field(default_factory=dict)
    beta_offset: np.ndarray | None = None   # β̂ = β̂(y − X c) + c with c the OLS fit (conditioning)
    W: np.ndarray | None = None   # Q = 1: within-group cross-products [X y]'(I − P_Z)[X y] (stable C)
    beta_map: np.ndarray | None = None   # β = beta_map β_c when X is centred (Design.beta_map, :mod:`.centring`)

    def factor(self, theta: np.ndarray) -> np.ndarray:
        """The merged Λ (Q × Q)."""
        lam = np.zeros((self.Q, self.Q))
        lam[self.rows, self.cols] = theta
        return lam


def _fast_arrays(S: np.ndarray, T: np.ndarray) -> dict:
    """Rearranged sufficient statistics for the closed forms of :func:`_core`."""
    G, Q, k = T.shape
    if Q == 1:
        t = np.ascontiguousarray(T[:, 0, :])
        s = np.ascontiguousarray(S[:, 0, 0])
        with np.errstate(divide="ignore"):
            sinv = np.where(s > 0.0, 1.0 / s, 0.0)           # a group with z = 0 has t = 0 too
        return dict(s=s, sinv=sinv, t=t, tT=np.ascontiguousarray(t.T))
    B = _group_coefficients(S, T)
    extra = {} if B is None else {"B": np.ascontiguousarray(np.moveaxis(B, 1, 0).reshape(Q * G, k))}
    if Q == 2:
        s11, s12, s22 = S[:, 0, 0], S[:, 0, 1], S[:, 1, 1]
        F = np.column_stack([np.ones(G), s11, 2.0 * s12, s22, s11 * s22 - s12 * s12])
        T2 = np.ascontiguousarray(np.moveaxis(T, 1, 0))                       # (2, G, k)
        # P_g = adj(S_g) T_g (data only): adj(I + S_gD) T_g = T_g + adj(D) P_g without cancellation
        P = np.stack([s22[:, None] * T[:, 0] - s12[:, None] * T[:, 1],
                      s11[:, None] * T[:, 1] - s12[:, None] * T[:, 0]])                 # (2, G, k)
        return dict(F=F, T2=T2, TfT=np.ascontiguousarray(T2.reshape(2 * G, k).T), P=P,
                    Sf=S.reshape(G, 4).copy(), detS=F[:, 4].copy(), **extra)
    return extra


#: largest condition number of S_i for which :func:`_group_coefficients` solves for B_i
COND_MAX = 1e14


def _group_coefficients(S: np.ndarray, T: np.ndarray) -> np.ndarray | None:
    """B_i = S_i⁻¹T_i (each group's least-squares coefficients of [X y] on Z_i), or None when some S_i is
    singular or ill-conditioned beyond 1e14 (then :func:`_core` uses the difference form of C).  An
    uncentred slope makes S_i ill-conditioned (cond ≈ (mean/SD of x)⁴): at the earlier limit 1e10 a
    correlated (x | g) with mean(x) = 300 SD(x) fell back to the difference form and lost 5 digits of
    σ_x; with 1e14 the evaluation stays exact to mean(x) = 1,000 SD(x).  The fitter now works on centred
    slopes (:attr:`compare_mm.model.design.RandomBlock.Z_fit`), where S_i is well conditioned."""
    if S.shape[1] < 2 or S.shape[0] == 0:
        return None
    with np.errstate(all="ignore"):
        cond = np.linalg.cond(S)
    if not np.all(np.isfinite(cond)) or cond.max() > COND_MAX:
        return None
    return np.linalg.solve(S, T)


def is_one_factor(design: Design) -> bool:
    """True when every random-effects block uses the same grouping factor."""
    return len({b.group for b in design.blocks}) == 1


def group_sums(codes: np.ndarray, values: np.ndarray, G: int) -> np.ndarray:
    """Per-group column sums of ``values`` (n × k) → (G × k), without a Python loop over groups."""
    n = codes.shape[0]
    if n and np.all(codes[1:] >= codes[:-1]):
        starts = np.flatnonzero(np.r_[True, codes[1:] != codes[:-1]])
        if starts.shape[0] == G:
            return np.add.reduceat(values, starts, axis=0)
    out = np.empty((G, values.shape[1]))
    for k in range(values.shape[1]):
        out[:, k] = np.bincount(codes, weights=values[:, k], minlength=G)
    return out


def ols_residual(X: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """y − Xc with c the least-squares fit, and c.

    The profiled deviance is invariant to y → y − Xc (β̂ shifts by c); working with the OLS residual
    keeps y'y − |c_u|² − |c_β|² free of cancellation when y has a large mean.
    """
    if X.shape[1] == 0:
        return y, np.zeros(0)
    c = np.linalg.lstsq(X, y, rcond=None)[0]
    return y - X @ c, c


def build_one_factor(design: Design, layout: Layout, y: np.ndarray | None = None) -> OneFactorProblem:
    """Sufficient statistics S_i, T_i, [X y]'[X y] of a one-factor design (module docstring)."""
    y = design.y if y is None else y
    blocks = [design.blocks[t.block] for t in layout.terms]
    codes = np.asarray(blocks[0].codes, dtype=np.intp)
    G = blocks[0].n_levels
    Z = np.column_stack([np.asarray(b.Z_fit, dtype=float) for b in blocks])    # centred (RandomBlock.shift)
    Q = Z.shape[1]
    X = design.X_fit                                            # centred with centred slopes (Design.x_shift)
    y, offset = ols_residual(X, y)
    XY = np.column_stack([X, y])
    p = X.shape[1]
    prod = np.concatenate([Z, XY], axis=1)[:, None, :] * Z[:, :, None]      # (n, Q, Q+p+1)
    sums = group_sums(codes, prod.reshape(len(y), -1), G).reshape(G, Q, Q + p + 1)
    S = np.ascontiguousarray(sums[:, :, :Q])
    T = np.ascontiguousarray(sums[:, :, Q:])
    W = None
    if Q == 1:
        # [X y] minus its per-group projection on z: rows r_k = xy_k − z_k t_i / s_i
        s = S[:, 0, 0]
        with np.errstate(divide="ignore", invalid="ignore"):
            coef = np.where(s[:, None] > 0.0, T[:, 0, :] / s[:, None], 0.0)
        R = XY - Z[:, :1] * coef[codes]
        W = R.T @ R
    else:
        B = _group_coefficients(S, T)
        if B is not None:   # [X y] minus its per-group projection on Z_i
            R = XY - np.einsum("nq,nqk->nk", Z, B[codes])
            W = R.T @ R
    rows, cols, eterm, eidx, off = [], [], [], [], 0
    for k, t in enumerate(layout.terms):
        rows.append(t.rows + off)
        cols.append(t.cols + off)
        eterm += [k] * t.q
        eidx += list(range(t.q))
        off += t.q
    return OneFactorProblem(n=len(y), p=p, G=G, Q=Q, rows=np.concatenate(rows), cols=np.concatenate(cols),
                            S=S, T=T, C0=XY.T @ XY, effect_term=tuple(eterm), effect_index=tuple(eidx),
                            fast=_fast_arrays(S, T), beta_offset=offset, W=W,
                            beta_map=design.beta_map)


def _stable_c(pr: OneFactorProblem, weights: np.ndarray) -> np.ndarray:
    """C = [X y]'V⁻¹[X y] for Q = 1 as W + Σ_i w_i t_i t_i' with w_i = 1/(s_i(1 + s_i d)).

    Woodbury gives C = C0 − Σ_i T_i'DK_iT_i; splitting C0 = W + Σ_i T_i'S_i⁻¹T_i (W the within-group
    cross-products, :attr:`OneFactorProblem.W`) and S⁻¹ − D(I + SD)⁻¹ = S⁻¹(I + SD)⁻¹ turns it into
    C = W + Σ_i B_i'K_iT_i (B_i = S_i⁻¹T_i), a sum of positive semi-definite terms; for Q = 1 this is
    the formula above, for Q ≥ 2 :func:`_core` uses it when every S_i is invertible.  The difference
    form loses every digit of r²_θ that C0 has over the within-group residual: at σ_A/σ = 10⁶ in a
    one-way design C0[y, y] ≈ 10¹² r², and the subtraction left σ̂² off by up to several per cent.
    """
    return pr.W + (pr.fast["tT"] * weights) @ pr.fast["t"]


def _core(pr: OneFactorProblem, D: np.ndarray, want_grad: bool):
    """log|L_θ|², C, U = K T (layout Q × G × (p+1)) and Σ_i K_i S_i; closed form for Q ≤ 2.

    For Q = 2: det(I + S_iD) = 1 + tr(S_iD) + det(S_i) det(D) and adj(I + S_iD) = I + adj(D) adj(S_i)
    (adj(AB) = adj(B) adj(A) for 2 × 2), so K_iT_i = (T_i + adj(D) P_i) / det(I + S_iD) with P_i = adj(S_i)T_i
    and K_iS_i = (S_i + det(S_i) adj(D)) / det(I + S_iD), every product a matrix product over groups.
    (The equal form ((1 + tr(S_iD)) I − S_iD) T_i subtracts two numbers of the size of S_iD: with a
    covariate in large units, x ~ 10⁶, at θ = 1 it lost every digit and the optimiser stopped there.)
    """
    f, G = pr.fast, pr.G
    if pr.Q == 1:
        d = D[0, 0]
        m = 1.0 + f["s"] * d
        w = 1.0 / m
        logdet = float(np.log(m).sum())
        U = f["t"] * w[:, None]
        C = _stable_c(pr, f["sinv"] * w)
        ks = np.array([[f["s"] @ w]]) if want_grad else None
        return logdet, C, U[None], ks
    if pr.Q == 2:
        d11, d12, d22 = D[0, 0], D[0, 1], D[1, 1]
        det = f["F"] @ np.array([1.0, d11, d12, d22, d11 * d22 - d12 * d12])     # det(I + S_iD)
        if det.min() <= 0.0:
            return math.inf, None, None, None
        logdet = float(np.log(det).sum())
        w = 1.0 / det
        k = pr.p + 1
        P = f["P"]
        U = np.stack([f["T2"][0] + d22 * P[0] - d12 * P[1],
                      f["T2"][1] + d11 * P[1] - d12 * P[0]]) * w[:, None]      # (2, G, p+1)
        if pr.W is not None and "B" in f:
            C = pr.W + f["B"].T @ U.reshape(2 * G, k)          # W + Σ_i B_i'K_iT_i (_stable_c)
        else:
            DU = (D @ U.reshape(2, -1)).reshape(2 * G, k)
            C = pr.C0 - f["TfT"] @ DU
        ks = None
        if want_grad:
            adj_d = np.array([[d22, -d12], [-d12, d11]])
            ks = (w @ f["Sf"]).reshape(2, 2) + float(w @ f["detS"]) * adj_d
        return logdet, C, U, ks
    S, T, Q = pr.S, pr.T, pr.Q
    M = np.eye(Q) + S @ D
    sign, ld = np.linalg.slogdet(M)
    if np.any(sign <= 0):
        return math.inf, None, None, None
    K = np.linalg.inv(M)
    U = K @ T
    if pr.W is not None and "B" in pr.fast:
        C = pr.W + pr.fast["B"].T @ np.moveaxis(U, 1, 0).reshape(G * Q, -1)
    else:
        C = pr.C0 - T.reshape(G * Q, -1).T @ (D @ U).reshape(G * Q, -1)
    ks = (K @ S).sum(axis=0) if want_grad else None
    return float(ld.sum()), C, np.moveaxis(U, 1, 0), ks


def evaluate(pr: OneFactorProblem, theta: np.ndarray, reml: bool, want_grad: bool = True
             ) -> tuple[float, np.ndarray | None]:
    """Profiled deviance d(θ) (ML) or d_R(θ) (REML) and its analytic gradient (module docstring)."""
    lam = pr.factor(theta)
    D = lam @ lam.T
    logdet, C, U, ks = _core(pr, D, want_grad)
    if C is None:
        return math.inf, None
    prof = profiled(logdet, C, pr.n, pr.p, reml, want_grad)
    if not want_grad or prof.N is None:
        return prof.deviance, None
    Q = U.shape[0]
    k = pr.p + 1
    UN = (U.reshape(-1, k) @ prof.N).reshape(Q, -1)           # U is (Q, G, p+1)
    gd = ks - UN @ U.reshape(Q, -1).T
    gd = 0.5 * (gd + gd.T)
    grad = 2.0 * (gd @ lam)[pr.rows, pr.cols]
    return prof.deviance, grad


def deviance_grid(pr: OneFactorProblem, thetas: np.ndarray, reml: bool) -> np.ndarray:
    """d(θ) or d_R(θ) at many scalar θ at once (Q = 1), vectorised over the grid.

    The Q = 1 closed form of :func:`_core` with d = θ² for every grid point: m_ik = 1 + s_i d_k,
    log|L_θ|² = Σ_i log m_ik, C_k = W + Σ_i t_i t_i' / (s_i m_ik) (:func:`_stable_c`); then a batched
    Cholesky factor of the C_k gives r²_θ and log|R_X|² (:mod:`.profiled`).  Points where C_k is not
    positive definite get inf.
    """
    if pr.Q != 1:
        raise ValueError("deviance_grid needs one scalar random-effects term (Q = 1).")
    f, p = pr.fast, pr.p
    d = np.asarray(thetas, dtype=float) ** 2
    m = 1.0 + d[:, None] * f["s"][None, :]
    logdet = np.log(m).sum(axis=1)
    C = pr.W[None] + np.einsum("kg,gi,gj->kij", f["sinv"][None, :] / m, f["t"], f["t"])
    try:
        L = np.linalg.cholesky(C)
    except np.linalg.LinAlgError:
        return np.array([evaluate(pr, np.array([t]), reml, False)[0] for t in np.sqrt(d)])
    dg = np.diagonal(L, axis1=1, axis2=2)
    nu = float(pr.n - pr.p) if reml else float(pr.n)
    with np.errstate(divide="ignore", invalid="ignore"):
        dev = logdet + nu * (1.0 + LOG_2PI + np.log(dg[:, p] ** 2 / nu))
        if reml and p:
            dev = dev + 2.0 * np.log(dg[:, :p]).sum(axis=1)
    return np.where(np.isfinite(dev) & (dg[:, p] > 0), dev, math.inf)


def moment_inverses(S: np.ndarray, n: int, p: int) -> tuple[np.ndarray, int] | None:
    """(Z_i'Z_i)⁻¹ (G × Q × Q) and the within-group residual degrees of freedom n − GQ − p of the moment
    start (:func:`moment_start`); None when there are none or some Z_i'Z_i is singular."""
    G, Q = S.shape[0], S.shape[1]
    dof = n - G * Q - p
    if dof <= 0:
        return None
    sign, _ = np.linalg.slogdet(S)
    if np.any(sign <= 0):
        return None
    return np.linalg.inv(S), dof


def moment_start(pr: OneFactorProblem) -> np.ndarray | None:
    """A method-of-moments start for θ (warm start of the optimiser; None when not available).

    Per-group least squares of the OLS residual r on Z_i, b_i = S_i⁻¹ Z_i'r_i, have
    E[b_i b_i'] ≈ D σ² + σ² S_i⁻¹, with σ² estimated from the within-group residuals; so
    D ≈ mean(b_i b_i')/σ̂² − mean(S_i⁻¹), restricted to Λ's pattern, variances floored at 0.01, and
    θ read off its Cholesky factor.
    """
    G, Q, p = pr.G, pr.Q, pr.p
    inv = moment_inverses(pr.S, pr.n, p)
    if inv is None:
        return None
    Si, dof = inv
    r = pr.T[:, :, p]
    b = np.einsum("gab,gb->ga", Si, r)
    s2 = (pr.C0[p, p] - float(np.einsum("ga,ga->", b, r))) / dof
    if not s2 > 0:
        return None
    D = (b.T @ b) / (G * s2) - Si.mean(axis=0)
    mask = np.zeros((Q, Q), dtype=bool)
    mask[pr.rows, pr.cols] = True
    D = np.where(mask | mask.T, 0.5 * (D + D.T), 0.0)
    D[np.diag_indices(Q)] = np.maximum(np.diagonal(D), 0.01)
    try:
        lam = np.linalg.cholesky(D)
    except np.linalg.LinAlgError:
        lam = np.diag(np.sqrt(np.diagonal(D)))
    theta = lam[pr.rows, pr.cols]
    return theta if np.all(np.isfinite(theta)) else None


def solution(pr: OneFactorProblem, theta: np.ndarray, reml: bool) -> tuple[Profiled, np.ndarray, np.ndarray]:
    """At θ: profiled quantities, conditional modes b (G × Q) and P_i = Λ A_i⁻¹ Λ' = D K_i (G × Q × Q).

    b_i = D K_i Z_i'(y_i − X_iβ̂) (= Λ u_i, the conditional modes) and σ̂² P_i is lme4's condVar.
    """
    lam = pr.factor(theta)
    D = lam @ lam.T
    logdet, C, _, _ = _core(pr, D, False)
    prof = profiled(logdet, C, pr.n, pr.p, reml, False)
    w = np.r_[-prof.beta, 1.0]
    resid = pr.T @ w                                            # (G, Q)  Z_i'(y_i − X_iβ̂)
    M = np.eye(pr.Q) + pr.S @ D
    P = D @ np.linalg.inv(M)                                    # D (I + S_i D)⁻¹
    P = 0.5 * (P + np.swapaxes(P, 1, 2))
    b = np.einsum("gab,gb->ga", P, resid)
    return prof, b, P
