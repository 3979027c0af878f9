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
A moment that exists with m < G_k + t − 1 < m + 1 is reported as NaN, with the warning: s^m f then falls
more slowly than s⁻², and the part of E[s^m] beyond S shrinks only as S^−(G_k + t − 1 − m) — under
IG(0.001, 0.001) on 4 groups the SD of σ_A² exists, but the part of E[σ_A⁴] beyond σ_A = S shrinks as
S^−0.002 (it halves when S grows by a factor e³⁴⁷).  Where the tail is polynomial and s⁴f falls at least as s⁻², the quadrature's flood fill also
follows the variance integrand of s² (:func:`lift_power`, :func:`.quadrature_flood.tail_lift`).
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


def lift_power(order: float) -> int:
    """The highest power p whose variance, Var(s^p), the quadrature's flood follows into the tail of an SD
    with moment order ``order`` (:func:`.quadrature_flood.tail_lift`): 2 where the posterior's tail is
    polynomial and s⁴f still falls at least as fast as s⁻² (order ≥ 5), 1 where s²f does (order ≥ 3, and
    every light tail), 0 below (those moments are not computed, :func:`unavailable_moments`)."""
    if math.isinf(order) or 3.0 <= order < 5.0:
        return 1
    return 2 if order >= 5.0 else 0


def lift_powers(names, tails: dict[str, Tail]) -> tuple[int, ...]:
    """:func:`lift_power` per ψ axis, the axes named in order by their SD (``sigma`` for σ; None — the
    correlation's axis — gets 0)."""
    return tuple(0 if n is None else lift_power(tails[n].order) for n in names)


def unavailable_moments(summaries: dict[str, PosteriorSummary], tails: dict[str, Tail]
                        ) -> tuple[dict[str, PosteriorSummary], tuple[str, ...]]:
    """``summaries`` with every mean and SD that the posterior does not have set to inf, and every one
    that exists but whose integrand s^m f falls more slowly than s⁻² (m < order < m + 1: E[s^m] over
    s < S converges only as S^−(order − m), which no grid or chain reaches) set to NaN, with one warning
    per SD whose moments are affected (none when every moment is computed)."""
    out, warnings = dict(summaries), []
    for sd_name, tail in tails.items():
        var_name = "sigma2" if sd_name == "sigma" else sd_name.replace("sd_", "var_", 1)
        infinite, heavy = [], []
        for name, moments in ((sd_name, (("mean", 1), ("sd", 2))), (var_name, (("mean", 2), ("sd", 4)))):
            p = out.get(name)
            if p is None:
                continue
            change = {}
            for field, m in moments:
                if m >= tail.order:
                    change[field] = math.inf
                    infinite.append(f"the {'SD' if field == 'sd' else 'mean'} of {name}")
                elif tail.order < m + 1:
                    change[field] = math.nan
                    heavy.append(f"the {'SD' if field == 'sd' else 'mean'} of {name}")
            if change:
                out[name] = replace(p, **change)
        if not (infinite or heavy):
            continue
        why = (f"with {tail.levels} {tail.what} and a {tail.prior} prior on {sd_name}, the posterior density of "
               f"{sd_name} falls as s^-{tail.order + 1:g} for large s, so E[s^m] diverges for m ≥ {tail.order:g}")
        said = []
        if infinite:
            said.append(f"{' and '.join(infinite)} {'are' if len(infinite) > 1 else 'is'} infinite (reported as inf)")
        if heavy:
            said.append(f"{' and '.join(heavy)} {'are' if len(heavy) > 1 else 'is'} finite but not computed "
                        f"(NaN: its integral converges too slowly to be summed on a grid or from draws)")
        warnings.append(f"{'; '.join(said)}: {why}; the quantiles and intervals are exact.")
    return out, tuple(warnings)


__all__ = ["Tail", "lift_power", "lift_powers", "moment_orders", "tail_exponent", "unavailable_moments"]
