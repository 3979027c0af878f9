"""lme4 formula → :class:`~compare_mm.model.spec.ModelSpec`.

The grammar is lme4's (Bates, Mächler, Bolker & Walker 2015, J. Stat. Softw. 67(1), sec. 2.1, Table 2):

========================  ===================================================================
``(1 | g)``               random intercept per level of ``g``
``(x | g)``               correlated intercept and slope: ``RandomTerm(("g",), "1 + x")``
``(0 + x | g)``           slope only (``-1 + x`` is the same)
``(x || g)``              independent intercept and slope: one term with ``covariance="diagonal"``
                          (lme4 expands it to ``(1 | g) + (0 + x | g)``; the model is the same)
``(1 | a:b)``             one intercept per observed combination of ``a`` and ``b``
``(1 | a/b)``             nested: ``(1 | a) + (1 | a:b)`` (also with slopes: ``(x | a/b)``)
``(1 | a) + (1 | b)``     crossed
========================  ===================================================================

The random-effects ("bar") terms are cut out of the right-hand side here, because formulaic cannot parse
``|``.  What is left is the fixed part; formulaic parses it only to validate and normalise it (terms
expanded and ordered by degree as R's ``terms()`` orders them, intercept explicit: ``"1 + x + z + x:z"``).
The response is kept as text (a column or an expression such as ``log(y)`` or ``Reaction / 10``) and
evaluated by :func:`compare_mm.model.design.build_design`.
"""

from __future__ import annotations

import functools
import re

from ..errors import ModelSpecError
from .spec import ModelSpec, RandomTerm
from .safe_formula import check_factor

_NAME = re.compile(r"^(?:[A-Za-z_.][A-Za-z0-9_.]*|`[^`]+`)$")
#: a grouping column may also be written unquoted with inner spaces (RandomTerm.__str__ writes it so)
_GROUP_NAME = re.compile(r"^[^\s+\-*/()~|^`'\"{}\[\],=][^+\-*/()~|^`'\"{}\[\],=]*$")


def _scan(text: str) -> tuple[list[tuple[int, str, int]], str | None, int]:
    """``(index, char, depth)`` for each character outside quotes/backticks, the quote left open, and
    the final depth.

    ``depth`` is the parenthesis depth *before* the character is applied.
    """
    out: list[tuple[int, str, int]] = []
    depth = 0
    quote = None
    for i, ch in enumerate(text):
        if quote:
            if ch == quote:
                quote = None
            continue
        if ch in "`'\"":
            quote = ch
            continue
        out.append((i, ch, depth))
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
    return out, quote, depth


def _depth_scan(text: str):
    """Yield ``(index, char, depth)`` for each character outside quotes/backticks (:func:`_scan`)."""
    yield from _scan(text)[0]


def _check_balanced(formula: str) -> None:
    scanned, quote, depth = _scan(formula)
    if any(ch == ")" and before <= 0 for _, ch, before in scanned):
        raise ModelSpecError(f"The formula {formula!r} has a ')' without a matching '('.")
    if quote:
        raise ModelSpecError(f"The formula {formula!r} has an unclosed {quote} quote.")
    if depth:
        raise ModelSpecError(f"The formula {formula!r} has {depth} unclosed '('.")


def _find_bar_terms(rhs: str) -> list[tuple[int, int]]:
    """Spans ``(start, end)`` (end exclusive, including the parentheses) of every top-level ``( … | … )``."""
    spans: list[tuple[int, int]] = []
    start = None
    has_bar = False
    for i, ch, depth in _depth_scan(rhs):
        if ch == "(" and depth == 0:
            start, has_bar = i, False
        elif ch == "|" and depth >= 1 and start is not None:
            has_bar = True
        elif ch == ")" and depth == 1:
            if has_bar:
                spans.append((start, i + 1))
            start = None
    return spans


def _closing(text: str, open_at: int) -> int:
    """Index of the ')' matching the '(' at ``open_at`` (−1 when unmatched)."""
    for i, ch, depth in _depth_scan(text):
        if i > open_at and ch == ")" and depth == 1:
            return i
    return -1


