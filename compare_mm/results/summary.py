"""Printed summaries of fits: one fit like lme4's ``summary(lmer)``, several fits side by side.

The functions read a :class:`~compare_mm.results.schema.FitResult` through its attributes only; this
module imports nothing from :mod:`.schema`, which imports it for ``FitResult.__str__``."""

from __future__ import annotations

import math
from typing import Any, Iterable, Sequence

#: a :class:`~compare_mm.results.schema.FitResult` (read by attribute; see the module docstring)
FitResultLike = Any



def _fmt(x: float | None, width: int = 10, prec: int = 4) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return " " * width
    return f"{x:>{width}.{prec}f}" if 1e-3 <= abs(x) < 1e6 or x == 0 else f"{x:>{width}.{prec}g}"


#: R's ``format.pval`` bound (``.Machine$double.eps``) for a p-value that underflowed to exactly 0
_EPS_TEXT = "2.2e-16"


def format_p(p: float | None, nsim: int | None = None, prec: int = 4) -> str:
    """A p-value for display, never a bare 0.

    A simulated p-value of 0 (RLRsim's ``exactRLRT``: no simulated statistic reached the observed one)
    only says p < 1/nsim, so it reads ``< 1e-04`` for nsim = 10,000; an analytic p-value that underflowed
    to 0 reads ``< 2.2e-16`` as R prints it.  The stored number is left alone (JSON keeps 0.0 and nsim).
    """
    if p is None or (isinstance(p, float) and math.isnan(p)):
        return ""
    if p <= 0.0:
        return f"< {1.0 / nsim:.0e}" if nsim else f"< {_EPS_TEXT}"
    return f"{p:.{prec}g}"


def _table(header: Sequence[str], rows: Iterable[Sequence[str]], align_left: int = 1) -> list[str]:
    rows = [list(map(str, r)) for r in rows]
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(header)]
    out = []
    for r in [list(header)] + rows:
        cells = [c.ljust(w) if i < align_left else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths))]
        out.append(" " + "  ".join(cells).rstrip())
    return out


def _varcorr_lines(varcorr: Sequence[Any]) -> list[str]:
    """lme4's VarCorr block: Groups, Name, Variance, Std.Dev., Corr (lower triangle)."""
    corr: dict[tuple[str, str], float] = {
        (r.group, r.term2): r.corr for r in varcorr if r.term2 is not None and r.corr is not None
    }
    rows, last_group = [], None
    by_group: dict[str, list[str]] = {}
    for r in varcorr:
        if r.term2 is not None:
            continue
        terms = by_group.setdefault(r.group, [])
        cor_cells = []
        for earlier in terms:
            c = next((v.corr for v in varcorr if v.group == r.group and v.term == earlier and v.term2 == r.term),
                     None)
            cor_cells.append("" if c is None else f"{c:.3f}")
        terms.append(r.term)
        group = r.group if r.group != last_group else ""
        last_group = r.group
        rows.append([group, r.term or "", _fmt(r.variance).strip(), _fmt(r.sd).strip(), " ".join(cor_cells)])
    has_corr = bool(corr)
    header = ["Groups", "Name", "Variance", "Std.Dev."] + (["Corr"] if has_corr else [])
    if not has_corr:
        rows = [r[:4] for r in rows]
    return _table(header, rows, align_left=2)


