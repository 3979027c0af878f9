"""Printed summaries of fits: one fit like lme4's ``summary(lmer)``, several fits side by side.

The functions read a :class:`~compare_mm.results.schema.FitResult` through its attributes only; this
module imports nothing from :mod:`.schema`, which imports it for ``FitResult.__str__``."""

from __future__ import annotations

import math
from typing import Any, Iterable, Sequence

#: a :class:`~compare_mm.results.schema.FitResult` (read by attribute; see the module docstring)
FitResultLike = Any



def _fmt(x: float | None, width: int = 10, prec: int = 4) -> str:
    """Fixed point with ``prec`` decimals; large numbers in full (1000000001.0900, never 1e+09), only
    magnitudes below 1e-3 in ``g`` form."""
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return " " * width
    return f"{x:>{width}.{prec}f}" if abs(x) >= 1e-3 or x == 0 else f"{x:>{width}.{prec}g}"


def _finite(x: float | None) -> bool:
    return x is not None and math.isfinite(x)


def _diag_value(v: Any) -> str:
    """A diagnostics value for the one-line listing: floats to 5 significant digits (0.00014352, 1.0098)."""
    return f"{v:.5g}" if isinstance(v, float) else str(v)


def abbreviate(name: str, minlength: int = 6) -> str:
    """R's ``abbreviate(name, minlength)`` (its default method), as lme4 labels the correlation of fixed
    effects: drop lower-case vowels from the right (never the first character), then lower-case letters
    from the right, until at most ``minlength`` characters remain — ``(Intercept)`` → ``(Intr)``."""
    chars = list(name)
    for drop in ("aeiou", "abcdefghijklmnopqrstuvwxyz"):
        i = len(chars) - 1
        while len(chars) > minlength and i > 0:
            if chars[i] in drop:
                del chars[i]
            i -= 1
    return "".join(chars)


def scaled_residuals(res: FitResultLike):
    """Min, 1Q, median, 3Q, max of the conditional residuals (y − Xβ̂ − Zû)/σ̂ (lme4's ``Scaled
    residuals``, quantile type 7), or None when the result carries no design or group effects."""
    import numpy as np

    d = getattr(res, "design", None)
    if d is None or not res.ranef or not res.sigma:
        return None
    beta = np.array([r.estimate for r in res.fixef])
    fitted = d.X @ beta
    u = {(r.group, r.level, r.term): r.value for r in res.ranef}
    for b in d.blocks:
        for j, t in enumerate(b.term_names):
            vals = np.array([u.get((b.group, lev, t), np.nan) for lev in b.levels])
            fitted = fitted + b.Z[:, j] * vals[b.codes]
    r = (d.y - fitted) / res.sigma
    if not np.all(np.isfinite(r)):
        return None
    return np.quantile(r, [0.0, 0.25, 0.5, 0.75, 1.0])


