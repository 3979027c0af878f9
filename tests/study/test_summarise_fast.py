"""`compare-mm summarise` reads the stored rows split (group rows as column arrays, the rest as one frame):
the summary equals the one computed from the whole frame of rows, cell for cell."""

from __future__ import annotations

import pandas as pd

from compare_mm.study.runner import run_study
from compare_mm.study.store import read_manifest, read_parquet_files, read_rows, read_split_rows
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
