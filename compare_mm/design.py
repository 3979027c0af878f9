"""ModelSpec + DataFrame → Design: the numeric arrays every backend works from.

All input validation happens here, once (DESIGN.md).  Backends never look at the DataFrame.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from .spec import ModelSpec


@dataclass(frozen=True, eq=False)
class RandomBlock:
    """The data of one random-effects term.

    Observation ``k`` contributes ``Z[k] @ u[codes[k]]`` to the linear predictor, where ``u[j]`` is the
    length-``q`` vector of random effects of level ``j``.  The full sparse Z of the term has
    ``n_levels * q`` columns ordered level-major (level 0's q effects, then level 1's, …), as lme4 orders
    them within a term.

    Attributes
    ----------
    group
        Display name of the grouping factor (``"Subject"``, ``"a:b"``).
    term_names
        Names of the q effects (``("(Intercept)", "Days")``).
    covariance
        ``"unstructured"`` or ``"diagonal"``.
    codes
        ``(n,)`` int64 level index of every observation, 0 … n_levels − 1.
    levels
        Level labels as strings, in code order (sorted as lme4 sorts factor levels).
    Z
        ``(n, q)`` float64 rows of the term's model matrix.
    """

    group: str
    term_names: tuple[str, ...]
    covariance: str
    codes: np.ndarray
    levels: tuple[str, ...]
    Z: np.ndarray

    @property
    def q(self) -> int:
        """Number of random effects per level."""
        return len(self.term_names)

    @property
    def n_levels(self) -> int:
        """Number of levels of the grouping factor."""
        return len(self.levels)

    @property
    def n_theta(self) -> int:
        """Length of this term's part of θ: q(q+1)/2 (unstructured) or q (diagonal)."""
        return self.q * (self.q + 1) // 2 if self.covariance == "unstructured" else self.q


@dataclass(frozen=True, eq=False)
class Design:
    """Numeric form of a model on one data set.

    Attributes
    ----------
    spec
        The model specification.
    y
        ``(n,)`` float64 response.
    X
        ``(n, p)`` float64 fixed-effects model matrix, full column rank.
    fixed_names
        Column names of X in formula order, lme4 style (``"(Intercept)"``, ``"Days"``, ``"x:C(g)[T.b]"``).
    blocks
        One :class:`RandomBlock` per random-effects term, in formula order.
    response_name
        The response as written in the formula.
    n_dropped
        Rows dropped for missing values (only when the user asked for it).
    """

    spec: ModelSpec
    y: np.ndarray
    X: np.ndarray
    fixed_names: tuple[str, ...]
    blocks: tuple[RandomBlock, ...]
    response_name: str
    n_dropped: int = 0

    @property
    def n(self) -> int:
        """Number of observations."""
        return int(self.y.shape[0])

    @property
    def p(self) -> int:
        """Number of fixed effects."""
        return int(self.X.shape[1])

    @property
    def shape_key(self) -> tuple:
        """Hashable key of everything but y: backends cache compiled models per key."""
        return (
            self.spec,
            self.n,
            self.p,
            tuple((b.group, b.n_levels, b.q, b.covariance) for b in self.blocks),
        )

    def with_y(self, y: np.ndarray) -> "Design":
        """The same design with another response vector (one replicate of a study)."""
        y = np.asarray(y, dtype=float)
        if y.shape != self.y.shape:
            raise ValueError(f"with_y needs a response of shape {self.y.shape}, got {y.shape}.")
        return replace(self, y=y)
