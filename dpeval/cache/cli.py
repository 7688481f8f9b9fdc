"""``dpeval cache build | info | clear``: the command-line face of :mod:`dpeval.cache`."""

from __future__ import annotations

import argparse
import json
import os
import sys

from .._argtypes import add_template, no_subcommand, positive_int
from .._output import emit
from . import KINDS, build_cache, cache_entries, clear_cache

__all__ = ["add_cache_parser"]


def _say(text: str) -> None:
    emit([text])


def _use_cache_dir(args: argparse.Namespace) -> None:
    if getattr(args, "cache_dir", None):
        os.environ["DPEVAL_CACHE_DIR"] = args.cache_dir


def _cmd_cache_build(args: argparse.Namespace) -> int:
    import time

    from .._io import cache_dir

    _use_cache_dir(args)
    bar = None
    progress = None
    if sys.stderr.isatty():
        from tqdm import tqdm

        def progress(done: int, total: int) -> None:
            nonlocal bar
            if bar is None:
                bar = tqdm(desc="geodesic table", total=total, unit="pair", unit_scale=True)
            bar.update(done - bar.n)

    t0 = time.perf_counter()
    try:
        entries = build_cache(args.template, threads=args.threads, progress=progress)
    finally:
        if bar is not None:
            bar.close()
    _say(
        f"cache {cache_dir()} ready for template {args.template} "
        f"({time.perf_counter() - t0:.1f} s):"
    )
    for e in entries:
        _say(f"  {e.kind:<9} {e.nbytes / 2**20:8.1f} MiB  {e.path}")
    return 0


def _cmd_cache_info(args: argparse.Namespace) -> int:
    from .._io import cache_dir

    _use_cache_dir(args)
    entries = cache_entries()
    total = sum(e.nbytes for e in entries)
    if args.json:
        _say(
            json.dumps(
                {
                    "cache_dir": str(cache_dir()),
                    "nbytes": total,
                    "entries": [
                        {"kind": e.kind, "path": str(e.path), "nbytes": e.nbytes, "what": e.what}
                        for e in entries
                    ],
                },
                indent=2,
            )
        )
        return 0
    _say(f"cache {cache_dir()}: {len(entries)} entries, {total / 2**20:.1f} MiB")
    for e in entries:
        _say(f"  {e.kind:<9} {e.nbytes / 2**20:8.1f} MiB  {e.path.name}  ({e.what})")
    return 0


def _cmd_cache_clear(args: argparse.Namespace) -> int:
    from .._io import cache_dir

    _use_cache_dir(args)
    removed = clear_cache(kinds=tuple(args.kind) if args.kind else KINDS)
    total = sum(e.nbytes for e in removed)
    _say(f"cache {cache_dir()}: removed {len(removed)} entries, {total / 2**20:.1f} MiB")
    return 0


def add_cache_parser(sub) -> None:
    """Add ``dpeval cache build | info | clear`` to the ``dpeval`` subparsers ``sub``."""

    cp = sub.add_parser(
        "cache",
        help="build, list or clear the cache of derived data (geodesic tables, lookups)",
        description="The cache directory is $DPEVAL_CACHE_DIR or ~/.cache/dpeval "
        "(--cache-dir overrides both).",
    )
    csub = cp.add_subparsers(dest="cache_command", metavar="SUBCOMMAND")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--cache-dir",
        metavar="DIR",
        help="cache directory (default $DPEVAL_CACHE_DIR or ~/.cache/dpeval)",
    )
    b = csub.add_parser(
        "build", parents=[common], help="build what scoring on a template needs, ahead of time"
    )
    add_template(b)
    b.add_argument("--threads", type=positive_int, help="threads for the table build")
    b.set_defaults(func=_cmd_cache_build)
    i = csub.add_parser("info", parents=[common], help="list what is cached and its size")
    i.add_argument("--json", action="store_true", help="print JSON instead of a table")
    i.set_defaults(func=_cmd_cache_info)
    c = csub.add_parser("clear", parents=[common], help="remove cached entries (all by default)")
    c.add_argument("--kind", action="append", choices=KINDS, help="only this kind (repeat)")
    c.set_defaults(func=_cmd_cache_clear)
    cp.set_defaults(func=lambda a: no_subcommand(cp))
