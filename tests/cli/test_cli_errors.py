"""``compare-mm fit`` on bad input: exit code 2 and one line on stderr naming the problem, no traceback."""

from __future__ import annotations

import json
from importlib import resources

import numpy as np
import pandas as pd
import pytest

from compare_mm.cli import main

SLEEP = pd.read_csv(resources.files("compare_mm") / "data" / "sleepstudy.csv")  # Subject read as int


def _with_nan(df: pd.DataFrame) -> pd.DataFrame:
    out = df.copy()
    out.loc[[3, 7], "Days"] = np.nan
    return out


CASES = [
    # id, data, formula, pattern the one-line message must contain
    ("no-tilde", SLEEP, "Reaction Days + (1 | Subject)", "no '~'"),
    ("unbalanced", SLEEP, "Reaction ~ Days + (1 | Subject", "unclosed '('"),
    ("no-group", SLEEP, "Reaction ~ Days + (Days | )", "no grouping factor"),
    ("empty-lhs", SLEEP, "Reaction ~ Days + ( | Subject)", "nothing before the bar"),
    ("bar-outside", SLEEP, "Reaction ~ Days | Subject", "outside parentheses"),
    ("no-random", SLEEP, "Reaction ~ Days", "no random-effects term"),
    ("missing-column", SLEEP, "Reaction ~ Dayz + (1 | Subject)", "Column 'Dayz'"),
    ("missing-in-response", SLEEP, "log(Reacton) ~ Days + (1 | Subject)", "Column 'Reacton'"),
    ("empty-data", SLEEP.iloc[:0], "Reaction ~ Days + (1 | Subject)", "no rows"),
    ("nan", _with_nan(SLEEP), "Reaction ~ Days + (1 | Subject)", "Column 'Days' has 2 missing or infinite values"),
    ("non-numeric-response", SLEEP.assign(r=np.where(SLEEP["Days"] > 4, "slow", "fast")),
     "r ~ Days + (1 | Subject)", "response 'r' is not numeric"),
    ("non-numeric-slope", SLEEP.assign(f=np.where(SLEEP["Days"] > 4, "late", "early")),
     "Reaction ~ Days + (f | Subject)", "random-slope covariate 'f'"),
    ("single-level", SLEEP.assign(site="A"), "Reaction ~ Days + (1 | site)", "Grouping factor 'site' has a single level"),
    ("too-many-re", SLEEP[SLEEP["Days"] < 2], "Reaction ~ Days + (Days | Subject)",
     "36 random effects for 36 observations"),
    ("rank-deficient", SLEEP.assign(D2=2 * SLEEP["Days"] + 1), "Reaction ~ Days + D2 + (1 | Subject)",
     "column 'D2' is a linear combination of '(Intercept)', 'Days'"),
    ("constant-response", SLEEP.assign(c=1.0), "c ~ Days + (1 | Subject)", "response 'c' is constant"),
]


@pytest.mark.parametrize("name,data,formula,pattern", CASES, ids=[c[0] for c in CASES])
def test_fit_bad_input_is_one_line_exit_2(tmp_path, capsys, name, data, formula, pattern):
    csv = tmp_path / f"{name}.csv"
    data.to_csv(csv, index=False)
    code = main(["fit", "--data", str(csv), "--formula", formula])
    out, err = capsys.readouterr()
    assert code == 2
    assert "Traceback" not in err and "Traceback" not in out
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("compare-mm fit: error: ")
    assert pattern in lines[0], lines[0]


def test_fit_missing_file(tmp_path, capsys):
    code = main(["fit", "--data", str(tmp_path / "nope.csv"), "--formula", "y ~ (1 | g)"])
    _, err = capsys.readouterr()
    assert code == 2 and len(err.strip().splitlines()) == 1 and "nope.csv" in err


def test_fit_dropna_flag_fits_the_remaining_rows(tmp_path, capsys):
    csv = tmp_path / "nan.csv"
    _with_nan(SLEEP).to_csv(csv, index=False)
    code = main(["fit", "--data", str(csv), "--formula", "Reaction ~ Days + (1 | Subject)", "--dropna", "--json"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert json.loads(out)["nobs"] == 178


def test_prior_preset_name_on_the_command_line(tmp_path, capsys):
    """``--prior NAME`` reads config/priors/NAME.yaml, as a study's fit key ``prior: NAME`` does: pc_prior
    puts Exponential(λ = 2.996 / data scale) on the SDs (the sd(Reaction) = 56.17 of sleepstudy gives
    λ = 0.05334); an unknown name is one line listing the presets; bad JSON says JSON or a preset name."""
    csv = tmp_path / "sleep.csv"
    SLEEP.to_csv(csv, index=False)
    base = ["fit", "--data", str(csv), "--formula", "Reaction ~ Days + (1 | Subject)", "--backend", "pymc",
            "--sampler", "quadrature"]
    assert main(base + ["--prior", "pc_prior", "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    lam = 2.996 / float(SLEEP["Reaction"].std())
    shown = res["options"]["priors"]["sd_(Intercept)|Subject"]
    assert "Exponential" in shown and f"lam={lam:.4g}" in shown, shown
    for bad, pattern in (("pc_priorx", "unknown prior preset 'pc_priorx'; available: half_cauchy, inverse_gamma, "
                                       "pc_prior, weakly_informative"),
                         ("{bad", "--prior must be JSON")):
        assert main(base + ["--prior", bad]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and pattern in err[0], err
