"""A quadrature posterior's integration error: stored per replicate, summarised per condition, shown in the
fit-quality table with a sentence saying what it is (the quadrature has no R-hat, divergences or ESS)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from compare_mm.backends.pymc.backend import BACKEND
from compare_mm.api import make_design
from compare_mm.report import write_report
from compare_mm.report.load import load_study
from compare_mm.report.quality import quality_table
from compare_mm.report.render import QUADRATURE_TEXT
from compare_mm.study.generate import data_rng, model_spec, simulate, template_frame
from compare_mm.study.runner import run_study
from compare_mm.study.store import read_manifest, read_rows

STUDY = {"name": "ierr", "seed": 5, "replicates": 4,
         "grid": {"model": ["oneway", "random_slope"], "sigma_a2": [0.3]},
         "fixed": {"groups": 5, "per_group": 3, "sigma_b2": 0.05},
         "fits": [{"name": "reml", "backend": "reml"},
                  {"name": "bayes", "backend": "pymc", "sampler": "quadrature", "covariance": "diagonal"}]}


@pytest.fixture(scope="module")
def study_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("ierr") / "s"
    run_study(STUDY, out, progress=False)
    return out


def _refit(manifest, condition: int, replicate: int):
    """The replicate's quadrature fit, refitted outside the study: random slopes take the per-replicate path
    (diagnostics['batched'] absent); one-way replicates the batched one (fit_many over the condition)."""
    cond = manifest["conditions"][condition]
    spec = model_spec(cond["model"], "diagonal")
    design = make_design(spec, template_frame(cond["model"], cond))
    ys = [simulate(cond["model"], cond, data_rng(manifest["seed"], condition, r)).y
          for r in range(STUDY["replicates"])]
    if cond["model"] == "oneway":
        prepared = BACKEND.prepare(design, {"sampler": "quadrature"})
        return prepared.fit_many(np.stack(ys))[replicate]
    return BACKEND.fit(design.with_y(ys[replicate]), {"sampler": "quadrature"})


def test_rows_carry_the_integration_error_of_quadrature_fits_only(study_dir):
    rows = read_rows(study_dir)
    param = rows[rows["row_type"] == "param"]
    quad = param[param["fit"] == "bayes"]
    assert len(quad) and np.isfinite(quad["integration_error"]).all()
    assert (quad["integration_error"] >= 0).all() and (quad["integration_error"] < 1e-3).all()
    assert param.loc[param["fit"] == "reml", "integration_error"].isna().all()
    manifest = read_manifest(study_dir)
    for condition in (0, 1):   # the stored value is the fit's own diagnostic
        got = quad[(quad["condition"] == condition) & (quad["replicate"] == 1)]["integration_error"]
        want = _refit(manifest, condition, 1).diagnostics["integration_error"]
        assert got.nunique() == 1 and float(got.iloc[0]) == pytest.approx(want, rel=1e-9, abs=1e-15)


def test_summary_and_fit_quality_table_show_the_largest_error(study_dir, tmp_path):
    rows = read_rows(study_dir)
    study = load_study(study_dir)
    s = study.summary
    got = s[s["metric"] == "max_integration_error"]
    assert set(got["fit"]) == {"bayes"}
    quad = rows[(rows["row_type"] == "param") & (rows["fit"] == "bayes")]
    for condition, g in got.groupby("condition"):
        assert float(g["value"].iloc[0]) == pytest.approx(
            quad.loc[quad["condition"] == condition, "integration_error"].max())
    table = quality_table(study)
    col = table["integration error (max)"]
    assert (col[table["fit"].str.startswith("reml")] == "").all()
    shown = col[table["fit"].str.startswith("bayes")]
    assert len(shown) == 2 and all(0 <= float(v) < 1e-3 for v in shown)
    write_report(study_dir)
    text = (study_dir / "report.md").read_text()
    assert QUADRATURE_TEXT in text and "integration error (max)" in text


def test_a_study_without_quadrature_fits_gets_no_quadrature_sentence(tmp_path):
    plain = dict(STUDY, replicates=2, grid={"model": ["oneway"], "sigma_a2": [0.3]},
                 fixed={"groups": 5, "per_group": 3}, fits=[{"name": "reml", "backend": "reml"}])
    run_study(plain, tmp_path / "p", progress=False)
    study = load_study(tmp_path / "p")
    assert "integration error (max)" not in quality_table(study).columns
    write_report(tmp_path / "p")
    assert "quadrature posterior" not in (tmp_path / "p" / "report.md").read_text()


def test_rows_stored_before_the_column_still_summarise(study_dir, tmp_path):
    """A study written before the column existed (its chunks lack it) still summarises: no metric."""
    from compare_mm.study.summarise import summarise_rows

    rows = read_rows(study_dir).drop(columns=["integration_error"])
    s = summarise_rows(rows, read_manifest(study_dir))
    assert "max_integration_error" not in set(s["metric"])
    assert isinstance(s, pd.DataFrame) and len(s)
