"""The ``compare-mm`` command line.

Each sub-command lives in its own module of this package and exposes ``register(subparsers)``, which adds
its parser and sets ``func`` to a function ``(args) -> int``.  Errors a user can cause
(:class:`~compare_mm.errors.CompareMMError`) are printed as one line on stderr with exit code 2 (1 for an
:class:`~compare_mm.errors.EnvironmentFailure`); so are argparse's usage errors (with a pointer to
``--help`` instead of the usage block) and an operating-system error that escapes (exit code 1).
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from ..errors import CompareMMError

#: sub-command modules, in the order ``--help`` lists them
COMMANDS: tuple[str, ...] = ("fit", "example", "validate", "run", "summarise", "report", "config")


class OneLineParser(argparse.ArgumentParser):
    """An argparse parser whose usage errors are one line on stderr, pointing at ``--help`` (exit code 2)."""

    def error(self, message: str):  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message}; see `{self.prog} --help`.\n")


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser with every available sub-command."""
    parser = OneLineParser(
        prog="compare-mm",
        description="Fit one linear mixed model three ways and run simulation studies that compare them.",
    )
    from .. import __version__

    parser.add_argument("--version", action="version", version=f"compare-mm {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        try:
            module = importlib.import_module(f"{__name__}.{name}_cmd")
        except ModuleNotFoundError as exc:  # a sub-command not built yet
            if exc.name != f"{__name__}.{name}_cmd":
                raise
            continue
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the console script."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help (0) or a usage error, already printed in one line (2)
        return exc.code if isinstance(exc.code, int) else 2
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except CompareMMError as exc:
        print(f"compare-mm {args.command}: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print(f"compare-mm {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # output piped into `head` and the like
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - silence the flush at exit
        return 0
    except OSError as exc:  # the machine failed (a full disk, permissions): one line, exit code 1
        where = f": '{exc.filename}'" if exc.filename else ""
        print(f"compare-mm {args.command}: error: {exc.strerror or exc}{where}.", file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
