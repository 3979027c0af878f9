"""The report header names its models in words with their formulas, not as YAML keys ("oneway, random_slope")."""

from __future__ import annotations

import html

import pandas as pd

from compare_mm.report import _intro, write_report
from compare_mm.report.conditions import model_sentence
from compare_mm.report.load import StudyOutputs
from compare_mm.report.render import render_html, render_markdown

REML = {"name": "reml", "backend": "reml", "method": "REML"}
MIXED = "Models: one-way (y ~ 1 + (1 | g)) and random slope (y ~ 1 + x + (x | g))."


def test_model_sentence():
    assert model_sentence(["oneway"], [REML]) == "Model: one-way (y ~ 1 + (1 | g))."
    assert model_sentence(["oneway", "random_slope"], [REML]) == MIXED
    diag = {"name": "ml_diag", "backend": "reml", "method": "ML", "covariance": "diagonal"}
    assert model_sentence(["random_slope"], [REML, diag]) == (
        "Model: random slope (y ~ 1 + x + (x | g); ml_diag: y ~ 1 + x + (x || g)).")
    assert model_sentence(["random_slope"], [diag]) == "Model: random slope (y ~ 1 + x + (x || g))."


def _mixed_study(tmp_path) -> StudyOutputs:
    summary = pd.DataFrame({"model": ["oneway", "random_slope"], "sigma_a2": [0.5, 0.5], "fit": ["reml"] * 2,
                            "parameter": ["sigma_a2"] * 2, "metric": ["bias"] * 2, "value": [0.01, 0.02],
                            "mcse": [0.01, 0.01]})
    config = {"name": "mixed", "replicates": 10, "grid": {"model": ["oneway", "random_slope"], "sigma_a2": [0.5]},
              "fits": [REML]}
    return StudyOutputs(out_dir=tmp_path, summary=summary, grid_keys=["model", "sigma_a2"], config=config)


def test_rendered_html_and_markdown_name_the_models(tmp_path):
    study = _mixed_study(tmp_path)
    intro = _intro(study)
    kw = dict(title="t", intro=intro, fits=pd.DataFrame(), figures=[], summary=pd.DataFrame(),
              fail={"total": 0}, repro={"versions": {}, "versions_source": "here"})
    md = render_markdown(**kw, out_dir=tmp_path)
    page = render_html(**kw)
    assert MIXED in md and html.escape(MIXED) in page
    for text in (md, page):
        assert "Model: oneway" not in text and "Model:" not in text


def test_report_of_a_mixed_grid_study_names_both_models(tmp_path):
    """End to end through the study runner (model as a grid key, one fit with a diagonal covariance)."""
    from compare_mm.study.runner import run_study

    study = {"name": "mixed", "seed": 2, "replicates": 3,
             "grid": {"model": ["oneway", "random_slope"], "sigma_a2": [0.5]},
             "fixed": {"groups": 6, "per_group": 4, "sigma_b2": 0.1},
             "fits": [REML, {"name": "ml", "backend": "reml", "method": "ML", "covariance": "diagonal"}]}
    out = tmp_path / "mixed"
    run_study(study, out, progress=False)
    page = write_report(out).read_text()
    md = (out / "report.md").read_text()
    want = ("Models: one-way (y ~ 1 + (1 | g)) and random slope (y ~ 1 + x + (x | g); "
            "ml: y ~ 1 + x + (x || g)).")
    assert want in md and html.escape(want) in page
    assert "Model: oneway" not in md + page
