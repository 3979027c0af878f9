"""The printed summary reads as lme4's ``summary(lmer)`` does, checked against lme4's own printout.

References: the summary of ``lmer(Reaction ~ Days + (Days | Subject), sleepstudy)`` printed in Bates,
Mächler, Bolker & Walker (2015), J. Stat. Softw. 67(1), section 5 — scaled residuals
``-3.9536 -0.4634 0.0231 0.4634 5.1793`` and the correlation of the fixed effects ``Days -0.138``; lme4's
group labels of ``(Days || Subject)`` (``Subject``, ``Subject.1``) from the stored lme4 fits; R's
``abbreviate("(Intercept)", 6)`` = ``(Intr)`` (the column label of that correlation table).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import compare_mm as cm
from compare_mm.examples.sleepstudy import load_sleepstudy
from compare_mm.results.summary import _fmt, abbreviate

LME4 = json.loads((Path(__file__).parents[1] / "data" / "sleepstudy_lme4.json").read_text())


@pytest.fixture(scope="module")
def data():
    return load_sleepstudy()


def test_reml_summary_matches_lme4s_printout(data):
    text = str(cm.fit("Reaction ~ Days + (Days | Subject)", data))
    lines = text.splitlines()
    assert "   Data: sleepstudy" in lines
    assert "REML criterion at convergence: 1743.6283" in lines
    assert "AIC" not in text                          # lme4 prints no AIC row for a REML fit
    i = lines.index("Scaled residuals:")
    assert lines[i + 1].split() == ["Min", "1Q", "Median", "3Q", "Max"]
    assert lines[i + 2].split() == ["-3.9536", "-0.4634", "0.0231", "0.4634", "5.1793"]
    j = lines.index("Correlation of Fixed Effects:")
    assert lines[j + 1].split() == ["(Intr)"]
    assert lines[j + 2].split() == ["Days", "-0.138"]


def test_ml_summary_has_lme4s_information_criteria_row(data):
    res = cm.fit("Reaction ~ Days + (Days | Subject)", data, method="ML")
    lines = str(res).splitlines()
    i = next(k for k, l in enumerate(lines) if l.split()[:1] == ["AIC"])
    assert lines[i].split() == ["AIC", "BIC", "logLik", "deviance", "df.resid"]
    aic, bic, ll, dev, df = lines[i + 1].split()
    ref = LME4["sleepstudy | Reaction ~ Days + (Days | Subject) | ML"]
    # lme4: AIC = −2 logLik + 2·6 (2 fixed effects, 3 covariance parameters, σ); df.resid = 180 − 6
    assert float(aic) == pytest.approx(-2 * ref["logLik"] + 12, abs=0.05)
    assert float(bic) == pytest.approx(-2 * ref["logLik"] + 6 * np.log(180), abs=0.05)
    assert float(ll) == pytest.approx(ref["logLik"], abs=0.005)
    assert float(dev) == pytest.approx(ref["deviance_or_reml_crit"], abs=5e-4)
    assert df == "174"


@pytest.mark.parametrize("method", ["REML", "ML"])
def test_double_bar_groups_are_labelled_as_lme4_labels_them(data, method):
    res = cm.fit("Reaction ~ Days + (Days || Subject)", data, method=method)
    lines = str(res).splitlines()
    i = lines.index("Random effects:")
    shown = [l.split()[0] for l in lines[i + 2:i + 5]]
    ref = [r["grp"] for r in LME4[f"sleepstudy | Reaction ~ Days + (Days || Subject) | {method}"]["varcorr"]]
    assert shown == ref == ["Subject", "Subject.1", "Residual"]


def test_large_estimates_are_printed_in_full():
    assert _fmt(1000000001.09).strip() == "1000000001.0900"
    assert "e+" not in _fmt(-3.5e12)
    assert _fmt(2.5e-5).strip() == "2.5e-05"       # tiny magnitudes keep their significant digits


def test_large_intercept_in_a_fit_summary():
    rng = np.random.default_rng(3)
    g = np.repeat(np.arange(8), 5)
    df = pd.DataFrame({"y": 1e9 + rng.normal(0, 1, 8)[g] + rng.normal(0, 1, g.size), "g": g.astype(str)})
    text = str(cm.fit("y ~ 1 + (1 | g)", df))
    row = next(l for l in text.splitlines() if l.strip().startswith("(Intercept)"))
    # balanced one-way: the GLS estimate of μ is the grand mean, printed in full with 4 decimals
    assert row.split()[1] == f"{df['y'].mean():.4f}" and re.fullmatch(r"\d{9,10}\.\d{4}", row.split()[1]), row


def test_abbreviate_as_r():
    assert abbreviate("(Intercept)", 6) == "(Intr)"
    assert abbreviate("Days", 6) == "Days"


def test_singular_note_says_what_it_means():
    rng = np.random.default_rng(0)
    g = np.repeat(np.arange(6), 4)
    df = pd.DataFrame({"y": rng.normal(size=g.size), "g": g.astype(str)})
    res = None
    for seed in range(40):   # find a data set whose REML estimate of σ_g² is 0
        df["y"] = np.random.default_rng(seed).normal(size=g.size)
        res = cm.fit("y ~ 1 + (1 | g)", df)
        if res.singular:
            break
    assert res.singular
    text = str(res)
    assert "isSingular" not in text and "variance is estimated as 0" in text


def test_vcov_is_labelled_and_the_json_unchanged(data):
    res = cm.fit("Reaction ~ Days + (Days | Subject)", data)
    assert isinstance(res.vcov, pd.DataFrame)
    assert list(res.vcov.index) == list(res.vcov.columns) == ["(Intercept)", "Days"]
    se = LME4["sleepstudy | Reaction ~ Days + (Days | Subject) | REML"]["se"]
    assert np.sqrt(res.vcov.loc["Days", "Days"]) == pytest.approx(se["Days"], rel=1e-5)
    assert json.loads(res.to_json())["vcov"] == res.vcov.to_numpy().tolist()


def test_jupyter_shows_a_compact_html_summary(data):
    res = cm.fit("Reaction ~ Days + (Days | Subject)", data)
    html = res._repr_html_()
    assert html.startswith("<div>") and "<table>" in html and "Subject" in html and "Days" in html
    assert len(html) < 2500
