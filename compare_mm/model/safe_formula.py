"""What a formula's Python factors may do: columns, numbers, arithmetic and formulaic's transforms.

formulaic evaluates a factor such as ``I(x ** 2)``, ``np.log(x)`` or ``{x + 1}`` as Python with the
interpreter's builtins in reach, so ``I(__import__('os').system(...))`` would run a shell command.  Every
Python factor is parsed here first (:mod:`ast`) and refused in one sentence unless it only uses

* column names and numbers (strings, lists and tuples as transform arguments: ``C(g, levels=['a', 'b'])``),
* arithmetic, comparisons and boolean operators,
* calls of formulaic's transforms (:data:`TRANSFORMS`: ``C``, ``I``, ``log``, ``center``, ``poly``, ``bs``, …),
  of NumPy's ufuncs as ``np.<name>`` (``np.log``, ``np.sqrt``, ``np.abs``, …) and of ``contr.<name>``
  contrasts,

and no name or keyword that starts with an underscore.  The response has its own, stricter rule
(:func:`compare_mm.model.checks.evaluate_response`).
"""

from __future__ import annotations

import ast
import functools

from ..errors import ModelSpecError

#: formulaic's transforms (formulaic.transforms.TRANSFORMS, without its ``np`` module entry)
TRANSFORMS = frozenset({"C", "Diff", "Helmert", "I", "Poly", "Q", "Sum", "Treatment", "bs", "cc", "center",
                        "cr", "cs", "exp", "exp10", "exp2", "hashed", "lag", "log", "log10", "log2", "poly",
                        "scale", "standardize"})
#: NumPy functions allowed besides its ufuncs
NUMPY_EXTRA = frozenset({"clip", "where", "round"})

_NODES = (ast.Expression, ast.BinOp, ast.UnaryOp, ast.BoolOp, ast.Compare, ast.Constant, ast.Name, ast.Load,
          ast.Call, ast.keyword, ast.Attribute, ast.List, ast.Tuple, ast.operator, ast.unaryop, ast.boolop,
          ast.cmpop)

ALLOWED_TEXT = ("columns, numbers, arithmetic, comparisons and the functions " + ", ".join(sorted(TRANSFORMS))
                + ", np.<ufunc> and contr.<contrast>")


def _numpy_ok(name: str) -> bool:
    import numpy as np

    return name in NUMPY_EXTRA or isinstance(getattr(np, name, None), np.ufunc)


def _callee(func: ast.expr) -> str | None:
    """The allowed name of a called function, or None."""
    if isinstance(func, ast.Name):
        return func.id if func.id in TRANSFORMS else None
    if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name):
        base, attr = func.value.id, func.attr
        if base in ("np", "numpy") and not attr.startswith("_") and _numpy_ok(attr):
            return f"{base}.{attr}"
        if base == "contr" and not attr.startswith("_"):
            return f"contr.{attr}"
    return None


@functools.lru_cache(maxsize=512)
def check_factor(expr: str, where: str) -> None:
    """Raise :class:`ModelSpecError` unless the Python factor ``expr`` keeps to the module's rule.

    ``where`` names the formula part for the message (``"fixed-effects part"``)."""
    try:
        tree = ast.parse(expr.strip(), mode="eval")
    except SyntaxError:
        return  # not Python: formulaic reports it
    for node in ast.walk(tree):
        bad = None
        if not isinstance(node, _NODES):
            bad = f"a {type(node).__name__} expression"
        elif isinstance(node, ast.Name) and node.id.startswith("_"):
            bad = f"the name {node.id!r}"
        elif isinstance(node, ast.keyword) and (node.arg is None or node.arg.startswith("_")):
            bad = "the keyword " + (repr(node.arg) if node.arg else "'**'")
        elif isinstance(node, ast.Call) and _callee(node.func) is None:
            bad = f"a call of {ast.unparse(node.func)!r}"
        elif isinstance(node, ast.Attribute):
            ok_base = isinstance(node.value, ast.Name) and node.value.id in ("np", "numpy", "contr")
            if not ok_base or node.attr.startswith("_"):
                bad = f"the attribute {ast.unparse(node)!r}"
        if bad:
            raise ModelSpecError(f"The term {expr!r} in the {where} uses {bad}; formulas may use only "
                                 f"{ALLOWED_TEXT}.")


__all__ = ["ALLOWED_TEXT", "TRANSFORMS", "check_factor"]