def format_summary(res: FitResultLike) -> str:
    """A summary that reads like lme4's ``summary(lmer)`` (posterior fits add their posterior table)."""
    title = getattr(res, "title", "") or "Linear mixed model fit by {method} (" + res.backend + ")"
    lines = [title.format(method=res.method), f"Formula: {res.formula}", ""]
    if res.criterion is not None:
        label = "REML criterion at convergence" if res.method == "REML" else "deviance"
        lines.append(f"{label}: {res.criterion:.4f}")
        if res.loglik is not None:
            lines.append("     AIC      BIC   logLik")
            lines.append(f"{res.aic or float('nan'):8.1f} {res.bic or float('nan'):8.1f} {res.loglik:8.2f}")
        lines.append("")
    lines.append("Random effects:")
    lines += _varcorr_lines(res.varcorr)
    groups = ", ".join(f"{g}, {k}" for g, k in res.ngroups.items())
    lines.append(f"Number of obs: {res.nobs}, groups:  {groups}")
    lines.append("")
    est_label = "Post.mean" if res.posterior else "Estimate"
    se_label = "Post.SD" if res.posterior else "Std. Error"
    lines.append("Fixed effects:")
    frows = []
    for r in res.fixef:
        row = [r.term, _fmt(r.estimate).strip(), _fmt(r.se).strip()]
        if not res.posterior:
            row.append(f"{r.estimate / r.se:.3f}" if r.se else "")
        if any(f.df is not None for f in res.fixef):
            row += ["" if r.df is None else f"{r.df:.2f}", format_p(r.p_value, prec=3)]
        frows.append(row)
    header = ["", est_label, se_label] + ([] if res.posterior else ["t value"])
    if any(f.df is not None for f in res.fixef):
        header += ["df", "Pr(>|t|)"]
    lines += _table(header, frows)
    if res.posterior:
        lines += ["", f"Posterior summary ({res.posterior[0].level * 100:g}% intervals):"]
        prow = [[p.parameter, _fmt(p.mean).strip(), _fmt(p.median).strip(), _fmt(p.mode).strip(),
                 _fmt(p.sd).strip(), f"[{p.eti_lower:.4g}, {p.eti_upper:.4g}]",
                 f"[{p.hdi_lower:.4g}, {p.hdi_upper:.4g}]", f"{p.rhat:.3f}", f"{p.ess_bulk:.0f}",
                 f"{p.ess_tail:.0f}"] for p in res.posterior]
        lines += _table(["", "mean", "median", "mode", "sd", "ETI", "HDI", "R-hat", "ESS bulk", "ESS tail"], prow)
        d = res.diagnostics
        if d:
            lines.append(" " + ", ".join(f"{k}: {v}" for k, v in d.items() if not isinstance(v, (dict, list))))
        priors = res.options.get("priors") if res.options else None
        if priors:
            lines += ["", "Priors:"] + [f" {k} ~ {v}" for k, v in priors.items()]
    if res.tests:
        lines += ["", "Tests:"]
        lines += _table(["test", "group", "term", "statistic", "p-value", "nsim"],
                        [[t.name, t.group or "", t.term or "", f"{t.statistic:.4f}", format_p(t.p_value, t.nsim),
                          "" if t.nsim is None else str(t.nsim)] for t in res.tests])
    if res.intervals and not res.posterior:
        lines += ["", "Intervals:"]
        lines += _table(["parameter", "kind", "lower", "upper"],
                        [[i.parameter, i.label, _fmt(i.lower).strip(), _fmt(i.upper).strip()]
                         for i in res.intervals])
    if res.optimisation is not None:
        o = res.optimisation
        lines += ["", f"Optimiser: {o.optimizer}, {o.evaluations} evaluations, "
                      f"{'converged' if o.converged else 'NOT converged'}" + (f" ({o.message})" if o.message else "")]
    for w in res.warnings:
        lines.append(f"Warning: {w}")
    if res.singular and not any("singular" in w for w in res.warnings):
        lines.append("boundary (singular) fit: see help('isSingular')")
    return "\n".join(lines)


def _interval_for(res: FitResultLike, name: str) -> str:
    preferred = ("eti", "hdi") if res.posterior else ("wald", "profile", "bootstrap")
    ivs = [res.interval(name, k) for k in preferred]
    ivs = [i for i in ivs if i is not None]
    return "; ".join(f"{i.label} [{i.lower:.4g}, {i.upper:.4g}]" for i in ivs)


def side_by_side(results: Sequence[FitResultLike]) -> str:
    """One table: rows fixed effects, SDs, variances, correlations, σ; one column per fit.

    Posterior fits show ``mean / median``; intervals are printed below, each labelled by kind.
    """
    names: list[str] = []
    for res in results:
        for k in res.estimates():
            if k not in names:
                names.append(k)
    cols = []
    for res in results:
        label = f"{res.backend}:{res.method}"
        post = {p.parameter: p for p in res.posterior}
        est = res.estimates()
        cells = []
        for k in names:
            if k in post:
                cells.append(f"{post[k].mean:.4g} / {post[k].median:.4g}")
            elif k in est and est[k] is not None:
                cells.append(f"{est[k]:.6g}")
            else:
                cells.append("")
        cols.append((label + (" (mean / median)" if res.posterior else ""), cells))
    header = ["parameter"] + [c[0] for c in cols]
    rows = [[k] + [c[1][i] for c in cols] for i, k in enumerate(names)]
    lines = _table(header, rows)
    iv_rows = []
    for k in names:
        for res in results:
            s = _interval_for(res, k)
            if s:
                iv_rows.append([k, f"{res.backend}:{res.method}", s])
    if iv_rows:
        lines += ["", "Intervals:"] + _table(["parameter", "fit", "interval"], iv_rows, align_left=3)
    extra = []
    for res in results:
        bits = []
        if res.loglik is not None:
            bits.append(f"logLik {res.loglik:.4f}")
        bits.append("converged" if res.converged else "NOT converged")
        if res.singular:
            bits.append("singular")
        bits.append(f"{res.elapsed_s * 1000:.1f} ms")
        extra.append(f" {res.backend}:{res.method}: " + ", ".join(bits))
        extra += [f"   warning: {w}" for w in res.warnings]
    return "\n".join(lines + [""] + extra)


__all__ = ["format_p", "format_summary", "side_by_side"]
