"""Which nodes of a tensor grid to evaluate: a flood fill of the superlevel set {log f > T} from the mode.

The posterior of ψ in the coordinates of :mod:`.quadrature` occupies a small part of its axis-aligned
box: on the 18 × 10 random-slope bench design only 8–23 % of the nodes the box rule evaluated in
``(x | g)`` (4-D) had log f > max − Δ, and nodes down to 670 below the maximum were evaluated.  The
flood fill evaluates instead the node nearest the mode, then, repeatedly, the not yet evaluated
face neighbours (±1 along each axis) of every evaluated node with log f > T, T = max − Δ − 2 (the
threshold of the refined grids' pruning rule, :func:`.quadrature.make_grid`).  It stops when no
evaluated node above T has an unevaluated neighbour inside the box, so the evaluated set is the
connected component of {log f > T} that holds the mode plus its one-node boundary layer; every node
left out has log f ≤ T (it is not adjacent to the component) or lies beyond it.  A unimodal posterior has
a connected superlevel set; the face checks of ``make_grid`` (every face of the box below max − Δ)
then grow the box, and the fill continues from the nodes already evaluated.

Mass left out: a node with log f ≤ T holds ≤ e^{−Δ−2} of the largest node's mass (< 8e-8 for Δ = 14.4);
for a Gaussian the whole region below T holds P(χ²_d > 2(Δ + 2)) (1.3e-6 for d = 4), so a CDF changes by
≤ that and a quantile by ≲ 1e-5 posterior SDs — two orders of magnitude inside the integration tolerance.
A moment can lose more: in a heavy tail (s − m)²f falls more slowly than f, and the variance integrand
still carries mass where the flood stopped.  :func:`tail_lift` measures that on the boundary layer, and
``flood(..., lift=...)`` then also fills the superlevel set of the variance integrand.
"""

from __future__ import annotations

from typing import Callable

import numpy as np


def neighbours(flat: np.ndarray, shape: tuple) -> np.ndarray:
    """The face neighbours (±1 along one axis, inside ``shape``) of the C-order nodes ``flat``, with
    repeats."""
    idx = np.unravel_index(flat, shape)
    strides = np.cumprod((shape[1:] + (1,))[::-1])[::-1]
    out = []
    for k, n in enumerate(shape):
        i = idx[k]
        out.append(flat[i > 0] - strides[k])
        out.append(flat[i < n - 1] + strides[k])
    return np.concatenate(out) if out else flat[:0]


def flood(logf: np.ndarray, known: np.ndarray, seed: int, top: float, drop: float,
          evaluate: Callable[[np.ndarray], np.ndarray],
          lift: Callable[[np.ndarray], np.ndarray] | None = None) -> None:
    """Evaluate (in place: ``logf``, ``known``) the nodes of the connected superlevel set
    {log f > max − ``drop``} that holds ``seed`` and the evaluated nodes already above it, plus its face
    neighbours; ``evaluate(flat)`` returns log f at the C-order nodes ``flat`` (and stores whatever else
    it computes).  ``top`` is the mode's log f; the threshold follows the largest value found.

    ``lift(flat)``, when given, adds a second set: the nodes where log f + lift is within ``drop`` of
    its own largest value are kept too (log of a moment's integrand, e.g. f·(s − m)², whose superlevel
    set reaches further into a heavy tail than f's: :func:`tail_lift`)."""
    lf, kn = logf.reshape(-1), known.reshape(-1)
    if not kn[seed]:
        lf[seed] = evaluate(np.array([seed]))[0]
        kn[seed] = True
    top = max(top, float(lf[kn].max()))
    if lift is None:
        def above(flat):
            return flat[lf[flat] > top - drop]
    else:
        done = np.flatnonzero(kn)
        top_l = float(np.max(lf[done] + lift(done)))

        def above(flat):
            sc = lf[flat] + lift(flat)
            return flat[(lf[flat] > top - drop) | (sc > top_l - drop)]
    frontier = above(np.flatnonzero(kn))
    mark = np.zeros(lf.size, bool)
    while frontier.size:
        mark[:] = False
        mark[neighbours(frontier, logf.shape)] = True
        cand = np.flatnonzero(mark & ~kn)        # distinct, in C order
        if cand.size == 0:
            break
        lf[cand] = evaluate(cand)
        kn[cand] = True
        top = max(top, float(lf[cand].max()))
        if lift is not None:
            top_l = max(top_l, float(np.max(lf[cand] + lift(cand))))
        frontier = above(cand)


