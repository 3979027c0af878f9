"""How a :class:`~compare_mm.model.design.Design` maps onto statsmodels' ``MixedLM`` (arrays only, no formulas).

``MixedLM`` has one grouping factor (``groups``) whose levels are independent clusters.  Within a cluster
it allows one correlated random-effects vector (``exog_re``, covariance ``cov_re``) and any number of
*variance components* (``exog_vc``): sets of independent coefficients sharing one variance.  A Design maps
onto that as follows (:func:`plan_layout`):

``"groups"``
    Every term uses the same grouping factor g: ``groups`` = g's codes, ``exog_re`` = the terms' Z columns
    side by side.  ``(x | g)`` is a full covariance block; ``(x || g)`` and separate terms on g are held
    independent by a ``free`` mask (``MixedLM.fit(free=MixedLMParams...)``) that fixes the off-diagonal
    elements of the Cholesky factor of ``cov_re`` at 0 (statsmodels masks the score, so only the gradient
    optimisers bfgs, lbfgs and cg respect it).
``"nested"``
    Terms on a factor ``a`` plus terms on factors nested in it syntactically (``a:b``, as ``(1 | a/b)``
    expands): ``groups`` = a, ``exog_re`` as above for the ``a`` terms, and one variance component per
    effect of every nested term; inside cluster a = i its design matrix has one column per level of
    ``a:b`` occurring in i (the column is Z's entry on that level's rows, 0 elsewhere).
``"one-cluster"``
    Anything else (crossed factors ``(1 | a) + (1 | b)``): a single cluster holding all observations and
    every effect as a variance component, so V = σ²I + Σ_k σ_k² Z_k Z_k' exactly as in lme4.  statsmodels
    then works with dense n × (total levels) matrices, which is right but slow for large data.

A term with correlated effects (unstructured, q ≥ 2) can only be ``exog_re``, so it must be on the
clustering factor; otherwise the spec is unsupported (:func:`unsupported_reason`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ...model.design import Design, RandomBlock
from ...model.spec import ModelSpec
from ...errors import UnsupportedModelError

#: the largest dense n × (total levels) matrix the one-cluster layout will build
MAX_DENSE_CELLS = 20_000_000


@dataclass(frozen=True)
class ReEffect:
    """One random effect of the design: ``block`` index and effect ``index`` within the block's terms."""

    block: int
    index: int


@dataclass(frozen=True, eq=False)
class MixedLMLayout:
    """The MixedLM arrays of one design and the bookkeeping to map statsmodels' output back.

    Attributes
    ----------
    kind
        ``"groups"``, ``"nested"`` or ``"one-cluster"`` (module docstring).
    groups
        ``(n,)`` cluster code of every observation.
    exog_re
        ``(n, k_re)`` Z columns of the effects in ``re_effects`` order, or None.
    re_effects
        The effects held in ``cov_re``, in column order.
    free
        The ``free`` mask for ``MixedLM.fit`` (None when every parameter is free).
    vc_effects
        One effect per variance component, in ``exog_vc`` order.
    exog_vc
        statsmodels' :class:`VCSpec`, or None.
    vc_levels
        ``vc_levels[k][i]`` = the level codes (of effect k's block) of the columns of component k's
        matrix in cluster i.
    """

    kind: str
    groups: np.ndarray
    exog_re: np.ndarray | None
    re_effects: tuple[ReEffect, ...]
    free: MixedLMParams | None
    vc_effects: tuple[ReEffect, ...]
    exog_vc: VCSpec | None
    vc_levels: tuple[tuple[np.ndarray, ...], ...]
    re_names: tuple[str, ...]
    vc_names: tuple[str, ...]


def _n_terms(formula: str) -> int:
    """A lower bound on the number of effects of a random-term formula (``"1 + Days"`` → 2)."""
    parts = [p.strip() for p in str(formula).replace("-", "+").split("+")]
    return len([p for p in parts if p and p not in ("0", "1")]) + (0 if _no_intercept(formula) else 1)


def _no_intercept(formula: str) -> bool:
    parts = [p.strip() for p in str(formula).split("+")]
    return "0" in parts or "-1" in str(formula).replace(" ", "")


def _cluster_factor(groups: list[tuple[str, ...]]) -> tuple[str, ...] | None:
    """The grouping factor every other term's factor is nested in (syntactically), or None."""
    distinct = list(dict.fromkeys(groups))
    if len(distinct) == 1:
        return distinct[0]
    candidates = [g for g in distinct if all(set(g) < set(h) for h in distinct if h != g)]
    return min(candidates, key=len) if candidates else None


def unsupported_reason(spec: ModelSpec) -> str | None:
    """None if MixedLM can express ``spec``, else one sentence saying why not (judged from the spec)."""
    if not spec.random:
        return "statsmodels MixedLM needs at least one random-effects term."
    groups = [t.group for t in spec.random]
    top = _cluster_factor(groups)
    for t in spec.random:
        if t.group == top or t.covariance == "diagonal":
            continue
        if _n_terms(t.formula) > 1:
            return (f"statsmodels MixedLM can correlate random effects only on its one clustering factor, and "
                    f"the term {t} is on {t.group_name!r}, which is not the factor every other term is "
                    f"nested in; use {str(t).replace(' | ', ' || ')} or another backend.")
    return None


