"""θ ↔ Λ_θ: the relative covariance factor of lme4 (Bates et al. 2015, J. Stat. Softw. 67(1), sec. 3.1).

Each random-effects term t with q_t effects per level has a lower-triangular q_t × q_t factor Λ_t with
G_t = σ² Λ_t Λ_t'.  θ stacks the free elements of the Λ_t in lme4's order:

* terms sorted by decreasing number of levels of their grouping factor (stable; lme4's
  ``mkReTrms(reorder.terms = TRUE)``);
* within an unstructured term, the lower triangle column-major: q = 2 gives θ = (λ11, λ21, λ22);
* within a diagonal term ``(x || g)``, the diagonal: θ = (λ11, λ22).

Lower bounds are 0 for diagonal elements and −∞ for off-diagonals; lme4 starts at θ = 1 on the diagonal
and 0 elsewhere.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

from ..model.design import RandomBlock


def theta_positions(q: int, covariance: str) -> tuple[np.ndarray, np.ndarray]:
    """Rows and columns of Λ_t (q × q) filled by the term's θ components, in lme4 order."""
    if covariance == "diagonal":
        idx = np.arange(q)
        return idx, idx.copy()
    rows, cols = [], []
    for c in range(q):
        for r in range(c, q):
            rows.append(r)
            cols.append(c)
    return np.array(rows, dtype=np.intp), np.array(cols, dtype=np.intp)


@dataclass(frozen=True, eq=False)
class Term:
    """One random-effects term in lme4 order.

    Attributes
    ----------
    block
        Index of the term's :class:`~compare_mm.model.design.RandomBlock` in ``design.blocks``.
    group, names, covariance, q, n_levels
        As in the block.
    start
        Offset of the term's θ components in θ.
    rows, cols
        Positions in Λ_t of the term's θ components.
    shift
        The block's centring c (q,): the fitter's problems are built on Z − 1c' and their θ refers to
        those columns (:mod:`.centring` maps it to the user's); all zeros for a term fitted as written.
    """

    block: int
    group: str
    names: tuple[str, ...]
    covariance: str
    q: int
    n_levels: int
    start: int
    rows: np.ndarray
    cols: np.ndarray
    shift: np.ndarray | None = None

    @property
    def centred(self) -> bool:
        """True when the term's slopes are centred internally."""
        return self.shift is not None and bool(np.any(self.shift != 0.0))

    @property
    def n_theta(self) -> int:
        """Number of θ components of the term."""
        return int(self.rows.shape[0])

    @property
    def stop(self) -> int:
        """End offset of the term's θ components."""
        return self.start + self.n_theta

    def factor(self, theta: np.ndarray) -> np.ndarray:
        """Λ_t for the full θ vector."""
        lam = np.zeros((self.q, self.q))
        lam[self.rows, self.cols] = theta[self.start:self.stop]
        return lam


@dataclass(frozen=True, eq=False)
class Layout:
    """All terms of a design in lme4 order, and the θ vector they share."""

    terms: tuple[Term, ...]

    @property
    def n_theta(self) -> int:
        """Length of θ."""
        return sum(t.n_theta for t in self.terms)

    @cached_property
    def diagonal(self) -> np.ndarray:
        """Boolean mask: θ components on a diagonal of some Λ_t (computed once per layout)."""
        mask = np.concatenate([t.rows == t.cols for t in self.terms]) if self.terms else np.zeros(0, bool)
        mask.setflags(write=False)
        return mask

    @property
    def centred(self) -> bool:
        """True when some term's slopes are centred internally (θ of the problems ≠ θ of the user)."""
        return any(t.centred for t in self.terms)

    @property
    def lower(self) -> np.ndarray:
        """Lower bounds of θ: 0 on diagonals, −∞ elsewhere."""
        return np.where(self.diagonal, 0.0, -np.inf)

    def start(self) -> np.ndarray:
        """lme4's starting value: 1 on diagonals, 0 elsewhere."""
        return self.diagonal.astype(float)

    def column_of(self, k: int) -> np.ndarray:
        """Indices of the θ components in the same column of the same Λ_t as component ``k``."""
        for t in self.terms:
            if t.start <= k < t.stop:
                c = t.cols[k - t.start]
                return t.start + np.flatnonzero(t.cols == c)
        raise IndexError(k)


def make_layout(blocks: tuple[RandomBlock, ...] | list[RandomBlock]) -> Layout:
    """The lme4-ordered :class:`Layout` of a design's random-effects blocks.

    Terms are sorted by decreasing number of levels (stable), as lme4's ``mkReTrms`` does by default.
    """
    order = sorted(range(len(blocks)), key=lambda i: -blocks[i].n_levels)
    terms, start = [], 0
    for i in order:
        b = blocks[i]
        rows, cols = theta_positions(b.q, b.covariance)
        terms.append(Term(block=i, group=b.group, names=tuple(b.term_names), covariance=b.covariance,
                          q=b.q, n_levels=b.n_levels, start=start, rows=rows, cols=cols,
                          shift=np.asarray(b.shift, dtype=float)))
        start += rows.shape[0]
    return Layout(terms=tuple(terms))


def to_block_order(layout: Layout, theta: np.ndarray) -> np.ndarray:
    """θ (lme4 order, as in ``FitResult.theta``) rearranged to the order of ``design.blocks``."""
    theta = np.asarray(theta, dtype=float)
    parts = sorted(layout.terms, key=lambda t: t.block)
    return np.concatenate([theta[t.start:t.stop] for t in parts]) if parts else theta[:0]


def from_block_order(layout: Layout, theta_blocks: np.ndarray) -> np.ndarray:
    """Inverse of :func:`to_block_order`: θ in ``design.blocks`` order → lme4 order."""
    theta_blocks = np.asarray(theta_blocks, dtype=float)
    out = np.empty_like(theta_blocks)
    k = 0
    for t in sorted(layout.terms, key=lambda t: t.block):
        out[t.start:t.stop] = theta_blocks[k:k + t.n_theta]
        k += t.n_theta
    return out
