"""Exact finite-sample theory of a linear mixed model with one variance component, balanced or not.

Model (Crainiceanu & Ruppert 2004, "Likelihood ratio tests in linear mixed models with one variance
component", J. R. Stat. Soc. B 66, 165–185; Crainiceanu, Ruppert & Vogelsang 2003, "Some properties of
likelihood ratio tests in linear mixed models"):

    y = Xβ + Zb + ε,   b ~ N(0, σ_b² Σ),   ε ~ N(0, σ² I_n),   λ = σ_b²/σ²,   p = rank X,

e.g. an unbalanced one-way design (X = 1, Z the group indicators), a random intercept with covariates, or
random blocks.  With μ_s (s = 1 … K) the non-zero eigenvalues of Σ^{1/2}Z'P₀ZΣ^{1/2}, P₀ = I − X(X'X)⁻¹X',
and ξ_s those of Σ^{1/2}Z'ZΣ^{1/2}, rotating y onto the eigenvectors of the residual space gives n − p
independent coordinates v_s ~ N(0, σ²(1 + λ₀μ_s)) (μ_s = 0 for s > K) at the true λ₀, and

    REML:  −2ℓ_R(λ) = Σ_s log(1 + λμ_s) + (n − p) log S(λ) + const,
    ML:    −2ℓ(λ)   = Σ_s log(1 + λξ_s) + n log S(λ) + const,      S(λ) = Σ_{s ≤ n−p} v_s²/(1 + λμ_s),

with σ² and β profiled out.  Write v_s² = σ²(1 + λ₀μ_s) w_s, w_s iid χ²₁: everything below is a
function of the w_s alone.

**Sign of the score (exact, by Imhof's formula).**  ∂ℓ/∂λ at λ_e ≤ 0 exactly when

    Σ_s (1 + λ₀μ_s)/(1 + λ_eμ_s) · (μ_s/(1 + λ_eμ_s) − c) · w_s ≤ 0,
    c = (1/(n − p)) Σ_s μ_s/(1 + λ_eμ_s)  (REML),     c = (1/n) Σ_s ξ_s/(1 + λ_eξ_s)  (ML),

a weighted sum of χ²₁ variables (the n − p − K coordinates with μ_s = 0 pool into one −c·χ²_{n−p−K}),
whose distribution function at 0 :func:`compare_mm.inference.imhof.chi2_sum_cdf` computes.  At λ_e = 0 this
is the probability of a local maximum at 0 (C&R 2004, eq. 6 for REML; CRV 2003 for ML); when the
criterion is unimodal in λ it is P(λ̂ ≤ λ_e), so at λ_e = 0 the probability that the estimate is exactly
0 and at λ_e = λ₀ the probability of underestimating λ.  Unimodality holds in the balanced one-way model
(the event is then F ≤ 1, resp. SSA/a ≤ MSE — :func:`compare_mm.oneway.theory.boundary_probability`); in
general a second interior maximum can make the global maximiser differ, which the spectral simulation
below measures (the tests compare both with our fitter).

**LRT and RLRT at any λ₀ (spectral simulation).**  (C&R 2004, Theorem 1 under the alternative)

    RLRT = sup_{λ ≥ 0} { (n − p) log(S(0)/S(λ)) − Σ_s log(1 + λμ_s) },
    LRT  = sup_{λ ≥ 0} { n log(S(0)/S(λ)) − Σ_s log(1 + λξ_s) },

simulated from the w_s (equal μ_s share one χ² draw with their multiplicity as df), with the sup over
λ·max μ ∈ {0} ∪ exp(seq(−10, 8, length 199)) (RLRsim's grid) refined by one parabolic step in log λ at
the best grid point — the global maximum, as our fitter finds it, not RLRsim's first local one.  The
draws give the null distribution (λ₀ = 0), power, and λ̂; each probability carries its binomial MCSE.
The simulation reuses :func:`compare_mm.inference.rlrt.lambda_grid` and the eigenvalue routines of
:mod:`compare_mm.inference.rlrt`.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from ..errors import ModelSpecError
from ..model.design import Design
from ..null_distributions import chibar2_critical
from .components import components, find_component
from .imhof import chi2_sum_cdf
from .rlrt import _group_equal, component_cross, lambda_grid, rlrt_eigenvalues, rlrt_eigenvalues_cross

METHODS = ("REML", "ML")
#: eigenvalues below this fraction of the largest are zero
_ZERO = 1e-10
#: default number of spectral draws behind a simulated probability (MCSE ≤ 0.0011)
NSIM = 200_000


@dataclass(frozen=True, eq=False)
class Spectrum:
    """The eigenvalues the one-component theory needs (module docstring).

    Attributes
    ----------
    mu
        The K non-zero eigenvalues of Σ^{1/2}Z'P₀ZΣ^{1/2} (not normalised: λ keeps its scale).
    xi
        The non-zero eigenvalues of Σ^{1/2}Z'ZΣ^{1/2}.
    n, p
        Observations and rank of X.
    """

    mu: np.ndarray
    xi: np.ndarray
    n: int
    p: int

    @property
    def rest(self) -> int:
        """n − p − K: residual coordinates that the random effect does not reach."""
        return self.n - self.p - self.mu.size

    def key(self) -> tuple:
        """A hashable identity (for caches)."""
        return (tuple(np.round(self.mu, 12)), tuple(np.round(self.xi, 12)), self.n, self.p)


def _nonzero(v: np.ndarray) -> np.ndarray:
    v = np.sort(np.asarray(v, dtype=float))[::-1]
    return v[v > _ZERO * max(float(v[0]) if v.size else 0.0, 1e-300)]


def spectrum(X: np.ndarray, Z: np.ndarray, sqrt_sigma: np.ndarray | None = None) -> Spectrum:
    """:class:`Spectrum` of dense X (n × p, full rank) and Z (n × m), b ~ N(0, σ_b² Σ), Σ = RR' given R."""
    X, Z = np.asarray(X, dtype=float), np.asarray(Z, dtype=float)
    ZS = Z if sqrt_sigma is None else Z @ np.asarray(sqrt_sigma, dtype=float)
    mu = rlrt_eigenvalues(X, Z, None if sqrt_sigma is None else np.asarray(sqrt_sigma, float).T, normalise=False)
    xi = np.linalg.svd(ZS, compute_uv=False) ** 2
    return Spectrum(_nonzero(mu), _nonzero(xi), X.shape[0], np.linalg.matrix_rank(X))


