"""Fixtures shared by every test folder: the sleepstudy data and lme4's published fits of it."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def sleepstudy() -> pd.DataFrame:
    """compare_mm/data/sleepstudy.csv with Subject as text (a factor, as in R)."""
    return pd.read_csv(ROOT / "compare_mm" / "data" / "sleepstudy.csv", dtype={"Subject": str})


@pytest.fixture(scope="session")
def lme4() -> dict:
    """lme4 1.1-31's fits of sleepstudy (tests/data/sleepstudy_lme4.json)."""
    return json.loads((ROOT / "tests" / "data" / "sleepstudy_lme4.json").read_text())
