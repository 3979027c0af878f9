"""The marginal parameterisation: u integrated out, then drawn from its Gaussian conditional.

For one random-effects term with q ≤ 2 effects per level, group i has
y_i ~ N(X_i β, V_i), V_i = Z_i G Z_i' + σ² I, G = L L'.  With M_i = I_q + L' Z_i'Z_i L / σ² and
r_i = y_i − X_i β, the Woodbury identity and the matrix determinant lemma give

    r_i' V_i⁻¹ r_i = (r_i'r_i − b_i' M_i⁻¹ b_i / σ²) / σ²,   b_i = L' Z_i' r_i,
    log|V_i|      = n_i log σ² + log|M_i|,

so the log-likelihood needs only the per-group sufficient statistics Z_i'Z_i, Z_i'X_i, Z_i'e and
‖y − Xβ‖² (:mod:`.stats`, equation (1)) — O(m q²) per evaluation.  M_i (q ≤ 2) is inverted in closed form.

Afterwards, for every posterior draw of (β, L, σ), u_i = L v_i with
v_i | y ~ N(M_i⁻¹ L'Z_i'r_i / σ², M_i⁻¹)  (Gaussian conditional of u_i given the data; no G⁻¹ needed).
"""

from __future__ import annotations

from scipy.stats import multivariate_normal
import numpy as np

from ...model.design import Design
from .stats import fixed_rss, level_residual_cross


def marginal_loglik(S, beta, L, sigma, q: int, p: int):
    """Pytensor expression of the Gaussian marginal log-likelihood (module docstring).

    ``S`` holds the sufficient statistics of :func:`compare_mm.backends.pymc.stats.sufficient_stats`
    (as tensors); ``L`` is the (q, q) lower Cholesky factor of G (a diagonal matrix of SDs for ``||``
    terms).  r_i'r_i and Z_i'r_i come from equation (1) of :mod:`.stats`, so no term is O(n).
    """
    import pytensor.tensor as pt  # deferred: PyTensor (PyMC stack) is heavy; imported when a model is built

    s2 = sigma**2
    delta = beta - S["b_ols"]
    rr = fixed_rss(S, delta, p)
    ztr = level_residual_cross(S, delta, q, p)
    b = [sum(ztr[a] * L[a, j] for a in range(j, q)) for j in range(q)]         # L'Z_i'r_i (L lower)

    def ztz(a: int, c: int):
        return S[f"ZtZ_{max(a, c)}_{min(a, c)}"]

    B = [[sum(L[a, j] * ztz(a, c) * L[c, k] for a in range(j, q) for c in range(k, q)) for k in range(q)]
         for j in range(q)]                                                      # L'Z_i'Z_i L
    if q == 1:
        M = 1.0 + B[0][0] / s2
        logdet = pt.log(M)
        quad = b[0] ** 2 / M
    elif q == 2:
        m00 = 1.0 + B[0][0] / s2
        m11 = 1.0 + B[1][1] / s2
        m01 = B[0][1] / s2
        det = m00 * m11 - m01**2
        logdet = pt.log(det)
        quad = (m11 * b[0] ** 2 - 2.0 * m01 * b[0] * b[1] + m00 * b[1] ** 2) / det
    else:  # pragma: no cover - guarded by the backend's option check
        raise ValueError("marginal parameterisation implemented for q <= 2")
    n = S["n_obs"]
    return -0.5 * (n * np.log(2 * np.pi) + n * pt.log(s2) + pt.sum(logdet)
                   + (rr - pt.sum(quad) / s2) / s2)


def marginal_loglik_numpy(design: Design, beta: np.ndarray, G: np.ndarray, sigma: float) -> float:
    """Dense reference: Σ_i log N(y_i; X_i β, Z_i G Z_i' + σ² I) (for tests)."""
    b = design.blocks[0]
    total = 0.0
    for i in range(b.n_levels):
        rows = b.codes == i
        Zi = b.Z[rows]
        V = Zi @ G @ Zi.T + sigma**2 * np.eye(int(rows.sum()))
        total += multivariate_normal(design.X[rows] @ beta, V).logpdf(design.y[rows])
    return float(total)


def draw_ranef(stats: dict[str, np.ndarray], beta: np.ndarray, L: np.ndarray, sigma: np.ndarray,
               rng: np.random.Generator) -> np.ndarray:
    """Draw u from its Gaussian conditional for every posterior draw (module docstring).

    Parameters
    ----------
    beta : (S, p); L : (S, q, q) lower Cholesky factors of G; sigma : (S,)

    Returns
    -------
    (S, m, q) draws of the random effects.
    """
    ztz, ztx, zte = stats["ZtZ"], stats["ZtX"], stats["Zte"]
    S, q = beta.shape[0], L.shape[-1]
    m = ztz.shape[0]
    s2 = sigma**2
    ztr = zte[None] - np.einsum("mqp,sp->smq", ztx, beta - stats["b_ols"])      # (S, m, q): Z_i'r_i
    b = np.einsum("sqk,smq->smk", L, ztr) / s2[:, None, None]                  # L'Z'r/σ²
    M = np.einsum("sqa,mqr,srb->smab", L, ztz, L) / s2[:, None, None, None] + np.eye(q)
    mean = np.linalg.solve(M, b[..., None])[..., 0]
    R = np.linalg.cholesky(M)                                                  # M = R R'
    eps = rng.standard_normal((S, m, q))
    # w = R'^{-1} eps has covariance (R R')^{-1} = M^{-1}
    w = np.linalg.solve(np.swapaxes(R, -1, -2), eps[..., None])[..., 0]
    v = mean + w
    return np.einsum("sqk,smk->smq", L, v)
