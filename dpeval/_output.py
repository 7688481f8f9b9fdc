"""The command-line output layer shared by every ``dpeval`` command module.

Handlers parse and validate their arguments, act, and return data: an :class:`Outcome`
(lines for stdout, notes for stderr, an exit code), a list of lines, or a bare exit code.
:func:`emit` is the one place that prints them; errors are raised as
:class:`~dpeval.errors.DpevalError` and printed by ``dpeval.cli`` as one
``dpeval: error: ...`` line (exit 2). Progress bars are drawn only on a terminal.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["Outcome", "emit", "progress_bar"]


@dataclass(frozen=True)
class Outcome:
    """What a command handler returns.

    Attributes
    ----------
    lines : sequence of str
        Printed on stdout, in order.
    notes : sequence of str
        Printed on stderr after the lines, each as ``dpeval: <note>`` (e.g. a missed
        ``--fail-under`` gate).
    code : int
        The exit code (0 success, 1 a gate missed).
    """

    lines: Sequence[str] = ()
    notes: Sequence[str] = ()
    code: int = 0


def emit(result: Outcome | Iterable[str] | int | None) -> int:
    """Print a handler's result and return its exit code.

    Example
    -------
    >>> emit(Outcome(["done"], code=0))
    done
    0
    """
    if result is None:
        return 0
    if isinstance(result, int):
        return result
    if not isinstance(result, Outcome):
        result = Outcome(tuple(result))
    for line in result.lines:
        print(line)
    sys.stdout.flush()
    for note in result.notes:
        print(f"dpeval: {note}", file=sys.stderr)
    return int(result.code)


@contextlib.contextmanager
def progress_bar(*, quiet: bool = False, **options: Any) -> Iterator[Any]:
    """A tqdm bar on stderr when it is a terminal and not ``quiet``; else ``None``.

    ``options`` go to ``tqdm`` (``total``, ``desc``, ``unit``...).
    """
    if quiet or not sys.stderr.isatty():
        yield None
        return
    from tqdm import tqdm

    # no monitor thread: scoring forks workers (and a compile-ahead child), which a
    # running thread would make unsafe
    tqdm.monitor_interval = 0
    bar = tqdm(file=sys.stderr, leave=False, **options)
    try:
        yield bar
    finally:
        bar.close()
