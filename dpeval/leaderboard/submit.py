"""Leaderboard submission: validate predictions, score every metric version, write an entry.

In: instance predictions and DensePose-COCO ground truth (paths or loaded objects) plus
the method's description. Out: an :class:`~dpeval.leaderboard.store.Entry` written to
the store with the full ``dpeval score --json`` object, 95% bootstrap intervals, input
checksums and the validation warnings.
"""

from __future__ import annotations

import os
import platform
import sys
import warnings
from collections import Counter
from datetime import datetime, timezone
from typing import Any, Literal

import numpy as np

from ..errors import DpevalWarning, FormatError, ParamsError
from ..formats.consistency import check_categories
from ..formats.model import GroundTruth, Predictions
from ..params import LEADERBOARD_RESAMPLES
from .store import (
    BOX_PROTOCOLS,
    ENTRY_SCHEMA,
    INTERVAL_KEYS,
    Entry,
    check_method,
    validate_entry,
    write_entry,
)

__all__ = ["DEFAULT_RESAMPLES", "DEFAULT_SPLIT", "build_entry", "check_predictions", "submit"]

DEFAULT_RESAMPLES = LEADERBOARD_RESAMPLES
DEFAULT_SPLIT = "minival2014"
BOOTSTRAP_LEVEL = 0.95
SIZE_TOLERANCE_PX = 1.0  # boxes and maps may overrun the image by rounding


def _load(preds: Any, gt: Any) -> tuple[Predictions, GroundTruth]:
    from ..formats import load_ground_truth, load_predictions

    g = gt if isinstance(gt, GroundTruth) else load_ground_truth(gt)
    p = load_predictions(preds, images=g.images, validate_all=True)
    return p, g


def check_predictions(p: Predictions, g: GroundTruth, *, max_dets: int = 20) -> dict[str, int]:
    """Check predictions against the ground truth before scoring.

    Parameters
    ----------
    p : Predictions
        Instance predictions (already format-checked by the loader).
    g : GroundTruth
    max_dets : int
        Detections scored per image.

    Returns
    -------
    dict[str, int]
        Recoverable problems and their counts (each also raised as one
        :class:`~dpeval.errors.DpevalWarning`): GT images without any prediction,
        images with more than ``max_dets`` detections (only the best-scored count),
        exact duplicate detections, boxes reaching outside their image.

    Raises
    ------
    FormatError
        Image-level dense maps, predictions on images absent from the GT or with a
        category it does not have, empty predictions, or maps larger than their image
        (zero-area boxes are accepted, as the official evaluator scores them; the reader warns).
    """
    if p.kind != "instances":
        raise FormatError(
            f"{p.source}: image-level dense maps cannot be ranked (no instances, no AP); "
            "submit per-detection predictions (challenge JSON, detectron2 or native)"
        )
    dets = p.detections
    if not dets:
        raise FormatError(f"{p.source}: no detections; a submission needs predictions")
    check_categories(p, g)
    unknown = sorted({d.image_id for d in dets if d.image_id not in g.images})
    if unknown:
        raise FormatError(
            f"{p.source}: predictions on {len(unknown)} image(s) absent from the ground "
            f"truth {g.source} (first ids: {unknown[:5]}); submit against the matching split"
        )
    for d in dets:
        img = g.images[d.image_id]
        where = f"{p.source}: record {d.index} (image_id={d.image_id})"
        _, mh, mw = d.iuv_shape
        if mh > img.height + SIZE_TOLERANCE_PX or mw > img.width + SIZE_TOLERANCE_PX:
            raise FormatError(
                f"{where}: IUV map is {mh}x{mw} (HxW) but the image is "
                f"{img.height}x{img.width}; maps cover the box, so they cannot exceed it"
            )
    per_image = Counter(d.image_id for d in dets)
    over = {i: n for i, n in per_image.items() if n > max_dets}
    missing = [i for i in g.images if i not in per_image]
    dup_keys = Counter(
        (d.image_id, d.category_id, float(d.score), tuple(np.round(d.bbox, 3))) for d in dets
    )
    dups = sum(n - 1 for n in dup_keys.values())
    t = SIZE_TOLERANCE_PX
    outside = 0
    for d in dets:
        img = g.images[d.image_id]
        x, y, w, h = (float(v) for v in d.bbox)
        outside += x < -t or y < -t or x + w > img.width + t or y + h > img.height + t
    counts = {
        "ground-truth images without any prediction": len(missing),
        f"images with more than max_dets={max_dets} detections (only the best scored count)": len(
            over
        ),
        f"detections beyond max_dets={max_dets} (not scored)": sum(
            n - max_dets for n in over.values()
        ),
        "exact duplicate detections (same image, box and score)": dups,
        "boxes reaching outside their image": outside,
    }
    counts = {k: int(v) for k, v in counts.items() if v}
    for msg, n in counts.items():
        warnings.warn(f"{p.source}: {n} {msg}", DpevalWarning, stacklevel=2)
    return counts


def _hardware() -> dict[str, Any]:
    return {
        "platform": platform.platform(),
        "machine": platform.machine(),
        "python": sys.version.split()[0],
        "cpu_count": os.cpu_count(),
    }


