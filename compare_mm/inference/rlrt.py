"""Exact restricted likelihood-ratio test of one variance component (Crainiceanu & Ruppert 2004).

For y = Xβ + Zb + ε, b ~ N(0, σ_b² Σ), ε ~ N(0, σ² I), H₀: λ = σ_b²/σ² = 0, the RLRT statistic has the
finite-sample null distribution (Crainiceanu & Ruppert 2004, J. R. Stat. Soc. B 66, Theorem 1)

    RLRT =ᵈ sup_{λ ≥ 0} { (n − p) log(1 + N(λ)/D(λ)) − Σ_s log(1 + λ μ_s) },
    N(λ) = Σ_s λ μ_s/(1 + λ μ_s) w_s,   D(λ) = Σ_s w_s/(1 + λ μ_s) + Σ_{s=K+1}^{n−p} w_s,

with w_s iid χ²₁ and μ_s the K eigenvalues of Σ^{1/2} Z' P Z Σ^{1/2}, P = I − X(X'X)⁻¹X'.  As R's RLRsim
(``RLRTSim``, Scheipl, Greven & Küchenhoff 2008) this module normalises μ by its maximum, evaluates the
bracket on the grid λ ∈ {0} ∪ exp(seq(−10, 8, length 199)) and, moving up the grid, keeps the value at
the first local maximum (RLRsim's early stop), floored at 0.  Here the simulation is vectorised: the
N and D sums for all simulations and grid points are two matrix products.

The observed statistic is 2(ℓ_R(full) − ℓ_R(null)) = d_R(null) − d_R(full); with one variance component
the null model is the linear model.  With other variance components in the model the test uses the
null distribution of the model with only the tested component (RLRsim's ``exactRLRT(m, mA, m0)``), an
approximation.  p-value = mean(simulated > observed), as RLRsim; 1 when the observed statistic is 0.
"""

from __future__ import annotations

import numpy as np

from ..model.design import Design
from ..errors import ModelSpecError, OptionError
from ..results.schema import TestResult
from .components import Component, drop_component, find_component
from ..fitter.extended import ThetaFit, fit_design
from ..fitter.onefactor import group_sums
from ..parallel import blas_single_thread
from .lrt import lrt_statistic


def rlrt_eigenvalues(X: np.ndarray, Z: np.ndarray, sqrt_sigma: np.ndarray | None = None, *,
                     normalise: bool = True) -> np.ndarray:
    """μ_s: squared singular values of Σ^{1/2}' Z' P (P = I − X(X'X)⁻¹X'), normalised by their maximum
    (RLRsim's ``mu``; the null distribution does not depend on the scale) unless ``normalise=False``.

    Returns ``min(n, ncol(Z))`` values in decreasing order.
    """
    X = np.asarray(X, dtype=float)
    Z = np.asarray(Z, dtype=float)
    Q, _ = np.linalg.qr(X)
    R = Z - Q @ (Q.T @ Z)
    if sqrt_sigma is not None:
        R = R @ np.asarray(sqrt_sigma, dtype=float).T
    mu = np.linalg.svd(R, compute_uv=False) ** 2
    k = min(X.shape[0], Z.shape[1])
    mu = np.concatenate([mu, np.zeros(max(0, k - mu.size))])[:k]
    return mu / mu.max() if normalise else mu


def rlrt_eigenvalues_cross(ZtZ: np.ndarray, ZtX: np.ndarray, XtX: np.ndarray, *,
                           normalise: bool = True) -> np.ndarray:
    """The same μ_s from cross-products: eigenvalues of Z'PZ = Z'Z − Z'X (X'X)⁻¹ X'Z (m × m).

    Memory O(m²) instead of the O(nm) of :func:`rlrt_eigenvalues` (Σ = I; m ≤ n assumed).
    """
    M = np.asarray(ZtZ, float) - np.asarray(ZtX, float) @ np.linalg.solve(XtX, np.asarray(ZtX, float).T)
    mu = np.clip(np.linalg.eigvalsh(0.5 * (M + M.T))[::-1], 0.0, None)
    return mu / mu.max() if normalise else mu


