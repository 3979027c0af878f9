"""Design → PyMC model (non-centred, centred or marginal), with every data array in ``pm.Data``.

The model (Gelman & Hill 2007, ch. 12–13; Betancourt & Girolami 2015 for the parameterisations):

    y = Xβ + Σ_k Σ_j Z_k[:, j] · u_k[codes_k, j] + ε,   ε ~ N(0, σ²I),
    u_k[level] ~ N(0, G_k),  G_k = L_k L_k',  L_k = diag(sd_k) · chol(C_k),  C_k ~ LKJ(η) (``|`` terms),
    G_k = diag(sd_k²) (``||`` terms),
    β_j = loc_j + scale_j · β̃_j, β̃_j ~ N(0, 1);   sd = scale · raw (see :mod:`.priors`).

Non-centred: u_k = z_k L_k', z_k ~ N(0, I).  Centred: u_k ~ N(0, G_k) directly.  Marginal: u integrated
out (:mod:`.marginal`).  With one random-effects term the likelihood is written with sufficient statistics
(:mod:`.stats`, equations (1)–(2)); with several terms as ``y ~ N(Xβ + Σ Z_k u_k, σ²)`` over the rows.

Centring (an exact reparameterisation: same prior, same posterior, unit Jacobian).  An uncentred
covariate (sleepstudy's Days = 0…9) makes intercept and slope strongly correlated a posteriori, which a
diagonal mass matrix cannot follow (~31 leapfrog steps per draw).  So the sampler moves in centred
coordinates and the model maps back:

* fixed effects, when X has an intercept and p > 1: the free vector w gives β̃ = Tw with
  β̃_0 = w_0 − Σ_j x̄_j (scale_j / scale_0) w_j, β̃_j = w_j (x̄_j the column means of X); w is flat and
  β̃ ~ N(0, I) enters as a potential, so the prior on β is exactly the one stated;
* a ``(1 + x | g)`` term (q = 2): with T = [[1, x̄], [0, 1]] (x̄ the mean of Z's x column), the
  centred effects v = T u ~ N(0, T G T') are drawn as v = M z (non-centred; M the closed-form Cholesky
  factor of T G T') or v ~ N(0, MM') (centred), and u = T⁻¹v.  Measured on sleepstudy (8 seeds):
  sampling time 0.79 s vs 1.29 s uncentred, max R-hat 1.009.  ``(1 + x || g)`` terms stay uncentred:
  there centring couples the two independent effects and worsened R-hat (up to 1.016).

y and the statistics, X, Z_k, codes_k, the column means and the prior scales are ``pm.Data`` named as in
:func:`model_data`, so one compiled model serves every data set of the same shape.
"""

from __future__ import annotations

import numpy as np

from ...model.design import Design
from .marginal import marginal_loglik
from .stats import conditional_loglik, graph_stats, sufficient_stats
from .priors import Prior, PriorSet, prior_arrays
from .status import quiet_blas_probe

PARAMETERISATIONS = ("noncentred", "centred", "marginal")


def model_data(design: Design, priors: PriorSet, parameterisation: str) -> dict[str, np.ndarray]:
    """Every array the model reads, by ``pm.Data`` name (what nutpie's ``with_data`` receives)."""
    X = np.asarray(design.X, float)
    x_mean = X.mean(axis=0)
    x_mean[_intercept(design.fixed_names)] = 0.0
    out: dict[str, np.ndarray] = {"x_mean": x_mean}
    if len(design.blocks) == 1:
        stats = sufficient_stats(design)
        out.update(stats)
        out.update(graph_stats(stats))
    else:
        out.update(y=np.asarray(design.y, float), X=X)
    for k, b in enumerate(design.blocks):
        Z = np.asarray(b.Z, float)
        out[f"z_mean_{k}"] = Z.mean(axis=0)
        if len(design.blocks) > 1:
            out[f"Z_{k}"] = Z
            out[f"codes_{k}"] = np.asarray(b.codes, np.int64)
    prior = prior_arrays(priors, design)
    out.update(prior)
    out["prior_sigma"] = np.asarray(prior["prior_sigma"][0])
    out.update({f"prior_sd_{j}": np.asarray(v) for j, v in enumerate(prior["prior_sd"])})
    return out


def _intercept(names) -> list[int]:
    """[index of "(Intercept)"] or []."""
    return [list(names).index("(Intercept)")] if "(Intercept)" in names else []


