"""Input checks used by :func:`compare_mm.model.design.build_design`.

Each check raises :class:`~compare_mm.errors.DataError` (or :class:`~compare_mm.errors.ModelSpecError`)
with one sentence that names the offending column or term.  The numerical ones follow lme4:

- rank of X: R's ``qr(X, tol = 1e-7, LAPACK = FALSE)`` (LINPACK ``dqrdc2``), which lme4's
  ``chkRank.drop.cols`` uses — a column is aliased when, after removing its projection on the earlier
  kept columns, its norm is below 1e-7 times its original norm.  Scanning columns in formula order names
  the *later* column of a dependent set, as R's ``lm`` and lme4 do;
- numbers of levels and of random effects: lme4's ``checkNlevels`` and ``checkZdims``
  (``lmerControl(check.nlev.gtr.1, check.nobs.vs.nlev, check.nobs.vs.nRE)``, all "stop" for ``lmer``).
"""

from __future__ import annotations

import ast
import functools
from collections.abc import Sequence

import math

import numpy as np
import pandas as pd

from ..errors import DataError, ModelSpecError

#: functions allowed in a response expression such as ``log(y)`` (numpy ufuncs)
RESPONSE_FUNCTIONS: dict[str, object] = {
    "log": np.log, "log10": np.log10, "log2": np.log2, "log1p": np.log1p, "exp": np.exp,
    "expm1": np.expm1, "sqrt": np.sqrt, "abs": np.abs, "sin": np.sin, "cos": np.cos, "tan": np.tan,
    "arcsin": np.arcsin, "asin": np.arcsin, "arctan": np.arctan, "atan": np.arctan,
    "sinh": np.sinh, "cosh": np.cosh, "tanh": np.tanh,
}

_ALLOWED_NODES = (
    ast.Expression, ast.BinOp, ast.UnaryOp, ast.Name, ast.Load, ast.Constant, ast.Call,
    ast.Add, ast.Sub, ast.Mult, ast.Div, ast.Pow, ast.Mod, ast.FloorDiv, ast.USub, ast.UAdd,
)


def _quote_list(names: Sequence[str]) -> str:
    return ", ".join(repr(str(n)) for n in names)


def _plural(k: int, word: str) -> str:
    return f"{k} {word}" if k == 1 else f"{k} {word}s"


def expression_names(expr: str) -> tuple[str, ...]:
    """Variable names an expression reads: ``Name`` nodes that are neither called nor attribute bases.

    ``"C(g, contr.treatment)"`` → ``("g",)``; ``"np.log(x) + z"`` → ``("x", "z")``.  Returns ``()`` when the
    text is not a Python expression (formulaic then reports it).
    """
    try:
        tree = ast.parse(expr.strip(), mode="eval")
    except SyntaxError:
        return ()
    skip: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            skip.add(id(node.func))
        elif isinstance(node, ast.Attribute):
            skip.add(id(node.value))
    out: dict[str, None] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and id(node) not in skip:
            out.setdefault(node.id, None)
    return tuple(out)


@functools.lru_cache(maxsize=256)
def _compile_response(expr: str):
    """Validate a response expression and compile it; returns ``(code, column_names)``."""
    try:
        tree = ast.parse(expr.strip(), mode="eval")
    except SyntaxError:
        raise ModelSpecError(
            f"The response {expr!r} is neither a column of the data nor an expression of columns."
        ) from None
    for node in ast.walk(tree):
        if not isinstance(node, _ALLOWED_NODES):
            raise ModelSpecError(
                f"The response {expr!r} may only use columns, numbers, + - * / ** and the functions "
                f"{', '.join(sorted(RESPONSE_FUNCTIONS))}."
            )
        if isinstance(node, ast.Call):
            if not isinstance(node.func, ast.Name) or node.func.id not in RESPONSE_FUNCTIONS:
                name = node.func.id if isinstance(node.func, ast.Name) else ast.unparse(node.func)
                raise ModelSpecError(
                    f"The response {expr!r} calls {name!r}; allowed functions are "
                    f"{', '.join(sorted(RESPONSE_FUNCTIONS))}."
                )
            if len(node.args) != 1 or node.keywords:
                raise ModelSpecError(f"The function {node.func.id!r} in the response {expr!r} takes one argument.")
    names = tuple(n for n in expression_names(expr) if n not in RESPONSE_FUNCTIONS)
    return compile(tree, "<response>", "eval"), names