def spectrum_cross(ZtZ: np.ndarray, ZtX: np.ndarray, XtX: np.ndarray, n: int) -> Spectrum:
    """:class:`Spectrum` from cross-products (Σ = I), as :func:`compare_mm.inference.rlrt.rlrt_eigenvalues_cross`."""
    mu = rlrt_eigenvalues_cross(ZtZ, ZtX, XtX, normalise=False)
    xi = np.linalg.eigvalsh(0.5 * (np.asarray(ZtZ, float) + np.asarray(ZtZ, float).T))
    return Spectrum(_nonzero(mu), _nonzero(xi), int(n), int(np.asarray(XtX).shape[0]))


def oneway_spectrum(sizes) -> Spectrum:
    """:class:`Spectrum` of the one-way model y ~ 1 + (1 | g) with group sizes n_i (balanced or not)."""
    s = np.asarray(sizes, dtype=float)
    return spectrum_cross(np.diag(s), s[:, None], np.array([[s.sum()]]), int(s.sum()))


def design_spectrum(design: Design) -> Spectrum:
    """:class:`Spectrum` of a design whose only random effect is one variance (``(1 | g)``, ``(0 + x | g)``).

    Raises
    ------
    ModelSpecError
        When the design has another variance component (the theory is for exactly one).
    """
    comps = components(design)
    if len(comps) != 1 or not comps[0].single_variance:
        raise ModelSpecError(f"The one-variance-component theory needs exactly one random variance; "
                             f"{design.spec.formula!r} has {len(comps)} component(s) of other kinds.")
    comp = find_component(design, comps[0].group, comps[0].term)
    return spectrum_cross(*component_cross(design, comp), design.n)


def _method(method: str) -> str:
    m = str(method).upper()
    if m not in METHODS:
        raise ValueError(f"The one-variance-component theory is for REML or ML, not {method!r}.")
    return m


