"""``compare-mm validate``: our fitter against lme4's published numbers and against statsmodels.

For every case of :mod:`compare_mm.validation.cases` the fits are compared quantity group by quantity
group (:mod:`compare_mm.validation.measures`) and laid out as an agreement table, one row per
(case, method, fit, reference):

- ``reml`` vs ``lme4`` (sleepstudy): the rows that decide the exit code — 1 when any fails;
- ``statsmodels`` vs ``lme4`` and ``reml`` vs ``statsmodels`` (sleepstudy and the simulated designs):
  shown with PASS/FAIL at 1e-4; where statsmodels did not converge the row says NOCONV with its warning
  and does not fail;
- with ``bayes=True`` also ``pymc`` (posterior medians) vs ``reml`` on two cases: status INFO, never a
  failure (a posterior median is not an ML/REML estimate).
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from typing import Any, Iterable

import pandas as pd

from ..api import fit as fit_model
from ..errors import CompareMMError
from ..results.schema import FitResult
from .cases import Case, simulated_cases, sleepstudy_cases
from .measures import GROUPS, LME4_TOL, PEER_TOL, Quantities, compare, from_fit, from_lme4, passes

#: statsmodels run to a tight gradient tolerance, so rows measure the model, not its default stopping rule
STATSMODELS_OPTIONS: dict[str, Any] = {"gtol": 1e-8}
#: PyMC settings for ``--bayes`` (small: the comparison is loose and informational)
BAYES_OPTIONS: dict[str, Any] = {"draws": 500, "tune": 500, "chains": 2, "seed": 20240}
BAYES_CASES: tuple[str, ...] = ("sleepstudy Days + (Days || Subject)", "one-way balanced")


@dataclass(frozen=True)
class Row:
    """One line of the agreement table."""

    case: str
    method: str
    fit: str
    reference: str
    diffs: dict[str, float | None]
    tolerances: dict[str, float]
    status: str
    note: str = ""
    failed: tuple[str, ...] = field(default=())

    @property
    def decides_exit(self) -> bool:
        """Whether a FAIL here makes ``validate`` exit with 1 (our fitter against lme4)."""
        return self.fit == "reml" and self.reference == "lme4"


def _first_warning(q: Quantities) -> str:
    for w in q.warnings:
        if "converge" in w.lower() or "silent failure" in w or "error" in w.lower():
            return w
    return q.warnings[0] if q.warnings else "did not converge"


def _row(case: Case, fit: str, reference: str, ours: Quantities, ref: Quantities, tol: dict[str, float],
         peer: str | None = None) -> Row:
    """Compare and judge; ``peer`` names the statsmodels side ("fit" or "reference").

    A failing row involving statsmodels is excused (shown, not failed) when statsmodels did not converge
    (NOCONV) or stopped at a log-likelihood lower than the other side's by more than the loglik
    tolerance (SM-LOWER: the same criterion, a worse optimum — the disagreement is statsmodels').
    """
    diffs = compare(ours, ref)
    failed = tuple(g for g in GROUPS if not passes(g, diffs[g], tol[g]))
    status, note = ("FAIL" if failed else "PASS"), ""
    side = {"fit": ours, "reference": ref}.get(peer) if peer else None
    other = ref if peer == "fit" else ours
    if side is not None and not side.converged:
        status, note = "NOCONV", f"statsmodels: {_first_warning(side)}"
    elif side is not None and failed and _lower(side, other, tol["loglik"]):
        status = "SM-LOWER"
        note = (f"statsmodels stopped at a log-likelihood {other.loglik - side.loglik:.2e} below "
                f"{reference if peer == 'fit' else fit}'s" + _warned(side))
    elif not ours.converged:
        note = f"{fit}: {_first_warning(ours)}"
    return Row(case=case.name, method=case.method, fit=fit, reference=reference, diffs=diffs, tolerances=tol,
               status=status, note=note, failed=failed)


def _warned(q: Quantities) -> str:
    if not q.warnings:
        return ""
    short = [w.split(": ", 1)[-1] for w in q.warnings]
    return "; it warned: " + " | ".join(w if len(w) <= 70 else w[:67] + "..." for w in short)


def _lower(side: Quantities, other: Quantities, tol: float) -> bool:
    if side.loglik is None or other.loglik is None:
        return False
    return not side.loglik >= other.loglik - tol


def _fit(case: Case, data: pd.DataFrame, backend: str, **options: Any) -> FitResult | str:
    try:
        return fit_model(case.formula, data, backend=backend, method=case.method, **options)
    except CompareMMError as exc:
        return str(exc)


def _error_row(case: Case, fit: str, reference: str, message: str, decides: bool) -> Row:
    return Row(case=case.name, method=case.method, fit=fit, reference=reference,
               diffs={g: None for g in GROUPS}, tolerances=LME4_TOL if decides else PEER_TOL,
               status="FAIL" if decides else "ERROR", note=message)


def _case_rows(case: Case, reference: dict[str, Any] | None) -> list[Row]:
    data = case.data()
    ours, sm = _fit(case, data, "reml"), _fit(case, data, "statsmodels", **STATSMODELS_OPTIONS)
    rows: list[Row] = []
    q_ours = from_fit(ours) if isinstance(ours, FitResult) else None
    q_sm = from_fit(sm) if isinstance(sm, FitResult) else None
    if reference is not None:
        q_ref = from_lme4(reference)
        rows.append(_row(case, "reml", "lme4", q_ours, q_ref, LME4_TOL) if q_ours
                    else _error_row(case, "reml", "lme4", str(ours), True))
        rows.append(_row(case, "statsmodels", "lme4", q_sm, q_ref, PEER_TOL, peer="fit") if q_sm
                    else _error_row(case, "statsmodels", "lme4", str(sm), False))
    if q_ours and q_sm:
        rows.append(_row(case, "reml", "statsmodels", q_ours, q_sm, PEER_TOL, peer="reference"))
    else:
        rows.append(_error_row(case, "reml", "statsmodels", str(ours if not q_ours else sm), False))
    return rows


def _posterior_quantities(post: FitResult) -> Quantities:
    """Posterior medians in the place of point estimates (fixef, SDs, σ); no loglik, SE or modes."""
    med = {p.parameter: p.median for p in post.posterior}
    q = from_fit(post)
    sd = {k: med.get(k, v) for k, v in q.sd.items()}
    corr = {k: (med.get(k, v[0]), v[1], v[2]) for k, v in q.corr.items()}
    return Quantities(fixef={k: med.get(k, v) for k, v in q.fixef.items()}, se={}, sd=sd, corr=corr,
                      sigma=med.get("sigma", q.sigma), loglik=None, converged=q.converged, warnings=q.warnings)


def _bayes_rows(cases: list[Case]) -> list[Row]:
    rows = []
    for case in cases:
        if case.name not in BAYES_CASES or case.method != "REML":
            continue
        data = case.data()
        ours, post = _fit(case, data, "reml"), _fit(case, data, "pymc", **BAYES_OPTIONS)
        if not isinstance(post, FitResult) or not isinstance(ours, FitResult):
            rows.append(Row(case.name, case.method, "pymc", "reml", {g: None for g in GROUPS}, PEER_TOL,
                            "INFO", note=str(post if not isinstance(post, FitResult) else ours)))
            continue
        q_ours = from_fit(ours)
        q_ours = Quantities(fixef=q_ours.fixef, se={}, sd=q_ours.sd, corr=q_ours.corr, sigma=q_ours.sigma,
                            loglik=None)
        diffs = compare(_posterior_quantities(post), q_ours)
        div = post.diagnostics.get("divergences") if post.diagnostics else None
        rows.append(Row(case.name, case.method, "pymc", "reml", diffs, PEER_TOL, "INFO",
                        note=f"posterior medians, {BAYES_OPTIONS['chains']}×{BAYES_OPTIONS['draws']} draws"
                             + (f", {div} divergences" if div is not None else "")))
    return rows


def run_validation(*, bayes: bool = False, simulated: bool = True) -> list[Row]:
    """Run every validation case and return the agreement table's rows."""
    rows: list[Row] = []
    cases = sleepstudy_cases()
    for case in cases:
        rows.extend(_case_rows(case, case.lme4))
    sims = simulated_cases() if simulated else []
    for case in sims:
        rows.extend(_case_rows(case, None))
    if bayes:
        rows.extend(_bayes_rows(cases + sims))
    return rows


def exit_code(rows: Iterable[Row]) -> int:
    """1 when our fitter disagrees with lme4 on any case, else 0."""
    return int(any(r.decides_exit and r.status == "FAIL" for r in rows))


def _fmt(group: str, value: float | None, ok: bool) -> str:
    if value is None:
        return "—"
    if not math.isfinite(value):
        text = "inf" if value > 0 else "-inf"
    elif group == "loglik":
        text = f"{value:+.1e}"
    else:
        text = f"{value:.1e}"
    return text if ok else text + "!"


def format_table(rows: list[Row]) -> str:
    """The agreement table as text: one row per comparison, '!' marks a measure over its tolerance."""
    head = ["case", "method", "fit", "vs", *GROUPS, "status"]
    body = []
    for r in rows:
        cells = [_fmt(g, r.diffs[g], r.status == "INFO" or passes(g, r.diffs[g], r.tolerances[g])) for g in GROUPS]
        body.append([r.case, r.method, r.fit, r.reference, *cells, r.status])
    widths = [max(len(str(x[i])) for x in [head] + body) for i in range(len(head))]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(head, widths)),
             "  ".join("-" * w for w in widths)]
    lines += ["  ".join(str(c).ljust(w) for c, w in zip(line, widths)) for line in body]
    notes = [(i + 1, r) for i, r in enumerate(rows) if r.note]
    lines.append("")
    lines.append("Largest relative difference per quantity (loglik: ours − reference, absolute; ranef: modes "
                 "and conditional SDs scaled by the effect's largest |value|, at least 1e-4 σ; an SD below "
                 "1e-4 σ is compared in units of σ). '!' marks a value over its tolerance.")
    lines.append("Tolerances vs lme4: " + ", ".join(f"{g} {LME4_TOL[g]:g}" for g in GROUPS)
                 + " (loglik passes when ≥ −1e-6); vs statsmodels: 1e-4 (loglik ≥ −1e-6).")
    lines.append("SEs are compared conditional on the variance estimates (lme4's convention; for statsmodels "
                 "from its Hessian's β block). statsmodels runs with gtol=1e-8.")
    lines.append("Exit code 1 only when a reml-vs-lme4 row fails. NOCONV = statsmodels did not converge; "
                 "SM-LOWER = statsmodels stopped at a lower log-likelihood (both shown, not failed); "
                 "INFO = posterior medians, never failed.")
    if notes:
        lines.append("")
        lines.append("Notes:")
        lines += [f"  row {i} ({r.case}, {r.method}, {r.fit} vs {r.reference}): {r.note}" for i, r in notes]
    return "\n".join(lines)


def to_json(rows: list[Row]) -> str:
    """The table as JSON: ``{"rows": [...], "exit_code": n}`` (non-finite numbers as strings)."""
    def clean(v: Any) -> Any:
        if isinstance(v, float) and not math.isfinite(v):
            return str(v)
        if isinstance(v, dict):
            return {k: clean(x) for k, x in v.items()}
        if isinstance(v, (list, tuple)):
            return [clean(x) for x in v]
        return v

    out = []
    for r in rows:
        d = asdict(r)
        d["passed"] = {g: None if r.status == "INFO" else passes(g, r.diffs[g], r.tolerances[g]) for g in GROUPS}
        out.append(clean(d))
    return json.dumps({"rows": out, "exit_code": exit_code(rows)}, indent=1)
