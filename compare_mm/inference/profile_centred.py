"""The user's intercept SD and correlation of an internally centred ``(x | g)`` term as profile constraints.

The fitter works on centred columns (:mod:`compare_mm.fitter.centring`): Z = Z_c M, M = [[1, c], [0, 1]],
Σ = M⁻¹ Σ_c M⁻ᵀ.  A profile is a minimisation over the model, so it may run in any coordinates as long as
the *constraint* is the user's quantity.  The SDs of the slopes, σ and the fixed effects are the same in
both coordinates; the intercept's SD σ_A and the correlation ρ at x = 0 are not:

    σ_A² = σ_c² − 2c ρ_c σ_c σ_B + c² σ_B²,     ρ = (ρ_c σ_c − c σ_B) / σ_A          (1)

(σ_c, ρ_c the centred intercept SD and correlation, σ_B the slope SD).  Profiling the user's ψ directly
is hopeless far from 0 (|ρ| → 1 and σ_A ≈ c σ_B: a narrow curved valley), so the profile runs in the
centred ψ with one coordinate eliminated by solving (1) for it in closed form (a = ρ_c σ_c, T = c σ_B):

    σ_A = v:  σ_B = (a ± sqrt(v² − σ_c² + a²)) / c,  or  σ_c = ρ_c T ± sqrt(v² − T²(1 − ρ_c²));
    ρ = r:    a = T(1 − r²) ± |r| sqrt(σ_c² − (1 − r²) T²),  or  T = a − r σ_c sqrt((1 − ρ_c²)/(1 − r²))

(roots in range only: SDs ≥ 0, |ρ_c| ≤ 1, a − T of r's sign).  Each elimination has a region of the free
coordinates without a root, so both are minimised and the better taken.  Eliminating ρ_c keeps the free
coordinates well scaled as |r| → 1 (ρ_c → ±1 smoothly; r = ±1 is the singular Σ_c itself), where
eliminating σ_B would make it vary as 1/sqrt(1 − r²).

Only terms with one slope (q = 2) are handled; for a centred term with several slopes the intercept's
SD and its correlations get no profile interval (:data:`UNSUPPORTED`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..fitter.theta import Layout
from .profile_params import VarParam

#: why a profile of the intercept's SD or correlation of a centred term with several slopes is NaN
UNSUPPORTED = ("no profile interval for the intercept's SD or correlation of a random-effects term with "
               "several internally centred slopes (the profile there is not implemented); the Wald and "
               "bootstrap intervals are available")


def eliminated_roots(v: float, sc: float, rc: float, sb: float, c: float, kind: str, solve_for: str
                     ) -> list[float]:
    """The values of the centred coordinate ``solve_for`` ("sb" σ_B, "sc" σ_c or "rc" ρ_c) that impose the
    user's σ_A = v (``kind`` "sd") or ρ = v ("cor") by (1), the others at σ_c = ``sc``, ρ_c = ``rc``,
    σ_B = ``sb``: every root in range (SDs ≥ 0, |ρ_c| ≤ 1, a − cσ_B of the sign of ρ); empty if none."""
    a, T = rc * sc, c * sb
    if kind == "sd":
        if solve_for == "sb":                    # c²σ_B² − 2acσ_B + σ_c² − v² = 0
            disc = v * v - sc * sc + a * a
            cands = [] if disc < 0 else [(a + s * math.sqrt(disc)) / c for s in (1.0, -1.0)]
        else:                                    # σ_c² − 2ρ_cTσ_c + T² − v² = 0
            disc = v * v - T * T * (1.0 - rc * rc)
            cands = [] if disc < 0 else [rc * T + s * math.sqrt(disc) for s in (1.0, -1.0)]
        return sorted({x for x in cands if x >= 0.0})
    r = float(np.clip(v, -1.0, 1.0))
    e = 1.0 - r * r
    if solve_for == "rc":                        # a² − 2eTa + eT² − r²σ_c² = 0
        disc = sc * sc - e * T * T
        if sc <= 0.0 or disc < 0:
            return []
        out = []
        for a in (T * e + abs(r) * math.sqrt(disc), T * e - abs(r) * math.sqrt(disc)):
            if abs(a) <= sc * (1.0 + 1e-12) and (r == 0.0 or np.sign(a - T) == np.sign(r)):
                out.append(float(np.clip(a / sc, -1.0, 1.0)))
        return sorted(set(out))
    if e <= 0.0:                                 # σ_B: T = a − r σ_c sqrt((1 − ρ_c²) / (1 − r²))
        return []
    t = a - r * sc * math.sqrt(max(1.0 - rc * rc, 0.0) / e)
    return [t / c] if t / c >= 0.0 else []


def _index(params: list[VarParam], kind: str, term: int, i: int, j: int) -> int:
    return next(n for n, p in enumerate(params) if p.kind == kind and p.term == term and p.i == i and p.j == j)


@dataclass(frozen=True)
class UserConstraint:
    """The user's σ_A = v (``kind`` "sd") or ρ = v ("cor") of a centred q = 2 term, on the centred ψ:
    ``i_sc``, ``i_rc``, ``i_sb`` the ψ indices of σ_c, ρ_c and σ_B, ``c`` the shift.  Two coordinates can
    be eliminated (:attr:`solve_for`): each covers the region where the other has no root (σ_B or σ_c for
    σ_A; ρ_c near |ρ| = 1, σ_B elsewhere, for ρ), and the profile takes the better."""

    kind: str
    i_sc: int
    i_rc: int
    i_sb: int
    c: float

    def solve_for(self, v: float) -> tuple[str, ...]:
        """The eliminations tried at v: σ_B or σ_c for σ_A (at σ_A = 0 both: Σ_c = σ_B²[[c², c], [c, 1]],
        ``"zero"``), ρ_c or σ_B for ρ."""
        if self.kind == "sd":
            return ("zero",) if v <= 0.0 else ("sb", "sc")
        return ("rc", "sb")

    def fixed(self, which: str) -> tuple[int, ...]:
        """The ψ indices an elimination sets (the minimisation runs over the others)."""
        return {"sb": (self.i_sb,), "sc": (self.i_sc,), "rc": (self.i_rc,), "zero": (self.i_sc, self.i_rc)}[which]

    def candidates(self, v: float, psi: np.ndarray, which: str) -> list[np.ndarray]:
        """ψ with the eliminated coordinates set to each root (:func:`eliminated_roots`) given the others."""
        if which == "zero":
            out = psi.copy()
            out[self.i_rc], out[self.i_sc] = np.sign(self.c), abs(self.c) * psi[self.i_sb]
            return [out]
        res = []
        for root in eliminated_roots(float(v), float(psi[self.i_sc]), float(psi[self.i_rc]), float(psi[self.i_sb]),
                                     self.c, self.kind, which):
            out = psi.copy()
            out[self.fixed(which)[0]] = root
            res.append(out)
        return res

    def feasible(self, v: float, psi: np.ndarray, which: str) -> np.ndarray:
        """A start with a root for elimination ``which``: the free SD that bounds the discriminant is
        shrunk to 0.99 of its largest feasible value when it is beyond it (ψ itself otherwise)."""
        out = psi.copy()
        s = math.sqrt(max(1.0 - float(psi[self.i_rc]) ** 2, 0.0))
        if self.kind == "sd" and which == "sb" and psi[self.i_sc] * s > v:        # σ_c²(1 − ρ_c²) ≤ v²
            out[self.i_sc] = 0.99 * v / s
        elif self.kind == "sd" and which == "sc" and abs(self.c) * psi[self.i_sb] * s > v:   # T²(1 − ρ_c²) ≤ v²
            out[self.i_sb] = 0.99 * v / (abs(self.c) * s)
        elif self.kind == "cor" and which == "rc":                                # (1 − r²)T² ≤ σ_c²
            e = math.sqrt(max(1.0 - v * v, 0.0))
            if abs(self.c) * psi[self.i_sb] * e > psi[self.i_sc]:
                out[self.i_sb] = 0.99 * psi[self.i_sc] / (abs(self.c) * e)
        return out


def user_constraints(layout: Layout, params: list[VarParam]) -> tuple[dict[int, UserConstraint], set[int]]:
    """For each ψ index k that is a user's quantity differing from the centred one, its
    :class:`UserConstraint`; and the indices that get no profile (a centred term with several slopes)."""
    out: dict[int, UserConstraint] = {}
    unsupported: set[int] = set()
    for ti, t in enumerate(layout.terms):
        if not t.centred:
            continue
        for k, p in enumerate(params):
            if p.term != ti or not (p.kind == "sd" and p.i == 0 or p.kind == "cor" and p.j == 0):
                continue
            if t.q != 2 or t.covariance != "unstructured":
                unsupported.add(k)
                continue
            i_sc, i_rc, i_sb = (_index(params, "sd", ti, 0, 0), _index(params, "cor", ti, 1, 0),
                                _index(params, "sd", ti, 1, 1))
            out[k] = UserConstraint(p.kind, i_sc, i_rc, i_sb, float(t.shift[1]))
    return out, unsupported


__all__ = ["UNSUPPORTED", "UserConstraint", "eliminated_roots", "user_constraints"]
