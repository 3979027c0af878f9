"""The sparse (SuperLU) path against the dense general path, and automatic path selection."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

import compare_mm
from compare_mm.fitter import blocked, general

_spec = importlib.util.spec_from_file_location("dense_models", Path(__file__).with_name("test_dense_likelihood.py"))
dense_models = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(dense_models)


@pytest.mark.parametrize("method", ["REML", "ML"])
@pytest.mark.parametrize("formula,make", [("y ~ x + (1 | a) + (1 | b)", dense_models.crossed_data),
                                          ("y ~ x + (1 | a/b)", dense_models.nested_data),
                                          ("y ~ x + (x | a) + (1 | b)", dense_models.crossed_data)])
def test_sparse_matches_dense(formula, make, method):
    df = make()
    a = compare_mm.fit(formula, df, method=method, path="general")
    b = compare_mm.fit(formula, df, method=method, path="sparse")
    assert b.options["path"] == "sparse" and b.converged
    assert b.loglik == pytest.approx(a.loglik, abs=1e-9)
    assert np.allclose(a.theta, b.theta, atol=1e-6)
    assert np.allclose([r.value for r in a.ranef], [r.value for r in b.ranef], atol=1e-6)
    assert np.allclose([r.condsd for r in a.ranef], [r.condsd for r in b.ranef], rtol=1e-6)
    assert [r.se for r in a.fixef] == pytest.approx([r.se for r in b.fixef], rel=1e-6)


def test_auto_path_selection(monkeypatch):
    df = dense_models.crossed_data()
    assert compare_mm.fit("y ~ x + (x | a)", df).options["path"] == "onefactor"
    assert compare_mm.fit("y ~ x + (1 | a) + (1 | b)", df).options["path"] == "blocked"
    monkeypatch.setattr(blocked, "REST_MAX", 5)           # b has 6 levels: too many for the blocked path
    assert compare_mm.fit("y ~ x + (1 | a) + (1 | b)", df).options["path"] == "general"
    monkeypatch.setattr(general, "DENSE_MAX", 10)
    assert compare_mm.fit("y ~ x + (1 | a) + (1 | b)", df).options["path"] == "sparse"
