"""The NUTS-vs-quadrature validation panel: pairs, the standardised differences and their MCSE."""

from __future__ import annotations

import shutil

import numpy as np
import pandas as pd
import pytest
import yaml

from compare_mm.report import write_report
from compare_mm.report.figures_agreement import agreement_table, posterior_pairs
from compare_mm.report.load import load_study

from .conftest import make_study


def with_quadrature_fit(out, shift_sd: float, rng_seed: int = 0):
    """The synthetic study plus a fit ``quad`` (sampler: quadrature) on the first 20 replicates whose
    posterior medians are those of ``bayes`` minus ``shift_sd`` posterior SDs plus noise."""
    make_study(out)
    cfg = yaml.safe_load((out / "config.yaml").read_text())
    cfg["fits"].append({"name": "quad", "backend": "pymc", "sampler": "quadrature"})
    (out / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    rng = np.random.default_rng(rng_seed)
    for path in sorted((out / "replicates").glob("*.parquet")):
        df = pd.read_parquet(path)
        q = df[(df["fit"] == "bayes") & (df["replicate"] < 20) & (df["row_type"] == "param")].copy()
        q["fit"] = "quad"
        q["se"] = 0.1
        q["median"] = 1.0 + rng.normal(0, 0.01, len(q))
        q["lower"], q["upper"] = 0.5, 1.5
        df.loc[q.index, "se"] = 0.1
        df = pd.concat([df, q], ignore_index=True)
        sel = (df["fit"] == "bayes") & (df["row_type"] == "param")
        df.loc[sel, "median"] = 1.0 + shift_sd * 0.1
        df.loc[sel, "lower"], df.loc[sel, "upper"] = 0.5, 1.5
        df.to_parquet(path, index=False)
    return out


def test_pairs_and_standardised_differences(tmp_path):
    out = with_quadrature_fit(tmp_path / "s", shift_sd=0.5)
    study = load_study(out)
    assert posterior_pairs(study) == [("quad", "bayes")]
    t = agreement_table(study)
    assert set(t["quantity"]) == {"median", "lower", "upper"}
    assert (t["replicates"] == 20).all()                      # only the shared replicates
    med = t[t["quantity"] == "median"]
    # by construction d_r = (1.05 − (1 + ε_r)) / 0.1 = 0.5 − 10 ε_r, ε ~ N(0, 0.01²): mean 0.5, SD 0.1
    assert med["mean_diff_sd"].to_numpy() == pytest.approx(0.5, abs=4 * 0.1 / np.sqrt(20))
    assert med["mcse"].to_numpy() == pytest.approx(0.1 / np.sqrt(20), rel=0.5)
    lims = t[t["quantity"] != "median"]
    assert np.allclose(lims["mean_diff_sd"], 0.0) and np.allclose(lims["mcse"], 0.0)


def test_report_draws_the_panel_and_writes_its_table(tmp_path):
    out = with_quadrature_fit(tmp_path / "s", shift_sd=0.0)
    write_report(out)
    assert (out / "figures" / "nuts_vs_quadrature.png").is_file()
    table = pd.read_csv(out / "tables" / "nuts_vs_quadrature.csv")
    assert len(table) and table["mean_diff_sd"].abs().max() < 0.5
    assert "NUTS against the exact posterior" in (out / "report.html").read_text()


def test_without_a_pair_the_panel_is_skipped_with_a_reason(study_dir, tmp_path):
    out = tmp_path / "copy"
    shutil.copytree(study_dir, out)
    write_report(out)
    assert not (out / "figures" / "nuts_vs_quadrature.png").exists()
    assert "no pair of a quadrature and a NUTS fit" in (out / "report.html").read_text()
