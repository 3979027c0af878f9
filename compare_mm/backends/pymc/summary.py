"""Posterior draws → FitResult: canonical names, summaries, intervals, diagnostics.

Summaries follow ArviZ (Vehtari et al. 2021, "Rank-normalization, folding, and localization": split
R-hat, bulk and tail ESS) at the requested level (default 0.95, passed explicitly as ``hdi_prob``).
The mode is the maximum of a Gaussian kernel density estimate (Silverman's bandwidth) computed on a
binned grid, with reflection at known bounds (0 for SDs and variances, ±1 for correlations) so that a
posterior piled up at the boundary keeps its mode there.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ...model.design import Design
from ...results.schema import FitResult, FixefRow, Interval, PosteriorSummary, RanefRow, VarCorrRow
from .draws import LazyInferenceData
from .tails import unavailable_moments


def kde_mode(x: np.ndarray, lower: float | None = None, upper: float | None = None,
             gridsize: int = 1024) -> float:
    """Mode of a 1-D sample: maximum of a Gaussian KDE with reflection at ``lower``/``upper``.

    Bandwidth: Silverman's rule h = 0.9 · min(sd, IQR/1.34) · n^(-1/5).  The density is the binned
    sample convolved with the Gaussian kernel (error O(bin width) ≪ h); reflected copies of the sample
    (2·lower − x, 2·upper − x) are added before the convolution and the maximum is searched only
    inside [lower, upper].
    """
    x = np.asarray(x, float).ravel()
    x = x[np.isfinite(x)]
    if x.size < 2:
        return float(x[0]) if x.size else float("nan")
    sd = float(np.std(x, ddof=1))
    q75, q25 = np.percentile(x, [75, 25])
    spread = min(sd, (q75 - q25) / 1.34) if q75 > q25 else sd
    h = 0.9 * spread * x.size ** -0.2
    if not h > 0:
        return float(np.median(x))
    pts = [x]
    if lower is not None:
        pts.append(2 * lower - x)
    if upper is not None:
        pts.append(2 * upper - x)
    allx = np.concatenate(pts)
    lo, hi = allx.min() - 4 * h, allx.max() + 4 * h
    if lower is not None:
        lo = max(lo, lower - 4 * h)
    if upper is not None:
        hi = min(hi, upper + 4 * h)
    counts, edges = np.histogram(allx, bins=gridsize, range=(lo, hi))
    centres = 0.5 * (edges[:-1] + edges[1:])
    dx = edges[1] - edges[0]
    half = int(np.ceil(4 * h / dx))
    t = np.arange(-half, half + 1) * dx
    kern = np.exp(-0.5 * (t / h) ** 2)
    dens = np.convolve(counts.astype(float), kern, mode="full")[half: half + centres.size]
    inside = np.ones(centres.size, bool)
    if lower is not None:
        inside &= centres >= lower
    if upper is not None:
        inside &= centres <= upper
    if not inside.any():
        return float(np.median(x))
    i = np.flatnonzero(inside)[np.argmax(dens[inside])]
    return float(centres[i])


def summarise_draws(name: str, draws: np.ndarray, level: float, lower: float | None = None,
                    upper: float | None = None) -> PosteriorSummary:
    """PosteriorSummary of a (chain, draw) array."""
    import arviz as az  # deferred: ArviZ is heavy; imported when summarising draws

    d = np.asarray(draws, float)
    flat = d.ravel()
    a = (1 - level) / 2
    eti = np.quantile(flat, [a, 1 - a])
    hdi = np.asarray(az.hdi(flat, hdi_prob=level)).ravel()
    return PosteriorSummary(
        parameter=name, mean=float(flat.mean()), median=float(np.median(flat)),
        mode=kde_mode(flat, lower, upper), sd=float(flat.std(ddof=1)),
        eti_lower=float(eti[0]), eti_upper=float(eti[1]), hdi_lower=float(hdi[0]), hdi_upper=float(hdi[1]),
        rhat=float(az.rhat(d)) if d.ndim == 2 and d.shape[0] >= 2 else float("nan"),
        ess_bulk=float(az.ess(d, method="bulk")),
        ess_tail=float(az.ess(d, method="tail")), level=level)


def hdi_sorted(srt: np.ndarray, level: float) -> tuple[np.ndarray, np.ndarray]:
    """Narrowest interval holding ⌊level·n⌋ + 1 sorted draws, along the last axis (ArviZ's ``_hdi``)."""
    n = srt.shape[-1]
    k = int(np.floor(level * n))
    width = srt[..., k:] - srt[..., : n - k]
    i = np.argmin(width, axis=-1)[..., None]
    return np.take_along_axis(srt, i, -1)[..., 0], np.take_along_axis(srt, i + k, -1)[..., 0]


def _dataset(A: np.ndarray) -> Any:
    """``az.convert_to_dataset`` of a (chain, draw, K) array, without ArviZ's "more chains than draws"
    warning (until_converged's pooled rounds can hold more chains than draws; the shape is as meant)."""
    import warnings

    import arviz as az  # deferred: ArviZ is heavy; imported when summarising draws

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="More chains", category=UserWarning)
        return az.convert_to_dataset(A)


