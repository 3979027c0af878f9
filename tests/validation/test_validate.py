"""``compare-mm validate``: the agreement table, its measures, and the exit code."""

from __future__ import annotations

import copy
import json
import math
import re

import numpy as np
import pytest

import compare_mm
from compare_mm.validation import validate as validation
from compare_mm.validation import cases as validation_cases
from compare_mm.cli import main
from compare_mm.validation.measures import LME4_TOL, PEER_TOL, Quantities, compare, from_lme4, passes

SLEEP_CASES = ("sleepstudy Days + (Days | Subject)", "sleepstudy Days + (Days || Subject)",
               "sleepstudy Days + (1 | Subject)")


def test_validate_passes_and_lists_every_case(capsys):
    """The shipped cases: exit 0, every sleepstudy model × method compared with lme4 and statsmodels."""
    assert main(["validate"]) == 0
    out = capsys.readouterr().out
    for case in SLEEP_CASES:
        for method in ("REML", "ML"):
            for fit, ref in (("reml", "lme4"), ("statsmodels", "lme4"), ("reml", "statsmodels")):
                pattern = re.compile(rf"^{re.escape(case)}\s+{method}\s+{fit}\s+{ref}\s")
                line = next(ln for ln in out.splitlines() if pattern.match(ln))
                if (fit, ref) == ("reml", "lme4"):
                    assert line.rstrip().endswith("PASS"), line
    for name in ("one-way balanced", "one-way unbalanced", "random slope", "nested", "crossed", "boundary"):
        assert sum(ln.startswith(name) for ln in out.splitlines()) == 2, name


def test_perturbed_reference_fails(monkeypatch, capsys):
    """lme4's Days slope moved by 1e-4 (relative): our fitter now disagrees, the row FAILs, exit code 1."""
    original = validation_cases.load_lme4_reference()

    def perturbed():
        ref = copy.deepcopy(original)
        ref["sleepstudy | Reaction ~ Days + (1 | Subject) | ML"]["fixef"]["Days"] *= 1 + 1e-4
        return ref

    monkeypatch.setattr(validation_cases, "load_lme4_reference", perturbed)
    assert main(["validate", "--no-simulated"]) == 1
    out = capsys.readouterr().out
    bad = [ln for ln in out.splitlines() if ln.startswith("sleepstudy Days + (1 | Subject)") and " ML " in ln
           and " reml " in ln and "lme4" in ln]
    assert len(bad) == 1 and bad[0].rstrip().endswith("FAIL") and "1.0e-04!" in bad[0]
    good = [ln for ln in out.splitlines() if " REML " in ln and " reml " in ln and "lme4" in ln]
    assert len(good) == 3 and all(ln.rstrip().endswith("PASS") for ln in good)