def _split_bar(inner: str, term_text: str) -> tuple[str, str, str]:
    """``"x || g"`` → ``("x", "||", "g")``, splitting at the depth-0 bar."""
    for i, ch, depth in _depth_scan(inner):
        if ch == "|" and depth == 0:
            double = inner[i + 1:i + 2] == "|"
            rest = inner[i + 2:] if double else inner[i + 1:]
            if "|" in rest:
                raise ModelSpecError(f"The random-effects term {term_text!r} has more than one bar.")
            return inner[:i].strip(), "||" if double else "|", rest.strip()
    raise ModelSpecError(
        f"The term {term_text!r} has a '|' that is not between the effects and the grouping factor; "
        "write random effects as (x | g)."
    )


_CALL = re.compile(r"^[A-Za-z_][A-Za-z0-9_.]*\(.*\)$", re.S)


def _factor_text(factor) -> str:
    """A formulaic factor written back so that formulaic parses it to the same factor.

    ``str(term)`` drops the backtick quoting of a column name with spaces and the braces of
    ``{x + 1}``; restore them.
    """
    expr = str(factor.expr)
    method = str(getattr(factor, "eval_method", "")).rsplit(".", 1)[-1].lower()
    if method == "lookup" and not _NAME.match(expr):
        return f"`{expr}`"
    if method == "python" and not _CALL.match(expr):
        return "{" + expr + "}"
    return expr


def _normalise_rhs(rhs: str, what: str) -> str:
    """Validate a formulaic right-hand side and return it with the intercept explicit.

    ``"x*z"`` → ``"1 + x + z + x:z"``; ``"0 + x"`` / ``"x - 1"`` → ``"0 + x"``; ``"0"`` → ``"0"``.
    """
    # deferred: formulaic takes ~2 s to import; imported when a formula is expanded
    from formulaic import Formula, SimpleFormula

    if "~" in rhs:
        raise ModelSpecError(f"The {what} {rhs.strip()!r} must not contain '~'.")
    try:
        f = Formula(rhs)
    except Exception as exc:  # formulaic raises several types
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelSpecError(f"The {what} {rhs.strip()!r} is not a valid formula: {first}") from None
    if not isinstance(f, SimpleFormula):  # pragma: no cover - e.g. "a | b" structured formulae
        raise ModelSpecError(f"The {what} {rhs.strip()!r} must be a single right-hand side.")
    for t in f:
        for fac in t.factors:
            if str(getattr(fac, "eval_method", "")).rsplit(".", 1)[-1].lower() == "python":
                check_factor(str(fac.expr), what.rstrip(","))
    terms = [":".join(_factor_text(fac) for fac in t.factors) for t in f]
    if terms and terms[0] == "1":
        return " + ".join(terms)
    return " + ".join(["0"] + terms)


def _split_groups(group_text: str, term_text: str) -> list[tuple[str, ...]]:
    """``"a/b"`` → ``[("a",), ("a", "b")]``; ``"a:b"`` → ``[("a", "b")]``; ``"g"`` → ``[("g",)]``."""
    if not group_text:
        raise ModelSpecError(f"The random-effects term {term_text!r} has no grouping factor after the bar.")
    text = group_text
    if text.startswith("(") and text.endswith(")"):
        text = text[1:-1].strip()
    nest = [p.strip() for p in text.split("/")]
    out: list[tuple[str, ...]] = []
    prefix: tuple[str, ...] = ()
    for part in nest:
        if part.startswith("(") and part.endswith(")"):
            part = part[1:-1].strip()
        names = tuple(p.strip() for p in part.split(":"))
        for nm in names:
            if not nm:
                raise ModelSpecError(
                    f"The grouping factor {group_text!r} of {term_text!r} has an empty name."
                )
            if not (_NAME.match(nm) or _GROUP_NAME.match(nm)):
                raise ModelSpecError(
                    f"The grouping factor {nm!r} of {term_text!r} must be a column name "
                    "(use a:b for interactions and a/b for nesting)."
                )
        prefix = prefix + tuple(n.strip("`") for n in names)
        out.append(prefix)
    return out


