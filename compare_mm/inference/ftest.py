"""The exact F test of σ_A² = 0 for the balanced one-way model, as a :class:`TestResult`.

F = MSA/MSE ~ F_{a−1, a(n−1)} under H₀ (exact; the numerics are :func:`compare_mm.oneway.closed_forms.f_test`).
"""

from __future__ import annotations

from ..model.design import Design
from ..errors import ModelSpecError
from ..oneway.closed_forms import FTest, design_to_array, f_test, is_balanced_oneway
from ..results.schema import TestResult


def f_test_design(design: Design) -> TestResult:
    """The exact F test of the design's group variance (``name="f_test"``).

    Raises
    ------
    ModelSpecError
        If the design is not the balanced one-way model ``y ~ 1 + (1 | g)``.
    """
    if is_balanced_oneway(design) is None:
        raise ModelSpecError(f"The exact F test needs the balanced one-way model y ~ 1 + (1 | g) with equal "
                             f"group sizes of at least 2; {design.spec.formula!r} is not.")
    res = f_test(design_to_array(design))
    b = design.blocks[0]
    return TestResult("f_test", b.group, b.term_names[0], float(res.statistic), float(res.p_value))


__all__ = ["FTest", "f_test", "f_test_design", "is_balanced_oneway"]