def _split_rhat(ds: Any, shape: tuple[int, ...]) -> np.ndarray:
    """Split R-hat of each parameter of a (chain, draw, K) dataset; NaN with one chain (ArviZ needs two
    and logs "Shape validation failed" instead)."""
    import arviz as az  # deferred: ArviZ is heavy; imported when summarising draws

    if shape[0] < 2:
        return np.full(shape[-1], np.nan)
    return np.asarray(az.rhat(ds)["x"]).ravel()


def summarise_all(draws: dict[str, np.ndarray], bounds: dict[str, tuple], level: float
                  ) -> dict[str, PosteriorSummary]:
    """PosteriorSummary of every (chain, draw) array, vectorised over the parameters.

    One ArviZ call each for split R-hat, bulk ESS and tail ESS on a (chain, draw, parameter) array
    (instead of three calls per parameter); mean, median, SD, ETI and HDI by numpy on the sorted draws.
    """
    import arviz as az  # deferred: ArviZ is heavy; imported when summarising draws

    names = list(draws)
    A = np.stack([np.asarray(draws[n], float) for n in names], axis=-1)  # (chain, draw, K)
    flat = A.reshape(-1, len(names)).T  # (K, S)
    srt = np.sort(flat, axis=1)
    a = (1 - level) / 2
    eti = np.quantile(flat, [a, 1 - a], axis=1)
    lo, hi = hdi_sorted(srt, level)
    ds = _dataset(A)  # one variable "x" with dims (chain, draw, x_dim_0)
    rhat = _split_rhat(ds, A.shape)
    bulk = np.asarray(az.ess(ds, method="bulk")["x"]).ravel()
    tail = np.asarray(az.ess(ds, method="tail")["x"]).ravel()
    mean, med, sd = flat.mean(axis=1), np.median(flat, axis=1), flat.std(axis=1, ddof=1)
    return {n: PosteriorSummary(
        parameter=n, mean=float(mean[i]), median=float(med[i]), mode=kde_mode(flat[i], *bounds[n]),
        sd=float(sd[i]), eti_lower=float(eti[0, i]), eti_upper=float(eti[1, i]), hdi_lower=float(lo[i]),
        hdi_upper=float(hi[i]), rhat=float(rhat[i]), ess_bulk=float(bulk[i]), ess_tail=float(tail[i]),
        level=level) for i, n in enumerate(names)}


def convergence(post: Any, design: Design) -> tuple[float, float]:
    """(max split R-hat, min bulk ESS) over the canonical parameters of a posterior (as :func:`build_result`
    computes them, without the other summaries): what option ``until_converged`` checks after each round."""
    import arviz as az  # deferred: ArviZ is heavy; imported when summarising draws

    draws, _ = canonical_draws(post, design)
    A = np.stack([np.asarray(v, float) for v in draws.values()], axis=-1)
    ds = _dataset(A)
    rhat = _split_rhat(ds, A.shape)
    ess = np.asarray(az.ess(ds, method="bulk")["x"]).ravel()
    max_rhat = float(np.nanmax(rhat)) if np.isfinite(rhat).any() else float("nan")
    min_ess = float(np.nanmin(ess)) if np.isfinite(ess).any() else float("nan")
    return max_rhat, min_ess


def canonical_draws(post: Any, design: Design) -> tuple[dict[str, np.ndarray], dict[str, tuple]]:
    """Canonical name → (chain, draw) array, and name → (lower, upper) bounds for the KDE mode."""
    out: dict[str, np.ndarray] = {}
    bounds: dict[str, tuple] = {}
    beta = np.asarray(post["beta"])
    for j, n in enumerate(design.fixed_names):
        out[n] = beta[..., j]
        bounds[n] = (None, None)
    for k, b in enumerate(design.blocks):
        sd = np.asarray(post[f"sd_{k}"])
        for j, t in enumerate(b.term_names):
            out[f"sd_{t}|{b.group}"] = sd[..., j]
            bounds[f"sd_{t}|{b.group}"] = (0.0, None)
        if f"corr_{k}" in post:
            corr = np.asarray(post[f"corr_{k}"])
            for j, t1 in enumerate(b.term_names):
                for l in range(j + 1, b.q):
                    name = f"cor_{b.term_names[l]}.{t1}|{b.group}"
                    out[name] = corr[..., l, j]
                    bounds[name] = (-1.0, 1.0)
    out["sigma"] = np.asarray(post["sigma"])
    bounds["sigma"] = (0.0, None)
    for k, b in enumerate(design.blocks):
        for t in b.term_names:
            out[f"var_{t}|{b.group}"] = out[f"sd_{t}|{b.group}"] ** 2
            bounds[f"var_{t}|{b.group}"] = (0.0, None)
    out["sigma2"] = out["sigma"] ** 2
    bounds["sigma2"] = (0.0, None)
    return out, bounds


