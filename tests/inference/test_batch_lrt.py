"""Batched LRTs of a study chunk (inference/batch_lrt.py) equal the per-replicate component_lrt, replicate
by replicate (statistics and p-values to 1e-9), on unbalanced one-way, (x || g) and (x | g) designs by
REML and ML, boundary replicates (T = 0) included; the one-way null's criterion equals the OLS closed form."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

import compare_mm
from compare_mm.fitter.batch_fit import BatchFitter
from compare_mm.fitter.theta import make_layout
from compare_mm.inference.batch_lrt import lrt_many, null_criteria
from compare_mm.inference.components import components, drop_component
from compare_mm.inference.lrt import component_lrt


def _design(formula, method, slope):
    rng = np.random.default_rng(3)
    sizes = [2, 3, 3, 5, 8, 4, 6, 5] if not slope else [6] * 8
    g = np.repeat(np.arange(len(sizes)), sizes)
    x = np.concatenate([np.arange(s, dtype=float) for s in sizes])
    df = pd.DataFrame({"y": rng.normal(size=g.size), "x": x, "g": [f"g{i}" for i in g]})
    d = compare_mm.make_design(formula, df, method=method)
    R = 16
    sa = np.sqrt(np.where(np.arange(R) % 2, 0.0, 0.5))[:, None]
    Y = 1.0 + 0.3 * x + sa * rng.normal(size=(R, len(sizes)))[:, g] \
        + (0.5 * sa * rng.normal(size=(R, len(sizes)))[:, g] * x if slope else 0.0) + rng.normal(size=(R, g.size))
    return d, Y


CASES = [("y ~ 1 + (1 | g)", False), ("y ~ x + (x || g)", True), ("y ~ x + (x | g)", True)]


@pytest.mark.parametrize("method", ["REML", "ML"])
@pytest.mark.parametrize("formula,slope", CASES)
def test_batched_lrt_equals_per_replicate(formula, slope, method):
    d, Y = _design(formula, method, slope)
    reml = method == "REML"
    arr = BatchFitter(d, make_layout(d.blocks)).arrays(Y, reml)
    ok = arr.solved
    got = lrt_many(d, Y[ok], arr.deviance[ok], reml)
    comps = components(d)
    assert [(c.group, c.term) for c in comps] == [(t.group, t.term) for t in got]
    zeros = 0
    for c, t in zip(comps, got):
        for j, m in enumerate(np.flatnonzero(ok)):
            ref = component_lrt(d.with_y(Y[m]), c.group, c.term, method=method)
            assert abs(t.statistic[j] - ref.statistic) <= 1e-9 * max(1.0, abs(ref.statistic))
            assert abs(t.p_chi2[j] - ref.p_chi2) <= 1e-9 and abs(t.p_chibar2[j] - ref.p_chibar2) <= 1e-9
            zeros += ref.statistic == 0.0
    # boundary replicates (T = 0) are in; none arose for the (x | g) slope here (its T = 0 rows are in
    # tests/study/test_column_rows.py)
    assert zeros > 0 or formula.endswith("(x | g)")


@pytest.mark.parametrize("method", ["REML", "ML"])
def test_oneway_null_is_the_ols_closed_form(method):
    d, Y = _design("y ~ 1 + (1 | g)", method, False)
    got = null_criteria(d, drop_component(d, components(d)[0]), Y, method == "REML")
    n = Y.shape[1]
    rss = ((Y - Y.mean(axis=1, keepdims=True)) ** 2).sum(axis=1)
    nu = n - 1 if method == "REML" else n
    ref = nu * (1 + math.log(2 * math.pi) + np.log(rss / nu)) + (math.log(n) if method == "REML" else 0.0)
    np.testing.assert_allclose(got, ref, rtol=1e-12)