def _block_groups(design: Design) -> list[tuple[str, ...]]:
    return [tuple(b.group.split(":")) for b in design.blocks]


def _effects(blocks: list[int], design: Design) -> list[ReEffect]:
    return [ReEffect(i, j) for i in blocks for j in range(design.blocks[i].q)]


def _effect_name(design: Design, e: ReEffect) -> str:
    b = design.blocks[e.block]
    return f"{b.term_names[e.index]}|{b.group}"


def _free_mask(design: Design, re_effects: list[ReEffect], k_vc: int) -> MixedLMParams | None:
    """1 where ``cov_re`` is estimated, 0 where it is held at 0 (between terms, within ``||`` terms)."""
    k = len(re_effects)
    mask = np.zeros((k, k))
    for a, ea in enumerate(re_effects):
        for c, ec in enumerate(re_effects):
            same = ea.block == ec.block
            if a == c or (same and design.blocks[ea.block].covariance == "unstructured"):
                mask[a, c] = 1.0
    if mask.all():
        return None
    from statsmodels.regression.mixed_linear_model import MixedLMParams  # deferred: statsmodels is heavy

    return MixedLMParams.from_components(fe_params=np.ones(design.p), cov_re=mask, vcomp=np.ones(k_vc))


def plan_layout(design: Design) -> MixedLMLayout:
    """Map ``design`` onto MixedLM's ``groups`` / ``exog_re`` / ``exog_vc`` (module docstring).

    Raises
    ------
    UnsupportedModelError
        When a correlated term is not on the clustering factor, or the one-cluster layout would be too big.
    """
    reason = unsupported_reason(design.spec)
    if reason:
        raise UnsupportedModelError(f"Backend 'statsmodels' cannot fit {design.spec.formula!r}: {reason}")
    bgroups = _block_groups(design)
    top = _cluster_factor(bgroups)
    if top is not None:
        top_blocks = [i for i, g in enumerate(bgroups) if g == top]
        vc_blocks = [i for i, g in enumerate(bgroups) if g != top]
        groups = design.blocks[top_blocks[0]].codes.astype(np.int64)
        kind = "groups" if not vc_blocks else "nested"
    else:
        top_blocks, vc_blocks = [], list(range(len(bgroups)))
        groups = np.zeros(design.n, dtype=np.int64)
        kind = "one-cluster"
    for i in vc_blocks:
        b = design.blocks[i]
        if b.q > 1 and b.covariance == "unstructured":
            raise UnsupportedModelError(
                f"Backend 'statsmodels' cannot fit {design.spec.formula!r}: the correlated term on "
                f"{b.group!r} has {b.q} effects but is not on the clustering factor.")
    if kind == "one-cluster":
        cells = design.n * sum(design.blocks[i].n_levels for i in vc_blocks)
        if cells > MAX_DENSE_CELLS:
            raise UnsupportedModelError(
                f"Backend 'statsmodels' cannot fit {design.spec.formula!r}: crossed factors need one dense "
                f"{design.n} × {cells // design.n} variance-component matrix, too large for MixedLM.")
    re_effects = _effects(top_blocks, design)
    exog_re = (np.column_stack([design.blocks[e.block].Z[:, e.index] for e in re_effects])
               if re_effects else None)
    vc_effects = _effects(vc_blocks, design)
    exog_vc, vc_levels = _variance_components(design, groups, vc_effects)
    free = _free_mask(design, re_effects, len(vc_effects)) if re_effects else None
    return MixedLMLayout(kind=kind, groups=groups, exog_re=exog_re, re_effects=tuple(re_effects), free=free,
                  vc_effects=tuple(vc_effects), exog_vc=exog_vc, vc_levels=vc_levels,
                  re_names=tuple(_effect_name(design, e) for e in re_effects),
                  vc_names=tuple(_effect_name(design, e) for e in vc_effects))


def _variance_components(design: Design, groups: np.ndarray, vc_effects: list[ReEffect]
                         ) -> tuple[VCSpec | None, tuple[tuple[np.ndarray, ...], ...]]:
    """statsmodels' VCSpec: per component k and cluster i, the Z column spread over the levels in i.

    Rows within cluster i are in data order, as MixedLM's ``row_indices`` keep them; clusters are in
    sorted code order, as MixedLM sorts ``group_labels``.
    """
    if not vc_effects:
        return None, ()
    clusters = np.unique(groups)
    rows = [np.flatnonzero(groups == c) for c in clusters]
    names, colnames, mats, levels_all = [], [], [], []
    for e in vc_effects:
        b: RandomBlock = design.blocks[e.block]
        z = b.Z[:, e.index]
        cn, mm, lv = [], [], []
        for r in rows:
            codes = b.codes[r]
            lev, pos = np.unique(codes, return_inverse=True)
            m = np.zeros((len(r), len(lev)))
            m[np.arange(len(r)), pos] = z[r]
            cn.append([b.levels[j] for j in lev])
            mm.append(m)
            lv.append(lev)
        names.append(_effect_name(design, e))
        colnames.append(cn)
        mats.append(mm)
        levels_all.append(tuple(lv))
    from statsmodels.regression.mixed_linear_model import VCSpec  # deferred: statsmodels is heavy

    return VCSpec(names, colnames, mats), tuple(levels_all)