def test_json_output(capsys):
    assert main(["validate", "--json", "--no-simulated"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["exit_code"] == 0
    rows = [r for r in data["rows"] if r["fit"] == "reml" and r["reference"] == "lme4"]
    assert len(rows) == 6 and all(r["status"] == "PASS" and all(r["passed"].values()) for r in rows)
    assert set(rows[0]["diffs"]) == {"fixef", "se", "sd/corr", "sigma", "loglik", "ranef"}


# ---------------------------------------------------------------------------------------------- measures
def _q(**kw) -> Quantities:
    base = dict(fixef={"(Intercept)": 10.0}, se={"(Intercept)": 1.0}, sd={"sd_(Intercept)|g": 2.0},
                corr={}, sigma=1.0, loglik=-50.0,
                ranef={("g", "1", "(Intercept)"): 1.0, ("g", "2", "(Intercept)"): -0.5},
                condsd={("g", "1", "(Intercept)"): 0.3, ("g", "2", "(Intercept)"): 0.3})
    base.update(kw)
    return Quantities(**base)


def test_measures_relative_and_loglik_rule():
    ref = _q()
    d = compare(_q(fixef={"(Intercept)": 10.001}, loglik=-49.0), ref)
    assert d["fixef"] == pytest.approx(1e-4) and d["loglik"] == pytest.approx(1.0)
    assert passes("loglik", d["loglik"], 1e-6)  # ours higher: passes
    assert not passes("loglik", compare(_q(loglik=-50.0 - 2e-6), ref)["loglik"], 1e-6)
    assert passes("loglik", compare(_q(loglik=-50.0 - 5e-7), ref)["loglik"], 1e-6)
    # ranef scaled by the effect's largest |mode| (1.0): an error of 1e-3 on the mode -0.5 → 1e-3
    r = compare(_q(ranef={("g", "1", "(Intercept)"): 1.0, ("g", "2", "(Intercept)"): -0.501}), ref)
    assert r["ranef"] == pytest.approx(1e-3)
    # a missing term is an infinite difference, never a pass
    assert compare(_q(fixef={"x": 10.0}), ref)["fixef"] == math.inf


def test_measures_on_the_boundary():
    """An SD of exactly 0 against 1e-6 σ: compared in units of σ (1e-6), not relatively (∞)."""
    ref = _q(sd={"sd_(Intercept)|g": 1e-6}, ranef={("g", "1", "(Intercept)"): 1e-9},
             condsd={("g", "1", "(Intercept)"): 1e-6})
    ours = _q(sd={"sd_(Intercept)|g": 0.0}, ranef={("g", "1", "(Intercept)"): 0.0},
              condsd={("g", "1", "(Intercept)"): 0.0})
    d = compare(ours, ref)
    assert d["sd/corr"] == pytest.approx(1e-6) and d["ranef"] == pytest.approx(1e-2)


def test_lme4_json_reader():
    ref = validation_cases.load_lme4_reference()["sleepstudy | Reaction ~ Days + (Days || Subject) | REML"]
    q = from_lme4(ref)
    assert set(q.sd) == {"sd_(Intercept)|Subject", "sd_Days|Subject"}  # lme4's "Subject.1" mapped back
    assert len(q.ranef) == 36 and q.loglik == ref["logLik"]


def test_statsmodels_nonconvergence_does_not_fail():
    """A disagreeing statsmodels fit that did not converge is NOCONV (with its warning), not FAIL."""
    case = validation_cases.sleepstudy_cases()[0]
    sm = _q(fixef={"(Intercept)": 11.0}, converged=False, warnings=("ConvergenceWarning: it failed",))
    row = validation._row(case, "reml", "statsmodels", _q(), sm, PEER_TOL, peer="reference")
    assert row.status == "NOCONV" and "it failed" in row.note and not row.decides_exit
    lower = _q(fixef={"(Intercept)": 11.0}, loglik=-50.1)
    row = validation._row(case, "reml", "statsmodels", _q(), lower, PEER_TOL, peer="reference")
    assert row.status == "SM-LOWER"
    row = validation._row(case, "reml", "statsmodels", _q(), _q(fixef={"(Intercept)": 11.0}), PEER_TOL,
                          peer="reference")
    assert row.status == "FAIL" and validation.exit_code([row]) == 0  # statsmodels rows never set the code
    row = validation._row(case, "reml", "lme4", _q(fixef={"(Intercept)": 11.0}), _q(), LME4_TOL)
    assert row.status == "FAIL" and validation.exit_code([row]) == 1


def test_boundary_case_is_on_the_boundary():
    """The boundary design's ANOVA estimate of σ_A² is negative, so our REML estimate is exactly 0."""
    df = validation_cases.boundary()
    y = df["y"].to_numpy().reshape(8, 5)
    assert 5 * y.mean(axis=1).var(ddof=1) < y.var(axis=1, ddof=1).mean()
    fit = compare_mm.fit("y ~ 1 + (1 | g)", df)
    assert fit.estimates()["sd_(Intercept)|g"] == 0.0 and fit.singular
    # REML closed form at the boundary: σ̂² = (SSE + SSA) / (an − 1) = the sample variance
    assert fit.sigma ** 2 == pytest.approx(np.var(y, ddof=1), rel=1e-9)
