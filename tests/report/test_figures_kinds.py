"""The coverage and width figures draw every interval kind a study stores, not only the Wald one."""

from __future__ import annotations

from types import SimpleNamespace

import pandas as pd

from compare_mm.report.marks import metric_rows


def test_coverage_rows_include_every_interval_kind_but_not_the_conditional_metrics():
    summary = pd.DataFrame({
        "metric": ["coverage", "coverage_profile", "coverage_exact", "coverage_mls", "coverage_boundary",
                   "coverage_interior", "coverage_clean", "mean_width", "mean_width_profile", "bias"],
        "interval_kind": ["wald", "profile", "exact", "mls", "wald", "wald", "eti", "wald", "profile", ""],
        "parameter": ["sigma_a2"] * 10,
        "value": [0.9] * 10,
    })
    study = SimpleNamespace(summary=summary)
    cov = metric_rows(study, "coverage")
    assert sorted(cov["metric"]) == ["coverage", "coverage_exact", "coverage_mls", "coverage_profile"]
    assert sorted(metric_rows(study, "width")["metric"]) == ["mean_width", "mean_width_profile"]
    assert list(metric_rows(study, "bias")["metric"]) == ["bias"]
