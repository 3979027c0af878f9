"""Internal centring of correlated random slopes far from 0: which columns, and which slopes are refused.

The fitter works on the centred columns and maps its estimates back exactly
(:mod:`compare_mm.fitter.centring`); this module only decides the shifts, from the data, when the design
is built (:attr:`compare_mm.model.design.RandomBlock.shift`, :attr:`compare_mm.model.design.Design.x_shift`).
"""

from __future__ import annotations

import numpy as np

from ..errors import DataError

#: smallest SD(x) / RMS(x) of a slope in a correlated term: below it x is collinear with the intercept to
#: rounding (the fixed-effects columns' limit, :func:`.checks.check_rank`'s 1e-7), and centring could not
#: recover it
SLOPE_VARIATION_MIN = 1e-7

#: a slope of a correlated term is centred internally when |mean(x)| > CENTRE_ABOVE · SD(x) (a year column,
#: 1990–2020, is at ≈ 220 SD).  Below it the fit on the columns as written is kept: it is as accurate
#: there (sleepstudy's Days, at 1.6 SD, matches lme4 to its tolerances), and on the flattest surfaces
#: (tests/fitter/test_extreme_ratio.py, θ ≈ 10⁶) the optimiser stops at a point of the same criterion
#: to 2e-13 that centring would move by 2e-6 in σ̂².
CENTRE_ABOVE = 2.0


def slope_shift(Z: np.ndarray, covariance: str) -> tuple[float, ...]:
    """The centring c of a random-effects block: for an unstructured block whose first column is the
    intercept, c_e = mean of slope column e when |mean| > :data:`CENTRE_ABOVE` · SD, else 0; 0 for the
    intercept and for every other block.

    The fitter works on Z_c = Z − 1c' (columns [1, x − c]), the same model: Z = Z_c M with
    M = I + e_1 c', so b_c = M b and Σ_c = M Σ M' (:mod:`compare_mm.fitter.centring`).  An uncorrelated
    ``(x || g)`` block is not shifted: there a shift of x is another model.
    """
    Z = np.asarray(Z, dtype=float)
    q = Z.shape[1] if Z.ndim == 2 else 0
    if covariance != "unstructured" or q < 2 or Z.shape[0] == 0 or not np.all(Z[:, 0] == 1.0):
        return (0.0,) * q
    mean, sd = Z[:, 1:].mean(axis=0), Z[:, 1:].std(axis=0)
    return (0.0,) + tuple(float(m) if abs(m) > CENTRE_ABOVE * s else 0.0 for m, s in zip(mean, sd))


def fixed_shift(X: np.ndarray, names, blocks) -> tuple[float, ...]:
    """The centring m of the fixed-effects columns of a design with a centred random slope: m_j = mean of
    column j when |mean| > :data:`CENTRE_ABOVE` · SD and the model has an intercept, else 0 (all zeros
    when no block is centred, so every other design is fitted as written).

    X = X_c N with X_c = X − 1m' and N = I + e_0 m' (e_0 the intercept): β_c = N β, vcov = N⁻¹ V_c N⁻ᵀ,
    det N = 1, so the REML criterion's log|X'V⁻¹X| is unchanged.  An x far from 0 in the random part is
    usually in X too, where it makes X'X as ill-conditioned (cond ≈ (mean/SD)²).
    """
    X = np.asarray(X, dtype=float)
    p = X.shape[1]
    if not any(b.centred for b in blocks) or "(Intercept)" not in names or X.shape[0] == 0:
        return (0.0,) * p
    if not np.all(X[:, list(names).index("(Intercept)")] == 1.0):
        return (0.0,) * p
    mean, sd = X.mean(axis=0), X.std(axis=0)
    return tuple(float(m) if nm != "(Intercept)" and abs(m) > CENTRE_ABOVE * s else 0.0
                 for m, s, nm in zip(mean, sd, names))


def check_slope_varies(blocks, terms) -> None:
    """A slope of a correlated term that varies by less than :data:`SLOPE_VARIATION_MIN` of its size
    (x = 10¹⁰ + u, u of order 1) is collinear with the intercept to rounding: its centred column keeps
    fewer than 7 significant digits, so no estimate is given (a constant x is left to the checks of
    :mod:`.identifiable`, which name it)."""
    for b, term in zip(blocks, terms):
        if not any(b.shift):
            continue
        for e in range(1, b.q):
            z = b.Z[:, e]
            sd, rms = float(z.std()), float(np.sqrt(np.mean(z * z)))
            if 0 < sd <= SLOPE_VARIATION_MIN * rms:
                name = b.term_names[e]
                raise DataError(
                    f"The random slope {name!r} of {term} varies by {sd:.3g} (SD) about {float(z.mean()):.10g}, "
                    f"less than {SLOPE_VARIATION_MIN:g} of its size: as stored it is collinear with the intercept "
                    f"to rounding; store it relative to a value near its mean ({name} − {float(z.mean()):.6g}) "
                    "with its full precision and refit."
                )


def beta_map(x_shift, names) -> np.ndarray | None:
    """N⁻¹ = I − e_0 m' of :func:`fixed_shift`'s m (β = N⁻¹ β_c), None when no column is shifted."""
    if not any(x_shift):
        return None
    M = np.eye(len(x_shift))
    M[list(names).index("(Intercept)")] -= np.asarray(x_shift, dtype=float)
    return M


__all__ = ["CENTRE_ABOVE", "SLOPE_VARIATION_MIN", "beta_map", "check_slope_varies", "fixed_shift", "slope_shift"]