def _fixef_corr_lines(res: FitResultLike) -> list[str]:
    """lme4's ``Correlation of Fixed Effects`` (lower triangle, abbreviated column names)."""
    import numpy as np

    if res.vcov is None or len(res.fixef) < 2:
        return []
    v = np.asarray(res.vcov, dtype=float)
    sd = np.sqrt(np.diagonal(v))
    if not np.all(sd > 0):
        return []
    c = v / np.outer(sd, sd)
    names = [r.term for r in res.fixef]
    rows = [[abbreviate(n, 6)] + [f"{c[i, j]:.3f}" for j in range(i)] + [""] * (len(names) - 1 - i)
            for i, n in enumerate(names) if i > 0]
    return ["", "Correlation of Fixed Effects:"] + _table([""] + [abbreviate(n, 6) for n in names[:-1]], rows)


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
    # a group with several terms and no correlations is lme4's (x || g): shown as g, g.1, g.2, …
    n_terms: dict[str, int] = {}
    for r in varcorr:
        if r.term2 is None:
            n_terms[r.group] = n_terms.get(r.group, 0) + 1
    split = {g for g, k in n_terms.items() if k > 1 and not any(v.group == g for v in varcorr if v.term2)}
    for r in varcorr:
        if r.term2 is not None:
            continue
        terms = by_group.setdefault(r.group, [])
        if r.group in split:
            rows.append([r.group + (f".{len(terms)}" if terms else ""), r.term or "", _fmt(r.variance).strip(),
                         _fmt(r.sd).strip(), ""])
            terms.append(r.term)
            last_group = r.group
            continue
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
    lines = [title.format(method=res.method), f"Formula: {res.formula}"]
    if getattr(res, "data_name", ""):
        lines.append(f"   Data: {res.data_name}")
    lines.append("")
    if res.criterion is not None and res.method == "REML":
        lines += [f"REML criterion at convergence: {res.criterion:.4f}", ""]
    elif res.criterion is not None and res.loglik is not None:
        # lme4's ML row; df.resid = n − (fixed effects + covariance parameters + σ)
        npar = len(res.fixef) + sum(1 for r in res.varcorr if r.group != "Residual") + 1
        lines += _table(["AIC", "BIC", "logLik", "deviance", "df.resid"],
                        [[f"{res.aic or float('nan'):.1f}", f"{res.bic or float('nan'):.1f}", f"{res.loglik:.2f}",
                          f"{res.criterion:.4f}", str(res.nobs - npar)]], align_left=0)
        lines.append("")
    sr = None if res.posterior else scaled_residuals(res)
    if sr is not None:
        lines.append("Scaled residuals:")
        lines += _table(["Min", "1Q", "Median", "3Q", "Max"], [[f"{v:.4f}" for v in sr]], align_left=0)
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
    if not res.posterior:
        lines += _fixef_corr_lines(res)
    if res.posterior:
        lines += ["", f"Posterior summary ({res.posterior[0].level * 100:g}% intervals):"]
        # sampler diagnostics that no parameter has (a quadrature posterior has no R-hat or ESS; one chain
        # has no R-hat) are left out instead of printing a column of nan
        diag_cols = [(title, attr, fmt) for title, attr, fmt in
                     (("R-hat", "rhat", ".3f"), ("ESS bulk", "ess_bulk", ".0f"), ("ESS tail", "ess_tail", ".0f"))
                     if any(_finite(getattr(p, attr)) for p in res.posterior)]
        prow = [[p.parameter, _fmt(p.mean).strip(), _fmt(p.median).strip(), _fmt(p.mode).strip(),
                 _fmt(p.sd).strip(), f"[{p.eti_lower:.4g}, {p.eti_upper:.4g}]",
                 f"[{p.hdi_lower:.4g}, {p.hdi_upper:.4g}]"]
                + [format(getattr(p, attr), fmt) if _finite(getattr(p, attr)) else "–" for _, attr, fmt in diag_cols]
                for p in res.posterior]
        lines += _table(["", "mean", "median", "mode", "sd", "ETI", "HDI"] + [t for t, _, _ in diag_cols], prow)
        d = res.diagnostics
        if d:
            lines.append(" " + ", ".join(f"{k}: {_diag_value(v)}" for k, v in d.items()
                                         if not isinstance(v, (dict, list))))
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
        lines.append(SINGULAR_NOTE)
    return "\n".join(lines)


#: the printed note of a singular fit (lme4 points at R's help('isSingular'); this says what it means)
SINGULAR_NOTE = ("boundary (singular) fit: a variance is estimated as 0 or a correlation as ±1, so the "
                 "random-effects covariance matrix is singular; consider a simpler random-effects structure")


def format_html(res: FitResultLike) -> str:
    """A compact HTML summary (Jupyter's ``_repr_html_``): title, formula, status, random and fixed effects."""
    from html import escape

    def table(header, rows):
        head = "".join(f"<th>{escape(str(h))}</th>" for h in header)
        body = "".join("<tr>" + "".join(f"<td>{escape(str(c))}</td>" for c in r) + "</tr>" for r in rows)
        return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"

    title = (getattr(res, "title", "") or "Linear mixed model fit by {method} (" + res.backend + ")")
    status = ["converged" if res.converged else "NOT converged"] + (["singular"] if res.singular else [])
    if res.loglik is not None:
        status.append(f"logLik {res.loglik:.2f}")
    status.append(f"{res.nobs} obs; " + ", ".join(f"{g}: {k} groups" for g, k in res.ngroups.items()))
    vc = [[r.group, r.term or "", _fmt(r.variance).strip(), _fmt(r.sd).strip()]
          for r in res.varcorr if r.term2 is None]
    vc += [[r.group, f"cor({r.term}, {r.term2})", "", _fmt(r.corr).strip()] for r in res.varcorr if r.term2]
    est, se = ("Post.mean", "Post.SD") if res.posterior else ("Estimate", "Std. Error")
    fx = [[r.term, _fmt(r.estimate).strip(), _fmt(r.se).strip()] for r in res.fixef]
    warn = "".join(f"<p>Warning: {escape(w)}</p>" for w in res.warnings)
    return (f"<div><strong>{escape(title.format(method=res.method))}</strong><br><code>{escape(res.formula)}"
            f"</code><br>{escape('; '.join(status))}"
            + table(["Groups", "Name", "Variance", "Std.Dev."], vc) + table(["", est, se], fx) + warn + "</div>")


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


__all__ = ["abbreviate", "format_html", "format_p", "format_summary", "scaled_residuals", "side_by_side"]
