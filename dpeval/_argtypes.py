"""Argument types shared by the command-line modules (``argparse`` ``type=`` callables)."""

from __future__ import annotations

import argparse

__all__ = ["positive_int"]


def positive_int(text: str) -> int:
    """An integer >= 1 (worker counts, resamples...); anything else is a usage error.

    Examples
    --------
    >>> positive_int("3")
    3
    """
    try:
        n = int(text)
    except ValueError:
        n = 0
    if n < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return n
