"""Sufficient statistics of a one-term mixed model and the Gaussian log-likelihood written with them.

For one random-effects term (m levels, q effects per level) the residual of the linear model is
r = y − Xβ − Zu.  Write e = y − X b̂ for the OLS residual (b̂ = (X'X)⁻¹X'y) and δ = β − b̂; then
r = e − Xδ − Zu and, grouping the rows by level i (Z is block diagonal by level),

    r'r = e'e − 2 δ'X'e + δ'X'X δ − 2 Σ_i u_i'(Z_i'e − Z_i'X_i δ) + Σ_i u_i' Z_i'Z_i u_i,      (1)

    log p(y | β, u, σ) = −n/2 log(2π σ²) − r'r / (2σ²).                                          (2)

Equation (1) needs only e'e, X'e, X'X, and the per-level Z_i'Z_i (m, q, q), Z_i'X_i (m, q, p),
Z_i'e (m, q): one gradient of (2) costs O(m q² + m q p + p²) instead of O(n (p + q)).  Using e and δ
rather than y and β keeps every term on the scale of the residuals, so no precision is lost to
cancellation when y has a large mean (the same device as the REML fitter's OLS-residual response).
The marginal parameterisation (:mod:`.marginal`) reads the same statistics.
"""

from __future__ import annotations

import numpy as np

from ...model.design import Design


def sufficient_stats(design: Design) -> dict[str, np.ndarray]:
    """The statistics of equation (1) for the single random-effects term of ``design``.

    Returns arrays named as the model's ``pm.Data``: ``ZtZ`` (m, q, q), ``ZtX`` (m, q, p), ``Zte`` (m, q),
    ``XtX`` (p, p), ``Xte`` (p,), ``ee`` (1,), ``b_ols`` (p,), ``n_obs`` (1,).
    """
    b = design.blocks[0]
    m, q = b.n_levels, b.q
    X, y, c, Z = np.asarray(design.X, float), np.asarray(design.y, float), b.codes, np.asarray(b.Z, float)
    b_ols = np.linalg.lstsq(X, y, rcond=None)[0]
    e = y - X @ b_ols
    ztz = np.zeros((m, q, q))
    np.add.at(ztz, c, Z[:, :, None] * Z[:, None, :])
    ztx = np.zeros((m, q, design.p))
    np.add.at(ztx, c, Z[:, :, None] * X[:, None, :])
    zte = np.zeros((m, q))
    np.add.at(zte, c, Z * e[:, None])
    return {"ZtZ": ztz, "ZtX": ztx, "Zte": zte, "XtX": X.T @ X, "Xte": X.T @ e, "ee": np.array([e @ e]),
            "b_ols": b_ols, "n_obs": np.array([float(y.size)])}


def graph_stats(stats: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The statistics as the graph reads them: per-level columns (m,) and 0-d scalars.

    ``ZtZ_j_k`` = Z_i'Z_i[j, k], ``ZtX_j_l`` = Z_i'X_i[j, l], ``Zte_j`` = Z_i'e[j] (each (m,)), ``XtX``,
    ``Xte``, ``b_ols`` and the 0-d ``ee`` and ``n_obs``.  Handing the graph ready-cut columns instead of
    indexing (m, q, q) arrays inside it removes a Subtensor/DimShuffle pair per use, which under numba
    costs about as much as the arithmetic at these sizes.
    """
    m, q, p = stats["ZtX"].shape
    out = {f"ZtZ_{j}_{k}": np.ascontiguousarray(stats["ZtZ"][:, j, k]) for j in range(q) for k in range(j + 1)}
    out.update({f"ZtX_{j}_{l}": np.ascontiguousarray(stats["ZtX"][:, j, l]) for j in range(q) for l in range(p)})
    out.update({f"Zte_{j}": np.ascontiguousarray(stats["Zte"][:, j]) for j in range(q)})
    out.update(XtX=stats["XtX"], Xte=stats["Xte"], b_ols=stats["b_ols"], ee=np.asarray(stats["ee"][0]),
               n_obs=np.asarray(stats["n_obs"][0]))
    out.update({f"XtX_{j}_{k}": np.asarray(stats["XtX"][j, k]) for j in range(p) for k in range(j + 1)})
    out.update({f"Xte_{j}": np.asarray(stats["Xte"][j]) for j in range(p)})
    return out


def fixed_rss(S, delta, p: int):
    """e'e − 2δ'X'e + δ'X'Xδ = ‖y − Xβ‖² (pytensor), from equation (1) with u = 0.

    Unrolled over the 0-d entries for p ≤ 4 (a ``dot`` of tiny arrays costs more than the arithmetic)."""
    import pytensor.tensor as pt  # deferred: PyTensor (PyMC stack) is heavy; imported when a model is built

    if p > 4:
        return S["ee"] + pt.dot(delta, pt.dot(S["XtX"], delta) - 2.0 * S["Xte"])
    d = [delta[j] for j in range(p)]
    out = S["ee"]
    for j in range(p):
        out = out + d[j] * (S[f"XtX_{j}_{j}"] * d[j] - 2.0 * S[f"Xte_{j}"])
        for k in range(j):
            out = out + 2.0 * S[f"XtX_{j}_{k}"] * d[j] * d[k]
    return out


def level_residual_cross(S, delta, q: int, p: int):
    """Per-level Z_i'(y − X_i β) = Z_i'e − Z_i'X_i δ as a list of q tensors of shape (m,)."""
    out = []
    for j in range(q):
        acc = S[f"Zte_{j}"]
        for l in range(p):
            acc = acc - S[f"ZtX_{j}_{l}"] * delta[l]
        out.append(acc)
    return out


def conditional_loglik(S, beta, cols, sigma, q: int, p: int):
    """Equation (2) through (1): the log-likelihood of y given β, u (``cols[j]`` = u[:, j]) and σ."""
    import pytensor.tensor as pt  # deferred: PyTensor (PyMC stack) is heavy; imported when a model is built

    delta = beta - S["b_ols"]
    zr = level_residual_cross(S, delta, q, p)
    per_level = 0.0
    for j in range(q):
        per_level = per_level + cols[j] * (S[f"ZtZ_{j}_{j}"] * cols[j] - 2.0 * zr[j])
        for k in range(j):
            per_level = per_level + 2.0 * S[f"ZtZ_{j}_{k}"] * cols[j] * cols[k]
    rr = fixed_rss(S, delta, p) + pt.sum(per_level)
    return -0.5 * S["n_obs"] * pt.log(2.0 * np.pi * sigma**2) - 0.5 * rr / sigma**2
