"""The flood fill of quadrature grids (quadrature_flood): it evaluates exactly the face-connected component
of {log f > max − drop} around the seed plus that component's face neighbours (checked against a
breadth-first search written here, over random concave quadratics on random grids).  That the production
path, which uses it, gives the full-box rule's quantiles is tested in test_pymc_quadrature.py."""

from __future__ import annotations

from collections import deque
from itertools import product

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from compare_mm.backends.pymc.quadrature_flood import flood


def _neighbours(node: tuple, shape: tuple):
    """The face neighbours of ``node`` inside a grid of ``shape``."""
    for k in range(len(shape)):
        for step in (-1, 1):
            if 0 <= node[k] + step < shape[k]:
                yield node[:k] + (node[k] + step,) + node[k + 1:]


def _bfs(lf: np.ndarray, seed: tuple, thresh: float) -> set:
    """Nodes of the face-connected component of {lf > thresh} holding ``seed``, and their face neighbours."""
    comp, todo = set(), deque([seed])
    while todo:
        node = todo.popleft()
        if node in comp or not lf[node] > thresh:
            continue
        comp.add(node)
        todo.extend(_neighbours(node, lf.shape))
    out = set(comp) | {seed}
    for node in comp:
        out.update(_neighbours(node, lf.shape))
    return out


@settings(max_examples=60, deadline=None)
@given(d=st.integers(1, 4), seed=st.integers(0, 2**31 - 1), drop=st.floats(1.0, 20.0))
def test_flood_evaluates_the_connected_superlevel_set_and_its_boundary(d, seed, drop):
    rng = np.random.default_rng(seed)
    shape = tuple(int(n) for n in rng.integers(3, 14 if d < 4 else 9, d))
    A = rng.normal(size=(d, d))
    P = A @ A.T + 0.05 * np.eye(d)                       # a concave quadratic, possibly strongly correlated
    centre = rng.uniform(-0.2, 1.2, d) * (np.array(shape) - 1)
    grid = np.stack(np.meshgrid(*[np.arange(n, dtype=float) for n in shape], indexing="ij"), -1)
    diff = grid - centre
    lf = -0.5 * np.einsum("...i,ij,...j->...", diff, P, diff)
    top = float(lf.max())
    start = tuple(int(i) for i in np.unravel_index(int(np.argmax(lf)), shape))
    calls = []

    def evaluate(flat):
        calls.append(flat.copy())
        return lf.reshape(-1)[flat]

    got_lf, known = np.full(shape, -np.inf), np.zeros(shape, bool)
    flood(got_lf, known, int(np.ravel_multi_index(start, shape)), top, drop, evaluate)
    want = _bfs(lf, start, top - drop)
    got = {tuple(int(i) for i in ix) for ix in zip(*np.nonzero(known))}
    assert got == want
    flat = np.concatenate(calls)
    assert np.unique(flat).size == flat.size                 # no node evaluated twice
    assert np.array_equal(got_lf[known], lf[known]) and np.all(np.isneginf(got_lf[~known]))


def test_flood_continues_from_nodes_already_evaluated():
    """After a box extension (values carried in, ``known``), only the new part of the set is evaluated."""
    shape = (9, 9)
    ii, jj = np.meshgrid(np.arange(9.0), np.arange(9.0), indexing="ij")
    lf = -0.5 * ((ii - 4) ** 2 + (jj - 4) ** 2)
    got_lf, known = np.full(shape, -np.inf), np.zeros(shape, bool)
    got_lf[:, :5], known[:, :5] = lf[:, :5], True          # the left part evaluated before
    seen = []
    flood(got_lf, known, 40, 0.0, 8.5, lambda f: seen.append(f) or lf.reshape(-1)[f])
    new = np.concatenate(seen)
    assert np.all(np.unravel_index(new, shape)[1] >= 5)
    assert {tuple(int(i) for i in ix) for ix in zip(*np.nonzero(known))} == _bfs(lf, (4, 4), -8.5) | {
        (i, j) for i, j in product(range(9), range(5))}