def posterior_rows(summaries: dict[str, PosteriorSummary], design: Design, level: float
                   ) -> tuple[list[Interval], tuple[FixefRow, ...]]:
    """The ETI and HDI of every summarised parameter and the fixef rows (posterior mean and SD)."""
    intervals = []
    for s in summaries.values():
        intervals.append(Interval(s.parameter, "eti", s.eti_lower, s.eti_upper, level))
        intervals.append(Interval(s.parameter, "hdi", s.hdi_lower, s.hdi_upper, level))
    return intervals, tuple(FixefRow(n, summaries[n].mean, summaries[n].sd) for n in design.fixed_names)


def build_result(post: dict[str, np.ndarray], stats: dict[str, np.ndarray], design: Design, *,
                 level: float, options: dict[str, Any], diagnostics: dict[str, Any],
                 elapsed_s: float, tails: dict | None = None) -> FitResult:
    """Assemble the FitResult of a posterior (see the backend docstring for the fields).

    ``post``: model variables (beta, sigma, sd_k, corr_k, u_k) as (chain, draw, …) arrays; ``stats``:
    sampler statistics.  The InferenceData on the result holds the canonical draws and ``u_k``.
    ``tails`` (:func:`.tails.moment_orders`): a mean or SD the posterior does not have is reported as inf,
    with a warning, not as the draws' (finite, unstable) sample moment.
    """
    draws, bounds = canonical_draws(post, design)
    summaries = summarise_all(draws, bounds, level)
    summaries, infinite = unavailable_moments(summaries, tails) if tails else (summaries, ())
    idata = LazyInferenceData(draws, stats, {k: v for k, v in post.items() if k.startswith("u_")})
    intervals, fixef = posterior_rows(summaries, design, level)
    varcorr: list[VarCorrRow] = []
    ranef: list[RanefRow] = []
    for k, b in enumerate(design.blocks):
        for t in b.term_names:
            varcorr.append(VarCorrRow(b.group, t, None, variance=summaries[f"var_{t}|{b.group}"].mean,
                                      sd=summaries[f"sd_{t}|{b.group}"].mean))
        for j, t1 in enumerate(b.term_names):
            for l in range(j + 1, b.q):
                name = f"cor_{b.term_names[l]}.{t1}|{b.group}"
                if name in draws:
                    cov = draws[f"sd_{t1}|{b.group}"] * draws[f"sd_{b.term_names[l]}|{b.group}"] * draws[name]
                    varcorr.append(VarCorrRow(b.group, t1, b.term_names[l], corr=summaries[name].mean,
                                              cov=float(cov.mean())))
        u = np.asarray(post[f"u_{k}"])  # (chain, draw, level, q)
        um, us = u.mean(axis=(0, 1)), u.std(axis=(0, 1), ddof=1)
        for i, lev in enumerate(b.levels):
            for j, t in enumerate(b.term_names):
                ranef.append(RanefRow(b.group, lev, t, float(um[i, j]), float(us[i, j])))
    varcorr.append(VarCorrRow("Residual", None, None, variance=summaries["sigma2"].mean,
                              sd=summaries["sigma"].mean))
    rhats = np.array([s.rhat for s in summaries.values()])
    ess = np.array([s.ess_bulk for s in summaries.values()])
    max_rhat = float(np.nanmax(rhats)) if np.isfinite(rhats).any() else float("nan")
    warnings = list(infinite)
    div = int(diagnostics.get("divergences", 0))
    if div:
        warnings.append(f"{div} divergent transitions after tuning; the posterior may be biased "
                        f"(try target_accept closer to 1 or another parameterisation).")
    bad = [s.parameter for s in summaries.values() if not s.rhat < 1.01]
    if np.asarray(post["sigma"]).shape[0] < 2:   # the draws' own chain count, as _split_rhat reads it
        warnings.append("R-hat needs at least 2 chains: with one chain convergence cannot be checked, so the "
                        "fit is reported as not converged (use chains ≥ 2).")
    elif bad:
        warnings.append(f"R-hat ≥ 1.01 for {', '.join(bad)} (max {max_rhat:.3f}); the chains have not mixed.")
    diagnostics = dict(diagnostics, max_rhat=max_rhat, min_ess_bulk=float(np.nanmin(ess)))
    return FitResult(
        backend="pymc", method="Bayes", formula=design.spec.formula, nobs=design.n,
        converged=bool(max_rhat < 1.01 and div == 0), singular=False, loglik=None, criterion=None,
        sigma=summaries["sigma"].mean, fixef=fixef, varcorr=tuple(varcorr), ranef=tuple(ranef),
        ngroups={b.group: b.n_levels for b in design.blocks}, elapsed_s=elapsed_s,
        warnings=tuple(warnings), intervals=tuple(intervals), posterior=tuple(summaries.values()),
        diagnostics=diagnostics, options=options, idata=idata)
