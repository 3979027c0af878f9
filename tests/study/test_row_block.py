"""The summary's NumPy row blocks (compare_mm.study.columns.RowBlock) select exactly the rows, in exactly the
order, of the pandas operations they replace: ``groupby(column, sort=False, observed=True)``,
``drop_duplicates(column)`` and boolean indexing — so every metric sums the same numbers in the same order."""

from __future__ import annotations

import numpy as np
import pandas as pd
from hypothesis import given, settings, strategies as st

from compare_mm.study.columns import RowBlock


def _frame(seed: int, n: int, categorical: bool) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    names = np.array(["sigma_a2", "mu", "sigma_e2", None], dtype=object)
    par = names[rng.integers(0, 4, n)]
    frame = pd.DataFrame({"replicate": rng.integers(0, max(n // 3, 1), n), "parameter": par,
                          "ok": rng.random(n) < 0.8, "estimate": rng.normal(size=n)})
    if categorical:  # as a stored dictionary column reads back: categories in another order than appearance
        frame["parameter"] = pd.Categorical(par, categories=["sigma_e2", "sigma_a2", "mu", "unused"])
    return frame


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 10_000), st.integers(0, 60), st.booleans())
def test_groups_first_rows_and_masks_equal_pandas(seed, n, categorical):
    frame = _frame(seed, n, categorical)
    block = RowBlock(frame)
    want = [(k, g) for k, g in frame.groupby("parameter", sort=False, observed=True)]
    got = block.groups("parameter")
    assert [k for k, _ in got] == [k for k, _ in want]
    for (_, b), (_, g) in zip(got, want):
        assert b.pos.tolist() == g.index.tolist()
        np.testing.assert_array_equal(b["estimate"], g["estimate"].to_numpy())
    first = block.first_per("replicate")
    assert first.pos.tolist() == frame.drop_duplicates("replicate").index.tolist()
    ok = block.take(block["ok"])
    assert ok.pos.tolist() == frame[frame["ok"]].index.tolist()
    # a block of a block: positions stay positions in the frame, columns read once for all
    sub = ok.first_per("replicate")
    assert sub.pos.tolist() == frame[frame["ok"]].drop_duplicates("replicate").index.tolist()
    pd.testing.assert_series_equal(sub.series("parameter"), frame[frame["ok"]].drop_duplicates("replicate")
                                   ["parameter"])


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 10_000), st.integers(0, 60), st.booleans())
def test_blocks_by_two_keys_equal_groupby(seed, n, categorical):
    from compare_mm.study.columns import blocks_by

    frame = _frame(seed, n, categorical).assign(condition=lambda f: f["replicate"] % 3)
    want = [(k, g.index.tolist()) for k, g in frame.groupby(["condition", "parameter"], sort=False, observed=True)]
    got = [(k, b.pos.tolist()) for k, b in blocks_by(frame, ["condition", "parameter"])]
    assert got == want