@settings(max_examples=40, deadline=None)
@given(d=st.integers(1, 3), seed=st.integers(0, 2**31 - 1), drop=st.floats(2.0, 14.0))
def test_lifted_flood_adds_the_superlevel_set_of_the_lifted_density(d, seed, drop):
    """After the plain flood (as make_grid runs it), the flood with ``lift`` evaluates the face-connected
    component of {lf > max lf − drop} ∪ {lf + L > max(lf + L) − drop} holding the seed, plus its face
    neighbours (a breadth-first search over the union here), L = log((x₀ − m)²/v) along axis 0."""
    rng = np.random.default_rng(seed)
    shape = tuple(int(n) for n in rng.integers(4, 16 if d < 3 else 10, d))
    A = rng.normal(size=(d, d))
    P = A @ A.T + 0.05 * np.eye(d)
    centre = rng.uniform(0.2, 0.8, d) * (np.array(shape) - 1)
    grid = np.stack(np.meshgrid(*[np.arange(n, dtype=float) for n in shape], indexing="ij"), -1)
    diff = grid - centre
    lf = -0.5 * np.einsum("...i,ij,...j->...", diff, P, diff)
    x0 = np.arange(shape[0], dtype=float)
    with np.errstate(divide="ignore"):
        L1 = np.log((x0 - centre[0]) ** 2 / rng.uniform(0.5, 4.0))
    L = np.broadcast_to(L1.reshape((-1,) + (1,) * (d - 1)), shape)
    start = tuple(int(i) for i in np.unravel_index(int(np.argmax(lf)), shape))
    seed_flat = int(np.ravel_multi_index(start, shape))
    got_lf, known = np.full(shape, -np.inf), np.zeros(shape, bool)
    flood(got_lf, known, seed_flat, float(lf.max()), drop, lambda f: lf.reshape(-1)[f])
    first = known.copy()
    sc = lf + L
    top_l = float(np.max(sc[first]))
    flood(got_lf, known, seed_flat, float(lf.max()), drop, lambda f: lf.reshape(-1)[f],
          lift=lambda f: L.reshape(-1)[f])
    # the reference: union superlevel set (the lifted threshold from the running top, which the test
    # keeps global by requiring the lifted maximum inside the first flood's set)
    if top_l < float(sc.max()):
        return
    union = (lf > lf.max() - drop) | (sc > top_l - drop)
    want = _bfs(np.where(union, 1.0, 0.0), start, 0.5) | {
        tuple(int(i) for i in ix) for ix in zip(*np.nonzero(first))}
    got = {tuple(int(i) for i in ix) for ix in zip(*np.nonzero(known))}
    assert got == want


def test_tail_lift_flags_the_axis_whose_boundary_layer_holds_variance():
    """tail_lift's shares against a direct computation here, on a 2-D grid with a Gaussian along axis 1
    and, along axis 0, a Gaussian (its boundary layer holds 6e-6 of the variance, axis 1's 9e-6) or a
    power-law tail f ∝ x⁻⁴ beyond x = 2 (the flood stops near x = 33 while (x − m)²f falls only as x⁻²:
    its layer holds 4.6e-3 of the variance, as in the (x || g) case of tail_lift's docstring)."""
    from compare_mm.backends.pymc.quadrature_flood import TAIL_SHARE, tail_lift

    x0, x1 = np.arange(0.0, 80.0, 0.5), np.arange(-8.0, 8.01, 0.5)
    drop = 14.0
    for heavy in (False, True):
        a = np.where(x0 < 2, -0.5 * (x0 - 1) ** 2, -0.5 - 4 * np.log(np.maximum(x0, 2) / 2)) if heavy else -0.5 * (x0 - 3) ** 2
        lf = a[:, None] - 0.5 * x1[None, :] ** 2
        shape = lf.shape
        got_lf, known = np.full(shape, -np.inf), np.zeros(shape, bool)
        seed = int(np.argmax(lf))
        flood(got_lf, known, seed, float(lf.max()), drop, lambda f: lf.reshape(-1)[f])
        kn = np.flatnonzero(known)
        idx = np.unravel_index(kn, shape)
        out = tail_lift(got_lf.reshape(-1)[kn], got_lf.reshape(-1)[kn], idx, drop, {0: x0, 1: x1})
        # direct: weights on the evaluated nodes, the layer's share of each axis's variance
        w = np.where(known, np.exp(got_lf - got_lf.max()), 0.0)
        w /= w.sum()
        layer = known & (got_lf <= got_lf.max() - drop)
        shares = []
        for k, x in ((0, x0[:, None]), (1, x1[None, :])):
            m = (w * x).sum()
            shares.append((w * (x - m) ** 2 * layer).sum() / (w * (x - m) ** 2).sum())
        assert set(out) == {k for k, sh in enumerate(shares) if sh > TAIL_SHARE}
        assert (0 in out) == heavy and 1 not in out, shares
        if heavy:
            (p, m, v), = out[0]
            assert p == 1 and m == pytest.approx((w * x0[:, None]).sum(), rel=1e-12)
            assert v == pytest.approx((w * (x0[:, None] - m) ** 2).sum(), rel=1e-12)
        # with ``squares`` the variance of x² is checked too: its share is the direct one here
        sq = tail_lift(got_lf.reshape(-1)[kn], got_lf.reshape(-1)[kn], idx, drop, {0: x0}, squares=(0,))
        x2 = x0[:, None] ** 2
        m2 = (w * x2).sum()
        share2 = (w * (x2 - m2) ** 2 * layer).sum() / (w * (x2 - m2) ** 2).sum()
        assert (2 in [p for p, _, _ in sq.get(0, [])]) == (share2 > TAIL_SHARE)
