"""Internal centring of correlated random slopes and the exact map back to the user's parameterisation.

An unstructured term whose first column is the intercept, Z = [1, x_1, …], is fitted on the centred
columns Z_c = [1, x_1 − c_1, …] (c_e the mean of x_e; :attr:`compare_mm.model.design.RandomBlock.shift`).
With M = I + e_1 c' (c = (0, c_1, …)):

    Z b = Z_c (M b),   so   b_c = M b,   Σ_c = M Σ M',   Σ = M⁻¹ Σ_c M⁻ᵀ,   M⁻¹ = I − e_1 c'.      (1)

The likelihood is the same function of the model; only the coordinates of the random effects move.  The
fixed-effects columns far from 0 of such a design are centred too (X = X_c N, N = I + e_0 m', det N = 1,
:attr:`compare_mm.model.design.Design.x_shift`): β = N⁻¹ β_c, vcov(β̂) = N⁻¹ V_c N⁻ᵀ (:func:`beta_to_user`),
the criterion (REML's log|X'V⁻¹X| included) and σ unchanged.  With x far from 0 the user's
intercept and slope are nearly collinear and the optimum in the user's θ has |ρ| near 1, where the
optimiser and the boundary rule lose digits; in the centred coordinates the problem is well conditioned.

The map back, per centred term, from the fit's relative factor Λ_c (Σ_c = σ² Λ_c Λ_c'):

    Λ = lower(M⁻¹ Λ_c),   lower(A) = R'  with  A' = QR  (so ΛΛ' = AA', Λ lower triangular, Λ_ii ≥ 0),  (2)

the BLUPs b = M⁻¹ b_c and their conditional covariance M⁻¹ V_c M⁻ᵀ (lme4's condVar).  (2) by a QR
factorisation, not a Cholesky of the product, keeps an exactly singular Λ_c singular: a zero last column
of Λ_c is a zero last row of A', which Householder QR leaves exactly zero.  The singular flag of a fit is
the one of Λ_c (:func:`compare_mm.fitter.optimize.is_singular` on the fit's own θ): in the user's
coordinates a far-from-0 x makes Λ_22 small without any boundary being reached.  The inverse map,
Λ_c = lower(M Λ), takes the user's θ (``FitResult.theta``) to the problems' θ
(:meth:`compare_mm.fitter.extended.Surface.at` and the other methods taking a user's θ).

Every function works on stacks (leading axes are replicates) and is pure.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from .theta import Layout, Term


def shift_matrix(shift: np.ndarray, inverse: bool = False) -> np.ndarray:
    """M = I + e_1 c' of equation (1), or M⁻¹ = I − e_1 c' with ``inverse`` (c = ``shift``, c_1 = 0)."""
    c = np.asarray(shift, dtype=float)
    M = np.eye(c.shape[0])
    M[0, 1:] = -c[1:] if inverse else c[1:]
    return M


def lower_factor(A: np.ndarray) -> np.ndarray:
    """Equation (2): the lower-triangular L with LL' = AA' and a non-negative diagonal, for a stack of
    square A (..., q, q), by the QR factorisation of A' (rows that are exactly zero stay zero)."""
    A = np.asarray(A, dtype=float)
    R = np.linalg.qr(np.swapaxes(A, -1, -2), mode="r")
    L = np.swapaxes(R, -1, -2)
    s = np.sign(np.diagonal(L, axis1=-2, axis2=-1))
    s = np.where(s == 0.0, 1.0, s)
    return L * s[..., None, :]


def _term_factor(t: Term, theta: np.ndarray) -> np.ndarray:
    lam = np.zeros(theta.shape[:-1] + (t.q, t.q))
    lam[..., t.rows, t.cols] = theta[..., t.start:t.stop]
    return lam