def _unit_dist(prior: Prior, shape: int | None):
    """The unit-scale member of an SD prior family, as an unregistered distribution."""
    import pymc as pm  # deferred: PyMC is heavy; `import compare_mm` must not import it

    if prior.family == "half_normal":
        return pm.HalfNormal.dist(sigma=1.0, shape=shape)
    if prior.family == "half_cauchy":
        return pm.HalfCauchy.dist(beta=1.0, shape=shape)
    if prior.family == "half_student_t":
        return pm.HalfStudentT.dist(nu=prior.shape, sigma=1.0, shape=shape)
    if prior.family == "exponential":
        return pm.Exponential.dist(lam=1.0, shape=shape)
    raise ValueError(prior.family)


def _scaled_sd(name: str, prior: Prior, scale):
    """A standard deviation ``scale · raw`` (or √(β · raw) for an inverse gamma on the variance)."""
    import pymc as pm  # deferred: PyMC is heavy; `import compare_mm` must not import it
    import pytensor.tensor as pt

    if prior.family == "inverse_gamma":
        raw = pm.InverseGamma(f"{name}_raw", alpha=prior.shape, beta=1.0)
        return pt.sqrt(scale * raw)
    if prior.family == "half_normal":
        raw = pm.HalfNormal(f"{name}_raw", sigma=1.0)
    elif prior.family == "half_cauchy":
        raw = pm.HalfCauchy(f"{name}_raw", beta=1.0)
    elif prior.family == "half_student_t":
        raw = pm.HalfStudentT(f"{name}_raw", nu=prior.shape, sigma=1.0)
    else:
        raw = pm.Exponential(f"{name}_raw", lam=1.0)
    return scale * raw


class _Entries:
    """A small matrix held as scalar tensors: ``M[i, j]`` adds no indexing node to the graph."""

    def __init__(self, rows):
        self.rows = rows

    def __getitem__(self, ij):
        return self.rows[ij[0]][ij[1]]

    def tensor(self):
        """The matrix as one tensor (for ``pm.MvNormal(chol=...)``)."""
        import pytensor.tensor as pt  # deferred: PyTensor (PyMC stack) is heavy; imported when a model is built

        return pt.stack([pt.stack([pt.as_tensor(v, dtype="float64") for v in row]) for row in self.rows])


def _block_cov(k: int, design: Design, priors: PriorSet, start: int, scales: list):
    """SDs (a list of scalar tensors) and, for ``|`` terms, the Cholesky factor L_k of G_k.

    A correlated pair (q = 2) is written by hand in :func:`_chol2` (the general ``pm.LKJCholeskyCov``
    graph costs ~60 extra nodes per gradient under numba); larger terms use ``pm.LKJCholeskyCov``.
    """
    import pymc as pm  # deferred: PyMC is heavy; `import compare_mm` must not import it
    import pytensor.tensor as pt

    q = design.blocks[k].q
    ps = priors.sd[start:start + q]
    sc = scales[start:start + q]
    eta = priors.eta[k]
    if eta is not None and q == 2:
        return _chol2(k, ps, sc, eta)
    same = all(p.structure == ps[0].structure for p in ps) and ps[0].family != "inverse_gamma"
    if eta is not None and same:  # LKJCholeskyCov with the term's own unit-scale SD prior
        chol, corr, stds = pm.LKJCholeskyCov(f"chol_{k}", eta=eta, n=q, sd_dist=_unit_dist(ps[0], q),
                                             compute_corr=True, store_in_trace=False)
        sds = [sc[j] * stds[j] for j in range(q)]
    else:
        sds = [_scaled_sd(f"sd_{k}_{j}", ps[j], sc[j]) for j in range(q)]
    pm.Deterministic(f"sd_{k}", pt.stack(sds))
    if eta is None:
        return sds, None
    if not same:  # mixed families / inverse gamma: LKJ for the correlation only (its sds are a nuisance)
        chol, corr, stds = pm.LKJCholeskyCov(f"chol_{k}", eta=eta, n=q,
                                             sd_dist=pm.HalfNormal.dist(sigma=1.0, shape=q),
                                             compute_corr=True, store_in_trace=False)
    pm.Deterministic(f"corr_{k}", corr)
    return sds, pt.stack(sds)[:, None] * (chol / stds[:, None])


def _sd_logdensity(prior: Prior, scale, s):
    """log density of an SD s under ``prior`` with numeric ``scale`` (sd = scale · raw, or var = scale · raw)."""
    import pymc as pm  # deferred: PyMC is heavy; `import compare_mm` must not import it
    import pytensor.tensor as pt

    if prior.family == "inverse_gamma":
        return pm.logp(pm.InverseGamma.dist(alpha=prior.shape, beta=1.0), s**2 / scale) + pt.log(2.0 * s / scale)
    return pm.logp(_unit_dist(prior, None), s / scale) - pt.log(scale)