def response_columns(expr: str, columns) -> tuple[str, ...]:
    """Columns the response reads: the column itself, or the names in the expression."""
    if expr in columns:
        return (expr,)
    return _compile_response(expr)[1]


class ColumnCache:
    """The columns of one DataFrame, each fetched (and converted to float64) at most once.

    ``DataFrame.__getitem__`` and ``Series.to_numpy(dtype=float, na_value=nan)`` cost tens of µs each in
    pandas 3; the design of a small model reads each column several times.
    """

    __slots__ = ("data", "_series", "_floats")

    def __init__(self, data: pd.DataFrame) -> None:
        self.data = data
        self._series: dict[str, pd.Series] = {}
        self._floats: dict[str, np.ndarray] = {}

    def __contains__(self, col: str) -> bool:
        return col in self.data.columns

    def series(self, col: str) -> pd.Series:
        s = self._series.get(col)
        if s is None:
            s = self._series[col] = self.data[col]
        return s

    def is_numeric(self, col: str) -> bool:
        """Numeric or boolean, and not a pandas Categorical."""
        dt = self.series(col).dtype
        if isinstance(dt, np.dtype):
            return dt.kind in "fiub"
        return (pd.api.types.is_numeric_dtype(dt) or pd.api.types.is_bool_dtype(dt)) and not isinstance(
            dt, pd.CategoricalDtype
        )

    def floats(self, col: str, what: str = "Column") -> np.ndarray:
        """Column ``col`` as float64 (NaN for missing), or a DataError saying ``what`` must be numeric."""
        arr = self._floats.get(col)
        if arr is not None:
            return arr
        s = self.series(col)
        if not self.is_numeric(col):
            raise DataError(f"{what} {col!r} is not numeric (dtype {s.dtype}).")
        if isinstance(s.dtype, np.dtype):
            arr = s.to_numpy().astype(float)
        else:
            try:
                arr = s.to_numpy(dtype=float, na_value=np.nan)
            except (TypeError, ValueError):
                raise DataError(f"{what} {col!r} is not numeric (dtype {s.dtype}).") from None
        self._floats[col] = arr
        return arr

    def nonfinite(self, col: str) -> np.ndarray:
        """Boolean mask of missing (NaN, None, NA) or infinite entries of a column."""
        s = self.series(col)
        dt = s.dtype
        if isinstance(dt, np.dtype) and dt.kind in "fiub":
            if dt.kind == "f":
                return ~np.isfinite(self.floats(col))
            return np.zeros(len(s), dtype=bool)
        if isinstance(dt, np.dtype):  # object
            return np.asarray(pd.isna(s.to_numpy()), dtype=bool)
        m = np.asarray(s.array.isna(), dtype=bool)
        if self.is_numeric(col):
            m = m | ~np.isfinite(self.floats(col))
        return m


def evaluate_response(expr: str, cols: ColumnCache) -> np.ndarray:
    """The response vector: a numeric column, or an expression of columns (``log(y)``, ``Reaction/10``).

    Expressions are restricted to columns, numbers, arithmetic and :data:`RESPONSE_FUNCTIONS` and are
    evaluated on the columns' numpy arrays (≈ 20 µs, against ≈ 1.4 ms for ``DataFrame.eval``).
    """
    if expr in cols:
        return cols.floats(expr, "The response")
    code, names = _compile_response(expr)
    missing = [nm for nm in names if nm not in cols]
    if missing:
        raise DataError(
            (f"Column {_quote_list(missing)} used in the response {expr!r} is not in the data."
             if len(missing) == 1 else
             f"Columns {_quote_list(missing)} used in the response {expr!r} are not in the data.")
            + columns_hint(missing, list(cols.data.columns))
        )
    env = {nm: cols.floats(nm, f"Column used in the response {expr!r},") for nm in names}
    env.update(RESPONSE_FUNCTIONS)
    with np.errstate(all="ignore"):
        try:
            y = eval(code, {"__builtins__": {}}, env)  # noqa: S307 - AST restricted above
        except Exception as exc:  # e.g. ZeroDivisionError of constants
            raise DataError(f"The response {expr!r} could not be evaluated: {exc}.") from None
    y = np.asarray(y, dtype=float)
    return np.broadcast_to(y, (len(cols.data),)).copy() if y.ndim == 0 else y


