"""The log posterior of the covariance parameters ψ of the PyMC model, with β and u integrated out.

Used by ``sampler="quadrature"`` (:mod:`.quadrature`).  The model is the one of :mod:`.model` with the
priors of :mod:`.priors`:

    y = Xβ + Zu + ε,  ε ~ N(0, σ²I),  u_i ~ N(0, G) per level,  β ~ N(m₀, S₀), S₀ = diag(s₀²).

Write β = m₀ + L₀w (L₀ = diag(s₀), w ~ N(0, I_p)) and u_i = Λv_i (G = ΛΛ', v_i ~ N(0, I_Q)), so
r₀ = y − Xm₀ = W̃[w; v] + ε with W̃ = [XL₀, ZΛ].  With M = σ²I_K + W̃'W̃ (K = p + GQ) and b = W̃'r₀,

    log p(y | ψ) = −½ [n log 2π + (n − K) log σ² + log det M + (r₀'r₀ − b'M⁻¹b) / σ²],        (1)

and (w, v) | ψ, y ~ N(M⁻¹b, σ²M⁻¹).                                                           (2)

This is log N(y; Xm₀, σ²I + ZGZ' + XS₀X') written through K × K quantities, finite at Λ = 0 (no G⁻¹).
With one grouping factor M is an arrow matrix: per-level blocks D_i = σ²I_Q + Λ'Z_i'Z_iΛ, couplings
B_i = L₀X_i'Z_iΛ and A = σ²I_p + L₀X'XL₀; eliminating the v_i gives the Schur complement
S = A − Σ B_iD_i⁻¹B_i', log det M = Σ log det D_i + log det S and
b'M⁻¹b = Σ b_i'D_i⁻¹b_i + c'S⁻¹c with c = b_w − Σ B_iD_i⁻¹b_i, from the per-level sufficient statistics
Z_i'Z_i, Z_i'X_i, Z_i'r₀ and X'X, X'r₀, r₀'r₀ (computed once per data set).  Levels that share Z_i'Z_i
and Z_i'X_i (all of them in a balanced design) share D_i and B_i, so (1) and the β part of (2) need only
the sums τ = Σ Z_i'r₀ and T = Σ (Z_i'r₀)(Z_i'r₀)' per pattern (:func:`patterns`).  Every function here is
vectorised over a batch of ψ points (leading axis P).  Two scalar terms on different factors eliminate
the factor with more levels, whose block of M is diagonal, and work with the Schur complement of size
p + (levels of the other factor) (:mod:`.quadrature_two`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import special

from ...model.design import Design
from .priors import Prior, PriorSet, prior_arrays
from .quadrature_two import LOG_2PI, conditional_two


@dataclass(frozen=True, eq=False)
class QuadProblem:
    """Everything the log posterior of ψ needs, computed once per data set.

    ``kind`` is ``"one"`` (one grouping factor, Q ≤ 2 merged effects) or ``"dense"`` (two scalar terms on
    two factors).  ``names`` are the ψ coordinates: SDs by canonical name, ``cor_…`` and ``sigma``.
    """

    kind: str
    n: int
    p: int
    G: int
    Q: int
    correlated: bool
    ZtZ: np.ndarray      # one: (G, Q, Q); dense: (K−p, K−p)
    ZtX: np.ndarray      # one: (G, Q, p); dense: (K−p, p)
    Ztr: np.ndarray      # one: (G, Q);    dense: (K−p,)
    XtX: np.ndarray
    Xtr: np.ndarray
    rr: float
    s0: np.ndarray       # prior SDs of β
    m0: np.ndarray       # prior means of β
    col_sd: np.ndarray   # dense: which SD (0 or 1) scales each Z column
    sd_priors: tuple
    sd_scales: np.ndarray
    sigma_prior: Prior
    sigma_scale: float
    eta: float | None

    @property
    def dim(self) -> int:
        """Number of ψ coordinates: the SDs, the correlation if any, and σ."""
        return self.Q + int(self.correlated) + 1 if self.kind == "one" else 3


def unsupported_reason(design: Design) -> str | None:
    """None when quadrature can integrate this model's ψ (≤ 4 dimensions), else a one-sentence reason."""
    blocks = design.blocks
    groups = {b.group for b in blocks}
    if len(groups) == 1:
        Q = sum(b.q for b in blocks)
        corr = any(b.covariance == "unstructured" and b.q > 1 for b in blocks)
        if Q <= 2 and (len(blocks) == 1 or not corr):
            return None
        return (f"sampler='quadrature' handles at most two random effects per level of one grouping factor, "
                f"and this model has {Q} per level of {blocks[0].group} ({_n_psi(blocks)} covariance "
                f"parameters); use sampler='nutpie'.")
    if len(blocks) == 2 and all(b.q == 1 for b in blocks):
        return None
    terms = ", ".join(f"{b.q} effect{'s' * (b.q > 1)} by {b.group}" for b in blocks)
    return (f"sampler='quadrature' handles one grouping factor with at most two random effects, or two "
            f"scalar terms, and this model has {len(blocks)} random-effect terms over {len(groups)} grouping "
            f"factors ({terms}: {_n_psi(blocks)} covariance parameters); use sampler='nutpie'.")


