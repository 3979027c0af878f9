"""Random effects and θ of a statsmodels MixedLM fit, in lme4's conventions.

- :func:`lme4_theta`: θ with G_term = σ² Λ Λ' (Bates et al. 2015, sec. 2.2), Λ lower triangular,
  packed column by column per term (lme4's order), from statsmodels' covariance estimates.
- :func:`ranef_rows`: conditional modes E[u | y] = B A' V⁻¹ (y − Xβ̂) and conditional covariances
  Var[u | y] = B − B A' V⁻¹ A B per cluster (V = σ²I + A B A', A = [exog_re, exog_vc], B their
  covariance), as statsmodels' ``random_effects`` / ``random_effects_cov`` compute them; evaluated
  directly (:func:`direct_conditional`) when statsmodels refuses because ``cov_re`` is singular.
"""

from __future__ import annotations

import math

import numpy as np

from ...model.design import Design
from ...results.schema import RanefRow
from .layout import MixedLMLayout


def psd_cholesky(a: np.ndarray, tol: float = 1e-12) -> np.ndarray:
    """Lower-triangular L with L L' = a for a positive semi-definite ``a`` (zero pivots give zero columns)."""
    a = np.array(a, dtype=float)
    q = a.shape[0]
    L = np.zeros_like(a)
    scale = max(float(np.max(np.abs(np.diagonal(a)))) if q else 0.0, np.finfo(float).tiny)
    for j in range(q):
        d = a[j, j] - L[j, :j] @ L[j, :j]
        if d <= tol * scale:
            continue
        L[j, j] = math.sqrt(d)
        for i in range(j + 1, q):
            L[i, j] = (a[i, j] - L[i, :j] @ L[j, :j]) / L[j, j]
    return L


def lme4_order(design: Design) -> list[int]:
    """Block indices in lme4's term order: decreasing number of levels, ties in formula order (mkReTrms)."""
    return sorted(range(len(design.blocks)), key=lambda i: -design.blocks[i].n_levels)


def lme4_theta(design: Design, covs: list[np.ndarray], sigma2: float) -> list[tuple[float, bool]]:
    """lme4's θ as ``(value, is_diagonal_element)`` pairs, term by term in :func:`lme4_order`."""
    out: list[tuple[float, bool]] = []
    for i in lme4_order(design):
        b, g = design.blocks[i], covs[i]
        rel = np.asarray(g, dtype=float) / sigma2
        if b.covariance == "diagonal":
            out.extend((math.sqrt(max(v, 0.0)), True) for v in np.diagonal(rel))
            continue
        if not np.all(np.isfinite(rel)):
            out.extend((math.nan, i == j) for j in range(b.q) for i in range(j, b.q))
            continue
        L = psd_cholesky(rel)
        out.extend((float(L[i, j]), i == j) for j in range(b.q) for i in range(j, b.q))
    return out


def _cluster_rows(layout: MixedLMLayout) -> tuple[np.ndarray, list[np.ndarray]]:
    clusters = np.unique(layout.groups)
    return clusters, [np.flatnonzero(layout.groups == c) for c in clusters]


def direct_conditional(design: Design, layout: MixedLMLayout, fe: np.ndarray, cov_re: np.ndarray, vcomp: np.ndarray,
                       sigma2: float) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Per cluster, E[u | y] and Var[u | y] at the given estimates (module docstring formulas)."""
    clusters, rows = _cluster_rows(layout)
    resid = design.y - design.X @ fe
    modes, covs = [], []
    for i, r in enumerate(rows):
        parts = [] if layout.exog_re is None else [layout.exog_re[r]]
        dvc = []
        for k in range(len(layout.vc_effects)):
            m = layout.exog_vc.mats[k][i]
            parts.append(m)
            dvc.extend([vcomp[k]] * m.shape[1])
        A = np.hstack(parts) if parts else np.zeros((len(r), 0))
        k_re = 0 if layout.exog_re is None else layout.exog_re.shape[1]
        B = np.zeros((A.shape[1], A.shape[1]))
        B[:k_re, :k_re] = cov_re
        B[np.arange(k_re, A.shape[1]), np.arange(k_re, A.shape[1])] = dvc
        BA = B @ A.T
        V = sigma2 * np.eye(len(r)) + A @ BA
        modes.append(BA @ np.linalg.solve(V, resid[r]))
        covs.append(B - BA @ np.linalg.solve(V, BA.T))
    return modes, covs


def _statsmodels_conditional(layout: MixedLMLayout, res) -> tuple[list[np.ndarray], list[np.ndarray]]:
    clusters, _ = _cluster_rows(layout)
    re, rc = res.random_effects, res.random_effects_cov
    modes = [np.asarray(re[c], dtype=float) for c in clusters]
    covs = [np.asarray(rc[c], dtype=float) for c in clusters]
    return modes, covs


def ranef_rows(design: Design, layout: MixedLMLayout, res) -> tuple[list[RanefRow], str | None]:
    """Conditional modes and SDs in lme4's order (term as :func:`lme4_order`, effect, level) and a note."""
    note = None
    try:
        modes, covs = _statsmodels_conditional(layout, res)
        if not all(np.all(np.isfinite(m)) for m in modes):
            raise ValueError("non-finite random effects")
    except (ValueError, np.linalg.LinAlgError) as exc:
        note = (f"compare_mm: statsmodels could not compute the random effects ({exc}); conditional modes "
                f"and SDs were computed directly from its estimates.")
        k = len(layout.re_effects)
        cov_re = np.asarray(res.cov_re, dtype=float).reshape(k, k)
        modes, covs = direct_conditional(design, layout, np.asarray(res.fe_params, dtype=float), cov_re,
                                         np.asarray(res.vcomp, dtype=float).reshape(-1), float(res.scale))
    value = [np.full((b.n_levels, b.q), np.nan) for b in design.blocks]
    condsd = [np.full((b.n_levels, b.q), np.nan) for b in design.blocks]
    clusters, _ = _cluster_rows(layout)
    k_re = len(layout.re_effects)
    for i, c in enumerate(clusters):
        m, v = modes[i], np.sqrt(np.maximum(np.diagonal(covs[i]), 0.0))
        for j, e in enumerate(layout.re_effects):  # the cluster is the level of every cluster-factor term
            value[e.block][c, e.index], condsd[e.block][c, e.index] = m[j], v[j]
        pos = k_re
        for k, e in enumerate(layout.vc_effects):
            lev = layout.vc_levels[k][i]
            value[e.block][lev, e.index] = m[pos:pos + len(lev)]
            condsd[e.block][lev, e.index] = v[pos:pos + len(lev)]
            pos += len(lev)
    rows: list[RanefRow] = []
    for i in lme4_order(design):
        b, val, sd = design.blocks[i], value[i], condsd[i]
        for j, name in enumerate(b.term_names):
            rows.extend(RanefRow(b.group, str(b.levels[g]), name, float(val[g, j]), float(sd[g, j]))
                        for g in range(b.n_levels))
    return rows, note
