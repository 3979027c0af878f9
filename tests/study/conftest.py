"""Shared helpers of the study tests."""

from __future__ import annotations

import pandas as pd
import pytest

from compare_mm.study.store import read_rows


@pytest.fixture
def rows_of():
    """``rows_of(out_dir, keys)``: the stored rows without timings, categoricals as text, sorted by keys —
    comparable across executors, chunkings and resumed runs."""

    def rows(out, keys) -> pd.DataFrame:
        frame = read_rows(out).drop(columns=["elapsed_s"])
        for c in frame.columns:
            if isinstance(frame[c].dtype, pd.CategoricalDtype):
                frame[c] = frame[c].astype(str)
        return frame.sort_values(list(keys)).reset_index(drop=True)

    return rows
