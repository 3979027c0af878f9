"""FitColumns: the frequentist fits of R responses of one design, column-wise (what R FitResults hold).

A study chunk that only needs rows reads its fits from these arrays instead of building one
:class:`~compare_mm.results.schema.FitResult` per replicate (:mod:`compare_mm.study.rows_columns`).  The
names are :meth:`FitResult.estimates`'s (lme4's ``confint``), and every value equals, bit for bit, the
corresponding attribute of the FitResult the backend's ``fit_many`` returns for that replicate
(``tests/study/test_column_rows.py``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True, eq=False)
class RanefColumns:
    """The conditional modes of one effect of one term: ``values`` and ``condsd`` (R, levels)."""

    group: str
    term: str
    levels: tuple[str, ...]
    values: np.ndarray
    condsd: np.ndarray


@dataclass(frozen=True, eq=False)
class FitColumns:
    """R fits as arrays over replicates (module docstring).

    ``solved`` (R,) marks the replicates fitted here; the others (NaN in every array) need the backend's
    per-replicate fit.  ``estimates`` maps FitResult.estimates() names to (R,) arrays, ``se`` the fixed
    effects' standard errors, ``intervals`` ``(parameter, kind)`` to (lower, upper) arrays (Wald for the
    fixed effects); ``criterion`` is the deviance or REML criterion, ``theta`` (R, n_θ) θ̂ in lme4 order;
    ``elapsed_s`` the batch's wall time per replicate.  ``source`` is the backend's handle for building
    one replicate's FitResult from the same numbers (``Prepared.result_at``)."""

    solved: np.ndarray
    method: str
    criterion: np.ndarray
    theta: np.ndarray
    estimates: dict[str, np.ndarray]
    se: dict[str, np.ndarray]
    intervals: dict[tuple[str, str], tuple[np.ndarray, np.ndarray]]
    converged: np.ndarray
    singular: np.ndarray
    ranef: tuple[RanefColumns, ...]
    elapsed_s: float
    source: Any = None

    @property
    def R(self) -> int:
        return int(self.solved.shape[0])


__all__ = ["FitColumns", "RanefColumns"]
