"""Posterior means and SDs of the group effects u of a one-factor quadrature fit, summed per design pattern.

Given ψ, equation (2) of :mod:`.quadrature_model` makes u_i Gaussian with (Λ lower triangular,
D = σ²I_Q + Λ'Z_i'Z_iΛ, B = L₀X_i'Z_iΛ, ŵ the conditional mean of the whitened β, t_i = Z_i'r₀)

    E[u_i | ψ, y] = M t_i − N,   M = ΛD⁻¹Λ',  N = ΛD⁻¹B'ŵ,
    Var[u_i | ψ, y] = σ² Λ (D⁻¹ + E S⁻¹ E') Λ',  E = D⁻¹B'  (S the p × p Schur complement),

and M, N and the variance depend on the level only through its pattern (Z_i'Z_i, Z_i'X_i) of
:func:`.quadrature_model.patterns`.  The mixture over the grid's weights w_j therefore needs only the
per-pattern sums Σ w M, Σ w N, Σ w M_a M_a', Σ w N_a M_a, Σ w N_a², Σ w Var_a (row a of M: M_a); the
moments of level i follow from them and t_i by the law of total variance,

    E[u_ia] = (Σ w M_a)'t_i − Σ w N_a,
    E[u_ia²] = t_i'(Σ w M_aM_a')t_i − 2 (Σ w N_aM_a)'t_i + Σ w N_a² + Σ w Var_a,

at cost O(P · U) instead of O(P · G) (U = 1 in a balanced design).  Exact: the same sums as evaluating
(2) level by level and averaging (quadrature_summary.group_effects' mixture), reordered.
"""

from __future__ import annotations

import numpy as np

from .quadrature_model import CHUNK, QuadProblem, _conditional_patterns, patterns


def _pattern_sums(pb: QuadProblem, sds: np.ndarray, rho: np.ndarray | None, sigma: np.ndarray,
                  w: np.ndarray) -> dict[str, np.ndarray]:
    """The weighted per-pattern sums of the module docstring at P points (weights w, summing to 1)."""
    _, pt = _conditional_patterns(pb, sds, rho, sigma, parts=True)
    lam, Di, BD, B, Sinv, what, s2 = (pt[k] for k in ("lam", "Di", "BD", "B", "Sinv", "what", "s2"))
    Q, p = pb.Q, pb.p
    R = range(Q)
    la = [[lam[:, a, b][:, None] for b in R] for a in R]
    Bw = [sum(B[j][a] * what[:, j:j + 1] for j in range(p)) for a in R]
    vN = [sum(Di[a][b] * Bw[b] for b in R) for a in R]
    K = [[sum(Di[b][e] * la[c][e] for e in R) for c in R] for b in R]            # D⁻¹Λ'
    M = [[sum(la[a][b] * K[b][c] for b in R) for c in R] for a in R]
    N = [sum(la[a][b] * vN[b] for b in R) for a in R]
    Vv = [[Di[a][b] + sum(BD[j][a] * Sinv[:, j, k][:, None] * BD[k][b] for j in range(p) for k in range(p))
           for b in R] for a in R]
    Vu = [s2[:, None] * sum(la[a][b] * la[a][c] * Vv[b][c] for b in R for c in R) for a in R]
    ws = w[:, None]
    return {"M": np.array([[(ws * M[a][c]).sum(0) for c in R] for a in R]),             # (Q, Q, U)
            "N": np.array([(ws * N[a]).sum(0) for a in R]),                             # (Q, U)
            "MM": np.array([[[(ws * M[a][b] * M[a][c]).sum(0) for c in R] for b in R] for a in R]),
            "NM": np.array([[(ws * N[a] * M[a][b]).sum(0) for b in R] for a in R]),
            "NN": np.array([(ws * N[a] * N[a]).sum(0) for a in R]),
            "V": np.array([(ws * Vu[a]).sum(0) for a in R])}


def group_moments(pb: QuadProblem, sds: np.ndarray, rho: np.ndarray | None, sigma: np.ndarray,
                  w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Posterior means and SDs of u (G, Q) under the mixture Σ_j w_j p(u | ψ_j, y) (module docstring);
    ``pb.kind == "one"``; evaluated in chunks of ``CHUNK`` points."""
    tot: dict[str, np.ndarray] = {}
    for i in range(0, sigma.size, CHUNK):
        sl = slice(i, i + CHUNK)
        part = _pattern_sums(pb, sds[sl], None if rho is None else rho[sl], sigma[sl], w[sl])
        tot = part if not tot else {k: tot[k] + v for k, v in part.items()}
    lev = patterns(pb).level
    t = pb.Ztr                                                                     # (G, Q)
    M, N = tot["M"][..., lev], tot["N"][:, lev]                                     # (Q, Q, G), (Q, G)
    mean = np.einsum("abg,gb->ga", M, t) - N.T
    second = (np.einsum("abcg,gb,gc->ga", tot["MM"][..., lev], t, t)
              - 2 * np.einsum("abg,gb->ga", tot["NM"][..., lev], t) + (tot["NN"] + tot["V"])[:, lev].T)
    return mean, np.sqrt(np.maximum(second - mean * mean, 0.0))