def _map_theta(layout: Layout, theta: np.ndarray, inverse: bool) -> np.ndarray:
    theta = np.array(theta, dtype=float, copy=True)
    if not layout.centred:
        return theta
    flat = theta.reshape(-1, theta.shape[-1])
    ok = np.all(np.isfinite(flat), axis=1)
    for t in layout.terms:
        if not t.centred or not ok.any():
            continue
        lam = lower_factor(shift_matrix(t.shift, inverse) @ _term_factor(t, flat[ok]))
        flat[np.ix_(ok, np.arange(t.start, t.stop))] = lam[..., t.rows, t.cols]
    return flat.reshape(theta.shape)


def theta_to_user(layout: Layout, theta: np.ndarray) -> np.ndarray:
    """θ of the fitted (centred) problem → the user's θ (lme4 order; equation (2) per centred term).
    Rows with a non-finite entry are returned unchanged."""
    return _map_theta(layout, theta, inverse=True)


def theta_to_fit(layout: Layout, theta: np.ndarray) -> np.ndarray:
    """The user's θ → θ of the fitted (centred) problem: Λ_c = lower(M Λ) per centred term."""
    return _map_theta(layout, theta, inverse=False)


def covariance_to_user(shift: np.ndarray, G: np.ndarray) -> np.ndarray:
    """Σ = M⁻¹ Σ_c M⁻ᵀ (equation (1)) for a stack of q × q covariances (G_t, or per-level condVar)."""
    Mi = shift_matrix(shift, inverse=True)
    return Mi @ np.asarray(G, dtype=float) @ Mi.T


def modes_to_user(shift: np.ndarray, b: np.ndarray) -> np.ndarray:
    """b = M⁻¹ b_c for a stack of (…, levels, q) conditional modes."""
    return np.asarray(b, dtype=float) @ shift_matrix(shift, inverse=True).T


def condsd(V: np.ndarray) -> np.ndarray:
    """Conditional SDs sqrt(diag V) of a stack of per-level conditional covariances (…, q, q)."""
    return np.sqrt(np.maximum(np.diagonal(V, axis1=-2, axis2=-1), 0.0))


def beta_to_user(beta_map: np.ndarray | None, beta: np.ndarray, vcov: np.ndarray | None = None):
    """(β, vcov(β̂)) = (N⁻¹ β_c, N⁻¹ V_c N⁻ᵀ) for the fixed effects of a centred X
    (:attr:`compare_mm.model.design.Design.beta_map` = N⁻¹; stacks over leading axes); unchanged when
    ``beta_map`` is None."""
    if beta_map is None:
        return beta, vcov
    B = np.asarray(beta_map, dtype=float)
    b = np.asarray(beta, dtype=float) @ B.T
    return b, (None if vcov is None else B @ np.asarray(vcov, dtype=float) @ B.T)


def uncentre_estimates(est, layout: Layout, condcov: dict[int, np.ndarray]):
    """The :class:`.conditional.Estimates` of a fit on centred columns — or the
    :class:`.batch_fit.BatchArrays` of a batch, the same fields stacked over replicates — in the user's
    parameterisation:
    θ by (2), G_t and the BLUPs by (1), the conditional SDs from ``condcov`` (term index → the fit's
    per-level conditional covariances σ̂² V_c, (levels, q, q)); β, vcov, σ² and the deviance unchanged;
    ``theta_fit`` keeps the fit's own θ (the singular rule reads it)."""
    if not layout.centred:
        return est
    covs, modes, csd = list(est.covs), list(est.modes), list(est.condsd)
    for k, t in enumerate(layout.terms):
        if t.centred:
            covs[k] = covariance_to_user(t.shift, covs[k])
            modes[k] = modes_to_user(t.shift, modes[k])
            csd[k] = condsd(covariance_to_user(t.shift, condcov[k]))
    return replace(est, theta=theta_to_user(layout, est.theta), theta_fit=np.asarray(est.theta, dtype=float),
                   covs=tuple(covs), modes=tuple(modes), condsd=tuple(csd))


__all__ = ["beta_to_user", "condsd", "covariance_to_user", "lower_factor", "modes_to_user", "shift_matrix", "theta_to_fit",
           "theta_to_user", "uncentre_estimates"]
