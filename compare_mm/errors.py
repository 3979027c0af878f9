"""Errors a user can cause.

Every error raised for bad user input is one of these, carries one sentence that names the offending
column, term, option or YAML key, and is printed by the CLI without a traceback (exit code 2; an
:class:`EnvironmentFailure` — a full disk, a read-only folder — exits with 1).
"""

from __future__ import annotations


class CompareMMError(Exception):
    """Base class of every user-facing compare_mm error."""

    #: the command line's exit code for this error
    exit_code = 2


class ModelSpecError(CompareMMError, ValueError):
    """The model specification (formula or spec object) is malformed; the message names the term."""


class DataError(CompareMMError, ValueError):
    """The data cannot be used with the model; the message names the column."""


class ConfigError(CompareMMError, ValueError):
    """A study configuration (YAML) is invalid; the message names the key path."""


class OptionError(CompareMMError, ValueError):
    """A backend option (prior, sampler, parameterisation, method …) is invalid; the message names it."""


class UnsupportedModelError(CompareMMError, ValueError):
    """A backend cannot fit the requested model; the message says why in one sentence."""


class NoExactValueError(OptionError):
    """The exact one-way theory has no value for this method, test or condition (the study leaves the
    ``exact`` cell empty; any other exception from the theory is a bug and propagates)."""


class EnvironmentFailure(CompareMMError):
    """The machine, not the input, failed: an output folder that cannot be written (permissions, a
    read-only mount, a full disk).  The message names the path and says what is stored; exit code 1."""

    exit_code = 1