def _intervals(df: Any) -> dict[str, dict[str, float | None]]:
    out = {}
    for key in INTERVAL_KEYS:
        if key not in df.index:
            continue
        row = df.loc[key]
        out[key] = {
            k: (None if not np.isfinite(row[k]) else float(row[k]))
            for k in ("value", "ci_low", "ci_high", "std")
        }
    return out


def build_entry(
    preds: Any,
    gt: Any,
    *,
    name: str,
    team: str = "",
    url: str = "",
    description: str = "",
    split: str = DEFAULT_SPLIT,
    boxes: Literal["detected", "gt"] = "detected",
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
    template: Any = "open",
    protocol: str = "challenge2019",
    max_dets: int = 20,
    git_commit: str | None = None,
    date: datetime | None = None,
    training: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Validate, score (all metric versions) and bootstrap; return the entry dict.

    Parameters
    ----------
    preds, gt : path or loaded object
        Instance predictions and DensePose-COCO ground truth.
    name, team, url, description : str
        The method (``url``: http/https paper or code link, or empty).
    split : str
        Split name, part of the ranking group (1-64 of ``[A-Za-z0-9._-]``).
    boxes : {"detected", "gt"}
        Whether the predictions used detected or ground-truth boxes.
    resamples, seed : int
        Image bootstrap draws and seed of the 95% intervals.
    template, protocol, max_dets
        As in :func:`dpeval.api.score`.
    git_commit : str, optional
        Commit of the method's code.
    date : datetime, optional
        Submission time (default: now, UTC).
    training : dict, optional
        How the predictions were made (config, iterations, training hardware and time);
        a JSON object of at most 16 KiB, stored as ``training``.

    Returns
    -------
    dict
        Follows :data:`~dpeval.leaderboard.store.ENTRY_SCHEMA`.

    Raises
    ------
    FormatError
        Bad predictions, or a description field out of bounds.
    ParamsError
        Bad ``boxes`` or ``resamples``.

    Example
    -------
    >>> e = build_entry("examples/preds.json", "examples/gt.json", name="x")  # doctest: +SKIP
    """
    from .. import __version__
    from ..insight.analysis import score_tables
    from ..insight.bootstrap import bootstrap_metrics

    method = {"name": name, "team": team, "url": url, "description": description}
    check_method(method, split, "submission")
    if boxes not in BOX_PROTOCOLS:
        raise ParamsError(f"boxes={boxes!r}; expected one of {BOX_PROTOCOLS}")
    if not isinstance(resamples, int) or resamples < 1:
        raise ParamsError(f"resamples={resamples!r}; expected a positive integer (e.g. 200)")
    p, g = _load(preds, gt)
    found = check_predictions(p, g, max_dets=max_dets)
    scored = score_tables(p, g, template=template, protocol=protocol, max_dets=max_dets)
    summary = scored.summary
    intervals = bootstrap_metrics(
        scored.tables, resamples=resamples, seed=seed, level=BOOTSTRAP_LEVEL
    )
    score = summary.to_dict()
    score["warnings"] = dict(found)
    when = (date or datetime.now(timezone.utc)).astimezone(timezone.utc)
    entry = {
        "schema": ENTRY_SCHEMA,
        "method": method,
        "split": split,
        "boxes": boxes,
        "protocol": summary.protocol,
        "template": {"id": summary.template_id, "sha256": summary.template_sha256},
        "geodesics": _geodesics(scored.solver),
        "inputs": {
            "predictions_sha256": summary.predictions_sha256,
            "ground_truth_sha256": summary.ground_truth_sha256,
            "predictions_format": summary.predictions_format,
            "n_detections": len(p.detections),
            "n_images": len(g.images),
        },
        "score": score,
        "intervals": _intervals(intervals),
        "bootstrap": {"resamples": resamples, "seed": seed, "level": BOOTSTRAP_LEVEL},
        "validation": {"warnings": dict(found), "max_dets": max_dets},
        "dpeval_version": __version__,
        "hardware": _hardware(),
        "date": when.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        "git_commit": git_commit.lower() if git_commit else None,
    }
    if training is not None:
        entry["training"] = training
    return validate_entry(entry, f"entry for {name[:80]!r}")


def submit(preds: Any, gt: Any, *, store: str | os.PathLike[str], **kwargs: Any) -> Entry:
    """:func:`build_entry`, then write it to ``store`` as a new entry.

    Returns
    -------
    Entry
        With the path of the new file.

    Example
    -------
    >>> submit("examples/preds.json", "examples/gt.json", store="lb", name="x")  # doctest: +SKIP
    """
    return write_entry(store, build_entry(preds, gt, **kwargs))


def _geodesics(solver: Any) -> str:
    """Where the entry's distances come from: ``legacy`` (the official ``Pdist`` table),
    the engine's version (``fw2``: its numbers), or ``custom`` (another solver)."""
    mode = getattr(solver, "mode", None)
    if mode == "legacy":
        return "legacy"
    if mode == "engine":
        from ..geodesic import ENGINE_VERSION

        return f"engine-{ENGINE_VERSION}"
    return "custom"