def _n_psi(blocks) -> int:
    """Covariance parameters of the random-effect blocks (SDs, correlations) and σ."""
    return sum(b.n_theta for b in blocks) + 1


def _level_products(codes: np.ndarray, A: np.ndarray, B: np.ndarray, G: int) -> np.ndarray:
    """Per-level cross-products A_i'B_i (G, a, b) of the rows of A (n, a) and B (n, b) by level code."""
    out = np.zeros((G, A.shape[1], B.shape[1]))
    np.add.at(out, codes, A[:, :, None] * B[:, None, :])
    return out


def build_problem(design: Design, priors: PriorSet) -> QuadProblem:
    """Sufficient statistics of (1) for ``design`` and the numeric priors on its current data."""
    pa = prior_arrays(priors, design)
    X, y = np.asarray(design.X, float), np.asarray(design.y, float)
    m0, s0 = np.asarray(pa["prior_beta_loc"], float), np.asarray(pa["prior_beta_scale"], float)
    r = y - X @ m0
    blocks = design.blocks
    common = dict(n=design.n, p=design.p, XtX=X.T @ X, Xtr=X.T @ r, rr=float(r @ r), s0=s0, m0=m0,
                  sd_priors=tuple(priors.sd), sd_scales=np.asarray(pa["prior_sd"], float),
                  sigma_prior=priors.sigma, sigma_scale=float(pa["prior_sigma"][0]))
    if len({b.group for b in blocks}) == 1:
        Z = np.hstack([np.asarray(b.Z, float) for b in blocks])
        codes = blocks[0].codes
        G, Q = blocks[0].n_levels, Z.shape[1]
        ztz, ztx = _level_products(codes, Z, Z, G), _level_products(codes, Z, X, G)
        ztr = _level_products(codes, Z, r[:, None], G)[:, :, 0]
        corr = len(blocks) == 1 and blocks[0].covariance == "unstructured" and Q == 2
        return QuadProblem(kind="one", G=G, Q=Q, correlated=corr, ZtZ=ztz, ZtX=ztx, Ztr=ztr,
                           col_sd=np.zeros(0, int), eta=priors.eta[0] if corr else None, **common)
    cols, which = [], []
    for k, b in enumerate(blocks):
        Zk = np.zeros((design.n, b.n_levels))
        Zk[np.arange(design.n), b.codes] = b.Z[:, 0]
        cols.append(Zk)
        which += [k] * b.n_levels
    Z = np.hstack(cols)
    return QuadProblem(kind="dense", G=Z.shape[1], Q=1, correlated=False, ZtZ=Z.T @ Z, ZtX=Z.T @ X,
                       Ztr=Z.T @ r, col_sd=np.asarray(which, int), eta=None, **common)


