"""Render the report: one self-contained HTML file (figures as base64 data URIs, inline CSS, printable)
and a Markdown file referencing ``figures/*.png``.

Reading on a laptop and on paper: a table of contents; figures shown at a fixed scale on screen and at
their drawn size in print (:mod:`compare_mm.report.layout`), never wider than the column or the page,
each kept on one printed page; wide tables split into several tables of at most :data:`TABLE_COLUMNS`
columns that repeat the key columns (nothing scrolls sideways); parameter names with subscripts
(``σ_A²``) written with real subscripts (HTML ``<sub>``, also in the Markdown), and ``|`` escaped in
Markdown cells.
"""

from __future__ import annotations

import base64
import html
import re
from pathlib import Path
from typing import Any

import pandas as pd

from .flags import MARK
from .marks import FigureOut
from . import layout

CSS = """
body{font-family:-apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;max-width:1100px;margin:1.5em auto;
padding:0 1.2em;color:#222;line-height:1.45;font-size:15px;overflow-wrap:break-word}
h1{font-size:1.6em;border-bottom:2px solid #0072B2;padding-bottom:.2em}h2{font-size:1.25em;margin-top:1.8em;
border-bottom:1px solid #ddd}h3{font-size:1.05em}
nav.toc{background:#f6f8fa;border:1px solid #e3e6ea;padding:.4em 1em;margin:1em 0;font-size:.92em}
nav.toc ol{margin:.2em 0;padding-left:1.4em}nav.toc ol ol{list-style:lower-alpha}
figure{margin:1em 0 1.6em 0;break-inside:avoid;page-break-inside:avoid}
figure img{display:block;width:calc(var(--w, 7in) * %(screen)s / 96);max-width:100%%;height:auto;
border:1px solid #eee}
figcaption{font-size:.9em;color:#444;margin-top:.3em;max-width:60em}
table{border-collapse:collapse;font-size:.82em;margin:.6em 0;font-variant-numeric:tabular-nums;max-width:100%%}
th,td{border:1px solid #ddd;padding:.18em .45em;text-align:right;vertical-align:top}
td{text-align:left}td.num{white-space:nowrap;text-align:right}
th{background:#f3f6f9;overflow-wrap:normal}
.tablewrap{overflow-x:auto;max-width:100%%}
.skip{color:#7a5b00;background:#fff8e1;border-left:4px solid #e6a700;padding:.3em .7em}
.fail{color:#7a1010;background:#fdecea;border-left:4px solid #c62828;padding:.3em .7em}
.ok{color:#1b5e20}
pre{background:#f6f8fa;padding:.6em;overflow-x:auto;font-size:.85em;white-space:pre-wrap}
dl.kv{display:grid;grid-template-columns:max-content auto;gap:.15em 1em}dl.kv dt{font-weight:600}dl.kv dd{margin:0}
@page{size:auto;margin:0.6in}
@media print{body{max-width:none;margin:0;padding:0;font-size:10pt}nav.toc{break-after:avoid}
figure{break-inside:avoid;page-break-inside:avoid}
figure img{width:var(--w, 7in);max-width:100%%;max-height:9.6in;object-fit:contain;border:0}
h2,h3{break-after:avoid;page-break-after:avoid}tr,td,th{break-inside:avoid;page-break-inside:avoid}
thead{display:table-header-group}.tablewrap{overflow:visible}table{font-size:8pt}a{color:inherit;text-decoration:none}}
""" % {"screen": layout.SCREEN_PX_PER_IN}

#: widest table (columns) before it is split into several that repeat the key columns
TABLE_COLUMNS = 10

#: ``σ_A²``, ``σ̂_B``, ``β_0`` … : a Greek letter (with an optional combining hat), ``_``, a subscript
_SUBSCRIPT = re.compile(r"([\u0370-\u03ff][\u0302]?)_(\{[^}]*\}|[A-Za-z0-9\u03b5]+)")


def symbols_html(text: str) -> str:
    """HTML-escaped ``text`` with ``σ_A²``-style names written with real subscripts (``σ<sub>A</sub>²``)."""
    out = html.escape(str(text))
    return _SUBSCRIPT.sub(lambda m: f"{m.group(1)}<sub>{m.group(2).strip('{}')}</sub>", out)


def symbols_md(text: str) -> str:
    """Markdown text with ``σ_A²``-style names written with ``<sub>`` (an underscore would start emphasis)."""
    return _SUBSCRIPT.sub(lambda m: f"{m.group(1)}<sub>{m.group(2).strip('{}')}</sub>", str(text))


