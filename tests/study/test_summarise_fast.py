"""`compare-mm summarise` reads the stored rows split (group rows as column arrays, the rest as one frame):
the summary equals the one computed from the whole frame of rows, cell for cell."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from compare_mm.study.runner import run_study
from compare_mm.study.store import read_manifest, read_parquet_files, read_rows, read_split_rows, stored_chunks
from compare_mm.study.summarise import GROUP_COLUMNS, summarise_rows, write_summary


def test_split_read_gives_the_same_summary(tmp_path):
    study = {"name": "fast", "seed": 5, "replicates": 12, "chunk_size": 4, "model": "oneway",
             "grid": {"groups": [4, 6], "per_group": [3], "sigma_a2": [0.0, 0.5]},
             "fits": [{"name": "reml", "backend": "reml", "method": "REML"},
                      {"name": "ml", "backend": "reml", "method": "ML", "exclude_nonconverged": True},
                      {"name": "anova", "backend": "reml", "method": "ANOVA", "intervals": ["exact", "mls"]}]}
    out = tmp_path / "out"
    run_study(study, out, progress=False)
    rows = read_rows(out)
    other, groups = read_split_rows(out, GROUP_COLUMNS)
    assert len(other) + len(groups["replicate"]) == len(rows)
    assert set(other["row_type"].astype(str)) <= {"param", "test", "interval"}
    fast = write_summary(out)
    slow = summarise_rows(rows, read_manifest(out))
    pd.testing.assert_frame_equal(fast, slow)
    assert (fast["metric"] == "shrinkage_factor").any()


def test_chunks_whose_schemas_do_not_unify_are_read_file_by_file(tmp_path):
    """A grid key stored as numbers in one chunk and as text in another (an unbalanced ``per_group`` list is
    stored as text): the one-scan read cannot unify the schemas, and both readers fall back to reading the
    files one by one — same rows, nothing lost or mixed."""
    folder = tmp_path / "replicates"
    folder.mkdir()
    a = pd.DataFrame({"row_type": ["param", "group"], "replicate": [0, 0], "per_group": [3, 3],
                      "estimate": [1.0, 0.5]})
    b = pd.DataFrame({"row_type": ["group", "param"], "replicate": [1, 1], "per_group": ["[2, 3]", "[2, 3]"],
                      "estimate": [0.25, 2.0]})
    a.to_parquet(folder / "chunk-c000-r000000.parquet")
    b.to_parquet(folder / "chunk-c000-r000001.parquet")
    rows = read_rows(tmp_path)
    want = pd.concat([a, b], ignore_index=True)
    assert rows["estimate"].tolist() == want["estimate"].tolist()
    assert [str(v) for v in rows["per_group"]] == [str(v) for v in want["per_group"]]
    other, groups = read_split_rows(tmp_path, ["replicate", "estimate"])
    assert other["estimate"].tolist() == [1.0, 2.0] and list(groups["estimate"]) == [0.5, 0.25]
    assert list(groups["replicate"]) == [0, 1]


def test_singular_tolerance_is_the_fitters():
    """The summary's scale-free singular rule uses the fitter's tolerance (kept as a copy so that
    summarising does not import scipy.optimize through the fitter)."""
    from compare_mm.fitter.optimize import SINGULAR_TOL as fitter_tol
    from compare_mm.study.summarise import SINGULAR_TOL

    assert SINGULAR_TOL == fitter_tol


def _study(tmp_path):
    study = {"name": "parts", "seed": 9, "replicates": 9, "chunk_size": 3, "model": "oneway",
             "grid": {"groups": [4, 6], "per_group": [3], "sigma_a2": [0.0, 0.5]},
             "fits": [{"name": "reml", "backend": "reml", "method": "REML", "tests": ["lrt_chi2"]},
                      {"name": "ml", "backend": "reml", "method": "ML", "intervals": ["wald", "profile"]}]}
    out = tmp_path / "out"
    run_study(study, out, progress=False)
    return out


def test_group_rows_are_stored_last_in_row_groups_of_their_own(tmp_path):
    """Every chunk keeps its other rows first, then its group rows (each kind in its computed order), in
    separate row groups, and says where they start; the two parts read apart are the full read split."""
    import pyarrow.parquet as pq

    from compare_mm.study.store import GROUP_START_KEY, row_parts, unified_schema

    out = _study(tmp_path)
    files = stored_chunks(out).files
    for f in files:
        pf = pq.ParquetFile(f)
        kinds = pf.read(columns=["row_type"]).column("row_type").to_pylist()
        start = int(pf.schema_arrow.metadata[GROUP_START_KEY])
        assert 0 < start < len(kinds) and set(kinds[:start]) <= {"param", "test", "interval"}
        assert set(kinds[start:]) == {"group"} and pf.metadata.num_row_groups == 2
        assert pf.metadata.row_group(0).num_rows == start
    other, group = row_parts(files, unified_schema(files))
    full = read_rows(out)
    is_group = full["row_type"].astype(str) == "group"
    for part, want in ((other, full[~is_group]), (group, full[is_group])):
        got = part.to_table().to_pandas()
        pd.testing.assert_frame_equal(got, want.reset_index(drop=True), check_categorical=False)


@pytest.mark.parametrize("rewritten", ["all", "some"])
def test_chunks_with_group_rows_inline_give_the_same_summary_and_report_rows(tmp_path, rewritten):
    """Chunks written before group rows were stored apart (rows interleaved, one row group, no start key),
    all of them or some beside new ones: the readers fall back to whole columns, and the summary and the
    report's row views equal those of the new layout."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from compare_mm.report.load import StoredRows
    from compare_mm.study.store import row_parts, unified_schema

    out = _study(tmp_path)
    stored = stored_chunks(out)
    new_summary = write_summary(out, stored)
    new_rows = StoredRows(stored.files)
    views = [(["condition", "replicate", "fit", "estimate"], ["param"]),
             (["condition", "replicate", "fit", "group", "raw"], ["group"]), (["error", "fit"], None)]
    want = [new_rows.select(c, t) for c, t in views]
    for k, f in enumerate(stored.files):
        if rewritten == "some" and k % 2:
            continue
        rows = pq.read_table(f).to_pandas()
        is_group = (rows["row_type"].astype(str) == "group").to_numpy()
        rank = np.empty(len(rows))  # each kind in its order, the two kinds interleaved evenly
        rank[~is_group] = np.arange((~is_group).sum()) / (~is_group).sum()
        rank[is_group] = (np.arange(is_group.sum()) + 0.5) / is_group.sum()
        order = np.argsort(rank, kind="stable")
        pq.write_table(pa.Table.from_pandas(rows.iloc[order], preserve_index=False), f)  # interleaved, no key
    assert row_parts(stored.files, unified_schema(stored.files)) is None
    old_summary = write_summary(out, stored)
    pd.testing.assert_frame_equal(old_summary, new_summary)
    old_rows = StoredRows(stored.files)
    for (cols, types), w in zip(views, want):
        got = old_rows.select(cols, types)
        key = [c for c in ("condition", "replicate", "fit", "group") if c in got.columns]
        if types is None:  # every row, in file order: compare as multisets
            key = list(got.columns)
        sort = lambda d: d.astype(str).sort_values(key).reset_index(drop=True)  # noqa: E731
        pd.testing.assert_frame_equal(sort(got), sort(w))
