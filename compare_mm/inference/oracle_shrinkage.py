"""Oracle shrinkage of group effects: the BLUP at the true G and σ² as a linear map of per-group OLS estimates.

For one grouping factor whose random effects repeat the fixed-effects columns of their group, y_i = X_iβ +
X_iu_i + ε_i, u_i ~ N(0, G), ε_i ~ N(0, σ²I) (the one-way model: X_i = 1; the random slope: X_i = [1, x]),
group i's OLS estimate β̂_i = (X_i'X_i)⁻¹X_i'y_i satisfies d_i = β̂_i − β = u_i + e_i, e_i ~ N(0, σ²S_i⁻¹),
S_i = X_i'X_i.  Because X_i'V_i⁻¹ r = 0 for every r orthogonal to the columns of X_i (V_i = X_iGX_i' + σ²I),
the BLUP and the GLS estimate are functions of the β̂_i alone (Henderson 1975, Biometrics 31; Robinson 1991,
Statist. Sci. 6, sec. 2):

    û_i = K_i (β̂_i − β̂),   K_i = G (G + σ²S_i⁻¹)⁻¹ = G C_i⁻¹   (the oracle shrinkage matrix),
    β̂ = H Σ_i C_i⁻¹ β̂_i,   H = (Σ_i C_i⁻¹)⁻¹,

and with β known û_i = K_i(β̂_i − β) = E[u_i | β̂_i].  Its prediction error covariance is

    E[(û_i − u_i)(û_i − u_i)'] = G − G C_i⁻¹ G + G C_i⁻¹ H C_i⁻¹ G,

and the raw (no-pooling) deviations r_i = β̂_i − Σ_j c_j β̂_j (c the study's centring weights: 1/m for the
random slope, n_j/N for the one-way model, whose raw effect is ȳ_i − ȳ) have
E[(r_i − u_i)(r_i − u_i)'] from the same linear algebra.  :func:`oracle_summary` returns, per effect, the
expected values the study's shrinkage metrics estimate (:func:`compare_mm.study.summarise_groups.group_metrics`):
the pooled within-replicate slope of û on r (ratio of expectations E Σ_i r̃_ik û̃_ik / E Σ_i r̃_ik², tildes
centring over groups; = G_kk/C_kk when every group has the same design), E[mse_blup], E[mse_raw] and
their ratio — all closed forms (covariances of linear maps of independent Gaussians).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True, eq=False)
class OracleShrinkage:
    """Closed-form shrinkage at the true parameters, per effect k (arrays of length q).

    Attributes
    ----------
    K
        (m, q, q) the oracle shrinkage matrices K_i = G (G + σ²S_i⁻¹)⁻¹.
    slope
        E Σ_i r̃_ik û̃_ik / E Σ_i r̃_ik²: what the pooled ``shrinkage_factor`` estimates.
    mse_blup, mse_raw
        (1/m) Σ_i E(û_ik − u_ik)² and (1/m) Σ_i E(r_ik − u_ik)².
    """

    K: np.ndarray
    slope: np.ndarray
    mse_blup: np.ndarray
    mse_raw: np.ndarray

    @property
    def mse_ratio(self) -> np.ndarray:
        """E[mse_blup] / E[mse_raw] (what ``mse_ratio``, a ratio of means, estimates)."""
        return self.mse_blup / self.mse_raw


def shrinkage_matrices(G: np.ndarray, sigma2: float, S: np.ndarray) -> np.ndarray:
    """K_i = G (G + σ²S_i⁻¹)⁻¹ for S of shape (m, q, q) (module docstring)."""
    G = np.atleast_2d(np.asarray(G, dtype=float))
    S = np.asarray(S, dtype=float).reshape(-1, G.shape[0], G.shape[0])
    C = G[None] + float(sigma2) * np.linalg.inv(S)
    return np.swapaxes(np.linalg.solve(np.swapaxes(C, 1, 2), np.broadcast_to(G.T, C.shape)), 1, 2)


def oracle_summary(G: np.ndarray, sigma2: float, S: np.ndarray, centre=None) -> OracleShrinkage:
    """Expected shrinkage metrics at the true ``G`` and ``sigma2`` for groups with cross-products ``S``.

    Parameters
    ----------
    G
        (q, q) the true random-effects covariance.
    sigma2
        The true residual variance.
    S
        (m, q, q) the per-group X_i'X_i (one-way: the group sizes, shape (m,) or (m, 1, 1)).
    centre
        (m,) weights c_j of the raw deviations r_i = β̂_i − Σ_j c_j β̂_j (default 1/m).
    """
    G = np.atleast_2d(np.asarray(G, dtype=float))
    q = G.shape[0]
    S = np.asarray(S, dtype=float).reshape(-1, q, q)
    m = S.shape[0]
    c = np.full(m, 1.0 / m) if centre is None else np.asarray(centre, dtype=float)
    Sinv = np.linalg.inv(S)
    C = G[None] + float(sigma2) * Sinv
    Cinv = np.linalg.inv(C)
    H = np.linalg.inv(Cinv.sum(axis=0))
    K = G[None] @ Cinv
    # z = (u_1 … u_m, e_1 … e_m), independent blocks: Cov(u_i) = G, Cov(e_i) = σ²S_i⁻¹
    I_m, I_q = np.eye(m), np.eye(q)
    D = np.hstack([np.eye(m * q), np.eye(m * q)])                      # d = u + e
    A_u = np.hstack([np.eye(m * q), np.zeros((m * q, m * q))])
    W = np.hstack([H @ Cinv[j] for j in range(m)])                     # β̂ − β = W d   (q, mq)
    A_p = _blockdiag(K) @ (np.eye(m * q) - np.kron(np.ones((m, 1)), W)) @ D
    A_r = (np.eye(m * q) - np.kron(np.ones((m, 1)) @ c[None, :], I_q)) @ D
    cov_z = _blockdiag(np.concatenate([np.broadcast_to(G, (m, q, q)), float(sigma2) * Sinv]))
    J = np.kron(I_m - np.ones((m, m)) / m, I_q)                         # centring over groups
    cross = J @ A_p @ cov_z @ A_r.T @ J
    rr = J @ A_r @ cov_z @ A_r.T @ J
    eb = (A_p - A_u) @ cov_z @ (A_p - A_u).T
    er = (A_r - A_u) @ cov_z @ (A_r - A_u).T
    per = lambda M: np.diag(M).reshape(m, q).sum(axis=0)  # noqa: E731  Σ_i over the diagonal, per effect
    return OracleShrinkage(K, per(cross) / per(rr), per(eb) / m, per(er) / m)


def _blockdiag(blocks: np.ndarray) -> np.ndarray:
    k, q, _ = blocks.shape
    out = np.zeros((k * q, k * q))
    for i in range(k):
        out[i * q:(i + 1) * q, i * q:(i + 1) * q] = blocks[i]
    return out


def random_slope_oracle(x, groups: int, sigma_a2: float, sigma_b2: float, rho: float,
                        sigma_e2: float) -> OracleShrinkage:
    """:func:`oracle_summary` of the study's random-slope design: the same covariate values x in each group."""
    X = np.column_stack([np.ones(len(x)), np.asarray(x, dtype=float)])
    cab = float(rho) * np.sqrt(float(sigma_a2) * float(sigma_b2))
    G = np.array([[sigma_a2, cab], [cab, sigma_b2]], dtype=float)
    return oracle_summary(G, sigma_e2, np.broadcast_to(X.T @ X, (int(groups), 2, 2)))


def oneway_oracle(sizes, sigma_a2: float, sigma_e2: float) -> OracleShrinkage:
    """:func:`oracle_summary` of the one-way model (raw effects ȳ_i − ȳ, ȳ the mean of all observations)."""
    n = np.asarray(sizes, dtype=float)
    return oracle_summary(np.array([[float(sigma_a2)]]), sigma_e2, n, centre=n / n.sum())


__all__ = ["OracleShrinkage", "oneway_oracle", "oracle_summary", "random_slope_oracle", "shrinkage_matrices"]