def _anchor(text: str) -> str:
    return re.sub(r"[^\w]+", "-", str(text).lower()).strip("-") or "section"


def split_columns(frame: pd.DataFrame, keys: int | None = None, width: int = TABLE_COLUMNS) -> list[pd.DataFrame]:
    """A wide table as several tables of at most ``width`` columns, each repeating the first ``keys`` (key)
    columns; rows whose cells are all empty in a part are left out of it."""
    if frame is None or frame.empty or len(frame.columns) <= width:
        return [frame]
    if keys is None:
        keys = min(3, len(frame.columns) - 1)
    head, rest = list(frame.columns[:keys]), list(frame.columns[keys:])
    per = max(1, width - keys)
    n_parts = -(-len(rest) // per)
    per = -(-len(rest) // n_parts)
    parts = []
    for i in range(0, len(rest), per):
        cols = rest[i:i + per]
        sub = frame[head + cols]
        filled = sub[cols].astype(str).apply(lambda c: c.str.strip().isin(["", "nan", "None"])).all(axis=1)
        parts.append(sub[~filled.to_numpy()] if (~filled).any() else sub)
    return parts


def _cell_html(value: Any) -> str:
    """A table cell's HTML: :func:`symbols_html`, with a no-break space before a flagged fit's mark (a
    narrow fit column would otherwise put the mark alone on the next line)."""
    return symbols_html(value).replace(f" {MARK}", f"&nbsp;{MARK}")


def _img_uri(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode("ascii")


def _html_table(frame: pd.DataFrame, keys: int | None = None) -> str:
    if frame is None or frame.empty:
        return "<p><em>(empty)</em></p>"
    parts = split_columns(frame, keys)
    out = []
    nkey = keys if keys is not None else (min(3, len(frame.columns) - 1) if len(parts) > 1 else 1)
    for i, part in enumerate(parts):
        head = "".join(f"<th>{symbols_html(c)}</th>" for c in part.columns)
        body = "\n".join("<tr>" + "".join(f'<td{" class=num" if _NUMERIC.match(str(v)) else ""}>'
                                          f"{_cell_html(v)}</td>" for v in row) + "</tr>"
                         for row in part.itertuples(index=False))
        note = (f"<p class='part'><em>Part {i + 1} of {len(parts)} of the table (columns "
                f"{symbols_html(part.columns[nkey])} … {symbols_html(part.columns[-1])}).</em></p>"
                if len(parts) > 1 else "")
        out.append(f'{note}<div class="tablewrap"><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody>'
                   f"</table></div>")
    return "\n".join(out)


#: a number cell, right-aligned and kept on one line: "0.57", "0.57 (0.04)" (estimate, MCSE), "0 [0, 0.025]" (a
#: rate of 0 or 1 with its Wilson interval), any of them followed by " n=85"
_NUMERIC = re.compile(r"^[-+−]?[\d.]+(e[-+]?\d+)?( \([\d.e+-]+\)| \[[\d.e+-]+, [\d.e+-]+\])?( n=\d+)?$")


def md_cell(v) -> str:
    """A Markdown table cell: ``|`` escaped (a formula such as ``(Days || Subject)`` must not split the
    row), line breaks as spaces, subscripts as ``<sub>``."""
    return symbols_md(str(v).replace("\\", "\\\\").replace("|", "\\|").replace("\r", " ").replace("\n", " "))


def _md_table(frame: pd.DataFrame, keys: int | None = None) -> str:
    if frame is None or frame.empty:
        return "_(empty)_\n"
    out = []
    parts = split_columns(frame, keys)
    for i, part in enumerate(parts):
        cols = [str(c) for c in part.columns]
        lines = [] if len(parts) == 1 else [f"_Part {i + 1} of {len(parts)} of the table._", ""]
        lines += ["| " + " | ".join(md_cell(c) for c in cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
        lines += ["| " + " | ".join(md_cell(v) for v in row) + " |" for row in part.itertuples(index=False)]
        out.append("\n".join(lines) + "\n")
    return "\n".join(out)


def _figure_html(f: FigureOut) -> str:
    paths = f.paths
    out = []
    for i, path in enumerate(paths):
        w, h, ppi = layout.png_info(path)
        width_in = w / (ppi or layout.DPI)
        part = f" (part {i + 1} of {len(paths)})" if len(paths) > 1 else ""
        alt = _SUBSCRIPT.sub(r"\1\2", f.title + part)  # plain text: σ̂A²
        cap = f"<figcaption>{symbols_html(f.caption)}</figcaption>" if i == len(paths) - 1 else \
            f"<figcaption>{symbols_html(f.title)}{part}; caption below part {len(paths)}.</figcaption>"
        out.append(f'<figure><img src="{_img_uri(path)}" alt="{html.escape(alt)}" width="{w}" '
                   f'height="{h}" style="--w:{width_in:.3f}in">{cap}</figure>')
    return "\n".join(out)


def _failure_html(fail: dict[str, Any]) -> str:
    if not fail["total"]:
        return '<p class="ok">No fit failed.</p>'
    by = ", ".join(f"{html.escape(k)}: {v}" for k, v in fail["by_fit"].items())
    items = "".join(f"<li>{html.escape(w + ': ' if w else '')}<code>{html.escape(m)}</code></li>"
                    for w, m in fail["messages"])
    return (f'<div class="fail"><p><strong>{fail["total"]} failed fit(s)</strong>'
            f'{" — " + by if by else ""}. Failed fits are excluded from every metric; n_failed in the table '
            f'counts them per condition.</p>{"<p>First messages:</p><ul>" + items + "</ul>" if items else ""}</div>')


def _failure_md(fail: dict[str, Any]) -> str:
    if not fail["total"]:
        return "No fit failed.\n"
    by = ", ".join(f"{k}: {v}" for k, v in fail["by_fit"].items())
    out = [f"**{fail['total']} failed fit(s)**{' — ' + by if by else ''}. Failed fits are excluded from every "
           "metric; `n_failed` in the table counts them per condition.", ""]
    if fail["messages"]:
        out.append("First messages:")
        out += [f"- {w + ': ' if w else ''}`{m}`" for w, m in fail["messages"]]
    return "\n".join(out) + "\n"


QUALITY_TEXT = ("Every fit of every replicate, before any metric: failures (the fit raised), non-convergence "
                "(the backend's flag; sampled posteriors: R-hat ≥ 1.01 or a divergence), singular fits "
                "(scale-free, as compare_mm.fit flags a single fit: a diagonal element of the relative Cholesky "
                "factor below 1e-4, i.e. some variance 0 or |ρ| = 1), each variance component on its boundary, "
                "and the posterior diagnostics. Cells: rate (Monte Carlo SE); a rate of 0 or 1 shows its Wilson "
                "95% interval [lower, upper] instead of a zero SE. Low ESS: the smallest bulk or tail effective "
                "sample size of a posterior fit below 100 per chain.")
#: added to :data:`QUALITY_TEXT` when the table has a quadrature posterior's integration-error column
QUADRATURE_TEXT = ("A quadrature posterior (sampler: quadrature) is computed by integration, not sampled: it has "
                   "no R-hat, divergences or ESS (–); its check is the integration error (max): the largest "
                   "change of its reported ETI ends, median, mean and SD at the last grid refinement, in posterior "
                   "SDs, over the condition's replicates — a fit above its tolerance (1e-3) counts as not "
                   "converged.")


def quality_text(quality: dict[str, Any]) -> str:
    """The fit-quality section's opening paragraph (:data:`QUALITY_TEXT`, plus :data:`QUADRATURE_TEXT` when
    the table holds an integration error)."""
    table = quality.get("table")
    quad = table is not None and "integration error (max)" in getattr(table, "columns", ())
    return QUALITY_TEXT + (" " + QUADRATURE_TEXT if quad else "")


CONDITIONAL_TEXT = ("Coverage and bias given a boundary hit (some variance component on its boundary: a singular "
                    "fit) or not, and, for posteriors, given clean diagnostics (max R-hat < 1.01 and no divergence); "
                    "n is the number of replicates in each subset. Also in summary.csv (metrics coverage_boundary, "
                    "coverage_interior, bias_boundary, bias_interior, coverage_clean, bias_clean).")


def _flag_text(quality: dict[str, Any]) -> str:
    if not quality.get("flagged"):
        return (f"No condition has a non-convergence or singular rate ≥ {quality['high']:.0%} for any fit.")
    return (f"{quality['mark']}: in {quality['flagged']} condition × fit pair(s) the fit's non-convergence or "
            f"singular rate is ≥ {quality['high']:.0%}; those rows carry {quality['mark']} in every table and those points "
            f"are hollow in every figure.")


def _quality_html(quality: dict[str, Any] | None) -> list[str]:
    if not quality:
        return []
    out = ["<h2>Fit quality</h2>", f"<p>{html.escape(quality_text(quality))}</p>",
           f"<p><strong>{html.escape(_flag_text(quality))}</strong></p>"]
    if quality.get("policy"):
        out.append(f"<p>{html.escape(quality['policy'])}</p>")
    f = quality.get("figure")
    if f is not None and f.path is not None:
        out.append(_figure_html(f))
    elif f is not None:
        out.append(f'<p class="ok">{html.escape(f.skipped or "")}</p>')
    out.append(_html_table(quality.get("table")))
    cond = quality.get("conditional")
    if cond is not None and not cond.empty:
        out += ["<h3>Coverage and bias given a boundary hit or clean diagnostics</h3>",
                f"<p>{symbols_html(CONDITIONAL_TEXT)}</p>", _html_table(cond)]
    return out


def _quality_md(quality: dict[str, Any] | None, out_dir: Path) -> list[str]:
    if not quality:
        return []
    out = ["## Fit quality", "", quality_text(quality), "", f"**{_flag_text(quality)}**", ""]
    if quality.get("policy"):
        out += [quality["policy"], ""]
    f = quality.get("figure")
    if f is not None and f.path is not None:
        out += [f"![{f.title}]({f.path.relative_to(out_dir).as_posix()})", "", f.caption, ""]
    elif f is not None:
        out += [f.skipped or "", ""]
    out.append(_md_table(quality.get("table")))
    cond = quality.get("conditional")
    if cond is not None and not cond.empty:
        out += ["### Coverage and bias given a boundary hit or clean diagnostics", "", CONDITIONAL_TEXT, "",
                _md_table(cond)]
    return out


def render_html(*, title: str, intro: list[str], fits: pd.DataFrame, figures: list[FigureOut],
                summary: pd.DataFrame, fail: dict[str, Any], repro: dict[str, Any],
                quality: dict[str, Any] | None = None) -> str:
    """The self-contained HTML report (no external resource of any kind)."""
    parts = [f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
             f"<meta name='viewport' content='width=device-width, initial-scale=1'>"
             f"<title>{html.escape(title)}</title><style>{CSS}</style></head><body>",
             f"<h1>{html.escape(title)}</h1>"]
    parts += [f"<p>{symbols_html(p)}</p>" for p in intro]
    parts += _quality_html(quality)
    parts += ["<h2>Fits compared</h2>", _html_table(fits), "<h2>Failures</h2>", _failure_html(fail)]
    parts.append("<h2>Figures</h2>")
    for f in figures:
        parts.append(f"<h3>{symbols_html(f.title)}</h3>")
        if f.path is None:
            parts.append(f'<p class="skip">Not shown: {symbols_html(f.skipped or "no data")}</p>')
        else:
            parts.append(_figure_html(f))
    parts += ["<h2>Summary table</h2>",
              "<p>Each cell is the Monte Carlo estimate with its Monte Carlo standard error in parentheses (a "
              "proportion of exactly 0 or 1, whose standard error is 0, shows its Wilson 95% interval in brackets "
              "instead); "
              "<em>interval</em> names the interval kind and level each coverage and width refers to; "
              "<em>exact</em> columns hold closed-form values where theory gives one. The same table is in "
              "tables/summary_formatted.csv.</p>"]
    if quality and quality.get("flagged"):
        parts.append(f"<p>{html.escape(_flag_text(quality))}</p>")
    parts.append(_html_table(summary))
    parts.append("<h2>Reproducibility</h2><dl class='kv'>")
    for k, v in repro.items():
        if k in ("versions", "config_text", "versions_source"):
            continue
        parts.append(f"<dt>{html.escape(str(k))}</dt><dd>{html.escape(str(v))}</dd>")
    parts.append("</dl>")
    parts.append(f"<h3>Package versions ({html.escape(repro['versions_source'])})</h3>")
    parts.append(_html_table(pd.DataFrame(list(repro["versions"].items()), columns=["package", "version"])))
    if repro.get("config_text"):
        parts.append(f"<h3>Configuration (config.yaml)</h3><pre>{html.escape(repro['config_text'])}</pre>")
    parts.append("</body></html>")
    return with_toc_html("\n".join(parts))


def render_markdown(*, title: str, intro: list[str], fits: pd.DataFrame, figures: list[FigureOut],
                    summary: pd.DataFrame, fail: dict[str, Any], repro: dict[str, Any], out_dir: Path,
                    quality: dict[str, Any] | None = None) -> str:
    """The Markdown report; figures are referenced as relative ``figures/*.png`` paths."""
    md = [f"# {title}", ""] + [symbols_md(p) + "\n" for p in intro]
    md += _quality_md(quality, out_dir)
    md += ["## Fits compared", "", _md_table(fits), "## Failures", "", _failure_md(fail), "## Figures", ""]
    for f in figures:
        md.append(f"### {symbols_md(f.title)}\n")
        if f.path is None:
            md.append(f"_Not shown: {symbols_md(f.skipped or 'no data')}_\n")
        else:
            for i, path in enumerate(f.paths):
                part = f" (part {i + 1} of {len(f.paths)})" if len(f.paths) > 1 else ""
                md.append(f"![{f.title}{part}]({path.relative_to(out_dir).as_posix()})\n")
            md.append(f"{symbols_md(f.caption)}\n")
    md += ["## Summary table", "",
           "Cells are `value (MCSE)` (a proportion of 0 or 1: `value [Wilson 95% interval]`); `interval` names "
           "the interval kind and level; `exact …` columns hold closed-form values. CSV: `tables/summary_formatted.csv`.", ""]
    if quality and quality.get("flagged"):
        md += [_flag_text(quality), ""]
    md.append(_md_table(summary))
    md += ["## Reproducibility", ""]
    for k, v in repro.items():
        if k not in ("versions", "config_text", "versions_source"):
            md.append(f"- **{k}**: {v}")
    md += ["", f"Package versions ({repro['versions_source']}):", ""]
    md.append(_md_table(pd.DataFrame(list(repro["versions"].items()), columns=["package", "version"])))
    if repro.get("config_text"):
        md += ["Configuration (`config.yaml`):", "", "```yaml", repro["config_text"].rstrip(), "```", ""]
    return with_toc_md("\n".join(md))


_HEADING = re.compile(r"<(h[23])>(.*?)</\1>", re.S)


def with_toc_html(doc: str) -> str:
    """``doc`` with an ``id`` on every ``<h2>``/``<h3>`` and a table of contents before the first ``<h2>``."""
    entries: list[tuple[str, str, str]] = []
    seen: dict[str, int] = {}

    def tag(m: re.Match) -> str:
        level, inner = m.group(1), m.group(2)
        base = _anchor(re.sub(r"<[^>]+>", "", html.unescape(inner)))
        seen[base] = seen.get(base, 0) + 1
        anchor = base if seen[base] == 1 else f"{base}-{seen[base]}"
        entries.append((level, anchor, inner))
        return f'<{level} id="{anchor}">{inner}</{level}>'

    doc = _HEADING.sub(tag, doc)
    if not entries:
        return doc
    items, open_sub = [], False
    for level, anchor, inner in entries:
        if level == "h3" and not open_sub:
            items.append("<ol>")
            open_sub = True
        elif level == "h2" and open_sub:
            items.append("</ol>")
            open_sub = False
        items.append(f'<li><a href="#{anchor}">{inner}</a></li>')
    if open_sub:
        items.append("</ol>")
    nav = '<nav class="toc"><strong>Contents</strong><ol>' + "".join(items) + "</ol></nav>"
    first = doc.find("<h2 ")
    return doc[:first] + nav + "\n" + doc[first:] if first >= 0 else doc


def _md_slug(text: str) -> str:
    """GitHub's heading anchor: lower case, punctuation dropped, spaces as hyphens."""
    text = re.sub(r"<[^>]+>", "", text).strip().lower()
    return re.sub(r"\s", "-", re.sub(r"[^\w\- ]", "", text))


def with_toc_md(doc: str) -> str:
    """``doc`` with a contents list (links to its ``##``/``###`` headings) before the first ``##``."""
    lines = doc.split("\n")
    toc, fence = [], False
    for line in lines:
        if line.startswith("```"):
            fence = not fence
        if fence:
            continue
        m = re.match(r"(##|###) (.+)", line)
        if m:
            indent = "   " if m.group(1) == "###" else ""
            toc.append(f"{indent}- [{m.group(2).strip()}](#{_md_slug(m.group(2))})")
    first = next((i for i, ln in enumerate(lines) if ln.startswith("## ")), None)
    if first is None or not toc:
        return doc
    return "\n".join(lines[:first] + ["**Contents**", ""] + toc + [""] + lines[first:])