#: the tail check of :func:`tail_lift`: an axis whose boundary layer holds more than this share of the
#: variance of its parameter (a remainder beyond the layer like the layer would move the posterior SD by
#: about half of it, 2e-4 posterior SDs: a fifth of the integration tolerance)
TAIL_SHARE = 4e-4


def tail_lift(lw: np.ndarray, lf: np.ndarray, idx: tuple, drop: float, values: dict[int, np.ndarray],
              squares: tuple[int, ...] = ()) -> dict[int, list[tuple[int, float, float]]]:
    """The axes whose posterior the flood fill cut short in a heavy tail, with what to flood there.

    The flood keeps the nodes with log f > max − ``drop`` and their one-node boundary layer; the mass it
    leaves out is ≤ e^{−drop} per node, but where f falls slowly (an SD under an exponential prior on few
    groups) the variance integrand (s − m)²f still carries mass there.  On the evaluated nodes (``lw``:
    log of f × the node weight, ``lf``: log f, ``idx``: their index along each axis), for each axis k of
    ``values`` (the parameter's value at axis k's nodes), with w the normalised weights: m = Σ w s,
    v = Σ w (s − m)², and the share of v on the boundary layer (log f ≤ max − drop); on the axes in
    ``squares`` also the share of the variance of s² (the SD of a variance parameter: asked for where the
    prior's polynomial tail keeps that moment finite but heavy, :mod:`.tails`).  Returns
    {k: [(p, E[s^p], Var(s^p)), …]} for the moments whose share exceeds :data:`TAIL_SHARE` — on the
    (x || g) property-test cases the share of v is 7e-6–1.1e-4; on the one whose SD of σ_A was 1.4e-3
    posterior SDs off, 2.8e-3 and 3.4e-3 on both SD axes; for s² under a half-Cauchy prior on 6 groups,
    5e-3 (the SD of σ_A² had been 3.8e-3 posterior SDs low)."""
    w = np.exp(lw - lw.max())
    w /= w.sum()
    layer = np.where(lf > lf.max() - drop, 0.0, w)
    out: dict[int, list[tuple[int, float, float]]] = {}
    for k, s in values.items():
        mass, edge = np.bincount(idx[k], w, s.size), np.bincount(idx[k], layer, s.size)
        for p in (1, 2) if k in squares else (1,):
            sp = s**p
            m = float(mass @ sp)
            d2 = (sp - m) ** 2
            v = float(mass @ d2)
            if v > 0 and float(edge @ d2) > TAIL_SHARE * v:
                out.setdefault(k, []).append((p, m, v))
    return out


def lift_grid(values: dict[int, np.ndarray], shape: tuple, tails: dict[int, list[tuple[int, float, float]]]
              ) -> np.ndarray:
    """log((s_k^p − m)² / v), the largest over the moments of ``tails`` (:func:`tail_lift`; ``values[k]``:
    axis k's parameter at its nodes), on the tensor grid of ``shape``: what :func:`flood` adds to log f
    for its second criterion."""
    out = np.full(shape, -np.inf)
    for k, moments in tails.items():
        axis = [1] * len(shape)
        axis[k] = -1
        for p, m, v in moments:
            with np.errstate(divide="ignore"):
                out = np.maximum(out, np.log((values[k] ** p - m) ** 2 / v).reshape(axis))
    return out