# ------------------------------------------------------------------------------------------- priors
def log_sd_prior(prior: Prior, scale: float, s: np.ndarray) -> np.ndarray:
    """log density of an SD s ≥ 0 (sd = scale·raw; inverse gamma: s² = scale·raw, raw ~ IG(α, 1))."""
    s = np.asarray(s, float)
    x = s / scale
    if prior.family == "half_normal":
        return 0.5 * np.log(2.0 / np.pi) - 0.5 * x * x - np.log(scale)
    if prior.family == "half_cauchy":
        return np.log(2.0 / np.pi) - np.log1p(x * x) - np.log(scale)
    if prior.family == "half_student_t":
        nu = float(prior.shape)
        c = np.log(2.0) + special.gammaln((nu + 1) / 2) - special.gammaln(nu / 2) - 0.5 * np.log(nu * np.pi)
        return c - (nu + 1) / 2 * np.log1p(x * x / nu) - np.log(scale)
    if prior.family == "exponential":
        return -x - np.log(scale)
    if prior.family == "inverse_gamma":  # p(v) = β^α / Γ(α) v^(−α−1) e^(−β/v), v = s², |dv/ds| = 2s
        a = float(prior.shape)
        with np.errstate(divide="ignore", invalid="ignore"):
            v = s * s
            out = a * np.log(scale) - special.gammaln(a) - (a + 1) * np.log(v) - scale / v + np.log(2.0 * s)
        return np.where(s > 0, out, -np.inf)
    raise ValueError(prior.family)


def log_lkj2(eta: float, rho: np.ndarray) -> np.ndarray:
    """log density of ρ under LKJ(η) on a 2 × 2 correlation matrix: (ρ + 1)/2 ~ Beta(η, η)."""
    t = 0.5 * (np.asarray(rho, float) + 1.0)
    return ((eta - 1) * (np.log(t) + np.log1p(-t)) - special.betaln(eta, eta) - np.log(2.0))


def log_prior(pb: QuadProblem, sds: np.ndarray, rho: np.ndarray | None, sigma: np.ndarray) -> np.ndarray:
    """log p(ψ) in natural parameters: Π p(sd_k) · p_LKJ(ρ) · p(σ) (the model's product prior)."""
    out = log_sd_prior(pb.sigma_prior, pb.sigma_scale, sigma)
    for k in range(sds.shape[-1]):
        out = out + log_sd_prior(pb.sd_priors[k], pb.sd_scales[k], sds[..., k])
    if rho is not None:
        out = out + log_lkj2(pb.eta, rho)
    return out


# --------------------------------------------------------------------------------------- likelihood
def lambda_factor(pb: QuadProblem, sds: np.ndarray, rho: np.ndarray | None) -> np.ndarray:
    """Λ (P, Q, Q) with G = ΛΛ': diag(sd) or, correlated, [[sd₀, 0], [ρ sd₁, sd₁ √(1 − ρ²)]]."""
    P = sds.shape[0]
    lam = np.zeros((P, pb.Q, pb.Q))
    for k in range(pb.Q):
        lam[:, k, k] = sds[:, k]
    if rho is not None:
        lam[:, 1, 0] = rho * sds[:, 1]
        lam[:, 1, 1] = sds[:, 1] * np.sqrt(np.clip(1.0 - rho * rho, 0.0, None))
    return lam


