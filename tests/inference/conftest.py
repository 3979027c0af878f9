"""Shared fixtures of the inference tests: sleepstudy, lme4's reference fits, balanced one-way data."""

from __future__ import annotations


import numpy as np
import pandas as pd
import pytest

import compare_mm as cm

MODELS = {"corr": "(Days | Subject)", "diag": "(Days || Subject)", "int": "(1 | Subject)"}


def sleep_formula(kind: str) -> str:
    return f"Reaction ~ Days + {MODELS[kind]}"


def _ref_key(kind: str, method: str) -> str:
    return f"sleepstudy | {sleep_formula(kind)} | {method}"


@pytest.fixture(scope="session")
def sleep_design(sleepstudy):
    cache: dict = {}

    def make(kind: str, method: str = "REML"):
        key = (kind, method)
        if key not in cache:
            cache[key] = cm.make_design(sleep_formula(kind), sleepstudy, method=method)
        return cache[key]

    return make


def _oneway_frame(a: int, n: int, sigma_a: float, seed: int, mu: float = 10.0) -> pd.DataFrame:
    """Balanced one-way data y_ij = μ + a_i + e_ij (σ_e = 1), rows shuffled so order does not matter."""
    rng = np.random.default_rng(seed)
    g = np.repeat(np.arange(a), n)
    y = mu + sigma_a * rng.standard_normal(a)[g] + rng.standard_normal(a * n)
    perm = rng.permutation(a * n)
    return pd.DataFrame({"y": y[perm], "g": [f"g{i:02d}" for i in g[perm]]})


@pytest.fixture(scope="session")
def oneway_frame():
    """``oneway_frame(a, n, sigma_a, seed)`` → balanced one-way DataFrame with columns y, g."""
    return _oneway_frame


@pytest.fixture(scope="session")
def ref_key():
    """``ref_key(kind, method)`` → key of lme4's fit in sleepstudy_lme4.json."""
    return _ref_key
