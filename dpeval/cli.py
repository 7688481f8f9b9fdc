"""Command line: ``dpeval`` (thin layer over the API; the only module that prints).

(Over 500 lines: the argument parsers of every core command and the one output layer;
handlers stay a few lines each and call the API.)

Exit codes: 0 success, 1 a ``--fail-under`` gate missed, 2 bad input (one line on stderr,
``dpeval: error: <file>: <record>: <what>; <fix>``, also for usage errors), 3 an internal
error (a bug: one line too). Tracebacks only with ``--debug``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import sys
import warnings
from collections.abc import Sequence
from typing import NoReturn

from . import __version__
from ._argtypes import (
    add_protocol,
    add_scheduler,
    add_template,
    add_workers,
    no_subcommand,
    pick,
)
from ._output import Outcome, emit, progress_bar
from .errors import DpevalError, DpevalWarning, ParamsError
from .params import ORACLES

__all__ = ["main"]


def _cmd_template_info(args: argparse.Namespace) -> list[str]:
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
        return [json.dumps(info, indent=2)]
    bbox = t.vertices.max(axis=0) - t.vertices.min(axis=0)
    out = []
    out.append(f"template        {t.id}")
    out.append(f"sha256          {t.checksum}")
    out.append(f"source          {t.source}")
    out.append(f"vertices        {t.n_vertices}")
    out.append(f"faces           {t.n_faces}")
    out.append(f"chart vertices  {t.n_chart_vertices}")
    out.append(f"extent (m)      x {bbox[0]:.3f}  y {bbox[1]:.3f}  z {bbox[2]:.3f}")
    out.append(f"distance table  {'official Pdist present' if t.pdist is not None else 'none'}")
    if t.meta.get("version"):
        out.append(f"version         {t.meta['version']}")
    has_faces = "faces" in stats[0]
    head = f"{'id':>3} {'part':<24} {'chart v':>7} {'3D v':>6}"
    if has_faces:
        head += f" {'faces':>6} {'area m2':>8}"
    head += f" {'U range':>13} {'V range':>13}"
    if "folded_faces" in stats[0]:
        head += f" {'folds':>5}"
    out.append("")
    out.append(head)
    for s in stats:
        line = f"{s['part']:>3} {s['name']:<24} {s['chart_vertices']:>7} {s['vertices']:>6}"
        if has_faces:
            line += f" {s['faces']:>6} {s['area_m2']:>8.4f}"
        for key in ("u_range", "v_range"):
            lo, hi = s.get(key, (float("nan"), float("nan")))
            line += f"   {lo:.3f}-{hi:.3f}"
        if "folded_faces" in s:
            line += f" {s['folded_faces']:>5}"
        out.append(line)
    return out


def _cmd_template_export(args: argparse.Namespace) -> list[str]:
    from .template import export_template, load_template

    t = load_template(args.name)
    distances = None
    if args.with_distances:
        from .geodesic import GeodesicSolver

        distances = GeodesicSolver(t, mode="engine")
    return [str(path) for path in export_template(t, args.directory, distances=distances)]


def _parse_gates(items: list[str]) -> list[tuple[str, str, float]]:
    from .errors import ParamsError

    gates = []
    for item in items:
        key, sep, value = item.partition("=")
        metric, dot, stat = key.partition(".")
        try:
            threshold = float(value)
        except ValueError:
            threshold = float("nan")
        if not sep or not dot or threshold != threshold:
            raise ParamsError(
                f"--fail-under {item!r}: expected METRIC.STAT=VALUE, e.g. gps_perpart.AP=0.5 "
                "or points.AUC10=0.3"
            )
        gates.append((metric, stat, threshold))
    return gates


def _parse_schema(text: str) -> tuple[int, int, int]:
    try:
        k, d, s = (int(x) for x in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected K,D,S, e.g. 2,16,112") from None
    if min(k, d, s) < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: K, D and S must be positive")
    return k, d, s


# options of `dpeval score` passed on to dpeval.score as they are (each dest is its keyword)
_SCORE_OPTIONS = (
    "template", "kappa", "protocol", "oracle", "min_iou", "workers", "allow_unknown_images",
    "meshes", "mesh_registry", "vertex_embeddings", "checkpoint", "mesh_basis", "storage",
    "storage_shape", "geodists",
)  # fmt: skip


def _cmd_score(args: argparse.Namespace) -> Outcome:
    from pathlib import Path

    from .api import score
    from .errors import ParamsError

    gates = _parse_gates(args.fail_under or [])
    ground_truth = _evaluable_ground_truth(args.ground_truth)
    with contextlib.ExitStack() as stack:
        bar = stack.enter_context(progress_bar(quiet=args.quiet, desc="images", unit="img"))
        progress = (lambda n: bar.update(n - bar.n)) if bar is not None else None
        client = None
        if args.scheduler:
            from .distributed import open_client

            client = stack.enter_context(open_client(args.scheduler))
        summary = score(
            args.predictions,
            ground_truth,
            metrics=args.metric or "all",
            progress=progress,
            client=client,
            **pick(args, *_SCORE_OPTIONS),
        )
    if args.json:
        Path(args.json).write_text(summary.to_json())
    failed = []
    for metric, stat, threshold in gates:
        block = summary.metrics.get(metric)
        if block is None or stat not in block:
            raise ParamsError(
                f"--fail-under {metric}.{stat}: no such number in this run; metrics run: "
                f"{sorted(summary.metrics)}"
            )
        value = block[stat]
        if value < 0:  # -1: no ground truth in this setting (pycocotools' convention)
            raise ParamsError(
                f"--fail-under {metric}.{stat}: undefined in this run (-1: no evaluated person "
                "of the ground truth falls in this setting, e.g. no medium-sized people for "
                "APm); gate on a number the ground truth supports, such as AP"
            )
        if not value >= threshold:
            failed.append(f"{metric}.{stat} = {value:.4f} < {threshold}")
    return Outcome(
        lines=() if args.quiet else summary.lines(official=args.official),
        notes=[f"gate missed: {f}" for f in failed],
        code=1 if failed else 0,
    )


def _evaluable_ground_truth(path: str):
    """The ground truth, loaded once; refused when it has nobody to score (all n/a)."""
    from .errors import FormatError
    from .formats import load_ground_truth

    gt = load_ground_truth(path)
    if not any(a.has_dense for a in gt.annotations):
        raise FormatError(
            f"{path}: none of its {len(gt.annotations)} annotation(s) has dense points "
            "(dp_x, dp_y, dp_I, dp_U, dp_V), so every number would be undefined (n/a); "
            "score against a DensePose ground truth (COCO instance or keypoint files have no "
            "dense points)"
        )
    return gt


def _cmd_convert(args: argparse.Namespace) -> list[str]:
    from .formats import load_ground_truth, load_predictions, save_predictions
    from .formats.cse import is_cse_source

    if is_cse_source(args.input) or (args.to or "") in ("d2-cse", "dpeval-cse-npz"):
        return _convert_cse(args)
    images = load_ground_truth(args.gt).images if args.gt else None
    preds = load_predictions(args.input, images=images)
    save_predictions(preds, args.output, format=args.to, images=images)
    n = len(preds.detections) if preds.kind == "instances" else len(preds.dense)
    return [f"{args.input} ({preds.format}) -> {args.output} ({args.to or 'by suffix'}): {n} maps"]


def _convert_cse(args: argparse.Namespace) -> list[str]:
    from pathlib import Path

    from .errors import ParamsError
    from .formats.cse import load_cse_predictions, save_cse_d2, save_cse_native

    preds = load_cse_predictions(args.input, storage=args.storage)
    to = args.to or ("dpeval-cse-npz" if Path(args.output).suffix.lower() == ".npz" else "d2-cse")
    if to not in ("d2-cse", "dpeval-cse-npz"):
        raise ParamsError(
            f"{args.input} holds CSE predictions ({preds.format}); convert them to d2-cse "
            "or dpeval-cse-npz"
        )
    (save_cse_native if to == "dpeval-cse-npz" else save_cse_d2)(preds, args.output)
    return [f"{args.input} ({preds.format}) -> {args.output} ({to}): {len(preds.detections)} maps"]


def _cmd_validate(args: argparse.Namespace) -> list[str]:
    from .formats import load_ground_truth, load_predictions
    from .formats.consistency import check_images

    if not args.predictions and not args.gt:
        raise ParamsError(
            "dpeval validate: nothing to check; pass --predictions FILE and/or --gt FILE"
        )
    gt = load_ground_truth(args.gt) if args.gt else None
    from .formats.cse import is_cse_source

    out: list[str] = []
    if args.predictions and is_cse_source(args.predictions):
        return _validate_cse(args.predictions, gt, args.gt)
    if args.predictions:
        with warnings.catch_warnings(record=True) as said:  # held back: an error wins
            warnings.simplefilter("always")
            images = gt.images if gt else None
            p = load_predictions(args.predictions, images=images, validate_all=True)
        n = len(p.detections) if p.kind == "instances" else len(p.dense)
        kind = "instance" if p.kind == "instances" else "dense"
        if n == 0:
            raise ParamsError(
                f"{args.predictions}: holds no predictions (0 {kind} maps); check the path, "
                "or the export step that wrote it"
            )
        if gt is not None:
            check_images(p, gt, False)  # the same checks as `dpeval score`
        for w in said:
            warnings.showwarning(w.message, w.category, w.filename, w.lineno)
        against = f", consistent with {args.gt}" if gt is not None else ""
        out.append(
            f"{args.predictions}: {p.format}, {n} {kind} maps, all decoded and valid{against}"
        )
    if gt is not None:
        dense = sum(a.has_dense for a in gt.annotations)
        out.append(
            f"{args.gt}: {len(gt.images)} images, {len(gt.annotations)} annotations, "
            f"{dense} with dense points"
        )
    return out


def _validate_cse(path: str, gt, gt_path: str | None) -> list[str]:
    from .formats.cse import load_cse_predictions

    p = load_cse_predictions(path)
    out: list[str] = []
    for d in p.detections:
        d.load()  # every map read: shapes, storage records, NaN/inf
    unknown = sorted({d.image_id for d in p.detections} - set(gt.images)) if gt else []
    if unknown:
        raise ParamsError(
            f"{path}: {len(unknown)} image id(s) not in {gt_path} (first: {unknown[:5]}); "
            "score against the matching ground truth"
        )
    out.append(
        f"{path}: {p.format}, {len(p.detections)} CSE detections (D = {p.embed_dim}), "
        "all maps read and finite"
    )
    if gt is not None:
        meshes = sorted({a.ref_model for a in gt.annotations if a.ref_model})
        n_ann = len(gt.annotations)
        out.append(f"{gt_path}: {len(gt.images)} images, {n_ann} annotations, meshes {meshes}")
    return out


class _Parser(argparse.ArgumentParser):
    """``argparse`` with one-line usage errors: ``dpeval: error: <command>: <what>; <fix>``.

    Subcommand parsers inherit the class (``add_subparsers`` uses the parent's type).
    """

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"dpeval: error: {self.prog}: {message}; see {self.prog} --help\n")


def active_parser(parser: argparse.ArgumentParser, args: argparse.Namespace):
    """The (sub)parser that parsed ``args``: follows every chosen subcommand down."""
    while True:
        subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        name = getattr(args, subs[0].dest, None) if subs else None
        if name is None or name not in subs[0].choices:
            return parser
        parser = subs[0].choices[name]


def cli_message(exc: DpevalError, parser: argparse.ArgumentParser) -> str:
    """``exc``'s message with its Python-API remedies spelled for ``parser``'s command.

    A remedy whose option the command lacks is left out (see
    :attr:`dpeval.errors.DpevalError.hints`).
    """
    message = str(exc)
    options = {s for a in parser._actions for s in a.option_strings}
    for python_text, cli_text, option in exc.hints:
        message = message.replace(python_text, cli_text if option in options else "")
    return message


def _parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="dpeval",
        description="Evaluate and benchmark dense human pose (DensePose) predictions.",
    )
    p.add_argument("--version", action="version", version=f"dpeval {__version__}")
    p.add_argument("--debug", action="store_true", help="show tracebacks and debug logs")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    sp = sub.add_parser("score", help="score predictions against DensePose ground truth")
    sp.add_argument("predictions", help="predictions file or directory (format detected)")
    sp.add_argument("ground_truth", help="DensePose-COCO ground-truth JSON")
    add_template(sp)
    sp.add_argument(
        "--metric",
        action="append",
        choices=("gps", "gpsm", "iou", "points", "all"),
        help="metric(s) to compute; repeat for several (default: all)",
    )
    sp.add_argument(
        "--kappa",
        choices=("per-part", "paper"),
        default="per-part",
        help="kappa of GPSm (GPS is reported with both; default per-part)",
    )
    add_protocol(sp, help="GT-mask and point-bound rules")
    sp.add_argument(
        "--min-iou", type=float, default=0.5, help="lowest threshold (0.2 gives detectron2's APex)"
    )
    add_workers(sp, help="decoding threads (>= 1)")
    add_scheduler(
        sp,
        help="decode the images on a Dask cluster: a scheduler address (tcp://host:8786), "
        "a scheduler file (.json) or local:N worker processes (needs dask[distributed])",
    )
    sp.add_argument("--json", metavar="OUT", help="write the full results as JSON")
    sp.add_argument("--official", action="store_true", help="print the official 18-line summaries")
    sp.add_argument(
        "--fail-under",
        action="append",
        metavar="METRIC.STAT=VALUE",
        help="exit 1 if below VALUE, e.g. gps_perpart.AP=0.5",
    )
    sp.add_argument(
        "--allow-unknown-images",
        action="store_true",
        help="leave out predictions on unknown images",
    )
    sp.add_argument(
        "--oracle",
        choices=tuple(ORACLES),
        help="an upper bound, not a score: replace predicted parts/UVs at GT points by GT "
        "ones as the official evaluator's UB_geo_* flags do (gt-parts, gt-parts-uv0, uv0, "
        "gt-iuv)",
    )
    sp.add_argument("-q", "--quiet", action="store_true", help="print nothing")
    cse = sp.add_argument_group("Continuous Surface Embeddings (CSE predictions)")
    cse.add_argument(
        "--mesh",
        action="append",
        dest="meshes",
        metavar="NAME=FILE",
        help="mesh of ref_model NAME (repeat)",
    )
    cse.add_argument(
        "--meshes",
        dest="mesh_registry",
        metavar="JSON",
        help="registry: ref_model name -> mesh file",
    )
    cse.add_argument(
        "--vertex-embeddings",
        action="append",
        metavar="NAME=FILE",
        help="(V, D) vertex embeddings of mesh NAME (.npy/.npz/.pt/.pkl; repeat)",
    )
    cse.add_argument("--checkpoint", help="detectron2 CSE checkpoint holding the embedders")
    cse.add_argument(
        "--mesh-basis", action="append", metavar="NAME=FILE", help="phi_<mesh>_256.pkl basis"
    )
    cse.add_argument(
        "--storage", action="append", metavar="FILE", help="DensePoseEvaluatorStorage.N.bin"
    )
    cse.add_argument(
        "--storage-schema",
        type=_parse_schema,
        dest="storage_shape",
        metavar="K,D,S",
        help="storage coarse channels, embedding size, heatmap size (default 2,16,112)",
    )
    cse.add_argument(
        "--geodists",
        action="append",
        metavar="NAME=FILE",
        help="full geodesic table geodists_<mesh>.pkl, used as is (legacy mode)",
    )
    sp.set_defaults(func=_cmd_score)

    cp = sub.add_parser("convert", help="convert predictions between formats")
    cp.add_argument("input", help="predictions in any supported format")
    cp.add_argument("output", help="output path (format from --to or the suffix)")
    cp.add_argument(
        "--to",
        choices=(
            "challenge-json",
            "d2-pickle",
            "d2-compressed",
            "dpeval-npz",
            "iuv-png-dir",
            "d2-cse",
            "dpeval-cse-npz",
        ),
        help="output format (CSE predictions: d2-cse or dpeval-cse-npz)",
    )
    cp.add_argument(
        "--storage", action="append", metavar="FILE", help="CSE: DensePoseEvaluatorStorage.N.bin"
    )
    cp.add_argument("--gt", help="ground truth (image ids and file names for PNG dirs)")
    cp.set_defaults(func=_cmd_convert)

    vp = sub.add_parser("validate", help="check input files completely (decodes every map)")
    vp.add_argument("--predictions", help="predictions file or directory")
    vp.add_argument("--gt", help="ground-truth JSON")
    vp.set_defaults(func=_cmd_validate)

    from .insight.cli import add_insight_parsers
    from .leaderboard.cli import add_leaderboard_parser
    from .synth.cli import add_synth_parser

    add_synth_parser(sub)
    from .cse.cli import add_cse_parser

    add_cse_parser(sub)
    add_insight_parsers(sub)
    add_leaderboard_parser(sub)

    from .cache.cli import add_cache_parser

    add_cache_parser(sub)

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
    tp.set_defaults(func=lambda a: no_subcommand(tp))
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
        args.func = lambda a: no_subcommand(parser)
    with warnings.catch_warnings():  # the CLI's own policy, whatever the caller's filters
        warnings.simplefilter("default", DpevalWarning)
        if not args.debug:  # one line per warning, without source lines

            def show(message, category, filename, lineno, file=None, line=None):
                print(f"dpeval: warning: {message}", file=sys.stderr)

            warnings.showwarning = show
        return _run(args, parser)


def _run(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    """Run the chosen command; turn every failure into one line and an exit code."""
    try:
        return emit(args.func(args))
    except DpevalError as exc:
        if args.debug:
            raise
        message = " ".join(cli_message(exc, active_parser(parser, args)).split())
        print(f"dpeval: error: {message}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # output piped into e.g. `head`: stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except OSError as exc:  # unreadable inputs, unwritable outputs, full disks
        if args.debug:
            raise
        print(f"dpeval: error: {exc.filename or ''}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # pragma: no cover
        print("dpeval: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # a bug, not bad input: still one line, traceback on --debug
        if args.debug:
            raise
        what = " ".join(f"{type(exc).__name__}: {exc}".split())[:300]
        print(
            f"dpeval: error: internal error ({what}); rerun with --debug for the traceback "
            "and please report it",
            file=sys.stderr,
        )
        return 3


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
