"""Argument types and handlers shared by the command-line modules (``argparse``)."""

from __future__ import annotations

import argparse

from .errors import ParamsError

__all__ = ["no_subcommand", "positive_int"]


def no_subcommand(parser: argparse.ArgumentParser) -> int:
    """Handler of a command group run without its subcommand: help, then one error line.

    Raises
    ------
    ParamsError
        Always (the command line turns it into ``dpeval: error: ...``, exit 2).
    """
    parser.print_help()
    raise ParamsError(f"{parser.prog}: no subcommand given; choose one from the list above")


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
