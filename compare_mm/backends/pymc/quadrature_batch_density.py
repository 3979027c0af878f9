"""The batched one-way quadrature's density: log f(ψ | y) and β, u | ψ, y of R responses on their nodes.

For ``y ~ x… + (1 | g)`` (one scalar random term, ψ = (σ_A, σ)) everything that does not depend on y —
X, the level codes, the per-level cross-products Z_i'Z_i, Z_i'X_i, X'X of equation (1) of
:mod:`.quadrature_model`, pooled over the U levels that share Z_i'Z_i — is built once per design
(:func:`design_static`); the per-replicate statistics (data scales, Z_i'r₀, X'r₀, r₀'r₀) once per block of
responses (:func:`response_data`).  :func:`log_f` is the log posterior density of ψ in the η coordinates of
:mod:`.quadrature` on (replicates × nodes) at once (:func:`_conditional`: equations (1)–(2)), and
:func:`group_effects` the posterior moments of u as weighted sums over the nodes.  Used by
:class:`.quadrature_batch.PreparedQuadrature`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ...model.design import Design
from .priors import Prior, PriorSet
from .quadrature import LOG_FAMILIES, axis_log_slope, axis_value
from .quadrature_model import LOG_2PI, _inv_logdet, log_sd_prior
from .quadrature_weights import axis_tilt


@dataclass(frozen=True)
class _Static:
    """The y-independent parts of equation (1) for one scalar term: X, Z's columns by level, X'X,
    Z_i'Z_i (G,), Z_i'X_i (G, p), and the data scales of the priors per unit sd(y)."""

    X: np.ndarray
    Zg: np.ndarray         # (n, G): z_j in column code_j
    XtX: np.ndarray
    ZtZ: np.ndarray
    ZtX: np.ndarray
    sd_unit: np.ndarray    # data scale of the SD / sd(y)
    fx_unit: np.ndarray    # data scale of each β_j / sd(y)
    fx_ybar: np.ndarray    # True where the default location of β_j is ȳ (the intercept)
    z2: np.ndarray         # (U,) the distinct values of Z_i'Z_i (U = 1 when balanced)
    kind: np.ndarray       # (G,) which of them level i has
    count: np.ndarray      # (U,) levels per distinct value
    XX: np.ndarray         # (U, p, p) Σ_{i: kind u} (Z_i'X_i)'(Z_i'X_i)


def design_static(design: Design) -> _Static:
    b = design.blocks[0]
    X = np.asarray(design.X, float)
    z = np.asarray(b.Z[:, 0], float)
    Zg = np.zeros((design.n, b.n_levels))
    Zg[np.arange(design.n), b.codes] = z
    sz = float(np.std(z, ddof=1)) if z.size > 1 else 0.0
    sd_unit = np.array([1.0 / sz if sz > 1e-12 * max(1.0, float(np.abs(z).max())) else 1.0])
    fx_unit, fx_ybar = [], []
    for j in range(design.p):
        col = X[:, j]
        sx = float(np.std(col, ddof=1)) if col.size > 1 else 0.0
        const = sx <= 1e-12 * max(1.0, float(np.abs(col).max()))
        fx_unit.append(1.0 if const else 1.0 / sx)
        fx_ybar.append(bool(const and np.allclose(col, 1.0)))
    ztz, ztx = (Zg * Zg).sum(0), Zg.T @ X
    z2, kind = np.unique(ztz, return_inverse=True)
    XX = np.zeros((z2.size, X.shape[1], X.shape[1]))
    np.add.at(XX, kind, ztx[:, :, None] * ztx[:, None, :])
    return _Static(X, Zg, X.T @ X, ztz, ztx, sd_unit, np.array(fx_unit), np.array(fx_ybar, bool), z2, kind,
                   np.bincount(kind, minlength=z2.size).astype(float), XX)


def _eff(p: Prior, s: np.ndarray) -> np.ndarray:
    """The numeric scale of prior ``p`` for data scales ``s`` (priors.prior_arrays, vectorised)."""
    if not p.autoscale:
        return np.full(s.shape, float(p.scale))
    return p.scale * (s * s if p.family == "inverse_gamma" else s)


@dataclass
class _Data:
    """Per-replicate statistics of a block of responses (leading axis R)."""

    rr: np.ndarray
    Xtr: np.ndarray        # (R, p)
    Ztr: np.ndarray        # (R, G)
    T2: np.ndarray         # (R, U) Σ_{i: kind u} (Z_i'r₀)²
    XT: np.ndarray         # (R, U, p) Σ_{i: kind u} (Z_i'X_i) Z_i'r₀
    m0: np.ndarray         # (R, p)
    s0: np.ndarray         # (R, p)
    sd_scale: np.ndarray   # (R,) the SD prior's scale
    sigma_scale: np.ndarray
    c: np.ndarray          # (R, 2) coordinate scales of η_A, η_σ
    ds_sd: np.ndarray      # (R,) data scale of σ_A (priors.data_scales)
    ds_sigma: np.ndarray   # (R,) sd(y) (or 1)
    ds_fx: np.ndarray      # (R, p) data scales of β
    ds_loc: np.ndarray     # (R, p) default locations of β (ȳ for the intercept, else 0)

    def take(self, idx: np.ndarray) -> "_Data":
        return _Data(*(getattr(self, f)[idx] for f in self.__dataclass_fields__))


def response_data(st: _Static, priors: PriorSet, Y: np.ndarray) -> _Data:
    """Data scales (priors.data_scales: sd(y) or 1, ȳ) and the sufficient statistics of (1), per row of Y."""
    sy = np.std(Y, axis=1, ddof=1) if Y.shape[1] > 1 else np.zeros(Y.shape[0])
    sy = np.where(sy == 0.0, 1.0, sy)
    ybar = Y.mean(axis=1)
    sd_ds = sy * st.sd_unit[0]
    fx_ds = sy[:, None] * st.fx_unit[None, :]
    ds_loc = np.stack([ybar if yb else np.zeros(Y.shape[0]) for yb in st.fx_ybar], axis=1)
    loc = np.stack([np.full(Y.shape[0], p.loc) if p.loc is not None else ds_loc[:, j]
                    for j, p in enumerate(priors.fixef)], axis=1)
    s0 = np.stack([_eff(p, fx_ds[:, j]) for j, p in enumerate(priors.fixef)], axis=1)
    r = Y - loc @ st.X.T
    ztr = r @ st.Zg
    U = st.z2.size
    T2 = np.zeros((Y.shape[0], U))
    XT = np.zeros((Y.shape[0], U, st.XtX.shape[0]))
    for u in range(U):
        sel = st.kind == u
        T2[:, u] = (ztr[:, sel] ** 2).sum(1)
        XT[:, u] = ztr[:, sel] @ st.ZtX[sel]
    return _Data(rr=np.einsum("rn,rn->r", r, r), Xtr=r @ st.X, Ztr=ztr, T2=T2, XT=XT, m0=loc, s0=s0,
                 sd_scale=_eff(priors.sd[0], sd_ds), sigma_scale=_eff(priors.sigma, sy),
                 c=np.stack([0.25 * sd_ds, 0.25 * sy], axis=1), ds_sd=sd_ds, ds_sigma=sy, ds_fx=fx_ds,
                 ds_loc=ds_loc)


def describe_replicate(priors: PriorSet, design: Design, D: _Data, i: int) -> dict[str, str]:
    """priors.describe_priors for row i, from the data scales already computed (one scalar term)."""
    out: dict[str, str] = {}
    for j, (name, p) in enumerate(zip(priors.fixef_names, priors.fixef)):
        out[name] = p.describe(float(D.ds_fx[i, j]), loc=p.loc if p.loc is not None else float(D.ds_loc[i, j]))
    name, p = priors.sd_names[0], priors.sd[0]
    out[name.replace("sd_", "var_", 1) if p.family == "inverse_gamma" else name] = p.describe(float(D.ds_sd[i]))
    out["sigma2" if priors.sigma.family == "inverse_gamma" else "sigma"] = priors.sigma.describe(float(D.ds_sigma[i]))
    return out


# ------------------------------------------------------------------------------------------ density
def _conditional(st: _Static, n: int, D: _Data, sa: np.ndarray, sig: np.ndarray, want: bool):
    """Equation (1) (and with ``want`` the moments (2) of β | ψ, y) for Q = 1, at points (R, P).

    With l = σ_A, x_i = Z_i'X_i, t_i = Z_i'r₀ and D_i = l² Z_i'Z_i + σ² (equal for levels of equal
    Z_i'Z_i, so every sum over levels is a sum over the U distinct values; U = 1 when balanced):
    S = σ²I + L₀X'XL₀ − l² L₀(Σ_i x_ix_i'/D_i)L₀, c = L₀X'r₀ − l² L₀ Σ_i x_it_i/D_i,
    log p(y | ψ) = −½[n log 2π + (n − K) log σ² + Σ log D_i + log det S + (r₀'r₀ − l² Σ t_i²/D_i − c'S⁻¹c)/σ²],
    β | ψ, y ~ N(m₀ + L₀S⁻¹c, σ² L₀S⁻¹L₀).  Returns loglik, or (loglik, β means, β variances, S⁻¹, 1/D).
    """
    p = st.XtX.shape[0]
    G = st.ZtZ.size
    s2 = sig * sig
    l2 = (sa * sa)[..., None]
    Dm = st.z2 * l2 + s2[..., None]                                           # (R, P, U)
    Di = 1.0 / Dm
    s0 = D.s0[:, None, :]                                                     # (R, 1, p)
    A = D.s0[:, :, None] * st.XtX[None] * D.s0[:, None, :]                  # (R, p, p)
    S = A[:, None] - np.einsum("rpu,ujk->rpjk", l2 * Di, st.XX) * (s0[..., :, None] * s0[..., None, :])
    S[..., np.arange(p), np.arange(p)] += s2[..., None]
    c = s0 * (D.Xtr[:, None, :] - np.einsum("rpu,ruj->rpj", l2 * Di, D.XT))
    Sinv, Sld = _inv_logdet(S)
    what = np.einsum("rpab,rpb->rpa", Sinv, c)
    quad = (l2[..., 0] * np.einsum("rpu,ru->rp", Di, D.T2)) + np.einsum("rpa,rpa->rp", c, what)
    K = p + G
    loglik = -0.5 * (n * LOG_2PI + (n - K) * np.log(s2) + np.log(Dm) @ st.count + Sld
                     + (D.rr[:, None] - quad) / s2)
    if not want:
        return loglik
    beta_mean = D.m0[:, None, :] + s0 * what
    beta_var = s2[..., None] * s0 ** 2 * np.diagonal(Sinv, axis1=-2, axis2=-1)
    return loglik, beta_mean, beta_var, what, Sinv, Di


def group_effects(st: _Static, D: _Data, w: np.ndarray, sa, sig, what, Sinv, Di) -> tuple[np.ndarray, np.ndarray]:
    """Posterior means and SDs of u_i (R, G) from the grid weights w (R, P) — the first two moments of the
    mixture of (2) (quadrature_summary.group_effects) — as sums over the points of products of per-point
    factors: with a = l²/D_i and e_i = t_i − x_i'L₀ŵ, E[u_i | ψ] = a e_i and
    Var[u_i | ψ] = σ²a + σ²a² x_i'L₀S⁻¹L₀x_i."""
    l2, s2 = (sa * sa)[..., None], (sig * sig)[..., None]
    a = l2 * Di                                                               # (R, P, U)
    wa, wa2 = w[..., None] * a, w[..., None] * a * a
    A1, A2 = wa.sum(1), wa2.sum(1)                                            # (R, U)
    sw = D.s0[:, None, :] * what                                              # L₀ŵ (R, P, p)
    C1 = np.einsum("rpu,rpj->ruj", wa, sw)
    C2 = np.einsum("rpu,rpj->ruj", wa2, sw)
    E2 = np.einsum("rpu,rpj,rpk->rujk", wa2, sw, sw)
    F = np.einsum("rpu,rp->ru", wa, s2[..., 0])
    SL = D.s0[:, None, :, None] * Sinv * D.s0[:, None, None, :]              # L₀S⁻¹L₀ (R, P, p, p)
    H = np.einsum("rpu,rpjk->rujk", wa2 * s2, SL)
    k = st.kind
    t, x = D.Ztr, st.ZtX                                                      # (R, G), (G, p)
    mean = t * A1[:, k] - np.einsum("gj,rgj->rg", x, C1[:, k])
    second = (t * t * A2[:, k] - 2 * t * np.einsum("gj,rgj->rg", x, C2[:, k])
              + np.einsum("gj,gk,rgjk->rg", x, x, E2[:, k] + H[:, k]) + F[:, k])
    return mean, np.sqrt(np.maximum(second - mean * mean, 0.0))


