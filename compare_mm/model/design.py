"""ModelSpec + DataFrame → Design: the numeric arrays every backend works from.

All input validation happens here, once (docs/architecture.md, "Contracts").  Backends never look at the DataFrame.
"""

from __future__ import annotations

import functools
from functools import cached_property
import warnings
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd

from .safe_formula import check_factor
from .checks import (ColumnCache, check_effect_scale, check_fixed_count, check_levels,
                     check_n_random, check_numeric_text, check_rank, check_response_not_predictor,
                     check_response_varies, evaluate_response, expression_names, missing_columns,
                     report_nonfinite, response_columns)
from .centring import beta_map, check_slope_varies, fixed_shift, slope_shift
from .identifiable import (check_confounded, check_duplicate_terms, check_flat, check_flat_combination,
                           check_residual_noise)
from ..errors import CompareMMError, DataError, ModelSpecError
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
        ``(n, q)`` float64 rows of the term's model matrix, as the user wrote it.
    shift
        The centring c (length q) the fitter applies: it works on ``Z_fit`` = Z − 1c' (columns [1, x − c]),
        the same model (Z = Z_c M, M = I + e_1 c'; :mod:`compare_mm.fitter.centring` maps the fit back).
        Left as None it is :func:`.centring.slope_shift` of Z: each slope's mean in an unstructured block
        whose first column is the intercept, else 0.
    """

    group: str
    term_names: tuple[str, ...]
    covariance: str
    codes: np.ndarray
    levels: tuple[str, ...]
    Z: np.ndarray
    shift: tuple[float, ...] | None = None

    def __post_init__(self) -> None:
        shift = slope_shift(self.Z, self.covariance) if self.shift is None else tuple(map(float, self.shift))
        if len(shift) != self.q:
            raise ValueError(f"RandomBlock.shift needs {self.q} values, got {len(shift)}.")
        object.__setattr__(self, "shift", shift)

    @property
    def centred(self) -> bool:
        """True when the fitter works on centred columns (some slope's shift is not 0)."""
        return any(c != 0.0 for c in self.shift)

    @cached_property
    def Z_fit(self) -> np.ndarray:
        """The columns the fitter uses: Z − 1c' (Z itself when no column is shifted)."""
        if not self.centred:
            return self.Z
        Zc = np.asarray(self.Z, dtype=float) - np.asarray(self.shift)[None, :]
        Zc[:, 0] = 1.0
        return Zc

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
    x_shift
        The centring m (length p) of X the fitter applies with centred slopes (``X_fit`` = X − 1m',
        :func:`.centring.fixed_shift`; derived from X and the blocks, not set); β and vcov are mapped back
        by ``beta_map`` = N⁻¹ = I − e_0 m'.
    """

    spec: ModelSpec
    y: np.ndarray
    X: np.ndarray
    fixed_names: tuple[str, ...]
    blocks: tuple[RandomBlock, ...]
    response_name: str
    n_dropped: int = 0
    x_shift: tuple[float, ...] = field(default=(), init=False)

    def __post_init__(self) -> None:     # derived, so ``replace`` (another X, other blocks) recomputes it
        object.__setattr__(self, "x_shift", fixed_shift(self.X, self.fixed_names, self.blocks))

    @cached_property
    def X_fit(self) -> np.ndarray:
        """The fixed-effects columns the fitter uses: X − 1m' (X itself when no column is shifted)."""
        if not any(self.x_shift):
            return self.X
        return np.asarray(self.X, dtype=float) - np.asarray(self.x_shift)[None, :]

    @cached_property
    def beta_map(self) -> np.ndarray | None:
        """N⁻¹ = I − e_0 m' with β = N⁻¹ β_c (β_c the coefficients of ``X_fit``), None when X is not shifted."""
        return beta_map(self.x_shift, self.fixed_names)

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


# ---------------------------------------------------------------------------------------------------
# ModelSpec + DataFrame → Design
# ---------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class _RhsPlan:
    """What a formulaic right-hand side needs from the data (computed once per formula string)."""

    formula: str
    intercept: bool
    plain: tuple[str, ...] | None  # the non-intercept terms when all are bare column names
    variables: tuple[str, ...]  # every data column the formula reads (best effort; formulaic checks too)
    lookups: tuple[str, ...] = ()  # the columns used bare (``x``, not ``C(x)`` or ``log(x)``)


@functools.lru_cache(maxsize=512)
def _rhs_plan(formula: str) -> _RhsPlan:
    from formulaic import Formula  # deferred: formulaic takes ~2 s to import; imported when a formula is expanded

    if formula.strip() == "0":
        return _RhsPlan(formula, False, (), ())
    try:
        terms = list(Formula(formula))
    except Exception as exc:  # a spec built in code with a malformed right-hand side
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise ModelSpecError(f"The model part {formula!r} is not a valid formula: {first}") from None
    facs = [[(str(f.expr), str(getattr(f, "eval_method", "")).rsplit(".", 1)[-1].lower()) for f in t.factors]
            for t in terms]
    intercept = bool(facs) and facs[0] == [("1", "literal")]
    rest = facs[1:] if intercept else facs
    plain = tuple(fs[0][0] for fs in rest) if all(len(fs) == 1 and fs[0][1] == "lookup" for fs in rest) else None
    variables: dict[str, None] = {}
    lookups: dict[str, None] = {}
    for fs in facs:
        for expr, method in fs:
            if method == "lookup":
                variables.setdefault(expr, None)
                lookups.setdefault(expr, None)
            elif method == "python":
                check_factor(expr, "model part")      # a spec built in code skips parse_formula
                for v in expression_names(expr):
                    variables.setdefault(v, None)
    return _RhsPlan(formula, intercept, plain, tuple(variables), tuple(lookups))


def _lme4_name(name: str) -> str:
    return "(Intercept)" if name == "Intercept" else name


def _model_matrix(plan: _RhsPlan, data: ColumnCache, what: str) -> tuple[np.ndarray, tuple[str, ...]]:
    """Columns of one right-hand side: numpy fast path for ``1`` / bare numeric columns, else formulaic."""
    n = len(data.data)
    if plan.plain is not None and all(data.is_numeric(c) for c in plan.plain):
        cols = ([np.ones(n)] if plan.intercept else []) + [data.floats(c) for c in plan.plain]
        names = (("(Intercept)",) if plan.intercept else ()) + plan.plain
        if not cols:
            return np.empty((n, 0)), ()
        return np.column_stack(cols), names
    if not plan.intercept and plan.plain == ():
        return np.empty((n, 0)), ()
    from formulaic import model_matrix  # deferred: formulaic takes ~2 s to import; imported when a formula is expanded

    try:
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            mm = model_matrix(plan.formula, _drop_unused_categories(data, plan.variables), na_action="ignore")
    except CompareMMError:
        raise
    except Exception as exc:  # formulaic raises many types; keep the user's view to one sentence
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise ModelSpecError(f"The {what} {plan.formula!r} could not be built from the data: {first}") from None
    X = np.ascontiguousarray(mm.to_numpy(dtype=float))
    return X, tuple(_lme4_name(str(c)) for c in mm.columns)


def _drop_unused_categories(data: ColumnCache, variables: tuple[str, ...]) -> pd.DataFrame:
    """The data with unused categories of pandas Categorical columns dropped, as lme4's ``lFormula``
    builds its model frame with ``drop.unused.levels = TRUE`` (no all-zero dummy columns)."""
    fix = {}
    for v in variables:
        if v in data:
            s = data.series(v)
            if isinstance(s.dtype, pd.CategoricalDtype):
                used = s.cat.remove_unused_categories()
                if len(used.cat.categories) < len(s.cat.categories):
                    fix[v] = used
    return data.data.assign(**fix) if fix else data.data


def _level_labels(values: np.ndarray) -> list[str]:
    """Level labels as R's ``as.character`` prints them: 308 and 308.0 → "308", TRUE → "TRUE"."""
    if values.dtype.kind == "b":
        return ["TRUE" if v else "FALSE" for v in values]
    if values.dtype.kind in "iu":
        return [str(int(v)) for v in values]
    if values.dtype.kind == "f":
        return ["%.15g" % v for v in values]
    return [str(v) for v in values]


def _factorize_strings(s: pd.Series) -> tuple[np.ndarray, list]:
    """Unsorted codes and uniques; pyarrow's dictionary_encode for Arrow-backed strings (2× faster)."""
    arr = s.array
    pa_arr = arr.__arrow_array__() if hasattr(arr, "__arrow_array__") else None
    if pa_arr is not None and pa_arr.null_count == 0:
        import pyarrow.compute as pc  # deferred: pyarrow is heavy; imported when Parquet is read or written

        enc = pc.dictionary_encode(pa_arr)
        enc = enc.chunk(0) if enc.num_chunks == 1 else enc.combine_chunks()
        return enc.indices.to_numpy(zero_copy_only=False).astype(np.int64), enc.dictionary.to_pylist()
    codes, uniq = pd.factorize(arr, sort=False)
    return codes, list(uniq)


def factor_codes(s: pd.Series) -> tuple[np.ndarray, tuple[str, ...]]:
    """Codes and labels of a grouping column, with the level order of R's ``factor()``.

    Numeric (and boolean) columns: unique values sorted numerically, then labelled as strings
    (sleepstudy's Subject 308 → "308").  Strings: sorted.  pandas Categorical: its category order,
    unused categories dropped (as lme4 drops them).
    """
    dt = s.dtype
    if isinstance(dt, pd.CategoricalDtype):
        s2 = s.cat.remove_unused_categories()
        cats = np.asarray(s2.cat.categories)
        return s2.cat.codes.to_numpy(dtype=np.int64), tuple(_level_labels(cats))
    if pd.api.types.is_bool_dtype(dt) or pd.api.types.is_numeric_dtype(dt):
        arr = s.to_numpy()
        if arr.dtype == object:
            arr = arr.astype(float)
        uniq, codes = np.unique(arr, return_inverse=True)
        return codes.astype(np.int64, copy=False).reshape(-1), tuple(_level_labels(uniq))
    codes, uniq = _factorize_strings(s)
    labels = np.array([str(u) for u in uniq], dtype=object)
    order = np.argsort(labels, kind="stable")
    rank = np.empty(len(order), dtype=np.int64)
    rank[order] = np.arange(len(order))
    return rank[codes], tuple(labels[order])


def _group_codes(group: tuple[str, ...], data: ColumnCache, cache: dict) -> tuple[np.ndarray, tuple[str, ...]]:
    """Codes/levels of a grouping factor or of the interaction of several (observed combinations)."""
    if group in cache:
        return cache[group]
    if len(group) == 1:
        out = factor_codes(data.series(group[0]))
    else:
        head_codes, head_levels = _group_codes(group[:-1], data, cache)
        last_codes, last_levels = _group_codes(group[-1:], data, cache)
        nb = len(last_levels)
        combo = head_codes * nb + last_codes
        uniq, inv = np.unique(combo, return_inverse=True)
        labels = tuple(f"{head_levels[u // nb]}:{last_levels[u % nb]}" for u in uniq.tolist())
        out = (inv.astype(np.int64, copy=False).reshape(-1), labels)
    cache[group] = out
    return out


def _used_columns(spec: ModelSpec, data: pd.DataFrame) -> tuple[tuple[str, ...], list[str]]:
    """(response columns, every other column the model reads) in formula order, deduplicated."""
    resp = response_columns(spec.response, data.columns)
    other: dict[str, None] = {}
    for v in _rhs_plan(spec.fixed).variables:
        other.setdefault(v, None)
    for t in spec.random:
        for v in _rhs_plan(t.formula).variables:
            other.setdefault(v, None)
        for g in t.group:
            other.setdefault(g, None)
    return resp, [c for c in other if c not in resp]


def build_design(spec: ModelSpec, data: pd.DataFrame, *, dropna: bool = False) -> Design:
    """Validate ``data`` against ``spec`` and build the numeric :class:`Design`.

    Parameters
    ----------
    spec
        The model (from :func:`compare_mm.parse_formula` or built in code).
    data
        The data; every column the model uses must be present.  Columns used as grouping factors are
        treated as factors whatever their dtype.
    dropna
        Drop rows with a missing or infinite value in a used column (the count is ``Design.n_dropped``)
        instead of raising :class:`DataError`.

    Returns
    -------
    Design
        y, X (lme4 column names, formula order), and one :class:`RandomBlock` per random term.

    Raises
    ------
    DataError, ModelSpecError
        One sentence naming the column or term: empty data, missing column, missing/infinite values,
        non-numeric response or random slope, a grouping factor with one level (or as many levels as
        observations), more random effects than observations, rank-deficient X, constant response.
    """
    if not isinstance(data, pd.DataFrame):
        raise DataError("The data must be a pandas DataFrame.")
    if not spec.random:
        raise ModelSpecError(f"The model {spec.formula!r} has no random-effects term such as (1 | group).")
    return _build(spec, data, dropna, 0)


def _build(spec: ModelSpec, data: pd.DataFrame, dropna: bool, n_dropped: int) -> Design:
    n = len(data)
    if n == 0:
        raise DataError("The data have no rows." if not n_dropped else
                        f"No rows are left after dropping {n_dropped} rows with missing or infinite values.")
    if not data.columns.is_unique:
        dup = data.columns[data.columns.duplicated()].tolist()
        raise DataError(f"Column {str(dup[0])!r} appears more than once in the data.")
    cols = ColumnCache(data)
    resp_cols, other_cols = _used_columns(spec, data)
    missing_columns(list(resp_cols) + other_cols, data, spec.formula)
    check_response_not_predictor(spec.response, resp_cols, _rhs_uses(spec))
    for v in dict.fromkeys(_rhs_plan(spec.fixed).lookups + tuple(c for t in spec.random
                                                                  for c in _rhs_plan(t.formula).lookups)):
        check_numeric_text(v, cols.series(v))
    y = evaluate_response(spec.response, cols)

    # missing / infinite values in the columns the model reads (and in a computed response)
    bad: dict[str, np.ndarray] = {}
    for c in (*resp_cols, *other_cols):
        m = cols.nonfinite(c)
        if m.any():
            bad[f"column {c!r}"] = m
    if spec.response not in data.columns:
        y_bad = ~np.isfinite(y)
        if bad:
            y_bad &= ~np.logical_or.reduce(list(bad.values()))
        if y_bad.any():
            bad[f"the response {spec.response!r}"] = y_bad
    if bad:
        return _drop_or_raise(spec, data, bad, dropna, n_dropped)

    # X and Z rows (formulaic transforms such as log(x) may create non-finite values)
    X, fixed_names = _model_matrix(_rhs_plan(spec.fixed), cols, "fixed-effects part")
    zs: list[tuple[np.ndarray, tuple[str, ...]]] = []
    for t in spec.random:
        plan = _rhs_plan(t.formula)
        for c in plan.plain or ():
            if not cols.is_numeric(c):
                raise DataError(
                    f"The random-slope covariate {c!r} in {t} is not numeric (dtype {cols.series(c).dtype}); "
                    f"write C({c}) for a categorical slope."
                )
        zs.append(_model_matrix(plan, cols, f"random-effects part of {t},"))
        if zs[-1][0].shape[1] == 0:
            raise ModelSpecError(f"The random-effects term {t} has no effects (an intercept or a covariate).")
    if not (np.isfinite(X).all() and all(np.isfinite(Z).all() for Z, _ in zs)):
        derived = {f"fixed-effects column {nm!r}": ~np.isfinite(X[:, j]) for j, nm in enumerate(fixed_names)}
        for (Z, names), t in zip(zs, spec.random):
            derived.update({f"column {nm!r} of {t}": ~np.isfinite(Z[:, j]) for j, nm in enumerate(names)})
        return _drop_or_raise(spec, data, {k: m for k, m in derived.items() if m.any()}, dropna, n_dropped)

    check_response_varies(y, spec.response)
    check_fixed_count(X.shape[1], n, _factor_hint(spec, cols))
    check_rank(X, fixed_names)

    blocks: list[RandomBlock] = []
    cache: dict = {}
    for (Z, names), t in zip(zs, spec.random):
        codes, levels = _group_codes(t.group, cols, cache)
        check_levels(t.group_name, len(levels), levels, n)
        # lme4's checkZdims counts per lme4 term; (x || g) is several terms there, one per effect
        check_n_random(str(t), len(levels) * (len(names) if t.covariance == "unstructured" else 1), n)
        for e, name in enumerate(names):
            check_effect_scale(str(t), name, Z[:, e])
        blocks.append(RandomBlock(group=t.group_name, term_names=names, covariance=t.covariance,
                                  codes=codes, levels=levels, Z=np.ascontiguousarray(Z)))
    check_slope_varies(blocks, [str(t) for t in spec.random])
    _check_identifiable(y, X, fixed_names, blocks, [str(t) for t in spec.random])
    return Design(spec=spec, y=y, X=X, fixed_names=fixed_names, blocks=tuple(blocks),
                  response_name=spec.response, n_dropped=n_dropped)


def _check_identifiable(y: np.ndarray, X: np.ndarray, fixed_names, blocks, terms) -> None:
    """Degenerate models (:mod:`.checks`): duplicated terms, a term confounded with the fixed effects, a
    criterion flat in a variance, and a response with no residual variation."""
    check_duplicate_terms(blocks, terms)
    check_confounded(X, fixed_names, blocks, terms)
    check_flat(X, blocks, terms)
    check_flat_combination(X, blocks, terms)
    check_residual_noise(y, X, blocks)


def _rhs_uses(spec: ModelSpec) -> dict[str, str]:
    """Every right-hand-side column → where it is used (for the response-on-both-sides check)."""
    out: dict[str, str] = {}
    for v in _rhs_plan(spec.fixed).variables:
        out.setdefault(v, "the fixed effects")
    for t in spec.random:
        for v in _rhs_plan(t.formula).variables:
            out.setdefault(v, f"the random-effects term {t}")
        for g in t.group:
            out.setdefault(g, f"the grouping factor of {t}")
    return out


def _factor_hint(spec: ModelSpec, cols: ColumnCache) -> str:
    """Which non-numeric fixed-effects column has the most distinct values (for :func:`check_fixed_count`)."""
    best, k = None, 0
    for v in _rhs_plan(spec.fixed).variables:
        if v in cols and not cols.is_numeric(v):
            m = int(cols.series(v).nunique())
            if m > k:
                best, k = v, m
    return f" (column {best!r} is not numeric and has {k} distinct values, one dummy column each)" if best else ""


def _drop_or_raise(spec: ModelSpec, data: pd.DataFrame, bad: dict[str, np.ndarray], dropna: bool,
                   n_dropped: int) -> Design:
    """Raise the one-sentence DataError for ``bad`` rows, or rebuild without them when ``dropna``."""
    if not dropna:
        report_nonfinite(bad, data.index)
    drop = np.logical_or.reduce(list(bad.values()))
    return _build(spec, data.iloc[np.flatnonzero(~drop)], dropna, n_dropped + int(drop.sum()))
