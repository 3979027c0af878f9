"""``compare-mm report DIR``: write DIR/report.html, DIR/report.md, DIR/figures/*.png and DIR/tables/*.csv
from a finished study's stored outputs (nothing is refitted)."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("report", help="write the HTML/Markdown report of a finished study",
                       description="Write DIR/report.html (self-contained), DIR/report.md, DIR/figures/*.png and "
                                   "DIR/tables/*.csv from the stored outputs of `compare-mm run` (no refitting).")
    p.add_argument("dir", metavar="DIR", help="output directory of `compare-mm run`")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..report import write_report  # deferred: keeps CLI start-up fast
    from ..study.store import stored_chunks
    from .summarise_cmd import check_study_dir, note_skipped

    check_study_dir(Path(args.dir))
    stored = stored_chunks(Path(args.dir))
    note_skipped(stored)
    path = write_report(Path(args.dir), stored)
    out = path.parent
    n_fig = len(list((out / "figures").glob("*.png")))
    print(f"report: {path} (self-contained), {out / 'report.md'}, {n_fig} figure(s) in {out / 'figures'}, "
          f"tables in {out / 'tables'}")
    return 0
