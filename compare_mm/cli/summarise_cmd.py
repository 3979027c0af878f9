"""``compare-mm summarise DIR``: recompute DIR/summary.csv from the stored rows, without refitting."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("summarise", help="recompute summary.csv of a study from its stored rows",
                       description="Recompute DIR/summary.csv (metrics with Monte Carlo SEs and exact values) "
                                   "from DIR/replicates/ without refitting.")
    p.add_argument("out", metavar="DIR", help="study output directory")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..study.store import stored_chunks  # deferred: keeps CLI start-up fast
    from ..study.summarise import write_summary
    from .run_cmd import fit_quality_text

    out = Path(args.out)
    check_study_dir(out)
    stored = stored_chunks(out)
    note_skipped(stored)
    summary = write_summary(out, stored)
    print(f"{out / 'summary.csv'}: {len(summary)} rows; {fit_quality_text(summary)}")
    return 0


def check_study_dir(out: Path) -> None:
    """A one-line DataError unless ``out`` is an existing folder."""
    from ..errors import DataError  # deferred: keeps CLI start-up fast

    if out.exists() and not out.is_dir():
        raise DataError(f"Study directory '{out}' is a file; give the --out folder of `compare-mm run`.")
    if not out.is_dir():
        raise DataError(f"Study directory '{out}' does not exist.")


def note_skipped(stored) -> None:
    """Say on stderr, in one line, which chunk files were not read (damaged, foreign, duplicated)."""
    import sys

    line = stored.note()
    if line:
        print(f"note: {line}", file=sys.stderr)
