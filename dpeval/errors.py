"""One exception hierarchy for dpeval.

Every error raised on bad input derives from :class:`DpevalError`, names the file or
argument, says what was found and what was expected, and how to fix it.
"""

from __future__ import annotations

__all__ = [
    "DpevalError",
    "DpevalWarning",
    "FormatError",
    "GeodesicError",
    "ParamsError",
    "StateError",
    "TemplateError",
    "with_hint",
]


class DpevalError(Exception):
    """Root of every error dpeval raises on purpose.

    ``hints`` holds ``(python_text, cli_text, cli_option)`` triples for remedies that are
    spelled differently in Python and on the command line: the message carries
    ``python_text``; ``dpeval.cli`` puts ``cli_text`` in its place when the command that
    failed has ``cli_option``, and drops it otherwise, so no message names an option
    the command does not have. Add them with :func:`with_hint`.
    """

    hints: tuple[tuple[str, str, str], ...] = ()


def with_hint(exc: DpevalError, python_text: str, cli_text: str, cli_option: str) -> DpevalError:
    """Record on ``exc`` how the CLI spells the remedy ``python_text``; returns ``exc``.

    Examples
    --------
    >>> e = with_hint(FormatError("bad; pass x=True"), "; pass x=True", "; pass --x", "--x")
    >>> e.hints
    (('; pass x=True', '; pass --x', '--x'),)
    """
    exc.hints = (*exc.hints, (python_text, cli_text, cli_option))
    return exc


class FormatError(DpevalError, ValueError):
    """An input file or object does not follow the expected format."""


class TemplateError(DpevalError, ValueError):
    """A body template (open or official files) is missing, malformed or inconsistent."""


class GeodesicError(DpevalError, ValueError):
    """Bad input to the geodesic engine (mesh, vertex ids, mode)."""


class ParamsError(DpevalError, ValueError):
    """Evaluation parameters out of range or inconsistent."""


class StateError(DpevalError, RuntimeError):
    """A method was called in the wrong order (e.g. accumulate before evaluate)."""


class DpevalWarning(UserWarning):
    """Something recoverable happened; the message says what and how it was handled."""
