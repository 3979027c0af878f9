"""The flood fill of quadrature grids (quadrature_flood): it evaluates exactly the face-connected component
of {log f > max − drop} around the seed plus that component's face neighbours (checked against a
breadth-first search written here, over random concave quadratics on random grids).  That the production
path, which uses it, gives the full-box rule's quantiles is tested in test_pymc_quadrature.py."""

from __future__ import annotations

from collections import deque
from itertools import product

import numpy as np
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