def _log_prior(priors: PriorSet, D: _Data, sa: np.ndarray, sig: np.ndarray) -> np.ndarray:
    return (log_sd_prior(priors.sd[0], D.sd_scale[:, None], sa)
            + log_sd_prior(priors.sigma, D.sigma_scale[:, None], sig))


def log_axes(priors: PriorSet) -> np.ndarray:
    """(2,) True where the axis (σ_A, σ) is a log axis s = c eᶻ: an inverse-gamma prior
    (:class:`.quadrature.Coordinates`); the others are η axes s = c sinh η, η ≥ 0."""
    return np.array([priors.sd[0].family in LOG_FAMILIES, priors.sigma.family in LOG_FAMILIES])


def axis_tilts(priors: PriorSet, D: "_Data") -> np.ndarray:
    """(R, 2) the a of :func:`.quadrature_weights.axis_tilt` on the axes (σ_A, σ) per row (the one scalar
    term is uncorrelated); NaN on log axes."""
    log_ax = log_axes(priors)
    return np.stack([np.full(D.c.shape[0], np.nan) if log_ax[k] else axis_tilt(prior.family, D.c[:, k], scale)
                     for k, (prior, scale) in enumerate(((priors.sd[0], D.sd_scale), (priors.sigma, D.sigma_scale)))],
                    axis=1)


