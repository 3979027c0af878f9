"""The profiled ML / REML deviance from the penalised cross-product matrix.

Both paths (one grouping factor, several factors) reduce a deviance evaluation at θ to

* ``logdet`` = log|L_θ|² = log|Λ'Z'ZΛ + I| = log|I + Z D Z'| with D = ΛΛ';
* ``C`` = [X y]' V⁻¹ [X y] with V = I + Z D Z' (the σ²-free marginal covariance), i.e. the Schur
  complement left after eliminating u in the penalised least-squares system (Bates et al. 2015, eq. 18):
  C[:p, :p] = R_X'R_X, β̂ = C[:p, :p]⁻¹ C[:p, p], r²_θ = C[p, p] − C[p, :p] β̂.

Then (Bates et al. 2015, eqs. 34 and 41)

    ML:    d(θ)   = log|L_θ|² + n (1 + log(2π r²_θ / n))
    REML:  d_R(θ) = log|L_θ|² + log|R_X|² + (n − p)(1 + log(2π r²_θ / (n − p))).

For the gradient every path needs ∂d/∂D = Σ Z'V⁻¹Z − Σ U N U' where U = Z'V⁻¹[X y] (per group or in
total) and N is the (p+1) × (p+1) matrix returned by :func:`profiled` (envelope theorem: β̂ minimises r²):

    N = (ν / r²) w w'  with w = (−β̂, 1)   [+ blockdiag(M⁻¹, 0) for REML, M = R_X'R_X],

so that U N U' = (ν/r²) Z'V⁻¹e e'V⁻¹Z [+ Z'V⁻¹X M⁻¹ X'V⁻¹Z].

The several-factor paths form C from the penalised residuals (:func:`residual_products`), not as the
difference [X y]'[X y] − (L⁻¹Λ'Z'[X y])'(L⁻¹Λ'Z'[X y]), which cancels every digit r²_θ has below
[X y]'[X y] (at σ_A/σ = 10⁶ about 12 of 16).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np
from scipy.linalg.lapack import dpotrf, dpotri

LOG_2PI = math.log(2.0 * math.pi)


@functools.lru_cache(maxsize=64)
def _upper(k: int) -> tuple[np.ndarray, np.ndarray]:
    return np.triu_indices(k, 1)


def residual_products(XY: np.ndarray, Z, lam_ut: np.ndarray, Ut: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """C = [X y]'V⁻¹[X y] from the penalised least-squares solutions, and the residuals R = V⁻¹[X y].

    With Ũ = A⁻¹Λ'Z'[X y] (A = Λ'Z'ZΛ + I; column by column the minimiser of ‖a − ZΛu‖² + ‖u‖²) the
    residuals are R = [X y] − ZΛŨ = V⁻¹[X y] (Woodbury, V = I + ZΛΛ'Z') and

        C = R'R + Ũ'Ũ,

    so C[p, p] − C[p, :p]β̂ is lme4's penalised residual sum of squares ‖y − Xβ̂ − ZΛû‖² + ‖û‖²
    (Bates et al. 2015, J. Stat. Softw. 67(1), eqs. 14–18: lme4 computes r²_θ from the residuals).  A sum
    of positive semi-definite terms, nothing cancels; and each entry is stationary in Ũ at the exact
    solution (the normal equations Λ'Z'R = Ũ), so an error δ in Ũ changes C only by δ'Aδ.  Also
    Z'V⁻¹[X y] = Z'R (the gradient's U) and Λ'Z'R = Ũ.

    ``XY`` is n × (p+1), ``Z`` sparse n × q_tot, ``Ut`` = Ũ (q_tot × (p+1)) and ``lam_ut`` = Λ_θŨ.
    """
    R = XY - Z @ lam_ut
    return R.T @ R + Ut.T @ Ut, R


@dataclass(frozen=True, eq=False)
class Profiled:
    """The profiled quantities at one θ (``M`` = R_X'R_X = X'V⁻¹X, ``N`` see module docstring)."""

    deviance: float
    beta: np.ndarray
    r2: float
    nu: float
    M: np.ndarray
    N: np.ndarray | None


def profiled(logdet: float, C: np.ndarray, n: int, p: int, reml: bool, want_n: bool) -> Profiled:
    """Deviance, β̂, r² (and the gradient weight matrix N) from ``logdet`` and ``C`` (module docstring).

    One Cholesky factorisation C = LL' gives L[:p, :p] = R_X', r² = L[p, p]² and, with C⁻¹ (LAPACK
    ``dpotri``), w = (−β̂, 1) = r² C⁻¹[:, p] and C⁻¹ = ww'/r² + blockdiag(M⁻¹, 0), so that
    N = ν ww'/r² (ML) and N = C⁻¹ + (ν − 1) ww'/r² (REML).
    """
    nu = float(n - p) if reml else float(n)
    M = C[:p, :p]
    L, info = dpotrf(C, lower=1, clean=0)
    if info != 0 or not math.isfinite(logdet):
        return Profiled(math.inf, np.full(p, np.nan), math.nan, nu, M, None)
    dg = L.diagonal()
    r2 = float(dg[p]) ** 2
    if not r2 > 0.0:
        return Profiled(math.inf, np.full(p, np.nan), r2, nu, M, None)
    dev = logdet + nu * (1.0 + LOG_2PI + math.log(r2 / nu))
    if reml and p:
        dev += 2.0 * float(np.log(dg[:p]).sum())
    Ci, info = dpotri(L, lower=1)
    iu = _upper(p + 1)
    Ci[iu] = Ci.T[iu]
    w = r2 * Ci[:, p]
    beta = -w[:p]
    N = None
    if want_n:
        if reml:
            N = Ci + ((nu - 1.0) / r2) * np.outer(w, w)
        else:
            N = (nu / r2) * np.outer(w, w)
    return Profiled(float(dev), beta, r2, nu, M, N)