# ---------------------------------------------------------------------------------- exact (Imhof)
def score_sign_form(sp: Spectrum, lam_eval: float, lam_true: float, method: str) -> tuple[np.ndarray, np.ndarray]:
    """(weights, df) of the χ² sum that is ≤ 0 exactly when ∂ℓ/∂λ ≤ 0 at ``lam_eval`` (module docstring)."""
    m = _method(method)
    le, l0 = float(lam_eval), float(lam_true)
    vals, mult = _group_equal(sp.mu)
    if m == "REML":
        c = float(np.sum(sp.mu / (1.0 + le * sp.mu))) / (sp.n - sp.p)
    else:
        c = float(np.sum(sp.xi / (1.0 + le * sp.xi))) / sp.n
    w = (1.0 + l0 * vals) / (1.0 + le * vals) * (vals / (1.0 + le * vals) - c)
    if sp.rest > 0:
        return np.append(w, -c), np.append(mult, float(sp.rest))
    return w, mult


def estimate_cdf(sp: Spectrum, lam: float, lam_true: float, method: str) -> float:
    """P(∂ℓ/∂λ ≤ 0 at λ = ``lam``) at the true ``lam_true`` — P(λ̂ ≤ lam) when the criterion is unimodal."""
    w, df = score_sign_form(sp, lam, lam_true, method)
    return chi2_sum_cdf(0.0, w, df)


def boundary_probability(sp: Spectrum, lam_true: float, method: str) -> float:
    """P(σ̂_b² = 0): the probability of a local maximum of the (restricted) likelihood at λ = 0 (exact)."""
    return estimate_cdf(sp, 0.0, lam_true, method)


def underestimation_probability(sp: Spectrum, lam_true: float, method: str) -> float:
    """P(λ̂ < λ₀) (exact under unimodality): the score at the true λ₀ is negative; 0 at λ₀ = 0."""
    return 0.0 if float(lam_true) <= 0.0 else estimate_cdf(sp, lam_true, lam_true, method)


# ---------------------------------------------------------------------------------- spectral simulation
@dataclass(frozen=True, eq=False)
class SpectralDraws:
    """Draws of the (R)LRT statistic and of λ̂ at one true λ₀ (module docstring)."""

    statistic: np.ndarray
    lam_hat: np.ndarray
    method: str
    lam_true: float
    w: np.ndarray          # (nsim, U) the χ² draws of the distinct μ_s (their multiplicities as df)
    rest: np.ndarray       # (nsim,) the χ²_{n−p−K} draw
    modes: np.ndarray      # (nsim,) local maxima of the criterion on {0} ∪ the λ grid (2+: not unimodal)

    def score_nonpositive(self, sp: Spectrum, lam_eval: float, method: str) -> np.ndarray:
        """Per draw: is ∂ℓ/∂λ ≤ 0 at ``lam_eval`` (the event of :func:`score_sign_form`, same draws)?"""
        wts, _ = score_sign_form(sp, lam_eval, self.lam_true, method)
        q = self.w @ wts[:self.w.shape[1]] + (wts[-1] * self.rest if sp.rest > 0 else 0.0)
        return q <= 0.0

    def probability(self, event: np.ndarray) -> "SimulatedProbability":
        """The share of draws in ``event`` with its binomial MCSE."""
        p = float(np.mean(event))
        return SimulatedProbability(p, float(np.sqrt(p * (1.0 - p) / event.size)), int(event.size))

    def rejection(self, critical: float) -> "SimulatedProbability":
        """P(statistic > critical)."""
        return self.probability(self.statistic > critical)


@dataclass(frozen=True)
class SimulatedProbability:
    """A probability from ``nsim`` spectral draws and its Monte Carlo SE sqrt(p(1 − p)/nsim)."""

    value: float
    mcse: float
    nsim: int


