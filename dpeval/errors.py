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
]


class DpevalError(Exception):
    """Root of every error dpeval raises on purpose."""


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
