"""``compare-mm run STUDY.yaml --out DIR [--workers N] [--scheduler ADDR] [--resume] [--no-report]``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("run", help="run a simulation study from a YAML file",
                       description="Run a simulation study: simulate every condition × replicate, fit every "
                                   "configured fit, store per-replicate rows and write DIR/summary.csv "
                                   "(and the report).")
    p.add_argument("study", metavar="STUDY.yaml", help="study file (see studies/*.yaml)")
    p.add_argument("--out", required=True, metavar="DIR", help="output directory")
    p.add_argument("--workers", type=int, default=None, metavar="N",
                   help="run chunks on a local Dask cluster of N single-threaded processes")
    p.add_argument("--scheduler", default=None, metavar="ADDRESS",
                   help="run chunks on an existing Dask cluster (e.g. tcp://host:8786; dask-jobqueue for SLURM)")
    p.add_argument("--resume", action="store_true", help="continue an interrupted run in DIR (same study file)")
    p.add_argument("--no-report", action="store_true", help="do not write the report at the end")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--yes", action="store_true",
                   help="run even when the estimated rows, disk or time are above the safety threshold")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..errors import ConfigError  # deferred: keeps CLI start-up fast
    from ..study.config.load import load_config
    from ..study.runner import StudyInterrupted, run_study  # deferred: keeps CLI start-up fast

    if args.workers is not None and args.workers < 1:
        raise ConfigError(f"--workers: must be ≥ 1, got {args.workers}.")
    if args.workers is not None and args.scheduler:
        raise ConfigError("--workers and --scheduler exclude each other; give one of them.")
    cfg = load_config(args.study)
    try:
        result = run_study(args.study, args.out, workers=args.workers, scheduler=args.scheduler,
                           resume=args.resume, progress=not args.quiet, yes=args.yes)
    except StudyInterrupted as exc:  # Ctrl-C or SIGTERM: one line, the manifest says "interrupted"
        sys.stderr.flush()
        print(f"compare-mm run: {exc}", file=sys.stderr, flush=True)
        return 130
    print(f"{cfg.name}: {result.chunks_run} of {result.chunks_total} chunks run in {result.elapsed_s:.1f} s; "
          f"{fit_quality_text(result.summary)}; summary: {Path(args.out) / 'summary.csv'}")
    if not args.no_report:
        write_report(Path(args.out))
    return 0


def fit_quality_counts(summary) -> dict[str, int]:
    """Failed, non-converged and singular fits over every condition and fit of a summary (one fit-level row
    per condition × fit carries the counts)."""
    def total(metric: str, column: str) -> int:
        if column not in summary.columns:
            return 0
        rows = summary[summary["metric"] == metric]
        return int(rows[column].fillna(0).sum()) if len(rows) else 0

    return {"failed": total("failure_rate", "n_failed"),
            "non-converged": total("nonconvergence_rate", "n_nonconverged"),
            "singular": total("singular_rate", "n_singular")}


def fit_quality_text(summary) -> str:
    """``"0 failed fits, 14 non-converged, 27 singular"``."""
    c = fit_quality_counts(summary)
    return f"{c['failed']} failed fits, {c['non-converged']} non-converged, {c['singular']} singular"


def write_report(out_dir: Path) -> None:
    """Call ``compare_mm.report.write_report(out_dir)`` if the report package provides it."""
    try:
        from .. import report  # deferred: keeps CLI start-up fast
    except ImportError:
        print("note: compare_mm.report is not available; skipped the report.", file=sys.stderr)
        return
    fn = getattr(report, "write_report", None)
    if fn is None:
        print("note: compare_mm.report has no write_report yet; skipped the report.", file=sys.stderr)
        return
    from ..errors import CompareMMError  # deferred: keeps CLI start-up fast

    try:
        path = fn(out_dir)
    except CompareMMError:
        raise
    except Exception as exc:  # noqa: BLE001 — the study's results are stored; say what failed
        print(f"note: the report failed ({type(exc).__name__}: {exc}); the results in {out_dir} are complete — "
              f"retry with `compare-mm report {out_dir}`.", file=sys.stderr)
        return
    print(f"report: {path if path else out_dir / 'report.html'}")