def columns_hint(missing: Sequence[str], columns: Sequence) -> str:
    """What the data have instead, for a missing-column message: a close match (``reaction`` →
    ``Reaction``), the columns found, and a word on a file that was probably misread (one column whose
    name holds ``;`` or a tab: another separator; column names that are numbers: no header line)."""
    import difflib

    found = [str(c) for c in columns]
    lower = {c.lower(): c for c in found}
    close = []
    one_sep = len(found) == 1 and any(sep in found[0] for sep in (";", "\t", "|"))
    for m in ([] if one_sep else missing):
        ml = str(m).lower()
        prefix = [c for c in found if len(ml) >= 3 and c.lower().startswith(ml)]
        best = (lower.get(ml) or next(iter(difflib.get_close_matches(str(m), found, 1, 0.75)), None)
                or (prefix[0] if len(prefix) == 1 else None))
        if best is not None:
            close.append(f"{best!r} for {m!r}")
    shown = ", ".join(repr(c) for c in found[:12]) + (f", … ({len(found)} in all)" if len(found) > 12 else "")
    text = f" The data have {shown or 'no columns'}"
    text += f"; perhaps you meant {', '.join(close)}." if close else "."
    if one_sep:
        text += " That one column name holds a separator: the file is probably separated by something other than commas."
    elif found and all(_is_number(c) for c in found):
        text += " Those column names are numbers: the file probably lacks a header line."
    return text


def _is_number(text: str) -> bool:
    try:
        float(text.replace(",", "."))
    except ValueError:
        return False
    return True


def missing_columns(needed: Sequence[str], data: pd.DataFrame, spec_text: str) -> None:
    """Raise a DataError naming every column the model uses that the data lack (and what they have)."""
    cols = data.columns
    missing = [c for c in needed if c not in cols]
    if not missing:
        return
    hint = columns_hint(missing, list(cols))
    if len(missing) == 1:
        raise DataError(f"Column {missing[0]!r} used in {spec_text!r} is not in the data.{hint}")
    raise DataError(f"Columns {_quote_list(missing)} used in {spec_text!r} are not in the data.{hint}")


def report_nonfinite(bad: dict[str, np.ndarray], index: pd.Index) -> None:
    """Raise one DataError describing the missing/infinite values of every listed column."""
    parts = [(name, int(m.sum()), int(np.flatnonzero(m)[0])) for name, m in bad.items() if m.any()]
    if not parts:
        return
    if len(parts) == 1:
        name, k, first = parts[0]
        raise DataError(
            f"{name[:1].upper()}{name[1:]} has {_plural(k, 'missing or infinite value')} (first in data row "
            f"{first + 1}); remove those rows or pass {DROPNA}."
        )
    desc = ", ".join(f"{name} ({_plural(k, 'row')}, first in data row {first + 1})" for name, k, first in parts)
    raise DataError(f"Missing or infinite values in {desc}; remove those rows or pass {DROPNA}.")


#: how to ask for dropping incomplete rows, for API and command-line users alike
DROPNA = "dropna=True (--dropna on the command line)"


