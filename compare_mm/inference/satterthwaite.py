"""Satterthwaite degrees of freedom and t-based p-values for fixed effects (lmerTest's method).

Kuznetsova, Brockhoff & Christensen (2017), J. Stat. Softw. 82(13), sec. 3.2 and lmerTest's
``calcSatterthwaite``: with the variance parameters φ = (θ, σ) and A(φ) = vcov(β̂) = σ² (R_X'R_X)⁻¹
(``get_covbeta``), for a contrast c,

    df = 2 (c'A c)² / (g' Σ_φ g),   g = ∂(c'A(φ)c)/∂φ at φ̂,   Σ_φ = 2 H⁻¹,

where H is the Hessian at φ̂ of the deviance in the (θ, σ) parameterisation (``devfun_vp``): the REML
criterion d_R(θ, σ) for REML fits, the ML deviance d(θ, σ) for ML fits (see
:mod:`compare_mm.fitter.extended`; θ in lme4 order, as in ``FitResult.theta``).  Derivatives are
Richardson-extrapolated central differences, as lmerTest's numDeriv; H is inverted on its positive
eigenvalues (lmerTest's treatment of a singular H).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..model.design import Design
from ..fitter.extended import Surface, surface
from ..parallel import blas_single_thread
from .numderiv import hessian, jacobian


@dataclass(frozen=True, eq=False)
class Satterthwaite:
    """Per fixed effect (in ``design.fixed_names`` order): estimate, SE, df, t and p."""

    names: tuple[str, ...]
    estimate: np.ndarray
    se: np.ndarray
    df: np.ndarray
    t: np.ndarray
    p_value: np.ndarray
    vcov_varpar: np.ndarray


def varpar_covariance(surf: Surface, theta: np.ndarray, sigma: float, method: str) -> np.ndarray:
    """Σ_φ = 2 H⁻¹, H the Hessian of d(θ, σ) at φ = (θ, σ), inverted on its positive eigenvalues."""
    phi = np.concatenate([np.asarray(theta, float), [float(sigma)]])
    reml = method == "REML"
    f = lambda v: surf.deviance_sigma(v[:-1], v[-1], reml)  # noqa: E731
    H = hessian(f, phi)
    w, V = np.linalg.eigh(H)
    keep = w > 1e-8 * max(1.0, float(np.max(np.abs(w))))
    Hinv = (V[:, keep] / w[keep]) @ V[:, keep].T
    return 2.0 * Hinv


@blas_single_thread
def satterthwaite(design: Design, theta: np.ndarray, sigma: float, method: str,
                  contrasts: np.ndarray | None = None) -> Satterthwaite:
    """Satterthwaite df, t statistics and two-sided p-values for each fixed effect (or contrast rows).

    Parameters
    ----------
    design
        The fitted model's design.
    theta, sigma
        The fit's θ̂ (lme4 order, as ``FitResult.theta``) and σ̂.
    method
        ``"REML"`` or ``"ML"``: which deviance's Hessian gives Σ_φ (lmerTest uses the fit's own).
    contrasts
        ``(k, p)`` rows c; default the identity (one test per fixed effect).
    """
    from scipy import stats  # deferred: scipy.stats is a heavy import that summarise/report never need
    surf = surface(design)
    # the derivatives are taken in the problem's own θ (centred slopes, compare_mm.fitter.centring): the df
    # are invariant under the reparameterisation and the numerical derivatives are well conditioned there
    theta = surf.to_fit(theta)
    surf = surf.fitted
    C = np.eye(design.p) if contrasts is None else np.atleast_2d(np.asarray(contrasts, dtype=float))
    Cf = C if design.beta_map is None else C @ design.beta_map     # c'β = c'N⁻¹β_c for a centred X
    phi = np.concatenate([theta, [float(sigma)]])
    Sigma = varpar_covariance(surf, theta, sigma, method)
    A = surf.vcov_beta(theta, sigma)
    var_c = np.einsum("kp,pr,kr->k", Cf, A, Cf)
    jac = jacobian(lambda v: np.einsum("kp,pr,kr->k", Cf, surf.vcov_beta(v[:-1], v[-1]), Cf), phi)  # (k, m)
    denom = np.einsum("km,mn,kn->k", jac, Sigma, jac)
    with np.errstate(divide="ignore", invalid="ignore"):
        df = np.where(denom > 0, 2.0 * var_c ** 2 / denom, np.inf)
    beta = surf.at(theta, method == "REML").beta
    est = Cf @ beta
    se = np.sqrt(var_c)
    t = est / se
    p = 2.0 * stats.t.sf(np.abs(t), df)
    names = tuple(design.fixed_names) if contrasts is None else tuple(f"contrast{i + 1}" for i in range(len(C)))
    return Satterthwaite(names=names, estimate=est, se=se, df=df, t=t, p_value=p, vcov_varpar=Sigma)


__all__ = ["Satterthwaite", "satterthwaite", "varpar_covariance"]
