"""Command line: ``dpeval`` (thin layer over the API; the only module that prints).

Exit codes: 0 success, 1 a ``--fail-under`` gate missed, 2 bad input (one-line message;
the traceback only with ``--debug``).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence

from . import __version__
from .errors import DpevalError

__all__ = ["main"]


def _cmd_template_info(args: argparse.Namespace) -> int:
    from .template import load_template

    t = load_template(args.name)
    stats = t.part_stats()
    if args.json:
        info = {
            "id": t.id,
            "sha256": t.checksum,
            "source": t.source,
            "vertices": t.n_vertices,
            "faces": t.n_faces,
            "chart_vertices": t.n_chart_vertices,
            "distance_table": t.pdist is not None,
            "parts": stats,
        }
        print(json.dumps(info, indent=2))
        return 0
    bbox = t.vertices.max(axis=0) - t.vertices.min(axis=0)
    print(f"template        {t.id}")
    print(f"sha256          {t.checksum}")
    print(f"source          {t.source}")
    print(f"vertices        {t.n_vertices}")
    print(f"faces           {t.n_faces}")
    print(f"chart vertices  {t.n_chart_vertices}")
    print(f"extent (m)      x {bbox[0]:.3f}  y {bbox[1]:.3f}  z {bbox[2]:.3f}")
    print(f"distance table  {'official Pdist present' if t.pdist is not None else 'none'}")
    if t.meta.get("version"):
        print(f"version         {t.meta['version']}")
    has_faces = "faces" in stats[0]
    head = f"{'id':>3} {'part':<24} {'chart v':>7} {'3D v':>6}"
    if has_faces:
        head += f" {'faces':>6} {'area m2':>8}"
    head += f" {'U range':>13} {'V range':>13}"
    if "folded_faces" in stats[0]:
        head += f" {'folds':>5}"
    print()
    print(head)
    for s in stats:
        line = f"{s['part']:>3} {s['name']:<24} {s['chart_vertices']:>7} {s['vertices']:>6}"
        if has_faces:
            line += f" {s['faces']:>6} {s['area_m2']:>8.4f}"
        for key in ("u_range", "v_range"):
            lo, hi = s.get(key, (float("nan"), float("nan")))
            line += f"   {lo:.3f}-{hi:.3f}"
        if "folded_faces" in s:
            line += f" {s['folded_faces']:>5}"
        print(line)
    return 0


def _cmd_template_export(args: argparse.Namespace) -> int:
    from .official import export_template
    from .template import load_template

    t = load_template(args.name)
    for path in export_template(t, args.directory, with_distances=args.with_distances):
        print(path)
    return 0


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="dpeval",
        description="Evaluate and benchmark dense human pose (DensePose) predictions.",
    )
    p.add_argument("--version", action="version", version=f"dpeval {__version__}")
    p.add_argument("--debug", action="store_true", help="show tracebacks and debug logs")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    tp = sub.add_parser("template", help="inspect or export body templates")
    tsub = tp.add_subparsers(dest="template_command", metavar="SUBCOMMAND")
    info = tsub.add_parser("info", help="print a template's id, checksum, sizes and charts")
    info.add_argument("name", nargs="?", default="open", help="'open' (default) or a directory")
    info.add_argument("--json", action="store_true", help="print JSON instead of a table")
    info.set_defaults(func=_cmd_template_info)
    exp = tsub.add_parser("export", help="write a template in the official DensePose file layout")
    exp.add_argument("name", help="'open' or a template directory")
    exp.add_argument("directory", help="output directory (created if needed)")
    exp.add_argument(
        "--with-distances",
        action="store_true",
        help="also write Pdist_matrix.pkl, the condensed geodesic table (official order)",
    )
    exp.set_defaults(func=_cmd_template_export)
    tp.set_defaults(func=lambda a: (tp.print_help(), 2)[1])
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``dpeval`` command line; returns the exit code."""
    parser = _parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.debug else logging.WARNING,
        format="dpeval: %(levelname)s: %(message)s",
    )
    if not hasattr(args, "func"):
        parser.print_help()
        return 2
    try:
        return int(args.func(args))
    except DpevalError as exc:
        if args.debug:
            raise
        print(f"dpeval: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # pragma: no cover
        print("dpeval: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