def aliased_columns(X: np.ndarray, tol: float = 1e-7) -> list[int]:
    """Indices of columns of X that are (numerically) linear combinations of earlier columns.

    Gram–Schmidt with reorthogonalisation in column order, with R's ``dqrdc2`` criterion: column j is
    aliased when the norm of its residual after projection on the kept earlier columns is at most
    ``tol`` times its own norm (``qr(X, tol = 1e-7)``, as lme4's ``chkRank.drop.cols``).
    """
    n, p = X.shape
    norms = np.sqrt(np.einsum("ij,ij->j", X, X))
    if np.all(norms > 0.0) and n >= p:
        # quick accept: Cholesky of the column-scaled Gram matrix; L_jj is the scaled residual norm of
        # column j, and squaring costs only ~1e-8 absolute accuracy, far below the 1e-4 threshold used
        Xs = X / norms
        try:
            if np.diagonal(np.linalg.cholesky(Xs.T @ Xs)).min() > 1e-4:
                return []
        except np.linalg.LinAlgError:
            pass
    Q = np.empty((n, p))
    k = 0
    out: list[int] = []
    for j in range(p):
        if not norms[j] > 0.0:
            out.append(j)
            continue
        v = X[:, j] / norms[j]
        if k:
            Qk = Q[:, :k]
            v = v - Qk @ (Qk.T @ v)
            v = v - Qk @ (Qk.T @ v)
        r = float(np.sqrt(v @ v))
        if r <= tol:
            out.append(j)
        else:
            Q[:, k] = v / r
            k += 1
    return out


def check_rank(X: np.ndarray, names: Sequence[str], tol: float = 1e-7) -> None:
    """Raise a DataError naming the aliased fixed-effects columns and what they combine."""
    if X.shape[1] == 0:
        return
    alias = aliased_columns(X, tol)
    if not alias:
        return
    zero = [j for j in alias if not np.any(X[:, j])]
    if zero:
        raise DataError(
            f"Fixed-effects column {_quote_list([names[j] for j in zero])} is zero in every row "
            "(an unused factor level?); remove it from the formula."
        )
    kept = [j for j in range(X.shape[1]) if j not in alias]
    coef, *_ = np.linalg.lstsq(X[:, kept], X[:, alias], rcond=None)
    scale = np.linalg.norm(X[:, kept], axis=0)[:, None] * np.abs(coef)
    used = [kept[i] for i in range(len(kept)) if np.any(scale[i] > 1e-7 * np.linalg.norm(X[:, alias], axis=0))]
    a_names = _quote_list([names[j] for j in alias])
    resid = X[:, alias] - X[:, kept] @ coef
    if np.all(np.linalg.norm(resid, axis=0) > 1e-10 * np.linalg.norm(X[:, alias], axis=0)):
        # not an exact combination: the column varies too little relative to its size (x + 1e7)
        raise DataError(
            f"Fixed-effects column{'s' if len(alias) > 1 else ''} {a_names} "
            f"{'are' if len(alias) > 1 else 'is'} numerically collinear with "
            f"{_quote_list([names[j] for j in used])}: {'they vary' if len(alias) > 1 else 'it varies'} by less "
            "than 1e-7 of its size; centre it (subtract a value near its mean, as in I(x - 1e7)) rather than "
            "removing it."
        )
    if len(alias) == 1:
        raise DataError(
            f"Fixed-effects column {a_names} is a linear combination of {_quote_list([names[j] for j in used])} "
            "(X is rank deficient); remove it from the formula."
        )
    raise DataError(
        f"Fixed-effects columns {a_names} are linear combinations of {_quote_list([names[j] for j in used])} "
        "(X is rank deficient); remove them from the formula."
    )


def check_levels(group: str, n_levels: int, levels: Sequence[str], n: int) -> None:
    """lme4's checkNlevels: a grouping factor needs ≥ 2 levels and fewer levels than observations."""
    if n_levels < 2:
        lab = f" ({levels[0]!r})" if n_levels == 1 else ""
        raise DataError(
            f"Grouping factor {group!r} has a single level{lab}; a random effect needs at least two levels."
        )
    if n_levels >= n:
        raise DataError(
            f"Grouping factor {group!r} has {n_levels} levels for {n} observations; it needs fewer levels "
            "than observations."
        )


