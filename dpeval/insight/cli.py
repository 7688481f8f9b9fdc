"""Command line of the insight layer: ``dpeval report`` and ``dpeval compare``.

:func:`add_insight_parsers` adds both subcommands to the ``dpeval`` parser; each sets
``func`` to a handler returning the exit code (0 ok, 1 a ``--fail-if-worse`` gate
failed; errors are raised as :class:`~dpeval.errors.DpevalError` for ``dpeval.cli``).
"""

from __future__ import annotations

import argparse
import contextlib
import time
from typing import Any

from .._argtypes import (
    add_protocol,
    add_resamples,
    add_scheduler,
    add_template,
    add_workers,
    pick,
)
from .._output import Outcome
from .bootstrap import DEFAULT_RESAMPLES, HEADLINE_METRICS

__all__ = ["add_insight_parsers", "run_compare", "run_report"]

_METRIC_CHOICES = {
    "gps_paper": "gps_paper_AP",
    "gps_perpart": "gps_perpart_AP",
    "gps": "gps_perpart_AP",
    "gpsm": "gpsm_AP",
    "iou": "iou_AP",
    "auc10": "AUC10",
    "auc30": "AUC30",
}


def add_insight_parsers(subparsers: Any) -> None:
    """Add ``report`` and ``compare`` to ``subparsers`` (from ``add_subparsers``)."""
    rp = subparsers.add_parser(
        "report",
        help="write an HTML report: intervals, per-part errors, RCP, body map, taxonomy",
    )
    rp.add_argument("predictions", help="instance predictions (format detected)")
    rp.add_argument("ground_truth", help="DensePose-COCO ground-truth JSON")
    rp.add_argument("-o", "--output", required=True, help="output directory")
    rp.add_argument("--images", help="directory of the GT images (gallery overlays)")
    _common(rp)
    rp.add_argument("--worst", type=int, default=8, help="people in the gallery (default 8)")
    rp.add_argument(
        "--no-oracles",
        action="store_true",
        help="skip the upper-bound table (what if the parts were perfect)",
    )
    rp.set_defaults(func=run_report)

    cp = subparsers.add_parser(
        "compare", help="paired image bootstrap of model B minus model A on one GT"
    )
    cp.add_argument("predictions_a", help="baseline predictions (A)")
    cp.add_argument("predictions_b", help="candidate predictions (B)")
    cp.add_argument("ground_truth", help="DensePose-COCO ground-truth JSON")
    cp.add_argument(
        "--metric",
        action="append",
        choices=sorted(_METRIC_CHOICES),
        help="metric(s) to print and gate on; repeat for several (default: all headline)",
    )
    cp.add_argument(
        "--fail-if-worse",
        action="store_true",
        help="exit 1 if B is significantly worse (95%% interval of B - A below 0) on a "
        "selected metric",
    )
    _common(cp)
    cp.set_defaults(func=run_compare)


def _common(p: argparse.ArgumentParser) -> None:
    add_template(p)
    # type int: fewer than 10 is refused by _check, with the reason
    add_resamples(p, DEFAULT_RESAMPLES, "of the images", type=int)
    add_scheduler(
        p,
        help="decode the images and run the resamples on a Dask cluster: a scheduler "
        "address, a scheduler file (.json) or local:N processes (same numbers)",
    )
    add_protocol(p)
    add_workers(p, help="worker processes (default 2)")


# options that report and compare pass on to the API as they are
_RUN_OPTIONS = ("template", "resamples", "seed", "protocol", "workers")


def _check(args: argparse.Namespace) -> None:
    from ..errors import ParamsError

    if args.resamples < 10:
        raise ParamsError(f"--resamples {args.resamples}: use at least 10 (default 1000)")


def _scheduler(args: argparse.Namespace) -> Any:
    """A context giving the Dask client of ``--scheduler`` (None without it)."""
    if not getattr(args, "scheduler", None):
        return contextlib.nullcontext()
    from ..distributed import open_client

    return open_client(args.scheduler)


def run_report(args: argparse.Namespace) -> list[str]:
    """``dpeval report``: write the report; prints its path and the summary."""
    from .analysis import analyze
    from .html import write_report

    _check(args)
    t0 = time.perf_counter()
    with _scheduler(args) as client:
        ins = analyze(
            args.predictions,
            args.ground_truth,
            oracles=not args.no_oracles,
            client=client,
            **pick(args, *_RUN_OPTIONS),
        )
    path = write_report(ins, args.output, images=args.images, n_worst=args.worst)
    lines = [
        f"{name:<16} {r['value']:.4f}  95% CI [{r['ci_low']:.4f}, {r['ci_high']:.4f}]"
        for name, r in ins.intervals.iterrows()
    ]
    return [*lines, f"report: {path}  ({time.perf_counter() - t0:.1f} s)"]


def run_compare(args: argparse.Namespace) -> Outcome:
    """``dpeval compare``: print B - A per metric; 1 if the gate is asked and fails."""
    from .analysis import compare

    _check(args)
    with _scheduler(args) as client:
        df = compare(
            args.predictions_a,
            args.predictions_b,
            args.ground_truth,
            client=client,
            **pick(args, *_RUN_OPTIONS),
        )
    wanted = (
        list(dict.fromkeys(_METRIC_CHOICES[m] for m in args.metric))
        if args.metric
        else [m for m in HEADLINE_METRICS]
    )
    wanted = [m for m in wanted if m in df.index]
    out = [
        f"paired image bootstrap, {args.resamples} resamples, seed {args.seed}; diff = B - A",
        f"{'metric':<16} {'A':>8} {'B':>8} {'diff':>9}  {'95% interval':<21} {'p':>7}",
    ]
    worse = []
    for m in wanted:
        r = df.loc[m]
        out.append(
            f"{m:<16} {r['a']:8.4f} {r['b']:8.4f} {r['diff']:+9.4f}  "
            f"[{r['ci_low']:+.4f}, {r['ci_high']:+.4f}] {r['p_value']:7.3f}"
        )
        if r["ci_high"] < 0:
            worse.append(m)
    if args.fail_if_worse and worse:
        return Outcome([*out, f"FAIL: B is significantly worse on {', '.join(worse)}"], code=1)
    return Outcome(out)
