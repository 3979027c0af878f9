"""``compare-mm example sleepstudy [--out DIR] [--no-bayes]``: the lecture's sleepstudy exercise."""

from __future__ import annotations

import argparse
from pathlib import Path

EXAMPLES = ("sleepstudy",)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("example", help="run a worked example (sleepstudy)",
                       description="The lecture's sleepstudy exercise: REML fits of Reaction/10 ~ Days with "
                                   "independent and correlated random intercept and slope by Subject, compared "
                                   "with lme4's published numbers, statsmodels and the PyMC posterior; the 2 × 9 "
                                   "panel plot.")
    p.add_argument("name", choices=EXAMPLES, help="which example")
    p.add_argument("--out", metavar="DIR", default=None,
                   help="write the tables (CSV and Markdown) and sleepstudy_panels.png here "
                        "(default: only the plot, into the current directory)")
    p.add_argument("--no-bayes", action="store_true", help="skip the PyMC fits")
    p.add_argument("--draws", type=int, default=500, help="PyMC draws per chain (default 500)")
    p.add_argument("--tune", type=int, default=500, help="PyMC tuning steps per chain (default 500)")
    p.add_argument("--chains", type=int, default=2, help="PyMC chains (default 2)")
    p.add_argument("--seed", type=int, default=20261122, help="PyMC seed (default 20261122)")
    p.set_defaults(func=run)


def _show(title: str, frame, note: str | None = None) -> str:
    from ..examples.sleepstudy import format_table  # deferred: keeps CLI start-up fast

    text = f"\n{title}\n{'-' * len(title)}\n"
    text += format_table(frame).to_string(index=False) if len(frame) else "(nothing to show)"
    if note:
        text += f"\n{note}"
    return text + "\n"


def run(args: argparse.Namespace) -> int:
    from ..errors import OptionError  # deferred: keeps CLI start-up fast
    from ..examples.sleepstudy import MODELS, format_table, run_sleepstudy
    from ..examples.plot import panel_plot  # deferred: keeps CLI start-up fast
    from ..study.lock import make_out_dir

    for opt in ("draws", "tune", "chains"):
        if getattr(args, opt) < 1:
            raise OptionError(f"--{opt}: must be ≥ 1, got {getattr(args, opt)}.")
    if args.seed < 0:
        raise OptionError(f"--seed: must be an integer ≥ 0, got {args.seed}.")
    out = Path(args.out) if args.out else Path.cwd()
    make_out_dir(out)  # before the fits: a file in the way or a folder that cannot be made fails at once
    res = run_sleepstudy(bayes=not args.no_bayes, draws=args.draws, tune=args.tune, chains=args.chains,
                         seed=args.seed)
    scale_note = ("All numbers are in the Reaction/10 scale. lme4 1.1-31 was fitted to Reaction; its numbers are "
                  "converted exactly: fixed effects, SEs and SDs ÷ 10, variances ÷ 100, REML logLik + "
                  "(n − p)·log 10 (ML would be + n·log 10).")
    tables = {
        "variance_components": ("REML variance components (Reaction/10)", res.variance_components(), None),
        "fixed_effects": ("REML fixed effects (Reaction/10)", res.fixed_effects(), None),
        "random_effects": ("Predicted random effects per Subject (REML conditional modes; lme4's beside them)",
                           res.random_effects(), None),
    }
    for model in MODELS:
        tables[f"comparison_{model}"] = (f"{MODELS[model]}: lme4 vs compare_mm vs statsmodels vs PyMC",
                                         res.comparison(model), scale_note)
    for title, frame, note in tables.values():
        print(_show(title, frame, note))
    for (model, backend), msg in res.errors.items():
        print(f"note: {backend} was not run for the {model} model: {msg}")
    plot = panel_plot(res.data, res.fits[("independent", "reml")], out / "sleepstudy_panels.png")
    if args.out:
        md = ["# sleepstudy: the lecture's exercise", "", scale_note, ""]
        for name, (title, frame, _) in tables.items():
            frame.to_csv(out / f"sleepstudy_{name}.csv", index=False)
            md += [f"## {title}", "", _md(format_table(frame)), ""]
        md += ["## Panel plot", "", "![sleepstudy panels](sleepstudy_panels.png)", ""]
        (out / "sleepstudy.md").write_text("\n".join(md), encoding="utf-8")
        print(f"wrote {out / 'sleepstudy.md'}, {len(tables)} CSV tables and {plot}")
    else:
        print(f"wrote {plot}")
    return 0


def _md(frame) -> str:
    """A GitHub-flavoured Markdown table (no optional dependency such as tabulate); ``|`` in a cell (the
    formula ``(Days || Subject)``) is escaped so it cannot split the row."""
    from ..report.render import md_cell  # deferred: keeps CLI start-up fast

    cols = [md_cell(c) for c in frame.columns]
    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    lines += ["| " + " | ".join(md_cell(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join(lines)
