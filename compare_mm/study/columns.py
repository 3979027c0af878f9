"""Rows of a frame as NumPy columns, taken once: the summary's per-(condition, fit) blocks.

:func:`compare_mm.study.summarise._summarise` computes a few dozen metrics for each of hundreds of
(condition, fit, parameter) subsets of the stored rows.  As pandas sub-frames every subset copied every
column and every ``frame[col]`` cost a pandas lookup; a :class:`RowBlock` holds row positions into one
frame and turns each column into a NumPy array once, for all blocks, so a subset is an index array and a
column of it one fancy-index.  The arrays are those ``frame[col].to_numpy()`` gives, the rows in the same
order as the pandas subsets they replace, so every metric sees the same numbers in the same order.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd


class RowBlock:
    """Some rows (``pos``, positions in order) of ``frame``; ``block[col]`` is that column's NumPy array at
    those rows.  Blocks taken from one another share one cache of whole-frame columns."""

    def __init__(self, frame: pd.DataFrame, pos: np.ndarray | None = None, cache: dict[str, Any] | None = None):
        self.frame = frame
        self.pos = np.arange(len(frame)) if pos is None else np.asarray(pos)
        self._cache = {} if cache is None else cache

    @property
    def columns(self) -> pd.Index:
        return self.frame.columns

    def __len__(self) -> int:
        return int(self.pos.size)

    def __getitem__(self, column: str) -> np.ndarray:
        whole = self._cache.get(column)
        if whole is None:
            whole = self._cache[column] = self.frame[column].to_numpy()
        return whole[self.pos]

    def take(self, sel) -> "RowBlock":
        """The rows selected by a boolean mask or positions (relative to this block)."""
        return RowBlock(self.frame, self.pos[sel], self._cache)

    def series(self, column: str) -> pd.Series:
        """The column at these rows as the pandas Series the frame holds (its dtype kept: categoricals stay
        categorical, so ``mode`` and ``value_counts`` order ties as on a sub-frame)."""
        return self.frame[column].iloc[self.pos]

    def first_per(self, column: str) -> "RowBlock":
        """The first row of each value of ``column``, in order (as ``drop_duplicates(column)``)."""
        return self.take(~pd.Series(self[column]).duplicated().to_numpy())

    def groups(self, column: str) -> list[tuple[Any, "RowBlock"]]:
        """(value, rows) per value of ``column`` in order of first appearance, missing values left out (as
        ``groupby(column, sort=False, observed=True)``)."""
        codes, uniques = pd.factorize(self.series(column), sort=False, use_na_sentinel=True)
        order = np.argsort(codes, kind="stable")
        bounds = np.searchsorted(codes[order], np.arange(len(uniques) + 1))
        return [(uniques[k], self.take(order[bounds[k]:bounds[k + 1]])) for k in range(len(uniques))]


def blocks_by(frame: pd.DataFrame, keys: list[str]):
    """((key values), rows) per distinct value of the ``keys`` columns in order of first appearance, each
    block's rows in stored order and missing keys left out (as ``frame.groupby(keys, sort=False,
    observed=True)``); the blocks share one column cache."""
    gid = frame.groupby(keys, sort=False, observed=True).ngroup().fillna(-1).to_numpy().astype(np.int64)
    whole = RowBlock(frame)
    order = np.argsort(gid, kind="stable")
    bounds = np.searchsorted(gid[order], np.arange(max(gid.max(), -1) + 2 if gid.size else 1))
    for k in range(len(bounds) - 1):
        idx = order[bounds[k]:bounds[k + 1]]
        if idx.size:
            yield tuple(frame[c].iloc[idx[0]] for c in keys), whole.take(idx)


__all__ = ["RowBlock", "blocks_by"]
