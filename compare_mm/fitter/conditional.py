"""Everything that follows in closed form at θ̂ (Bates et al. 2015, sec. 3.5 and 5.1):

* β̂ (from the penalised cross-products), σ̂² = r²_θ / n (ML) or r²_θ / (n − p) (REML);
* vcov(β̂) = σ̂² (R_X'R_X)⁻¹ (lme4's ``vcov``);
* per term G_t = σ̂² Λ_t Λ_t' (variances, SDs, correlations);
* conditional modes b = Λ u (lme4's ``ranef``) and conditional SDs sqrt(diag(σ̂² Λ (L'L)⁻¹ Λ')) per level
  (lme4's ``condVar``, which ignores the uncertainty in β̂).

A design with centred slopes (:attr:`compare_mm.model.design.RandomBlock.shift`) is fitted on the centred
columns; the estimates are returned in the user's parameterisation by :func:`.centring.uncentre_estimates`
(the one map back), which needs the per-level conditional covariances of the centred terms.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import blocked, blocked_eval, general, onefactor, sparse
from .centring import beta_to_user, uncentre_estimates
from .theta import Layout


@dataclass(frozen=True, eq=False)
class Estimates:
    """Estimates at θ̂, per term in layout (lme4) order."""

    theta: np.ndarray
    deviance: float
    beta: np.ndarray
    vcov: np.ndarray
    sigma2: float
    covs: tuple[np.ndarray, ...]       # G_t (q_t × q_t) per term
    modes: tuple[np.ndarray, ...]      # (n_levels × q_t) conditional modes per term
    condsd: tuple[np.ndarray, ...]     # (n_levels × q_t) conditional SDs per term
    theta_fit: np.ndarray | None = None   # θ of the fitted problem when it differs from ``theta`` (centred
                                          # slopes, :mod:`.centring`); the singular rule reads it

    @property
    def singular_theta(self) -> np.ndarray:
        """The θ lme4's singular rule is applied to: the fitted problem's (``theta_fit`` or ``theta``)."""
        return self.theta if self.theta_fit is None else self.theta_fit


def _common(prof, offset: np.ndarray, layout: Layout, theta: np.ndarray, beta_map: np.ndarray | None):
    sigma2 = prof.r2 / prof.nu
    beta = prof.beta + offset
    p = beta.shape[0]
    vcov = sigma2 * np.linalg.inv(prof.M) if p else np.zeros((0, 0))
    beta, vcov = beta_to_user(beta_map, beta, vcov)             # centred X (:mod:`.centring`)
    covs = []
    for t in layout.terms:
        lam = t.factor(theta)
        covs.append(sigma2 * (lam @ lam.T))
    return sigma2, beta, vcov, tuple(covs)


def estimates_one_factor(pr: onefactor.OneFactorProblem, layout: Layout, theta: np.ndarray,
                         reml: bool) -> Estimates:
    """:class:`Estimates` on the one-factor path."""
    theta = np.asarray(theta, dtype=float)
    prof, b, P = onefactor.solution(pr, theta, reml)
    sigma2, beta, vcov, covs = _common(prof, pr.beta_offset, layout, theta, pr.beta_map)
    sd = np.sqrt(np.maximum(sigma2 * np.einsum("gaa->ga", P), 0.0))
    modes, csd = [], []
    eterm = np.array(pr.effect_term)
    for k, _ in enumerate(layout.terms):
        cols = np.flatnonzero(eterm == k)
        modes.append(b[:, cols])
        csd.append(sd[:, cols])
    est = Estimates(theta, prof.deviance, beta, vcov, sigma2, covs, tuple(modes), tuple(csd))
    condcov = {k: sigma2 * P[:, c][:, :, c] for k, c in
               ((k, np.flatnonzero(eterm == k)) for k, t in enumerate(layout.terms) if t.centred)}
    return uncentre_estimates(est, layout, condcov)


def estimates_general(pr: general.GeneralProblem | sparse.SparseProblem | blocked.BlockedProblem,
                      layout: Layout, theta: np.ndarray, reml: bool) -> Estimates:
    """:class:`Estimates` on the blocked, general (dense) or sparse path."""
    theta = np.asarray(theta, dtype=float)
    solve = (sparse.solution if isinstance(pr, sparse.SparseProblem)
             else blocked_eval.solution if isinstance(pr, blocked.BlockedProblem) else general.solution)
    prof, b, diag = solve(pr, theta, reml)
    sigma2, beta, vcov, covs = _common(prof, pr.beta_offset, layout, theta, pr.beta_map)
    sd = np.sqrt(np.maximum(sigma2 * diag, 0.0))
    modes, csd = [], []
    for t, o in zip(layout.terms, pr.offsets):
        m = t.q * t.n_levels
        modes.append(b[o:o + m].reshape(t.n_levels, t.q))
        csd.append(sd[o:o + m].reshape(t.n_levels, t.q))
    est = Estimates(theta, prof.deviance, beta, vcov, sigma2, covs, tuple(modes), tuple(csd))
    if not layout.centred:
        return est
    blocks_of = (sparse.cond_blocks if isinstance(pr, sparse.SparseProblem)
                 else blocked_eval.cond_blocks if isinstance(pr, blocked.BlockedProblem) else general.cond_blocks)
    condcov = {k: sigma2 * blocks_of(pr, theta, k, t.n_levels) for k, t in enumerate(layout.terms) if t.centred}
    return uncentre_estimates(est, layout, condcov)
