"""Methodological reports of a finished study, drawn from its stored outputs alone (never refitting).

``write_report(out_dir)`` reads ``summary.csv``, ``replicates/*.parquet``, ``manifest.json`` and
``config.yaml`` and writes ``report.html`` (self-contained), ``report.md``, ``figures/*.png`` and
``tables/*.csv``.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from .conditions import model_sentence
from .figures import bias_rmse_figure, coverage_figure, tests_figure
from .figures_twoway import boundary_rate_figure
from .figures_underest import underestimation_figure
from .figures_agreement import agreement_figure, agreement_table
from .figures_dist import diagnostics_figure, sampling_figure, shrinkage_figure
from .load import StudyOutputs, load_study
from .draw import draw_all
from .flags import HIGH_RATE, MARK, flagged_pairs
from .quality import conditional_table, policy_sentence, quality_figure, quality_table
from .render import render_html, render_markdown
from .settings import report_settings
from .style import FitStyle, setup_rc, shared_mathtext_parses
from .tables import failures, formatted_summary, reproducibility

FIGURES = (
    ("boundary_rate", boundary_rate_figure),
    ("underestimation", underestimation_figure),
    ("coverage_width", coverage_figure),
    ("bias_rmse", bias_rmse_figure),
    ("tests", tests_figure),
    ("shrinkage", shrinkage_figure),
    ("sampling_distribution", sampling_figure),
    ("bayes_diagnostics", diagnostics_figure),
    ("nuts_vs_quadrature", agreement_figure),
)


def _fits_table(study: StudyOutputs) -> pd.DataFrame:
    rows = []
    for name, spec in study.fit_specs().items():
        extra = {k: v for k, v in spec.items() if k not in ("name", "backend", "method")}
        options = ", ".join(f"{k}={v}" for k, v in extra.items() if v not in (None, {}, []))
        if study.method(name) == "F":
            which = "σ_AB² = 0 and σ_B² = 0" if study.model == "two_way" else "σ_A² = 0"
            options = f"the exact F test of {which} (size and power: metric rejection_rate)"
        rows.append({"fit": name, "backend": spec.get("backend", ""),
                     "method": "posterior" if study.is_bayes(name) else spec.get("method", ""),
                     "options": options})
    return pd.DataFrame(rows, columns=["fit", "backend", "method", "options"])


def _intro(study: StudyOutputs) -> list[str]:
    s = study.summary
    n_cond = len(s[study.grid_keys].drop_duplicates()) if study.grid_keys else 1
    desc = str(study.config.get("description", "")).strip()
    out = [desc] if desc else []
    grid = ", ".join(f"{k} ∈ {{{', '.join(str(v) for v in sorted(s[k].dropna().unique(), key=_grid_order))}}}"
                     for k in study.grid_keys if k in s.columns)
    models = (study.config.get("grid") or {}).get("model") or [study.model]
    out.append(f"{model_sentence(models, study.fit_specs().values())} "
               f"{n_cond} condition(s) ({grid or 'no grid'}), "
               f"{study.config.get('replicates', '?')} replicate(s) each, fits: {', '.join(study.fit_names())}. "
               f"Nominal interval level {study.level:.0%}. Every Monte Carlo figure carries its Monte Carlo "
               f"standard error (bars: ±2 MCSE). This report was drawn from the stored rows; nothing was refitted.")
    return out


def _grid_order(v) -> tuple:
    """Sort key of a grid value: numbers by value (6 before 18), then texts (a list of group sizes)."""
    try:
        return (0, float(v), "")
    except (TypeError, ValueError):
        return (1, 0.0, str(v))


def write_report(out_dir: str | Path, stored=None, workers: int | None = None) -> Path:
    """Write ``report.html``, ``report.md``, ``figures/*.png`` and ``tables/*.csv`` for a study directory
    (``stored``: its verified chunks, :func:`compare_mm.study.store.stored_chunks`, found when not given;
    ``workers``: processes drawing the figures, :func:`compare_mm.report.draw.draw_all`).

    Returns
    -------
    Path
        The HTML report.
    """
    import matplotlib.pyplot as plt  # deferred: matplotlib is heavy; imported only to draw figures

    study = load_study(out_dir, stored)
    out = study.out_dir
    fig_dir, tab_dir = out / "figures", out / "tables"
    fig_dir.mkdir(exist_ok=True)
    tab_dir.mkdir(exist_ok=True)
    for name in [n for n, _ in FIGURES] + ["fit_quality"]:  # a figure skipped now must not linger
        (fig_dir / f"{name}.png").unlink(missing_ok=True)
        for part in fig_dir.glob(f"{name}-*.png"):  # the further parts of a split figure (layout.py)
            part.unlink(missing_ok=True)
    style = FitStyle(study.fit_names())
    settings = report_settings([name for name, _ in FIGURES])  # config/report.yaml
    jobs = [("fit_quality", "Fit quality", quality_figure, study, style, fig_dir / "fit_quality.png")]
    jobs += [(name, name.replace("_", " ").capitalize(), make, study, style, fig_dir / f"{name}.png")
             for name, make in settings.select(FIGURES)]
    with plt.rc_context(settings.rc(setup_rc())), shared_mathtext_parses():
        quality_fig, *figures = draw_all(jobs, workers)
    policy = policy_sentence(study)
    for f in figures:  # the count of non-converged fits beside every figure (the stated policy)
        if f.path is not None and policy:
            f.caption = f"{f.caption} {policy}"
    quality = {"figure": quality_fig, "table": quality_table(study), "conditional": conditional_table(study),
               "policy": policy, "flagged": len(flagged_pairs(study)), "mark": MARK, "high": HIGH_RATE}
    quality["table"].to_csv(tab_dir / "fit_quality.csv", index=False)
    quality["conditional"].to_csv(tab_dir / "conditional_metrics.csv", index=False)
    formatted_summary(study, full=True).to_csv(tab_dir / "summary_formatted.csv", index=False)
    summary = formatted_summary(study, full=False, flags=flagged_pairs(study))
    fits = _fits_table(study)
    fits.to_csv(tab_dir / "fits.csv", index=False)
    agreement_table(study).to_csv(tab_dir / "nuts_vs_quadrature.csv", index=False)
    fail = failures(study)
    pd.DataFrame(fail["messages"], columns=["where", "message"]).to_csv(tab_dir / "failures.csv", index=False)
    repro = reproducibility(study)
    title = f"compare_mm study report: {study.name}"
    intro = _intro(study)
    html_path = out / "report.html"
    html_path.write_text(render_html(title=title, intro=intro, fits=fits, figures=figures, summary=summary,
                                     fail=fail, repro=repro, quality=quality), encoding="utf-8")
    (out / "report.md").write_text(render_markdown(title=title, intro=intro, fits=fits, figures=figures,
                                                   summary=summary, fail=fail, repro=repro, out_dir=out,
                                                   quality=quality),
                                   encoding="utf-8")
    return html_path


__all__ = ["load_study", "write_report"]