def _chol2(k: int, ps, sc, eta: float):
    """A (1 + x | g)-sized covariance in free coordinates (log sd0, log sd1, atanh ρ).

    Then L = [[sd0, 0], [ρ sd1, sd1 √(1 − ρ²)]].  The density is the stated prior p(sd0) p(sd1) p_LKJ(ρ)
    times the Jacobian sd0 · sd1 · (1 − ρ²) of (log sd0, log sd1, atanh ρ) → (sd0, sd1, ρ).  Under LKJ(η) on
    a 2 × 2 correlation matrix (ρ + 1)/2 ~ Beta(η, η) (density ∝ det(C)^(η−1) = (1 − ρ²)^(η−1);
    Lewandowski, Kurowicka & Joe 2009).  Free entries of L (log l00, l10, log l11, as LKJCholeskyCov)
    put a funnel between l10 and log l11 when the slope SD is near 0 (l10 = ρ sd1 must shrink with it):
    on random_slope_coverage's 10-group design (σ_B² = 0.05) 20 % of marginal fits had R-hat ≥ 1.01
    with them (docs/sampler_defaults.md).
    """
    import pymc as pm  # deferred: PyMC is heavy; `import compare_mm` must not import it
    import pytensor.tensor as pt

    t = pm.Flat(f"chol_{k}_free", shape=3)
    sd0, sd1, c = pt.exp(t[0]), pt.exp(t[1]), t[2]
    rho = pt.tanh(c)
    log_cosh = pt.abs(c) + pt.log1p(pt.exp(-2.0 * pt.abs(c))) - np.log(2.0)
    logp = (_sd_logdensity(ps[0], sc[0], sd0) + _sd_logdensity(ps[1], sc[1], sd1)
            + pm.logp(pm.Beta.dist(alpha=eta, beta=eta), 0.5 * (rho + 1.0)) - np.log(2.0)
            + t[0] + t[1] - 2.0 * log_cosh)
    pm.Potential(f"chol_{k}_prior", logp)
    sds = [sd0, sd1]
    pm.Deterministic(f"sd_{k}", pt.stack(sds))
    one = pt.ones_like(rho)
    pm.Deterministic(f"corr_{k}", pt.stack([pt.stack([one, rho]), pt.stack([rho, one])]))
    return sds, _Entries([[sd0, 0.0], [rho * sd1, sd1 / pt.exp(log_cosh)]])


def _linear(X, beta, p: int):
    """X β written as Σ_j X[:, j] β_j for small p: ~3× faster under numba than a (n × p)·p ``dot``."""
    import pytensor.tensor as pt  # deferred: PyTensor (PyMC stack) is heavy; imported when a model is built

    if p > 8:
        return pt.dot(X, beta)
    out = X[:, 0] * beta[0]
    for j in range(1, p):
        out = out + X[:, j] * beta[j]
    return out


def _ranef_sum(Z, cols, codes):
    """Σ_j Z[:, j] · u[codes, j] with 1-D gathers (``u_j[codes]``), not a 2-D fancy index + row sum.

    Measured (one-way, 18 × 10, nutpie): 2-D ``sum(Z * u[codes], axis=1)`` 1.0 s per replicate,
    1-D gathers 0.42 s, plus :func:`_linear` 0.27 s.
    """
    out = Z[:, 0] * cols[0][codes]
    for j in range(1, len(cols)):
        out = out + Z[:, j] * cols[j][codes]
    return out


def _fixed_effects(D, design: Design):
    """β = loc + scale · β̃ with β̃ ~ N(0, I), sampled in centred coordinates (module docstring)."""
    import pymc as pm  # deferred: PyMC is heavy; `import compare_mm` must not import it
    import pytensor.tensor as pt

    i0 = _intercept(design.fixed_names)
    if not i0 or design.p == 1:
        raw = pm.Normal("beta_raw", 0.0, 1.0, shape=design.p)
    else:
        w = pm.Flat("beta_w", shape=design.p)
        scale = D["prior_beta_scale"]
        e0 = np.zeros(design.p)
        e0[i0[0]] = 1.0
        raw = w - e0 * (pt.sum(D["x_mean"] * scale * w) / scale[i0[0]])
        pm.Potential("beta_prior", pm.logp(pm.Normal.dist(0.0, 1.0), raw).sum())
    return pm.Deterministic("beta", D["prior_beta_loc"] + D["prior_beta_scale"] * raw)