def check_n_random(term: str, n_re: int, n: int) -> None:
    """lme4's checkZdims: each term needs fewer random effects than observations."""
    if n_re >= n:
        raise DataError(
            f"The random-effects term {term} has {n_re} random effects for {n} observations; "
            "the variance components are not identifiable (need fewer random effects than observations)."
        )


#: root-mean-square range of a random-effects column our fitter is validated on (beyond it θ = 1, the
#: start, is 10¹² or 10⁻⁸ times the optimum's scale, and the slope variance was off by up to 35 % while
#: reported converged; tests/model/test_degenerate.py)
EFFECT_SCALE = (1e-4, 1e6)


def check_effect_scale(term: str, name: str, z: np.ndarray) -> None:
    """A random-effects column of extreme scale (a timestamp in seconds, a rate per 10⁹) is refused with
    the rescaling that makes it fittable (lme4 warns "predictor variables are on very different scales")."""
    if z.size == 0 or np.all(z == z[0]):
        return
    rms = float(np.sqrt(np.mean(z * z)))
    lo, hi = EFFECT_SCALE
    if lo <= rms <= hi:
        return
    power = 10.0 ** round(math.log10(rms))
    how = f"divide it by {power:g}" if rms > hi else f"multiply it by {1 / power:g}"
    raise DataError(
        f"The random effect {name!r} of {term} has values of size {rms:.3g} (root mean square), too far "
        f"from 1 for the variance estimate to keep its precision; {how} (or center and scale it) and refit."
    )


def check_response_varies(y: np.ndarray, name: str) -> None:
    """A constant response leaves nothing to model."""
    if y.size and np.all(y == y[0]):
        raise DataError(f"The response {name!r} is constant (every value is {y[0]:g}); there is nothing to model.")


# ---------------------------------------------------------------------------------------------------
# Degenerate and unidentifiable models: each check names the cause in one sentence
# ---------------------------------------------------------------------------------------------------

def check_response_not_predictor(response: str, resp_cols: Sequence[str], used: dict[str, str]) -> None:
    """The response's columns must not appear on the right-hand side (``y ~ y + (1 | g)``).

    ``used`` maps each right-hand-side column to where it is used (``"the fixed effects"``, a term).
    """
    for c in resp_cols:
        if c in used:
            raise ModelSpecError(
                f"Column {c!r} is the response {response!r} and also used in {used[c]}; a model cannot "
                "predict the response from itself."
            )


def check_numeric_text(col: str, s: pd.Series) -> None:
    """A text column whose values are mostly numbers is a typo, not a factor with one level per value.

    pandas reads a numeric column with one bad cell (``abc``, ``1,5``, ``n/a``) as text; formulaic would
    then expand it into one dummy column per distinct value.  Raises when at least half of the column's
    distinct non-missing values parse as numbers but some do not (write ``C(x)`` for a real factor).
    """
    dt = s.dtype
    if not (dt == object or pd.api.types.is_string_dtype(dt)) or isinstance(dt, pd.CategoricalDtype):
        return
    vals = pd.unique(s.dropna().to_numpy())
    if vals.size == 0:
        return
    num = pd.to_numeric(pd.Series(vals, dtype=object), errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    ok = ~np.isnan(num)
    if ok.any() and not ok.all() and 2 * int(ok.sum()) >= vals.size:
        bad = vals[~ok]
        row = s.index[np.flatnonzero(s.isin([bad[0]]).to_numpy())[0]]
        raise DataError(
            f"Column {col!r} is numeric except for {_plural(len(bad), 'value')} such as {str(bad[0])!r} "
            f"(first at row {row!r}), so it would become a factor with one level per value; fix those "
            f"cells, or write C({col}) to use it as a factor."
        )


def check_fixed_count(p: int, n: int, many_levels: str = "") -> None:
    """The fixed effects need fewer columns than observations (else no residual degrees of freedom)."""
    if p >= n:
        raise DataError(
            f"The fixed effects have {p} columns for {n} observations, leaving no residual degrees of "
            f"freedom{many_levels}; remove terms or fix the column types."
        )