def _inv_logdet(D: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Inverse and log determinant of a batch (…, m, m) of SPD matrices; closed form for m ≤ 2."""
    m = D.shape[-1]
    if m == 1:
        return 1.0 / D, np.log(D[..., 0, 0])
    if m == 2:
        a, b, c = D[..., 0, 0], D[..., 0, 1], D[..., 1, 1]
        det = a * c - b * b
        inv = np.stack([np.stack([c, -b], -1), np.stack([-b, a], -1)], -2) / det[..., None, None]
        return inv, np.log(det)
    L = np.linalg.cholesky(D)
    eye = np.broadcast_to(np.eye(m), D.shape)
    Li = np.linalg.solve(L, eye)
    return np.swapaxes(Li, -1, -2) @ Li, 2.0 * np.log(np.diagonal(L, axis1=-2, axis2=-1)).sum(-1)


@dataclass(frozen=True)
class Conditional:
    """Equation (1) and the Gaussian (2) at a batch of ψ points.

    ``loglik`` (P,); ``beta_mean`` (P, p), ``beta_cov`` (P, p, p); ``u_mean`` / ``u_var`` (P, levels, Q)
    (for ``dense``: (P, columns, 1)).
    """

    loglik: np.ndarray
    beta_mean: np.ndarray
    beta_cov: np.ndarray
    u_mean: np.ndarray
    u_var: np.ndarray


CHUNK = 32768


def conditional(pb: QuadProblem, sds: np.ndarray, rho: np.ndarray | None, sigma: np.ndarray,
                want_u: bool = True) -> Conditional:
    """log p(y | ψ) by (1) and the moments of β, u | ψ, y by (2), for P points (module docstring).

    Evaluated in chunks of ``CHUNK`` points (memory O(CHUNK · G)).
    """
    P = sigma.shape[0]
    if P > CHUNK:
        parts = [conditional(pb, sds[i:i + CHUNK], None if rho is None else rho[i:i + CHUNK],
                             sigma[i:i + CHUNK], want_u) for i in range(0, P, CHUNK)]
        return Conditional(*(np.concatenate([getattr(c, f) for c in parts])
                             for f in ("loglik", "beta_mean", "beta_cov", "u_mean", "u_var")))
    if pb.kind == "dense":   # two scalar terms: one factor eliminated (Schur complement, quadrature_two)
        return Conditional(*conditional_two(pb, sds, sigma, want_u))
    if not want_u and patterns(pb).n.size < pb.G:
        return _conditional_patterns(pb, sds, rho, sigma)
    return _conditional_one(pb, sds, rho, sigma, want_u)


@dataclass(frozen=True)
class Patterns:
    """The levels of a one-factor problem grouped by their design statistics (Z_i'Z_i, Z_i'X_i): U distinct
    patterns with multiplicities n_u and the response statistics summed within each, τ_u = Σ Z_i'r₀ (U, Q)
    and T_u = Σ (Z_i'r₀)(Z_i'r₀)' (U, Q, Q)."""

    ZtZ: np.ndarray
    ZtX: np.ndarray
    n: np.ndarray
    tau: np.ndarray
    T: np.ndarray
    level: np.ndarray    # (G,) the pattern of every level


_PATTERNS: dict[int, tuple[QuadProblem, Patterns]] = {}


def patterns(pb: QuadProblem) -> Patterns:
    """:class:`Patterns` of ``pb`` (cached per problem; a balanced design has U = 1)."""
    hit = _PATTERNS.get(id(pb))
    if hit is not None and hit[0] is pb:
        return hit[1]
    key = np.concatenate([pb.ZtZ.reshape(pb.G, -1), pb.ZtX.reshape(pb.G, -1)], axis=1)
    _, first, inv = np.unique(key, axis=0, return_index=True, return_inverse=True)
    inv = inv.reshape(-1)
    U = first.size
    tau = np.zeros((U, pb.Q))
    T = np.zeros((U, pb.Q, pb.Q))
    np.add.at(tau, inv, pb.Ztr)
    np.add.at(T, inv, pb.Ztr[:, :, None] * pb.Ztr[:, None, :])
    out = Patterns(pb.ZtZ[first], pb.ZtX[first], np.bincount(inv, minlength=U).astype(float), tau, T, inv)
    if len(_PATTERNS) > 64:
        _PATTERNS.clear()
    _PATTERNS[id(pb)] = (pb, out)
    return out


def _conditional_patterns(pb: QuadProblem, sds: np.ndarray, rho: np.ndarray | None, sigma: np.ndarray,
                          parts: bool = False):
    """(1) and the β part of (2) by the elimination of :func:`_conditional_one`, summed over the design
    patterns of :func:`patterns` instead of the levels (exact: levels with equal Z_i'Z_i, Z_i'X_i share
    D_i and B_i, and the response enters through Σ b_i'D⁻¹b_i = tr(D⁻¹Λ'TΛ), Σ B_iD⁻¹b_i = BD⁻¹Λ'τ).
    Cost O(P · U) instead of O(P · G); u is not returned.  With ``parts`` also the per-pattern pieces
    (Λ, D⁻¹, BD⁻¹, S⁻¹, ŵ) that the group effects of :mod:`.quadrature_ranef` are built from."""
    pt = patterns(pb)
    s2 = sigma * sigma
    Q, p, L0 = pb.Q, pb.p, pb.s0
    lam = lambda_factor(pb, sds, rho)
    l00 = lam[:, 0, 0][:, None]
    S00 = pt.ZtZ[None, :, 0, 0]
    tau0, T00 = pt.tau[None, :, 0], pt.T[None, :, 0, 0]
    if Q == 1:
        det = S00 * l00 * l00 + s2[:, None]
        Di = [[1.0 / det]]
        B = [[L0[j] * pt.ZtX[None, :, 0, j] * l00] for j in range(p)]
        lt = [l00 * tau0]
        quad = ((l00 * l00 * T00) * Di[0][0]).sum(1)
    else:
        l10, l11 = lam[:, 1, 0][:, None], lam[:, 1, 1][:, None]
        S01, S11 = pt.ZtZ[None, :, 0, 1], pt.ZtZ[None, :, 1, 1]
        tau1, T01, T11 = pt.tau[None, :, 1], pt.T[None, :, 0, 1], pt.T[None, :, 1, 1]
        Di, det = _block_inverse(S00, S01, S11, l00, l10, l11, s2)
        B = [[L0[j] * (pt.ZtX[None, :, 0, j] * l00 + pt.ZtX[None, :, 1, j] * l10),
              L0[j] * pt.ZtX[None, :, 1, j] * l11] for j in range(p)]
        lt = [l00 * tau0 + l10 * tau1, l11 * tau1]
        m00 = l00 * l00 * T00 + 2 * l00 * l10 * T01 + l10 * l10 * T11
        m01 = l11 * (l00 * T01 + l10 * T11)
        m11 = l11 * l11 * T11
        quad = (Di[0][0] * m00 + 2 * Di[0][1] * m01 + Di[1][1] * m11).sum(1)
    R = range(Q)
    nu = pt.n[None, :]
    BD = [[sum(B[j][a] * Di[a][b] for a in R) for b in R] for j in range(p)]
    Smat = np.empty((sigma.size, p, p))
    A = L0[:, None] * pb.XtX * L0[None, :]
    for j in range(p):
        for k in range(j, p):
            v = A[j, k] - sum((nu * BD[j][b] * B[k][b]).sum(1) for b in R)
            Smat[:, j, k] = Smat[:, k, j] = v
        Smat[:, j, j] += s2
    c = np.stack([L0[j] * pb.Xtr[j] - sum((BD[j][b] * lt[b]).sum(1) for b in R) for j in range(p)], 1)
    Sinv, Sld = _inv_logdet(Smat)
    what = np.einsum("pab,pb->pa", Sinv, c)
    quad = quad + np.einsum("pa,pa->p", c, what)
    K = p + pb.G * Q
    loglik = -0.5 * (pb.n * LOG_2PI + (pb.n - K) * np.log(s2) + (nu * np.log(det)).sum(1) + Sld
                     + (pb.rr - quad) / s2)
    beta_mean = pb.m0 + L0 * what
    beta_cov = s2[:, None, None] * (L0[:, None] * Sinv * L0[None, :])
    out = Conditional(loglik, beta_mean, beta_cov, np.zeros(0), np.zeros(0))
    if parts:
        return out, dict(lam=lam, Di=Di, BD=BD, B=B, Sinv=Sinv, what=what, s2=s2)
    return out


def _block_inverse(S00, S01, S11, l00, l10, l11, s2: np.ndarray) -> tuple[list, np.ndarray]:
    """The per-level 2 × 2 block D = Λ'Z_i'Z_iΛ + σ²I of a ``(x | g)`` term (Λ lower triangular with entries
    l00, l10, l11; Z_i'Z_i with entries S00, S01, S11) as its inverse (nested lists of arrays) and det D."""
    d00 = S00 * l00 * l00 + 2 * S01 * l00 * l10 + S11 * l10 * l10 + s2[:, None]
    d01 = l11 * (S01 * l00 + S11 * l10)
    d11 = S11 * l11 * l11 + s2[:, None]
    det = d00 * d11 - d01 * d01
    return [[d11 / det, -d01 / det], [-d01 / det, d00 / det]], det


def _conditional_one(pb: QuadProblem, sds: np.ndarray, rho: np.ndarray | None, sigma: np.ndarray,
                     want_u: bool) -> Conditional:
    """The arrow-matrix elimination of the module docstring, written entry by entry over (P, G) arrays
    for Q ≤ 2 (no batched tiny-matrix products); the p × p Schur complement S by :func:`_inv_logdet`."""
    s2 = sigma * sigma
    Q, p, L0 = pb.Q, pb.p, pb.s0
    lam = lambda_factor(pb, sds, rho)
    l00 = lam[:, 0, 0][:, None]
    S00 = pb.ZtZ[None, :, 0, 0]
    t0 = pb.Ztr[None, :, 0]
    if Q == 1:
        D = [[S00 * l00 * l00 + s2[:, None]]]
        det = D[0][0]
        Di = [[1.0 / det]]
        B = [[L0[j] * pb.ZtX[None, :, 0, j] * l00] for j in range(p)]
        bi = [l00 * t0]
    else:
        l10, l11 = lam[:, 1, 0][:, None], lam[:, 1, 1][:, None]
        S01, S11, t1 = pb.ZtZ[None, :, 0, 1], pb.ZtZ[None, :, 1, 1], pb.Ztr[None, :, 1]
        Di, det = _block_inverse(S00, S01, S11, l00, l10, l11, s2)
        B = [[L0[j] * (pb.ZtX[None, :, 0, j] * l00 + pb.ZtX[None, :, 1, j] * l10),
              L0[j] * pb.ZtX[None, :, 1, j] * l11] for j in range(p)]
        bi = [l00 * t0 + l10 * t1, l11 * t1]
    R = range(Q)
    BD = [[sum(B[j][a] * Di[a][b] for a in R) for b in R] for j in range(p)]       # (B D⁻¹)_{j b}
    Smat = np.empty((sigma.size, p, p))
    A = L0[:, None] * pb.XtX * L0[None, :]
    for j in range(p):
        for k in range(j, p):
            v = A[j, k] - sum((BD[j][b] * B[k][b]).sum(1) for b in R)
            Smat[:, j, k] = Smat[:, k, j] = v
        Smat[:, j, j] += s2
    c = np.stack([L0[j] * pb.Xtr[j] - sum((BD[j][b] * bi[b]).sum(1) for b in R) for j in range(p)], 1)
    Sinv, Sld = _inv_logdet(Smat)
    what = np.einsum("pab,pb->pa", Sinv, c)
    Dib = [sum(Di[a][b] * bi[b] for b in R) for a in R]
    quad = sum((bi[a] * Dib[a]).sum(1) for a in R) + np.einsum("pa,pa->p", c, what)
    K = p + pb.G * Q
    loglik = -0.5 * (pb.n * LOG_2PI + (pb.n - K) * np.log(s2) + np.log(det).sum(1) + Sld + (pb.rr - quad) / s2)
    beta_mean = pb.m0 + L0 * what
    beta_cov = s2[:, None, None] * (L0[:, None] * Sinv * L0[None, :])
    if not want_u:
        return Conditional(loglik, beta_mean, beta_cov, np.zeros(0), np.zeros(0))
    e = [bi[a] - sum(B[j][a] * what[:, j:j + 1] for j in range(p)) for a in R]
    v = [sum(Di[a][b] * e[b] for b in R) for a in R]
    # Cov(v) = D⁻¹ + E S⁻¹ E' with E = D⁻¹B' (E[a][j] = BD[j][a])
    Vv = [[Di[a][b] + sum(BD[j][a] * Sinv[:, j, k][:, None] * BD[k][b] for j in range(p) for k in range(p))
           for b in R] for a in R]
    if Q == 1:
        u_mean = (l00 * v[0])[..., None]
        u_var = (s2[:, None] * l00 * l00 * Vv[0][0])[..., None]
    else:
        u_mean = np.stack([l00 * v[0], l10 * v[0] + l11 * v[1]], -1)
        var1 = l10 * l10 * Vv[0][0] + 2 * l10 * l11 * Vv[0][1] + l11 * l11 * Vv[1][1]
        u_var = s2[:, None, None] * np.stack([l00 * l00 * Vv[0][0], var1], -1)
    return Conditional(loglik, beta_mean, beta_cov, u_mean, u_var)
