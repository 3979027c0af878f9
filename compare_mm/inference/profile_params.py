"""lme4's variance parameters of a design (the ψ of profile intervals): per random-effects term, in lme4's
term order (:mod:`compare_mm.fitter.theta`), the SDs of its effects and their correlations, then σ."""

from __future__ import annotations

from dataclasses import dataclass

from ..fitter.theta import make_layout
from ..model.design import Design


@dataclass(frozen=True)
class VarParam:
    """One lme4 variance parameter: an SD (i == j), a correlation (i > j) of θ-layout term ``term``, or σ."""

    name: str
    kind: str
    term: int = -1
    i: int = 0
    j: int = 0


def var_params(design: Design) -> list[VarParam]:
    """lme4's variance parameters in θ order (terms in lme4 order, see :mod:`compare_mm.fitter.theta`;
    column-major lower triangle per term), then σ — the order of lme4's ``confint``."""
    out: list[VarParam] = []
    for k, t in enumerate(make_layout(design.blocks).terms):
        for r, c in zip(t.rows, t.cols):
            r, c = int(r), int(c)
            if r == c:
                out.append(VarParam(f"sd_{t.names[r]}|{t.group}", "sd", k, r, r))
            else:
                out.append(VarParam(f"cor_{t.names[r]}.{t.names[c]}|{t.group}", "cor", k, r, c))
    out.append(VarParam("sigma", "sigma"))
    return out


__all__ = ["VarParam", "var_params"]
