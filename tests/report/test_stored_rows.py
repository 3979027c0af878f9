"""The report reads the stored rows on demand (compare_mm.report.load.StoredRows): the columns and row types
each view asks for, read alone, equal the full read of every row and column filtered in pandas."""

from __future__ import annotations

import pandas as pd
import pytest

from compare_mm.report.load import StoredRows, load_study, text_in
from compare_mm.report.rows import diagnostic_rows, group_rows, param_rows
from compare_mm.report.tables import failures
from compare_mm.study.runner import run_study
from compare_mm.study.store import read_rows, stored_chunks

STUDY = {"name": "lazy", "seed": 11, "replicates": 8, "chunk_size": 3, "model": "oneway",
         "grid": {"groups": [4], "per_group": [3], "sigma_a2": [0.0, 0.5]},
         "fits": [{"name": "reml", "backend": "reml", "method": "REML"},
                  {"name": "anova", "backend": "reml", "method": "ANOVA", "intervals": ["exact"]}]}


@pytest.fixture(scope="module")
def study_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("lazy") / "out"
    run_study(STUDY, out, progress=False)
    return out


@pytest.mark.parametrize("columns, types", [
    (["condition", "replicate", "fit", "parameter", "estimate", "ok", "error", "sigma_a2"], ["param"]),
    (["sigma_a2", "condition", "replicate", "fit", "group", "raw", "estimate", "truth", "ok", "row_type",
      "parameter"], ["group"]),
    (["error", "condition", "replicate", "fit"], None),
    (["row_type", "lower", "upper", "interval_kind", "no_such_column"], ["interval", "param"]),
])
def test_selected_rows_equal_the_full_read_filtered(study_dir, columns, types):
    full = read_rows(study_dir)
    want = full[text_in(full["row_type"], types)] if types is not None else full
    want = want[[c for c in full.columns if c in columns]].reset_index(drop=True)
    stored = StoredRows(stored_chunks(study_dir).files)
    got = stored.select(columns, types)
    assert len(got) > 0
    pd.testing.assert_frame_equal(got, want)
    pd.testing.assert_frame_equal(stored.select(columns, types), want)  # again, from the kept columns


def test_views_equal_those_of_the_rows_in_memory(study_dir):
    """param_rows, group_rows, diagnostic_rows and failures from the lazy reader equal the same views of
    the study with every row read up front (the old loader)."""
    lazy = load_study(study_dir)
    assert lazy.replicates is None and lazy.stored is not None
    eager = load_study(study_dir)
    eager.replicates, eager.stored = read_rows(study_dir), None
    for view in (param_rows, group_rows, diagnostic_rows):
        a, b = view(lazy), view(eager)
        assert (a is None) == (b is None)
        if a is not None:
            pd.testing.assert_frame_equal(a, b)
    assert failures(lazy) == failures(eager)


def test_chunks_whose_schemas_do_not_unify_are_read_whole(tmp_path):
    """A grid key stored as numbers in one chunk and as text in another: the files are read whole, once, and
    filtered in pandas — the same rows."""
    a = pd.DataFrame({"row_type": ["param", "group"], "replicate": [0, 0], "per_group": [3, 3],
                      "estimate": [1.0, 0.5]})
    b = pd.DataFrame({"row_type": ["group", "param"], "replicate": [1, 1], "per_group": ["[2, 3]", "[2, 3]"],
                      "estimate": [0.25, 2.0]})
    a.to_parquet(tmp_path / "a.parquet")
    b.to_parquet(tmp_path / "b.parquet")
    stored = StoredRows([tmp_path / "a.parquet", tmp_path / "b.parquet"])
    got = stored.select(["replicate", "estimate"], ["param"])
    assert got["estimate"].tolist() == [1.0, 2.0] and got["replicate"].tolist() == [0, 1]
    assert len(stored) == 4 and stored.columns == ["row_type", "replicate", "per_group", "estimate"]


def test_where_and_distinct_equal_pandas(study_dir):
    """``where`` keeps the rows with the given values (as a pandas filter of the full read); ``distinct`` gives
    each distinct row once (as ``drop_duplicates``, order aside)."""
    full = read_rows(study_dir)
    stored = StoredRows(stored_chunks(study_dir).files)
    cols = ["condition", "replicate", "fit", "group", "raw", "estimate"]
    got = stored.select(cols, ["group"], where={"condition": 1, "replicate": 4})
    want = full[(full["row_type"] == "group") & (full["condition"] == 1) & (full["replicate"] == 4)]
    assert len(got) > 0
    pd.testing.assert_frame_equal(got, want[[c for c in full.columns if c in cols]].reset_index(drop=True))
    assert stored.select(cols, ["group"], where={"no_such_column": 1}).empty
    keys = ["condition", "replicate", "fit", "ok"]
    got = stored.select(keys, ["group"], distinct=True)
    want = full.loc[full["row_type"] == "group", keys].drop_duplicates()
    as_set = lambda f: set(map(tuple, f.astype({"fit": str}).to_numpy().tolist()))  # noqa: E731
    assert len(got) == len(want) and as_set(got) == as_set(want)


def test_the_drawn_replicate_and_its_rows_are_those_of_the_full_read(study_dir):
    """The shrinkage figure's replicate, chosen from the distinct keys of the group rows, and its rows read
    alone, are those chosen from and taken out of every group row (the old path)."""
    from compare_mm.report.figures_dist import _pick_replicate

    lazy = load_study(study_dir)
    eager = load_study(study_dir)
    eager.replicates, eager.stored = read_rows(study_dir), None
    every = group_rows(eager)
    cond, rep = _pick_replicate(group_rows(lazy, values=False), lazy)
    assert (cond, rep) == _pick_replicate(every, eager)
    one = group_rows(lazy, where={"condition": cond, "replicate": rep})
    want = every[(every["condition"] == cond) & (every["replicate"] == rep)].reset_index(drop=True)
    pd.testing.assert_frame_equal(one, want)