def simulate(sp: Spectrum, lam_true: float, method: str, nsim: int = NSIM, *,
             rng: np.random.Generator | int | None = None, gridlength: int = 200,
             chunk: int = 4096) -> SpectralDraws:
    """Spectral draws of the LRT (``"ML"``) or RLRT (``"REML"``) statistic and of λ̂ (module docstring)."""
    m = _method(method)
    rng = np.random.default_rng(rng)
    vals, mult = _group_equal(sp.mu)
    scale = float(vals.max())
    lam = lambda_grid(gridlength)[1:] / scale                       # (g,)
    t = np.log(lam)
    h = t[1] - t[0]
    d = sp.n - sp.p if m == "REML" else sp.n
    det_vals, det_mult = (vals, mult) if m == "REML" else _group_equal(sp.xi)

    def logdet(lv: np.ndarray) -> np.ndarray:
        return np.log1p(lv[..., None] * det_vals) @ det_mult

    a = 1.0 + float(lam_true) * vals                                 # (U,)
    fS = a[:, None] / (1.0 + vals[:, None] * lam[None, :])           # (U, g)
    ld = logdet(lam)
    stat = np.empty(nsim)
    lhat = np.empty(nsim)
    W = np.empty((nsim, mult.size))
    R = np.zeros(nsim)
    modes = np.empty(nsim, dtype=np.int16)
    for start in range(0, nsim, chunk):
        k = min(chunk, nsim - start)
        w = W[start:start + k] = rng.chisquare(mult, size=(k, mult.size))
        if sp.rest > 0:
            R[start:start + k] = rng.chisquare(sp.rest, size=k)
        rest = R[start:start + k]
        S0 = w @ a + rest
        f = d * np.log(S0[:, None] / (w @ fS + rest[:, None])) - ld  # (k, g)
        j = np.argmax(f, axis=1)
        best = f[np.arange(k), j]
        tb = t[j]
        inner = (j > 0) & (j < lam.size - 1)
        if inner.any():  # one parabolic step in log λ through the best grid point and its neighbours
            i = np.flatnonzero(inner)
            fm, f0, fp = f[i, j[i] - 1], f[i, j[i]], f[i, j[i] + 1]
            den = fm - 2.0 * f0 + fp
            with np.errstate(divide="ignore", invalid="ignore"):
                step = np.where(den < 0, 0.5 * h * (fm - fp) / den, 0.0)
            ts = t[j[i]] + np.clip(step, -h, h)
            ls = np.exp(ts)
            Ss = (w[i] * (a / (1.0 + vals * ls[:, None]))).sum(axis=1) + rest[i]
            fs = d * np.log(S0[i] / Ss) - logdet(ls)
            up = fs > best[i]
            best[i[up]] = fs[up]
            tb[i[up]] = ts[up]
        pos = best > 0.0
        stat[start:start + k] = np.where(pos, best, 0.0)
        lhat[start:start + k] = np.where(pos, np.exp(tb), 0.0)
        modes[start:start + k] = _local_maxima(f)
    return SpectralDraws(stat, lhat, m, float(lam_true), W, R, modes)


def _local_maxima(f: np.ndarray) -> np.ndarray:
    """Per row: the number of local maxima of (0, f_1, …, f_g) — the criterion at λ = 0 and on the grid.

    A step counts as a rise or a fall only where it exceeds 1e-9 (1 + |f|) (rounding on the flat tail at
    large λ makes no spurious mode; a plateau is one maximum): the maxima are the falls that follow a rise,
    plus the left end when the first step falls and the right end when the last step rises."""
    F = np.concatenate([np.zeros((f.shape[0], 1)), f], axis=1)
    d = np.diff(F, axis=1)                                           # (k, g)
    sign = np.where(np.abs(d) > 1e-9 * (1.0 + np.abs(F[:, 1:])), np.sign(d), 0.0)
    k, g = sign.shape
    j = np.arange(g)
    last = np.maximum.accumulate(np.where(sign != 0.0, j, -1), axis=1)   # last signed step ≤ j (−1: none)
    prev = np.where(last >= 0, sign[np.arange(k)[:, None], np.maximum(last, 0)], 0.0)
    falls_after_rise = (sign[:, 1:] < 0) & (prev[:, :-1] > 0)
    first = np.argmax(sign != 0.0, axis=1)
    left = sign[np.arange(k), first] < 0
    right = prev[:, -1] > 0
    return (falls_after_rise.sum(axis=1) + left + right).astype(np.int16)


@lru_cache(maxsize=256)
def _cached_draws(key: tuple, lam_true: float, method: str, nsim: int, seed: int) -> SpectralDraws:
    mu, xi, n, p = key
    sp = Spectrum(np.asarray(mu, float), np.asarray(xi, float), n, p)
    return simulate(sp, lam_true, method, nsim, rng=np.random.default_rng(seed))


