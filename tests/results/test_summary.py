"""Printed p-values: a simulated p-value of exactly 0 reads "< 1/nsim", never "0" (the stored number stays 0.0)."""

from __future__ import annotations

import dataclasses
import json
import re
from importlib import resources

import pandas as pd
import pytest

from compare_mm.api import fit
from compare_mm.cli import main
from compare_mm.inference import run_inference
from compare_mm.results import schema as results
from compare_mm.results.summary import format_p, format_summary

DATA = resources.files("compare_mm") / "data" / "sleepstudy.csv"
SLEEP = pd.read_csv(DATA, dtype={"Subject": str})
MODEL = "Reaction ~ Days + (1 | Subject)"


def _test_line(text: str, name: str) -> str:
    (line,) = [ln for ln in text.splitlines() if ln.split()[:1] == [name]]
    return line


@pytest.mark.parametrize("p, nsim, text", [
    (0.0, 10_000, "< 1e-04"),
    (0.0, 500, "< 2e-03"),
    (0.0, 50, "< 2e-02"),
    (0.0, None, "< 2.2e-16"),
    (0.01961, 50, "0.01961"),
    (0.5, 10_000, "0.5"),
    (4.027e-25, None, "4.027e-25"),
    (None, None, ""),
])
def test_format_p(p, nsim, text):
    assert format_p(p, nsim) == text


@pytest.fixture(scope="module")
def rlrt_fit():
    """Sleepstudy's random intercept is overwhelming (RLRT statistic 107.2): no simulated null statistic
    reaches it, so the exact RLRT's simulated p-value is exactly 0 (RLRsim prints 0 as well)."""
    res = run_inference(MODEL, SLEEP, fit(MODEL, SLEEP), tests=True, seed=3, nsim=500)
    return res


def test_zero_exact_rlrt_p_value_prints_below_one_over_nsim(rlrt_fit):
    (rlrt,) = [t for t in rlrt_fit.tests if t.name == "exact_rlrt"]
    assert rlrt.p_value == 0.0 and rlrt.nsim == 500 and rlrt.statistic > 100  # stored number untouched
    line = _test_line(format_summary(rlrt_fit), "exact_rlrt")
    assert re.search(r"107\.1986\s+< 2e-03\s+500$", line), line


def test_zero_bootstrap_p_value_prints_below_one_over_nsim(rlrt_fit):
    """Our bootstrap p-value is (1 + #{T* ≥ T})/(1 + B) > 0, but a stored 0 (another tool's convention)
    must not print as 0 either."""
    boot = results.TestResult("bootstrap_lrt", "Subject", "(Intercept)", 107.2, 0.0, 50)
    res = dataclasses.replace(rlrt_fit, tests=(boot,))
    line = _test_line(format_summary(res), "bootstrap_lrt")
    assert re.search(r"107\.2000\s+< 2e-02\s+50$", line), line


def test_nonzero_p_values_print_as_numbers(rlrt_fit):
    text = format_summary(rlrt_fit)
    chi2 = [t for t in rlrt_fit.tests if t.name == "lrt_chi2"][0]
    assert f"{chi2.p_value:.4g}" in _test_line(text, "lrt_chi2")
    assert not re.search(r"\s0(\.0*)?(\s|$)", _test_line(text, "exact_rlrt"))


def test_cli_fit_tests_prints_below_1e04_and_json_keeps_zero(capsys):
    args = ["fit", "--formula", MODEL, "--data", str(DATA), "--tests", "--seed", "1"]
    assert main(args) == 0
    line = _test_line(capsys.readouterr().out, "exact_rlrt")
    assert re.search(r"< 1e-04\s+10000$", line), line
    assert main(args + ["--json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    (rlrt,) = [t for t in payload["tests"] if t["name"] == "exact_rlrt"]
    assert rlrt["p_value"] == 0.0 and rlrt["nsim"] == 10_000
