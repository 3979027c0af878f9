"""The quadrature's node weights at an η = 0 face (:mod:`.quadrature`, "Weights").

The trapezoid rule, which is spectrally accurate for a smooth integrand that decays inside
the box (Trefethen & Weideman 2014, SIAM Rev. 56, 385–458, sec. 5), with one of two end rules at an η = 0
face, where the integrand does not vanish:

* weight ½ (the plain trapezoid rule) on an SD axis whose prior density is an even smooth function of s
  (half-normal, half-Cauchy, half-Student-t; an inverse-gamma axis is a log axis, with no boundary).
  In an uncorrelated term p(y | ψ) depends on such an s through s² only and ds/dη = c cosh η is even, so
  f is even in η: the half-line rule is half the full-line trapezoid rule of the even extension
  (Euler–Maclaurin: every end correction involves an odd derivative at 0, which vanishes), and is
  spectrally accurate.  In a ``(x | g)`` term G depends on (sd₀, sd₁, ρ) through sd₀², sd₁², sd₀sd₁ρ,
  so the symmetry is the joint reflection f(−η_k, ζ) = f(η_k, −ζ); with the ζ nodes symmetric about 0
  (anchored at ζ = 0, :attr:`.quadrature.Coordinates.rho_symmetric`) the ½ weight is the full-space trapezoid rule
  folded, spectrally accurate for every quantity invariant under the reflection — the SDs, σ, β, u.  The
  one that is not is the correlation: at fixed ζ the SD sums are half-line rules of integrands that are
  not even, O(h²); its node masses get the Euler–Maclaurin end terms from the values at −jh, which the
  reflection puts on the grid (:func:`.quadrature_summary.rho_masses`, O(h¹⁰)).  (Before these terms, the
  97.5 % quantile of ρ changed as O(h²) down to h = ¼ on a σ_A = 0 data set, and ``(x | g)`` fits used
  Gregory's weights, O(h⁴): on ten 10 × 10 random-slope data sets at σ_A² = 0 the median fit took 2.8× as
  long and the slowest 6.8× — 6.9 s, h = ¼ — as with this rule; at σ_A² = 0.5, 2.1× and 3.1×.)  The axis
  marginal's log-density spline is fitted to the mirrored nodes (zero slope at 0), and E[s] (s is odd in
  η) gets the end terms too.
* on an exponential SD prior's axis of an uncorrelated term, log p(s) = −s/scale is odd in η, so f is an
  even function times e^(−a sinh η), a = c/scale; its smooth (analytic) extension to η < 0 is known from
  the node values, f(−jh) = f(jh) e^(2a sinh jh), and the half-line rule gets the Euler–Maclaurin end
  terms from the odd differences (:func:`end_factors`, O(h¹⁰)); the axis marginal's spline is fitted to
  the even part at the mirrored nodes.  (With Gregory's weights, used before, on a 10 × 5 one-way
  design at σ_A² = 0.05 under the pc_prior preset 26 of 200 batched fits missed the tolerance twice and
  fell back to the per-replicate path; with these terms none did.)
* Gregory's fourth-order end weights (3/8, 7/6, 23/24; Press et al., Numerical Recipes, eq. 4.1.14)
  elsewhere: exponential priors in a correlated term (whose symmetry flips ζ too) and σ.
"""

from __future__ import annotations

import numpy as np

_GREGORY = np.array([3 / 8, 7 / 6, 23 / 24])
#: SD prior families whose density is an even smooth function of s (the inverse gamma's axis is a log axis)
EVEN_FAMILIES = ("half_normal", "half_cauchy", "half_student_t")
#: SD prior families whose log density is linear in s, −s/scale: on an uncorrelated term's η axis f is an
#: even function times e^(−a sinh η), a = c/scale, and its smooth extension has f(−η) = f(η) e^(2a sinh η)
TILT_FAMILIES = ("exponential",)


