"""Render the report: one self-contained HTML file (figures as base64 data URIs, inline CSS, printable)
and a Markdown file referencing ``figures/*.png``."""

from __future__ import annotations

import base64
import html
from pathlib import Path
from typing import Any

import pandas as pd

from .figures import FigureOut

CSS = """
body{font-family:-apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;max-width:1100px;margin:1.5em auto;
padding:0 1.2em;color:#222;line-height:1.45;font-size:15px}
h1{font-size:1.6em;border-bottom:2px solid #0072B2;padding-bottom:.2em}h2{font-size:1.25em;margin-top:1.8em;
border-bottom:1px solid #ddd}h3{font-size:1.05em}
figure{margin:1em 0 1.6em 0}figure img{max-width:100%;height:auto;border:1px solid #eee}
figcaption{font-size:.9em;color:#444;margin-top:.3em}
table{border-collapse:collapse;font-size:.82em;margin:.6em 0;font-variant-numeric:tabular-nums}
th,td{border:1px solid #ddd;padding:.18em .45em;text-align:right;white-space:nowrap}
th{background:#f3f6f9;position:sticky;top:0}td:nth-child(-n+4){text-align:left}
.scroll{overflow-x:auto;max-height:34em;overflow-y:auto}
.skip{color:#7a5b00;background:#fff8e1;border-left:4px solid #e6a700;padding:.3em .7em}
.fail{color:#7a1010;background:#fdecea;border-left:4px solid #c62828;padding:.3em .7em}
.ok{color:#1b5e20}
pre{background:#f6f8fa;padding:.6em;overflow-x:auto;font-size:.85em}
dl.kv{display:grid;grid-template-columns:max-content auto;gap:.15em 1em}dl.kv dt{font-weight:600}dl.kv dd{margin:0}
@media print{body{max-width:none;margin:0;font-size:10.5pt}.scroll{max-height:none;overflow:visible}
figure{page-break-inside:avoid}h2{page-break-after:avoid}th{position:static}a{color:inherit}}
"""


def _img_uri(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode("ascii")


def _html_table(frame: pd.DataFrame) -> str:
    if frame is None or frame.empty:
        return "<p><em>(empty)</em></p>"
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in frame.columns)
    body = "\n".join("<tr>" + "".join(f"<td>{html.escape(str(v))}</td>" for v in row) + "</tr>"
                     for row in frame.itertuples(index=False))
    return f'<div class="scroll"><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>'


def _md_table(frame: pd.DataFrame) -> str:
    if frame is None or frame.empty:
        return "_(empty)_\n"
    cols = [str(c) for c in frame.columns]
    esc = lambda v: str(v).replace("|", "\\|").replace("\n", " ")
    lines = ["| " + " | ".join(esc(c) for c in cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    lines += ["| " + " | ".join(esc(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join(lines) + "\n"


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
                "(the backend's flag; posteriors: R-hat ≥ 1.01 or a divergence), singular fits (scale-free, as "
                "compare_mm.fit flags a single fit: a diagonal element of the relative Cholesky factor below "
                "1e-4, i.e. some variance 0 or |ρ| = 1), each variance component on its boundary, and the "
                "posterior diagnostics. Cells: rate (Monte Carlo SE); a rate of 0 or 1 shows its Wilson 95% "
                "interval [lower, upper] instead of a zero SE. Low ESS: the smallest bulk or tail effective sample "
                "size of a posterior fit below 100 per chain.")
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
    out = ["<h2>Fit quality</h2>", f"<p>{html.escape(QUALITY_TEXT)}</p>",
           f"<p><strong>{html.escape(_flag_text(quality))}</strong></p>"]
    if quality.get("policy"):
        out.append(f"<p>{html.escape(quality['policy'])}</p>")
    f = quality.get("figure")
    if f is not None and f.path is not None:
        out.append(f'<figure><img src="{_img_uri(f.path)}" alt="{html.escape(f.title)}">'
                   f"<figcaption>{html.escape(f.caption)}</figcaption></figure>")
    elif f is not None:
        out.append(f'<p class="ok">{html.escape(f.skipped or "")}</p>')
    out.append(_html_table(quality.get("table")))
    cond = quality.get("conditional")
    if cond is not None and not cond.empty:
        out += ["<h3>Coverage and bias given a boundary hit or clean diagnostics</h3>",
                f"<p>{html.escape(CONDITIONAL_TEXT)}</p>", _html_table(cond)]
    return out


def _quality_md(quality: dict[str, Any] | None, out_dir: Path) -> list[str]:
    if not quality:
        return []
    out = ["## Fit quality", "", QUALITY_TEXT, "", f"**{_flag_text(quality)}**", ""]
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
    parts += [f"<p>{html.escape(p)}</p>" for p in intro]
    parts += _quality_html(quality)
    parts += ["<h2>Fits compared</h2>", _html_table(fits), "<h2>Failures</h2>", _failure_html(fail)]
    parts.append("<h2>Figures</h2>")
    for f in figures:
        parts.append(f"<h3>{html.escape(f.title)}</h3>")
        if f.path is None:
            parts.append(f'<p class="skip">Not shown: {html.escape(f.skipped or "no data")}</p>')
        else:
            parts.append(f'<figure><img src="{_img_uri(f.path)}" alt="{html.escape(f.title)}">'
                         f"<figcaption>{html.escape(f.caption)}</figcaption></figure>")
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
    return "\n".join(parts)


def render_markdown(*, title: str, intro: list[str], fits: pd.DataFrame, figures: list[FigureOut],
                    summary: pd.DataFrame, fail: dict[str, Any], repro: dict[str, Any], out_dir: Path,
                    quality: dict[str, Any] | None = None) -> str:
    """The Markdown report; figures are referenced as relative ``figures/*.png`` paths."""
    md = [f"# {title}", ""] + [p + "\n" for p in intro]
    md += _quality_md(quality, out_dir)
    md += ["## Fits compared", "", _md_table(fits), "## Failures", "", _failure_md(fail), "## Figures", ""]
    for f in figures:
        md.append(f"### {f.title}\n")
        if f.path is None:
            md.append(f"_Not shown: {f.skipped or 'no data'}_\n")
        else:
            md.append(f"![{f.title}]({f.path.relative_to(out_dir).as_posix()})\n")
            md.append(f"{f.caption}\n")
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
    return "\n".join(md)