def component_cross(design: Design, comp: Component) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(Z'Z, Z'X, X'X) for the tested effect's n × m matrix Z, computed group-wise (Z never formed)."""
    b = design.blocks[comp.block]
    z = np.asarray(b.Z, float)[:, comp.index]
    X = np.asarray(design.X, float)
    sums = group_sums(np.asarray(b.codes, dtype=np.intp), z[:, None] * np.column_stack([z, X]), b.n_levels)
    return np.diag(sums[:, 0]), sums[:, 1:], X.T @ X


def lambda_grid(gridlength: int = 200, log_grid_lo: float = -10.0, log_grid_hi: float = 8.0) -> np.ndarray:
    """RLRsim's grid for λ₀ = 0: 0 followed by ``gridlength − 1`` log-equidistant points."""
    return np.concatenate([[0.0], np.exp(np.linspace(log_grid_lo, log_grid_hi, gridlength - 1))])


def simulate_rlrt_null(mu: np.ndarray, n: int, p: int, nsim: int = 10_000, *,
                       rng: np.random.Generator | int | None = None, gridlength: int = 200,
                       log_grid_lo: float = -10.0, log_grid_hi: float = 8.0,
                       chunk: int = 4096) -> np.ndarray:
    """Draws from the exact finite-sample null distribution of the RLRT (module docstring).

    Parameters
    ----------
    mu
        Eigenvalues from :func:`rlrt_eigenvalues` (K of them).
    n, p
        Number of observations and of fixed effects.
    nsim
        Number of simulated values.
    rng
        A numpy Generator or a seed.
    chunk
        Simulations per vectorised batch (bounds memory to ``chunk × gridlength`` doubles per array).
    """
    rng = np.random.default_rng(rng)
    mu = np.asarray(mu, dtype=float)
    K = mu.size
    n0 = n - p
    df_rest = max(0, n - p - K)
    # equal eigenvalues share one χ² draw with their multiplicity as df (Σ of k iid χ²₁ is χ²_k): exact,
    # and it collapses a balanced design's K eigenvalues to two
    vals, mult = _group_equal(mu)
    lam = lambda_grid(gridlength, log_grid_lo, log_grid_hi)[1:]
    lm = lam[:, None] * vals[None, :]                        # (g−1, U)
    fN = (lm / (1.0 + lm)).T                                 # (U, g−1)
    fD = (1.0 / (1.0 + lm)).T
    sumlog = np.log1p(lm) @ mult                             # (g−1,)
    out = np.empty(nsim)
    for start in range(0, nsim, chunk):
        m = min(chunk, nsim - start)
        w = rng.chisquare(mult, size=(m, mult.size))
        rest = rng.chisquare(df_rest, size=m) if df_rest > 0 else np.zeros(m)
        N = w @ fN
        D = w @ fD + rest[:, None]
        LR = n0 * np.log1p(N / D) - sumlog                   # (m, g−1)
        prev = np.concatenate([np.zeros((m, 1)), LR[:, :-1]], axis=1)
        run = np.logical_and.accumulate(LR >= prev, axis=1)  # still climbing from the start of the grid
        last = run.sum(axis=1) - 1
        stat = np.where(last >= 0, LR[np.arange(m), np.maximum(last, 0)], 0.0)
        out[start:start + m] = np.maximum(stat, 0.0)
    return out


def _group_equal(mu: np.ndarray, tol: float = 1e-9) -> tuple[np.ndarray, np.ndarray]:
    """Distinct values of μ (within ``tol`` of the largest) and their multiplicities."""
    order = np.sort(mu)[::-1]
    vals: list[float] = []
    mult: list[int] = []
    for v in order:
        if vals and abs(vals[-1] - v) <= tol * max(1.0, abs(order[0])):
            mult[-1] += 1
        else:
            vals.append(float(v))
            mult.append(1)
    return np.asarray(vals), np.asarray(mult, dtype=float)


def component_z(design: Design, comp: Component) -> np.ndarray:
    """The n × m model matrix of the tested effect alone (one column per level)."""
    b = design.blocks[comp.block]
    Z = np.zeros((design.n, b.n_levels))
    Z[np.arange(design.n), np.asarray(b.codes)] = np.asarray(b.Z, float)[:, comp.index]
    return Z


@blas_single_thread
def exact_rlrt(design: Design, group: str | None = None, term: str | None = None, *, nsim: int = 10_000,
               seed: int | np.random.SeedSequence | None = None, full: ThetaFit | None = None,
               gridlength: int = 200) -> TestResult:
    """Exact RLRT of one variance component (RLRsim's ``exactRLRT``).

    Parameters
    ----------
    design
        The full model's design (its REML fit is computed here if ``full`` is not given).
    group, term
        The variance component tested; it must be a single variance (``(1 | g)``, ``(0 + x | g)`` or one
        effect of ``(x || g)``).
    nsim
        Number of simulations of the null distribution.
    seed
        Seed of the simulation (numpy ``default_rng``).
    full
        The full model's REML optimum, if known.

    Returns
    -------
    TestResult
        ``name="exact_rlrt"``, the observed statistic, the simulated p-value and ``nsim``.
    """
    if int(nsim) < 1:
        raise OptionError(f"The exact RLRT needs nsim ≥ 1 simulations, not {nsim}.")
    comp = find_component(design, group, term)
    if not comp.single_variance:
        raise ModelSpecError(f"The exact RLRT tests one variance, but removing {comp.term!r} from group "
                             f"{comp.group!r} also removes {comp.df - 1} covariance(s); use the χ̄² LRT.")
    full = full if full is not None and full.reml else fit_design(design, True)
    null = fit_design(drop_component(design, comp), True)
    stat = lrt_statistic(null.deviance, full.deviance)
    if stat <= 0.0:
        return TestResult("exact_rlrt", comp.group, comp.term, 0.0, 1.0, int(nsim))
    b = design.blocks[comp.block]
    if b.n_levels < design.n:
        mu = rlrt_eigenvalues_cross(*component_cross(design, comp))
    else:
        mu = rlrt_eigenvalues(design.X, component_z(design, comp))
    sim = simulate_rlrt_null(mu, design.n, design.p, int(nsim), rng=np.random.default_rng(seed),
                             gridlength=gridlength)
    return TestResult("exact_rlrt", comp.group, comp.term, float(stat), float(np.mean(stat < sim)), int(nsim))


__all__ = ["component_cross", "component_z", "exact_rlrt", "lambda_grid", "rlrt_eigenvalues",
           "rlrt_eigenvalues_cross", "simulate_rlrt_null"]