def _centred_factor(a, sds, L):
    """Closed-form lower Cholesky factor M of T G T', T = [[1, a], [0, 1]], G = L L' (2 × 2).

    With T L = [[t0, t1], [l10, l11]] (t0 = l00 + a l10, t1 = a l11): M00 = ‖(t0, t1)‖,
    M10 = (l10 t0 + l11 t1) / M00, M11 = det(T L) / M00 = l00 l11 / M00.
    """
    l00, l10, l11 = (sds[0], 0.0, sds[1]) if L is None else (L[0, 0], L[1, 0], L[1, 1])
    t0, t1 = l00 + a * l10, a * l11
    m00 = (t0**2 + t1**2) ** 0.5
    return m00, (l10 * t0 + l11 * t1) / m00, l00 * l11 / m00


def _ranef_columns(k: int, design: Design, sds, L, D, parameterisation: str) -> list:
    """u_k[:, j] for j < q (non-centred or centred; in centred covariate coordinates for (1 + x | g))."""
    import pymc as pm  # deferred: PyMC is heavy; `import compare_mm` must not import it
    import pytensor.tensor as pt

    b = design.blocks[k]
    shape = (b.n_levels, b.q)
    if b.q == 2 and b.term_names[0] == "(Intercept)" and L is not None:
        a = D[f"z_mean_{k}"][1]
        m00, m10, m11 = _centred_factor(a, sds, L)
        if parameterisation == "noncentred":
            z = pm.Normal(f"z_{k}", 0.0, 1.0, shape=shape)
            v0, v1 = m00 * z[:, 0], m10 * z[:, 0] + m11 * z[:, 1]
        else:
            M = _Entries([[m00, 0.0], [m10, m11]]).tensor()
            v = pm.MvNormal(f"v_{k}", mu=pt.zeros(2), chol=M, shape=shape)
            v0, v1 = v[:, 0], v[:, 1]
        cols = [v0 - a * v1, v1]
    elif parameterisation == "noncentred":
        z = pm.Normal(f"z_{k}", 0.0, 1.0, shape=shape)
        if L is None:
            cols = [z[:, j] * sds[j] for j in range(b.q)]
        else:  # u = z L' column by column (L lower triangular)
            cols = [sum(z[:, l] * L[j, l] for l in range(j + 1)) for j in range(b.q)]
    else:
        if L is None:
            u = pm.Normal(f"u_{k}", 0.0, pt.stack(sds)[None, :], shape=shape)
        else:
            chol = L.tensor() if isinstance(L, _Entries) else L
            u = pm.MvNormal(f"u_{k}", mu=pt.zeros(b.q), chol=chol, shape=shape)
        return [u[:, j] for j in range(b.q)]
    pm.Deterministic(f"u_{k}", pt.stack(cols, axis=1))
    return cols


def build_model(design: Design, priors: PriorSet, parameterisation: str):
    """The PyMC model of ``design`` (module docstring).  Returns ``pm.Model``."""
    import pymc as pm  # deferred: PyMC is heavy; `import compare_mm` must not import it

    quiet_blas_probe()  # before PyTensor first compiles C code (status.py: the pip-install BLAS warning)
    data = model_data(design, priors, parameterisation)
    single = len(design.blocks) == 1
    with pm.Model() as model:
        # static shapes: no run-time broadcast checks in the graph, whose order PyTensor does not keep
        # from process to process (it would change the compiled function's key and defeat the disk cache)
        D = {name: pm.Data(name, value, shape=np.shape(value)) for name, value in data.items()}
        beta = _fixed_effects(D, design)
        sigma = pm.Deterministic("sigma", _scaled_sd("sigma", priors.sigma, D["prior_sigma"]))
        sd_scales = [D[f"prior_sd_{j}"] for j in range(len(priors.sd))]
        mu = None if single else _linear(D["X"], beta, design.p)
        start = 0
        for k, b in enumerate(design.blocks):
            sds, L = _block_cov(k, design, priors, start, sd_scales)
            start += b.q
            if parameterisation == "marginal":
                Lm = _Entries([[sds[j] if j == l else 0.0 for l in range(b.q)] for j in range(b.q)]) \
                    if L is None else L
                pm.Potential("marginal_loglik", marginal_loglik(D, beta, Lm, sigma, b.q, design.p))
                continue
            cols = _ranef_columns(k, design, sds, L, D, parameterisation)
            if single:
                pm.Potential("loglik", conditional_loglik(D, beta, cols, sigma, b.q, design.p))
            else:
                mu = mu + _ranef_sum(D[f"Z_{k}"], cols, D[f"codes_{k}"])
        if not single:
            pm.Normal("y_obs", mu=mu, sigma=sigma, observed=D["y"])
    return model
