"""Formulas cannot run arbitrary Python (issue: formulaic evaluates Python factors with builtins in reach).

Each refused factor must (1) raise ModelSpecError with one line naming the term and what it used, and
(2) have had no effect: the payloads below would create a marker file if they were evaluated."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import compare_mm as cm
from compare_mm.errors import ModelSpecError


@pytest.fixture
def df():
    rng = np.random.default_rng(0)
    g = np.repeat(np.arange(6), 5)
    return pd.DataFrame({"y": rng.normal(size=30), "x": rng.uniform(1, 2, 30), "g": [f"g{k}" for k in g],
                         "h": ["h1", "h2", "h3"] * 10})


@pytest.mark.parametrize("rhs", ["I(x ** 2)", "np.log(x)", "{x + 1}", "center(x)", "C(h, contr.treatment('h2'))",
                                 "I(x > 1.5)", "np.sqrt(x) + log(x)", "np.clip(x, 1.2, 1.8)"])
def test_ordinary_transforms_still_fit(df, rhs):
    res = cm.fit(f"y ~ {rhs} + (1 | g)", df)
    assert res.converged


PAYLOADS = [
    "I(__import__('pathlib').Path(MARK).touch())",
    "{__import__('pathlib').Path(MARK).touch()}",
    "I(open(MARK, 'w'))",
    "I(exec('x'))",
    "I(eval('x'))",
    "I(x.__class__)",
    "I(().__class__.__bases__[0])",
    "np.save(MARK, x)",
    "np.lib.format.open_memmap(MARK)",
    "I(getattr(np, 'save')(MARK, x))",
    "I(np.__dict__)",
    "C(g, **{'levels': ['g1']})",
    "I(lambda: 0)",
    "I([c for c in 'ab'])",
]


@pytest.mark.parametrize("payload", PAYLOADS)
@pytest.mark.parametrize("where", ["fixed", "random"])
def test_python_payloads_are_refused_in_one_line_and_never_run(df, tmp_path, payload, where):
    mark = tmp_path / "MARK"
    text = payload.replace("MARK", repr(str(mark)))
    formula = f"y ~ {text} + (1 | g)" if where == "fixed" else f"y ~ 1 + ({text} | g)"
    with pytest.raises(ModelSpecError) as exc:
        cm.fit(formula, df)
    msg = str(exc.value)
    assert "\n" not in msg and "formulas may use only" in msg
    assert not mark.exists()


def test_a_spec_built_in_code_is_checked_too(df, tmp_path):
    """A ModelSpec made directly (no formula parsing) goes through the same rule when its design is built."""
    from compare_mm.model.spec import ModelSpec, RandomTerm

    mark = tmp_path / "MARK"
    spec = ModelSpec(response="y", fixed=f"1 + I(__import__('pathlib').Path({str(mark)!r}).touch())",
                     random=(RandomTerm(group=("g",), formula="1", covariance="unstructured"),))
    with pytest.raises(ModelSpecError, match="formulas may use only"):
        cm.make_design(spec, df)
    assert not mark.exists()
