"""Messages that tell a user what to do (issue 17, weak messages): what the data have instead of a missing
column, a misread CSV (another separator, no header), 1-based row numbers, the CLI's --dropna, and
centring instead of removing a column that is only numerically collinear."""

from __future__ import annotations

import io
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

import compare_mm as cm
from compare_mm.errors import DataError

CSV = "Reaction,Days,Subject\n249.6,0,308\n258.7,1,308\n250.8,0,309\n"


def _fit(df, formula="Reaction ~ Days + (1 | Subject)"):
    with pytest.raises(DataError) as e:
        cm.fit(formula, df)
    msg = str(e.value)
    assert "\n" not in msg and msg.endswith("."), msg
    return msg


def test_case_mismatch_names_the_column_meant():
    msg = _fit(pd.read_csv(io.StringIO(CSV)), "reaction ~ Days + (1 | Subject)")
    assert "perhaps you meant 'Reaction' for 'reaction'" in msg


def test_a_semicolon_file_read_with_commas_is_named():
    msg = _fit(pd.read_csv(io.StringIO(CSV.replace(",", ";").replace(".", ","))))
    assert "The data have 'Reaction;Days;Subject'" in msg and "separated by something other than commas" in msg


def test_a_file_without_header_is_named():
    msg = _fit(pd.read_csv(io.StringIO(CSV.split("\n", 1)[1])))
    assert "column names are numbers" in msg and "lacks a header line" in msg


def test_row_numbers_are_one_based_and_the_cli_flag_is_named():
    df = pd.read_csv(io.StringIO(CSV))
    df.loc[0, "Days"] = np.nan     # the first data row
    msg = _fit(df)
    assert "first in data row 1" in msg and "--dropna on the command line" in msg


def test_an_offset_covariate_is_to_be_centred_not_removed():
    rng = np.random.default_rng(0)
    df = pd.DataFrame({"y": rng.normal(size=40), "x": 1e7 + rng.uniform(size=40), "g": list("abcd") * 10})
    msg = _fit(df, "y ~ x + (1 | g)")
    assert "numerically collinear with '(Intercept)'" in msg and "centre it" in msg and "remove" not in msg.split(";")[0]
    assert cm.fit("y ~ I(x - 1e7) + (1 | g)", df).converged     # the advice works
    c = df.assign(x=rng.uniform(size=40))
    c["x2"] = 3 * c["x"]                                         # an exact combination is still "remove it"
    assert "remove it" in _fit(c, "y ~ x + x2 + (1 | g)")


def test_cli_data_path_that_is_a_directory(tmp_path):
    out = subprocess.run([sys.executable, "-m", "compare_mm", "fit", "--data", str(tmp_path), "--formula",
                          "y ~ 1 + (1 | g)"], capture_output=True, text=True)
    assert out.returncode == 2
    assert out.stderr.strip().splitlines()[-1].endswith(f"Data file '{tmp_path}' is a directory; give a CSV file.")
    assert len(out.stderr.strip().splitlines()) == 1
