"""The variance components of a design that a test can ask about, and the design without one of them.

A *component* is one random effect whose removal is a boundary hypothesis:

- a term with q = 1, ``(1 | g)`` or ``(0 + x | g)``: H₀ σ² = 0, one parameter, null distribution of the
  LRT ½χ²₀ + ½χ²₁ (Self & Liang 1987, case 5);
- one effect of a diagonal term ``(x || g)``: the same, one variance;
- a non-intercept effect of an unstructured term with q effects, ``(x | g)``: its variance and its q − 1
  covariances, q parameters, null distribution ½χ²_{q−1} + ½χ²_q (Stram & Lee 1994).

The null design is the same design with that effect removed (the whole term when q = 1).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from ..model.design import Design, RandomBlock
from ..errors import ModelSpecError
from ..model.spec import RandomTerm


@dataclass(frozen=True)
class Component:
    """One testable random effect.

    Attributes
    ----------
    group, term
        The grouping factor's display name and the effect's term name (``"Subject"``, ``"Days"``).
    block, index
        Position of the term in ``design.blocks`` and of the effect within the term.
    df
        Number of parameters the null hypothesis removes (naive χ² degrees of freedom).
    single_variance
        True when exactly one variance and nothing else is removed (exact RLRT applies).
    """

    group: str
    term: str
    block: int
    index: int
    df: int
    single_variance: bool

    @property
    def mixture(self) -> tuple[int, int]:
        """Degrees of freedom (q₁, q₂) of the χ̄² mixture ½χ²_{q₁} + ½χ²_{q₂}."""
        return self.df - 1, self.df


def components(design: Design) -> list[Component]:
    """Every testable variance component of ``design`` (module docstring), in formula order."""
    out: list[Component] = []
    for k, b in enumerate(design.blocks):
        if b.q == 1 or b.covariance == "diagonal":
            out.extend(Component(b.group, t, k, j, 1, True) for j, t in enumerate(b.term_names))
        else:
            out.extend(Component(b.group, t, k, j, b.q, False) for j, t in enumerate(b.term_names)
                       if t != "(Intercept)")
    return out


def find_component(design: Design, group: str | None = None, term: str | None = None) -> Component:
    """The component for ``(group, term)``; with one component in the model both may be omitted.

    Raises
    ------
    ModelSpecError
        If the model has no such random effect (one sentence naming group and term).
    """
    comps = components(design)
    hits = [c for c in comps if (group is None or c.group == group) and (term is None or c.term == term)]
    if len(hits) == 1:
        return hits[0]
    have = ", ".join(f"{c.term!r} in group {c.group!r}" for c in comps) or "none"
    what = f"{term or 'any term'!r} in group {group or 'any group'!r}"
    if not hits:
        raise ModelSpecError(f"The model {design.spec.formula!r} has no random-effect variance for {what} "
                             f"to test (testable: {have}).")
    raise ModelSpecError(f"The test of {what} is ambiguous in {design.spec.formula!r}; name the group and "
                         f"term (testable: {have}).")


def _term_formula(names: tuple[str, ...]) -> str:
    parts = ["1" if n == "(Intercept)" else n for n in names]
    return " + ".join(parts) if "1" in parts else "0 + " + " + ".join(parts)


def drop_component(design: Design, comp: Component) -> Design:
    """The design with the component's effect removed (the whole term when it has no other effect)."""
    b = design.blocks[comp.block]
    spec = design.spec
    terms = list(spec.random)
    if b.q == 1:
        blocks = design.blocks[:comp.block] + design.blocks[comp.block + 1:]
        if comp.block < len(terms):
            del terms[comp.block]
    else:
        keep = [j for j in range(b.q) if j != comp.index]
        names = tuple(b.term_names[j] for j in keep)
        nb = RandomBlock(group=b.group, term_names=names, covariance=b.covariance, codes=b.codes,
                         levels=b.levels, Z=np.ascontiguousarray(np.asarray(b.Z)[:, keep]))
        blocks = design.blocks[:comp.block] + (nb,) + design.blocks[comp.block + 1:]
        if comp.block < len(terms):
            t = terms[comp.block]
            terms[comp.block] = RandomTerm(group=t.group, formula=_term_formula(names), covariance=t.covariance)
    new_spec = replace(spec, random=tuple(terms), formula="")
    return replace(design, spec=new_spec, blocks=blocks)


def same_fixed_effects(a: Design, b: Design) -> bool:
    """True when two designs have the same fixed-effects model matrix (REML criteria are comparable)."""
    return (a.X.shape == b.X.shape and a.n == b.n and tuple(a.fixed_names) == tuple(b.fixed_names)
            and bool(np.allclose(a.X, b.X)))


__all__ = ["Component", "components", "drop_component", "find_component", "same_fixed_effects"]
