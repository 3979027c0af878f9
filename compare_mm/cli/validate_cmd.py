"""``compare-mm validate``: the shipped validation cases and the agreement table."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``validate`` sub-command."""
    p = subparsers.add_parser(
        "validate",
        help="compare our fitter with lme4's published sleepstudy fits and with statsmodels",
        description="Fit the shipped validation cases (sleepstudy against lme4 1.1-31; simulated one-way, "
                    "random-slope, nested, crossed and boundary designs against statsmodels) and print the "
                    "largest difference per quantity. Exit code 1 when our fitter disagrees with lme4.")
    p.add_argument("--json", action="store_true", help="print the table as JSON")
    p.add_argument("--bayes", action="store_true",
                   help="also compare PyMC posterior medians with REML (slow; informational only)")
    p.add_argument("--no-simulated", dest="simulated", action="store_false",
                   help="only the sleepstudy cases")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run the validation and print the table; the exit code says whether our fitter agrees with lme4."""
    # deferred: keeps CLI start-up fast
    from ..validation.validate import exit_code, format_table, run_validation, to_json

    rows = run_validation(bayes=args.bayes, simulated=args.simulated)
    print(to_json(rows) if args.json else format_table(rows))
    return exit_code(rows)
