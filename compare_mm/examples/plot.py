"""The lecture's 2 × 9 sleepstudy panel plot: one panel per subject with its points, its fitted line
(fixed effects + the subject's predicted random effects) and the population line (fixed effects only,
dashed)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ..results.schema import FitResult


def subject_lines(fit: FitResult) -> pd.DataFrame:
    """Per subject: intercept β̂₀ + â_i and slope β̂₁ + b̂_i of its fitted line (REML conditional modes)."""
    beta = {r.term: r.estimate for r in fit.fixef}
    rows: dict[str, dict[str, float]] = {}
    for r in fit.ranef:
        rows.setdefault(r.level, {"a": 0.0, "b": 0.0})["a" if r.term == "(Intercept)" else "b"] = r.value
    out = pd.DataFrame([{"Subject": s, "intercept": beta["(Intercept)"] + v["a"], "slope": beta["Days"] + v["b"]}
                        for s, v in rows.items()])
    return out.sort_values("Subject").reset_index(drop=True)


def panel_plot(data: pd.DataFrame, fit: FitResult, path: str | Path, *, response: str = "Reaction",
               scale: float = 10.0) -> Path:
    """Write the 2 × 9 panel plot of ``response/scale`` against Days to ``path`` (PNG)."""
    import matplotlib.pyplot as plt  # deferred: matplotlib is heavy; imported only to draw figures

    path = Path(path)
    fig = panel_figure(data, fit, response=response, scale=scale)
    fig.savefig(path, format="png")
    plt.close(fig)
    return path


def panel_figure(data: pd.DataFrame, fit: FitResult, *, response: str = "Reaction", scale: float = 10.0):
    """The 2 × 9 panel figure (a matplotlib Figure; the caller closes it)."""
    import matplotlib  # deferred: matplotlib is heavy; imported only to draw figures

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # deferred: matplotlib is heavy; imported only to draw figures

    from ..report.style import PALETTE, setup_rc  # deferred: report.style imports matplotlib

    lines = subject_lines(fit)
    beta = {r.term: r.estimate for r in fit.fixef}
    subjects = list(lines["Subject"])
    y_all = data[response].to_numpy(float) / scale
    days = np.array([data["Days"].min(), data["Days"].max()], dtype=float)
    with plt.rc_context(setup_rc() | {"axes.grid": False}):
        fig, axes = plt.subplots(2, 9, figsize=(15.5, 4.9), sharex=True, sharey=True)
        for ax, (_, ln) in zip(axes.flat, lines.iterrows()):
            d = data[data["Subject"].astype(str) == ln["Subject"]]
            ax.plot(d["Days"], d[response] / scale, "o", color="0.25", ms=3.2, label="observed")
            ax.plot(days, ln["intercept"] + ln["slope"] * days, color=PALETTE[0], lw=1.6,
                    label="subject's fitted line (fixed + predicted random effects)")
            ax.plot(days, beta["(Intercept)"] + beta["Days"] * days, "--", color=PALETTE[1], lw=1.2,
                    label="population line (fixed effects)")
            ax.set_title(f"Subject {ln['Subject']}", fontsize=9, pad=3)
            ax.set_xticks([0, 3, 6, 9])
            ax.grid(alpha=0.25)
        for ax in axes.flat[len(subjects):]:
            ax.set_visible(False)
        pad = 0.05 * (y_all.max() - y_all.min())
        axes[0, 0].set_ylim(y_all.min() - pad, y_all.max() + pad)
        fig.supxlabel("Days of sleep deprivation", y=0.085)
        fig.supylabel("Reaction times", x=0.005)
        handles, labels = axes[0, 0].get_legend_handles_labels()
        fig.legend(handles, labels, loc="lower center", ncol=3, frameon=False, bbox_to_anchor=(0.5, -0.01))
        fig.suptitle(f"sleepstudy: {fit.formula}, fitted by {fit.method} (reaction time in units of "
                     f"{scale:g} ms)", fontsize=10.5)
        fig.tight_layout(rect=(0.01, 0.09, 1, 1))
    return fig
