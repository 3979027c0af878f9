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