def _parse_bar(term_text: str) -> list[RandomTerm]:
    inner = term_text[1:-1].strip()
    while inner.startswith("(") and _closing(inner, 0) == len(inner) - 1:  # ((1 | g))
        inner = inner[1:-1].strip()
    lhs, bar, group_text = _split_bar(inner, term_text)
    if not lhs:
        raise ModelSpecError(f"The random-effects term {term_text!r} has nothing before the bar (write 1 for an intercept).")
    groups = _split_groups(group_text, term_text)
    lhs_norm = _normalise_rhs(lhs, f"random-effects part of {term_text!r},")
    if lhs_norm == "0":
        raise ModelSpecError(f"The random-effects term {term_text!r} has no effects (an intercept or a covariate) before the bar.")
    cov = "diagonal" if bar == "||" else "unstructured"
    return [RandomTerm(group=g, formula=lhs_norm, covariance=cov) for g in groups]


def _remove_spans(rhs: str, spans: list[tuple[int, int]], formula: str) -> str:
    """Cut the bar terms (and the ``+`` joining each to its neighbours) out of ``rhs``."""
    pieces: list[str] = []
    pos = 0
    for start, end in spans:
        before = rhs[pos:start].rstrip()
        after_text = rhs[end:].lstrip()
        term = rhs[start:end]
        if before.endswith("-"):
            raise ModelSpecError(f"The random-effects term {term!r} in {formula!r} cannot be subtracted.")
        if before and not before.endswith("+"):
            raise ModelSpecError(
                f"The random-effects term {term!r} in {formula!r} must be added to the rest of the formula "
                "with '+'."
            )
        if after_text and after_text[0] not in "+-":
            raise ModelSpecError(
                f"The random-effects term {term!r} in {formula!r} must be added to the rest of the formula "
                "with '+'."
            )
        if before.endswith("+"):
            before = before[:-1]
        pieces.append(before)
        pos = end
    pieces.append(rhs[pos:])
    out = " ".join(p.strip() for p in pieces if p.strip())
    # the leading "+" of a remainder that followed a removed leading term
    out = re.sub(r"^\s*\+", "", out).strip()
    return out


@functools.lru_cache(maxsize=512)
def parse_formula(formula: str) -> ModelSpec:
    """Parse an lme4 formula into a :class:`ModelSpec`.

    Parameters
    ----------
    formula
        For example ``"Reaction ~ Days + (Days || Subject)"``.

    Returns
    -------
    ModelSpec
        ``formula`` keeps the user's text; ``fixed`` is a formulaic right-hand side with the intercept
        explicit; ``random`` holds one :class:`RandomTerm` per bar term (two for ``(1 | a/b)``).

    Raises
    ------
    ModelSpecError
        With one sentence naming the offending part of the formula.
    """
    if not isinstance(formula, str):
        raise ModelSpecError("The formula must be a string such as 'y ~ x + (1 | g)'.")
    text = formula.strip()
    if not text:
        raise ModelSpecError("The formula is empty; write it as 'y ~ x + (1 | g)'.")
    _check_balanced(text)
    tildes = [i for i, ch, depth in _depth_scan(text) if ch == "~"]
    if not tildes:
        raise ModelSpecError(f"The formula {text!r} has no '~' between the response and the terms.")
    if len(tildes) > 1:
        raise ModelSpecError(f"The formula {text!r} has more than one '~'.")
    response = text[:tildes[0]].strip()
    rhs = text[tildes[0] + 1:].strip()
    if not response:
        raise ModelSpecError(f"The formula {text!r} has no response on the left of '~'.")
    if "|" in response:
        raise ModelSpecError(f"The response {response!r} of {text!r} must not contain '|'.")
    if not rhs:
        raise ModelSpecError(f"The formula {text!r} has no terms on the right of '~'.")

    spans = _find_bar_terms(rhs)
    random: list[RandomTerm] = []
    for start, end in spans:
        random.extend(_parse_bar(rhs[start:end]))
    fixed_text = _remove_spans(rhs, spans, text)
    if any(ch == "|" for _, ch, _ in _depth_scan(fixed_text)):
        raise ModelSpecError(
            f"The formula {text!r} has a '|' outside parentheses; write random effects as (x | g)."
        )
    if not random:
        raise ModelSpecError(
            f"The formula {text!r} has no random-effects term such as (1 | group); this is not a mixed model."
        )
    fixed = _normalise_rhs(fixed_text, "fixed-effects part") if fixed_text else "1"
    return ModelSpec(response=response, fixed=fixed, random=tuple(random), formula=text)


__all__ = ["parse_formula"]
