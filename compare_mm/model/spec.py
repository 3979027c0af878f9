"""The model specification: one value that drives every backend.

A :class:`ModelSpec` is what an lme4 formula means, independent of any data set:
``Reaction ~ Days + (Days || Subject)`` becomes

    ModelSpec(response="Reaction", fixed="1 + Days",
              random=(RandomTerm(group=("Subject",), formula="1 + Days", covariance="diagonal"),))

It is a frozen value: hashable, comparable, safe to use as a cache key (the PyMC backend compiles one
model per spec and design shape).  Build one from a string with :func:`compare_mm.parse_formula`, or in
code with the constructors below.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Literal

from ..errors import ModelSpecError

Covariance = Literal["unstructured", "diagonal"]
Method = Literal["REML", "ML"]

COVARIANCES: tuple[str, ...] = ("unstructured", "diagonal")
METHODS: tuple[str, ...] = ("REML", "ML")


def _bad_method(method: str) -> str:
    """The one-sentence error for a method no backend fits (ANOVA is a study-only closed form)."""
    if str(method).upper() == "ANOVA":
        return ("Method 'ANOVA' is not a method of any backend: it is the closed-form estimator of the balanced "
                "one-way model that studies compute (a study fit's `method: ANOVA`); use REML or ML here.")
    return f"Method {method!r} must be one of {', '.join(METHODS)}."


@dataclass(frozen=True)
class RandomTerm:
    """One random-effects term ``(formula | group)`` or ``(formula || group)``.

    Parameters
    ----------
    group
        The grouping factor(s).  ``("Subject",)`` for ``(… | Subject)``; ``("a", "b")`` for the
        interaction ``(… | a:b)``, whose levels are the observed combinations of ``a`` and ``b``.
    formula
        The right-hand side of the random-effects model matrix in formulaic syntax, with the intercept
        explicit: ``"1"`` for ``(1 | g)``, ``"1 + x"`` for ``(x | g)``, ``"0 + x"`` for ``(0 + x | g)``.
    covariance
        ``"unstructured"`` (``|``: one full covariance matrix G for the term's effects) or
        ``"diagonal"`` (``||``: independent effects, one variance each).
    """

    group: tuple[str, ...]
    formula: str = "1"
    covariance: Covariance = "unstructured"

    def __post_init__(self) -> None:
        if isinstance(self.group, str):
            object.__setattr__(self, "group", tuple(p.strip() for p in self.group.split(":")))
        if not self.group or any(not g for g in self.group):
            raise ModelSpecError("A random-effects term needs a grouping factor after '|'.")
        if self.covariance not in COVARIANCES:
            raise ModelSpecError(
                f"Random-effects covariance {self.covariance!r} for group {self.group_name!r} must be "
                f"one of {', '.join(COVARIANCES)}."
            )
        if not str(self.formula).strip():
            raise ModelSpecError(f"The random-effects term for group {self.group_name!r} has no terms before '|'.")

    @property
    def group_name(self) -> str:
        """The group's display name, as lme4 prints it (``"a:b"`` for an interaction)."""
        return ":".join(self.group)

    @property
    def bar(self) -> str:
        """``"|"`` or ``"||"``."""
        return "||" if self.covariance == "diagonal" else "|"

    def __str__(self) -> str:
        lhs = self.formula
        if lhs.startswith("1 + "):
            lhs = lhs[4:]
        return f"({lhs} {self.bar} {self.group_name})"


@dataclass(frozen=True)
class ModelSpec:
    """A linear mixed model y = Xβ + Zu + ε, u ~ N(0, G), ε ~ N(0, σ²I).

    Parameters
    ----------
    response
        A column name, or an expression of columns evaluated by :meth:`pandas.DataFrame.eval`
        (``"Reaction / 10"``).
    fixed
        The fixed-effects right-hand side in formulaic syntax with the intercept explicit
        (``"1 + Days"``, ``"0 + x"``, ``"1 + x * C(g)"``).
    random
        The random-effects terms, in formula order.
    method
        Default estimation method, ``"REML"`` or ``"ML"``; :func:`compare_mm.fit` may override it.
    formula
        The lme4 formula the spec came from, for display; rebuilt from the parts when built in code.
    """

    response: str
    fixed: str = "1"
    random: tuple[RandomTerm, ...] = ()
    method: Method = "REML"
    formula: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        if not str(self.response).strip():
            raise ModelSpecError("The model needs a response on the left of '~'.")
        object.__setattr__(self, "random", tuple(self.random))
        if self.method not in METHODS:
            raise ModelSpecError(_bad_method(self.method))
        if not self.formula:
            object.__setattr__(self, "formula", self.to_formula())

    def to_formula(self) -> str:
        """The lme4 formula for this spec."""
        parts = [self.fixed] + [str(t) for t in self.random]
        return f"{self.response} ~ " + " + ".join(parts)

    def with_method(self, method: str) -> "ModelSpec":
        """The same model with another estimation method."""
        method = str(method).upper()
        if method not in METHODS:
            raise ModelSpecError(_bad_method(method))
        return replace(self, method=method)

    @property
    def group_factors(self) -> tuple[str, ...]:
        """Every column used as (part of) a grouping factor, in order of first use."""
        seen: dict[str, None] = {}
        for t in self.random:
            for g in t.group:
                seen.setdefault(g, None)
        return tuple(seen)

    @property
    def n_grouping_factors(self) -> int:
        """Number of distinct grouping factors (``(1|g) + (0+x|g)`` count once)."""
        return len({t.group for t in self.random})
