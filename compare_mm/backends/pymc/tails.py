"""Which posterior moments of an SD exist: the polynomial tail of p(s | y) under a heavy-tailed prior.

As one SD s_k → ∞ with the other covariance parameters fixed, p(y | ψ) ~ C s_k^(−G_k): each of the G_k
levels of the term's grouping factor adds one direction of y whose variance grows as s_k², and β's
Normal prior is proper, so nothing offsets the factor s_k⁻¹ per level.  A prior density falling as
s^(−t) (half-Cauchy t = 2, half-t(ν) t = ν + 1, an inverse gamma IG(α, β) on s² t = 2α + 1; half-normal
and exponential priors fall faster than any power) leaves the posterior tail s^(−(G_k + t)), so

    E[s_k^m | y] < ∞  ⟺  m < G_k + t − 1.

The SD's posterior SD needs m = 2, its variance's mean m = 2 and the variance's SD m = 4.  With a
half-Cauchy prior on 2 or 3 groups — Gelman's (2006, Bayesian Analysis 1, 515–533) choice for few
groups — or IG(0.001, 0.001) on ≤ 3, the posterior SD of σ_A² is infinite; a grid (or a chain) reports a
finite number that grows with its reach (one-way 6 × G data, half-Cauchy(1): E[σ_A⁴] over σ_A < c
grew in proportion to c for G = 2 and as log c for G = 3, and was constant from c = 10⁴ for G = 4).
The residual σ has n observations in place of G_k.  Both the quadrature and the NUTS path report such a
moment as inf with one warning (a chain's sample moment of a posterior without it is finite and unstable).
Where the 4th moment exists but the tail is polynomial, the quadrature's flood fill also covers the
variance integrand of s² (:func:`.quadrature_fit.heavy_axes`, :func:`.quadrature_flood.tail_lift`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from ...model.design import Design
from ...results.schema import PosteriorSummary
from .priors import Prior, PriorSet


def tail_exponent(prior: Prior) -> float:
    """t such that the prior density of the SD falls as s^(−t) (inf: faster than any power)."""
    if prior.family == "half_cauchy":
        return 2.0
    if prior.family == "half_student_t":
        return float(prior.shape) + 1.0
    if prior.family == "inverse_gamma":          # IG(α, β) on v = s²: p(s) = 2s p_v(s²) ~ s^(−2α − 1)
        return 2.0 * float(prior.shape) + 1.0
    return math.inf


@dataclass(frozen=True)
class Tail:
    """The posterior tail of one SD: moments of order m < ``order`` exist (``order`` = G + t − 1)."""

    order: float
    levels: int          # G (n for σ)
    what: str            # "levels of g" / "observations"
    prior: str           # the SD prior's family label (HalfCauchy, …)


def moment_orders(priors: PriorSet, design: Design) -> dict[str, Tail]:
    """SD name (and ``sigma``) → its :class:`Tail` (module docstring)."""
    levels = [(b.n_levels, b.group) for b in design.blocks for _ in b.term_names]
    out = {name: Tail(G + tail_exponent(p) - 1.0, G, f"levels of {g}", p.label)
           for name, p, (G, g) in zip(priors.sd_names, priors.sd, levels)}
    out["sigma"] = Tail(design.n + tail_exponent(priors.sigma) - 1.0, design.n, "observations",
                        priors.sigma.label)
    return out


def infinite_moments(summaries: dict[str, PosteriorSummary], tails: dict[str, Tail]
                     ) -> tuple[dict[str, PosteriorSummary], tuple[str, ...]]:
    """``summaries`` with every mean and SD whose moment diverges (:func:`moment_orders`) set to inf, and
    one warning per SD whose moments are affected (none when every moment exists)."""
    out, warnings = dict(summaries), []
    for sd_name, tail in tails.items():
        var_name = "sigma2" if sd_name == "sigma" else sd_name.replace("sd_", "var_", 1)
        named = []
        for name, m_mean, m_sd in ((sd_name, 1, 2), (var_name, 2, 4)):
            p = out.get(name)
            if p is None or m_sd < tail.order:
                continue
            out[name] = replace(p, sd=math.inf, **({"mean": math.inf} if m_mean >= tail.order else {}))
            named.append(f"{'the mean and ' if m_mean >= tail.order else ''}the SD of {name}")
        if named:
            warnings.append(
                f"{' and '.join(named)} {'are' if len(named) > 1 else 'is'} infinite: with {tail.levels} "
                f"{tail.what} and a {tail.prior} prior on {sd_name}, the posterior density of "
                f"{sd_name} falls as s^-{tail.order + 1:g} for large s, so E[s^m] diverges for "
                f"m ≥ {tail.order:g} (reported as inf; the quantiles and intervals are exact).")
    return out, tuple(warnings)


__all__ = ["Tail", "infinite_moments", "moment_orders", "tail_exponent"]