def euler_maclaurin_alpha(m: int = 4) -> np.ndarray:
    """α_1…α_m with ∫₀^∞ g = h[½g(0) + Σ_{j≥1} g(jh)] + h Σ_{j≤m} α_j (g(jh) − g(−jh)) + O(h^{2m+2}) for g
    smooth on ℝ: the Euler–Maclaurin end terms B_2k h^2k g^(2k−1)(0) / (2k)! (Abramowitz & Stegun 23.1.30)
    written through the odd differences, Σ_j α_j j^(2k−1) = B_2k / (4k), k = 1…m."""
    bern = {1: 1 / 6, 2: -1 / 30, 3: 1 / 42, 4: -1 / 30, 5: 5 / 66, 6: -691 / 2730}
    A = np.array([[j ** (2 * k - 1) for j in range(1, m + 1)] for k in range(1, m + 1)], float)
    return np.linalg.solve(A, np.array([bern[k] / (4 * k) for k in range(1, m + 1)]))


EM_ALPHA = euler_maclaurin_alpha(4)
#: largest |factor − 1| of a tilted axis' end terms (:func:`end_factors`) for them to be used: on the test
#: integrands of tests/backends/test_quadrature_end_corrections.py every (a, h) within it beats Gregory's
#: weights (by 3.6–57,000×), while of the 18 cases beyond it the terms lost to Gregory in 9 (up to 10¹¹ off)
_MAX_END_TERM = 0.5


def end_factors(N: int, dz, tilt, odd: bool = False) -> np.ndarray:
    """Multipliers of the trapezoid weights dz of N nodes starting at η = 0 (module docstring),
    for rows of spacings ``dz`` and tilts ``tilt`` (broadcasting; result (…, N)).

    ``tilt`` a finite (the integrand's extension has g(−η) = g(η) e^(2a sinh η); a = 0: g even): ½ at 0 and
    the Euler–Maclaurin end terms of :data:`EM_ALPHA` from the odd differences g(jh) − g(−jh) =
    g(jh)(1 − r_j), r_j = e^(2a sinh(jh)) — factors 1 + α_j(1 − r_j), j ≤ 4, error O(h¹⁰) (for a = 0 the
    plain ½ rule, spectrally accurate); with ``odd`` the integrand is s·g, whose extension flips sign:
    factors 1 + α_j(1 + r_j).  ``tilt`` NaN, a ≠ 0 and N ≤ 4, or end terms beyond :data:`_MAX_END_TERM`:
    Gregory's end weights (O(h⁴))."""
    dz, tilt = np.broadcast_arrays(np.asarray(dz, float), np.asarray(tilt, float))
    out = np.ones(dz.shape + (N,))
    m = EM_ALPHA.size
    fin = np.isfinite(tilt) & ((N > m) | (tilt == 0.0))
    g = min(3, N)
    out[~fin, :g] = _GREGORY[:g]
    out[fin & (N <= m), 0] = 0.5      # an even axis of ≤ 4 nodes: the ½ rule, no end terms needed
    fin &= N > m
    if fin.any():
        j = np.arange(1, m + 1)
        with np.errstate(over="ignore", invalid="ignore"):
            r = np.exp(2.0 * tilt[fin][..., None] * np.sinh(j * dz[fin][..., None]))
            even = 1.0 + EM_ALPHA * (1.0 - r)
            # the end terms are a perturbation only while r_j stays moderate (a·sinh(4h) ≲ 1): beyond,
            # factors far from 1 (at a = 1.5, h = 1: −10¹⁷) cancel, and Gregory's weights are kept
            usable = np.all(np.abs(even - 1.0) <= _MAX_END_TERM, axis=-1)
        rows = np.flatnonzero(fin.ravel())
        flat = out.reshape(-1, N)
        flat[rows[usable], 0] = 0.5
        flat[rows[usable], 1:1 + m] = ((1.0 + EM_ALPHA * (1.0 + r)) if odd else even)[usable]
        flat[rows[~usable], :g] = _GREGORY[:g]
        out = flat.reshape(out.shape)
    return out


def axis_tilt(family: str | None, c, scale) -> np.ndarray:
    """The a of an η axis of scale c under an SD prior of ``family`` with numeric ``scale`` (broadcasting):
    0 where f is even in η (:data:`EVEN_FAMILIES`), c/scale under an exponential prior (:data:`TILT_FAMILIES`,
    an uncorrelated term), NaN otherwise (Gregory's end weights)."""
    c = np.asarray(c, float)
    if family in EVEN_FAMILIES:
        return np.zeros_like(c)
    if family in TILT_FAMILIES:
        return c / scale
    return np.full_like(c, np.nan)