def natural(c: np.ndarray, z: np.ndarray, log_ax: np.ndarray) -> np.ndarray:
    """(σ_A, σ) at z (…, 2) for scales c broadcasting against z (:func:`.quadrature.axis_value`)."""
    c = np.broadcast_to(c, z.shape)
    out = np.empty(z.shape)
    for k in range(2):
        out[..., k] = axis_value(c[..., k], z[..., k], log_ax[k])
    return out


def log_f(st, n, priors, D: _Data, z: np.ndarray, want: bool = False):
    """log f(z) = log p(y | ψ) + log p(ψ) + log |∂ψ/∂z| at z (R, P, 2), −inf outside the support."""
    c = D.c[:, None, :]
    log_ax = log_axes(priors)
    nat = natural(c, z, log_ax)
    sa, sig = nat[..., 0], nat[..., 1]
    with np.errstate(all="ignore"):
        out = _conditional(st, n, D, sa, sig, want)
        ll = out[0] if want else out
        jac = sum(axis_log_slope(c[..., k], z[..., k], log_ax[k]) for k in range(2))
        lf = ll + _log_prior(priors, D, sa, sig) + jac
    lf = np.where(np.isfinite(lf), lf, -np.inf)
    return (lf,) + tuple(out[1:]) if want else lf