def boundary_probability_global(sp: Spectrum, lam_true: float, method: str, nsim: int = NSIM,
                                seed: int = 20040101) -> SimulatedProbability:
    """P(σ̂_b² = 0) for the global maximiser (what our fitter computes), exact up to a small simulated term.

    P(global max at 0) = P(score at 0 ≤ 0) − P(score at 0 ≤ 0 but a higher interior maximum) (the reverse
    cannot happen: a positive score puts the maximum inside, though a grid may miss it when the score is
    tiny): the first term by Imhof's formula, the correction — a rare event (≈ 0.002 for the sizes
    2, 3, 3, 5, 8, 12, 20; 0 in a balanced design) — from the spectral draws, with its binomial MCSE.
    """
    m = _method(method)
    draws = _cached_draws(sp.key(), float(lam_true), m, int(nsim), int(seed))
    D = (draws.statistic > 0.0) & draws.score_nonpositive(sp, 0.0, m)
    c = float(D.mean())
    p = boundary_probability(sp, lam_true, m) - c
    return SimulatedProbability(min(1.0, max(0.0, p)), float(np.sqrt(c * (1.0 - c) / D.size)), int(nsim))


def underestimation_probability_global(sp: Spectrum, lam_true: float, method: str, nsim: int = NSIM,
                                      seed: int = 20040101) -> SimulatedProbability:
    """P(λ̂ < λ₀) for the global maximiser λ̂ (what our fitter computes), exact up to a small simulated term.

    Where the criterion is unimodal in λ, λ̂ < λ₀ exactly when the score at λ₀ is negative, whose
    probability :func:`underestimation_probability` gives by Imhof's formula.  A draw with two or more local
    maxima (on {0} ∪ the simulation's λ grid; none in a balanced design) can put the global maximum on the
    other side of λ₀: the correction E[(1{λ̂ < λ₀} − 1{score at λ₀ ≤ 0}) · 1{multimodal}] is the mean over
    the spectral draws, with its Monte Carlo SE.  0 at λ₀ = 0 (σ̂² < 0 is impossible).
    """
    m = _method(method)
    lam_true = float(lam_true)
    if lam_true <= 0.0:
        return SimulatedProbability(0.0, 0.0, int(nsim))
    exact = underestimation_probability(sp, lam_true, m)
    draws = _cached_draws(sp.key(), lam_true, m, int(nsim), int(seed))
    multi = draws.modes >= 2
    if not multi.any():
        return SimulatedProbability(exact, 0.0, int(nsim))
    d = np.where(multi, (draws.lam_hat < lam_true).astype(float)
                 - draws.score_nonpositive(sp, lam_true, m), 0.0)
    p = exact + float(d.mean())
    return SimulatedProbability(min(1.0, max(0.0, p)), float(d.std() / np.sqrt(d.size)), int(nsim))


def rejection_probability(sp: Spectrum, lam_true: float, test: str, method: str, alpha: float,
                          nsim: int = NSIM, seed: int = 20040101) -> SimulatedProbability:
    """P(reject H₀: λ = 0) at λ₀ = ``lam_true`` for a study test, by the spectral simulation.

    ``lrt_chi2`` / ``lrt_chibar2``: the LRT of the fit's criterion (``method``) against the χ²₁ quantile at
    1 − α, resp. the ½χ²₀ + ½χ²₁ quantile; ``exact_rlrt``: the RLRT against the 1 − α quantile of its exact
    null distribution (simulated from the same spectrum with ``nsim`` draws; at λ₀ = 0 the size is α exactly
    when that quantile is positive).  Draws are cached per (spectrum, λ₀, criterion, nsim, seed).
    """
    from scipy import stats  # deferred: heavy import

    crit_method = "REML" if test == "exact_rlrt" else _method(method)
    if test == "lrt_chi2":
        crit = float(stats.chi2.isf(alpha, 1))
    elif test == "lrt_chibar2":
        crit = chibar2_critical(alpha, 1)
    elif test == "exact_rlrt":
        null = _cached_draws(sp.key(), 0.0, "REML", int(nsim), int(seed) + 1)
        crit = float(np.quantile(null.statistic, 1.0 - alpha))
        if float(lam_true) == 0.0 and crit > 0.0:
            return SimulatedProbability(float(alpha), 0.0, int(nsim))
    else:
        raise ValueError(f"No exact rejection probability for test {test!r}.")
    return _cached_draws(sp.key(), float(lam_true), crit_method, int(nsim), int(seed)).rejection(crit)


__all__ = ["METHODS", "NSIM", "SimulatedProbability", "SpectralDraws", "Spectrum", "boundary_probability",
           "boundary_probability_global",
           "design_spectrum", "estimate_cdf", "oneway_spectrum", "rejection_probability", "score_sign_form",
           "simulate", "spectrum", "spectrum_cross", "underestimation_probability",
           "underestimation_probability_global"]
