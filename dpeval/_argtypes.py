"""Argument types, handlers and option declarations shared by the command-line modules
(``argparse``).

The ``add_*`` helpers declare an option that several commands take, with one name, type
and default everywhere; each command says in its own words what the option does there
(``help``), where that differs.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from .errors import ParamsError

__all__ = [
    "add_protocol",
    "add_resamples",
    "add_scheduler",
    "add_template",
    "add_workers",
    "no_subcommand",
    "pick",
    "positive_int",
]


def no_subcommand(parser: argparse.ArgumentParser) -> int:
    """Handler of a command group run without its subcommand: help, then one error line.

    Raises
    ------
    ParamsError
        Always (the command line turns it into ``dpeval: error: ...``, exit 2).
    """
    parser.print_help()
    raise ParamsError(f"{parser.prog}: no subcommand given; choose one from the list above")


def pick(args: argparse.Namespace, *names: str) -> dict[str, Any]:
    """The named attributes of ``args``, as keywords for the function an option is passed
    on to as it is (its dest being that function's keyword).

    Examples
    --------
    >>> pick(argparse.Namespace(seed=0, quiet=True), "seed")
    {'seed': 0}
    """
    return {name: getattr(args, name) for name in names}


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


def add_template(p: argparse.ArgumentParser) -> None:
    """``--template``: the body template, ``open`` (default) or a directory."""
    p.add_argument("--template", default="open", help="'open' (default) or a directory")


def add_protocol(p: argparse.ArgumentParser, help: str | None = None) -> None:
    """``--protocol``: the GT-mask and point-bound rules (default ``challenge2019``)."""
    p.add_argument(
        "--protocol", choices=("challenge2019", "detectron2"), default="challenge2019", help=help
    )


def add_workers(p: argparse.ArgumentParser, help: str) -> None:
    """``--workers``: a positive count, default 2."""
    p.add_argument("--workers", type=positive_int, default=2, help=help)


def add_scheduler(p: argparse.ArgumentParser, help: str) -> None:
    """``--scheduler``: a Dask scheduler address, scheduler file or ``local:N``."""
    p.add_argument("--scheduler", metavar="ADDRESS|local:N", help=help)


def add_resamples(
    p: argparse.ArgumentParser,
    default: int,
    what: str,
    *,
    type: Callable[[str], int] = positive_int,
    seed: bool = True,
) -> None:
    """``--resamples`` (bootstrap resamples ``what``, e.g. "per entry") and, with
    ``seed``, ``--seed`` (the bootstrap seed, default 0)."""
    p.add_argument(
        "--resamples",
        type=type,
        default=default,
        help=f"bootstrap resamples {what} (default {default})",
    )
    if seed:
        p.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")
