"""Evaluation core, inputs: read the predictions and ground truth of one scoring run.

In: paths or loaded objects. Out: loaded :class:`~dpeval.formats.model.Predictions` and
:class:`~dpeval.formats.model.GroundTruth`; a ground truth passed as predictions becomes
the GT-as-predictions sanity run. Used by :func:`dpeval.score`, ``dpeval report`` and the
leaderboard, so every entry point reads inputs the same way.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any

from ..errors import DpevalWarning
from ..formats.model import GroundTruth, Predictions
from ..template import load_template
from .gt_as_predictions import predictions_from_ground_truth

__all__ = ["read_inputs"]


def read_inputs(
    preds: Any,
    gt: Any,
    *,
    template: Any = "open",
    protocol: str = "challenge2019",
    workers: int = 1,
) -> tuple[Predictions, GroundTruth]:
    """Load predictions and ground truth (paths or loaded objects).

    A ground truth given as predictions (a GT object, or a JSON file whose top level is an
    object) becomes the sanity-run predictions of
    :func:`~dpeval.evaluation.gt_as_predictions.predictions_from_ground_truth`, with a
    :class:`~dpeval.errors.DpevalWarning`.

    Parameters
    ----------
    preds : path, list of dicts, Predictions or GroundTruth
    gt : path, dict or GroundTruth
    template : BodyTemplate or str
        Used only for the sanity run.
    protocol : {"challenge2019", "detectron2"}
        Used only for the sanity run.
    workers : int
        Processes checking the encoded maps (:func:`~dpeval.formats.load_predictions`).

    Returns
    -------
    (Predictions, GroundTruth)

    Raises
    ------
    FormatError
        Malformed inputs (from the readers).
    """
    from ..formats import load_ground_truth, load_predictions

    g = gt if isinstance(gt, GroundTruth) else load_ground_truth(gt)
    if isinstance(preds, GroundTruth) or _is_ground_truth_file(preds):
        return _ground_truth_as_predictions(preds, g, template, protocol), g
    if isinstance(preds, Predictions):
        return preds, g
    return load_predictions(preds, images=g.images, workers=workers), g


def _is_ground_truth_file(source: Any) -> bool:
    """A JSON file whose top level is an object (results files are lists)."""
    if not isinstance(source, (str, os.PathLike)) or not Path(source).is_file():
        return False
    with open(source, "rb") as fh:
        head = fh.read(4096).lstrip(b"\xef\xbb\xbf \t\r\n")
    return head[:1] == b"{"


def _ground_truth_as_predictions(
    source: Any, g: GroundTruth, template: Any, protocol: str
) -> Predictions:
    """The sanity run: score a ground truth as if it were predictions (see the README)."""
    from ..formats import load_ground_truth

    pg = source if isinstance(source, GroundTruth) else load_ground_truth(source)
    tpl = load_template(template) if isinstance(template, str) else template
    p = predictions_from_ground_truth(pg, tpl, protocol=protocol)
    warnings.warn(
        f"{pg.source}: a ground truth given as predictions: sanity run with one detection per "
        f"evaluated person ({len(p.detections)}), built from its points and masks; expect "
        "GPS and GPSm AP = 1 and IoU AP at the documented ceiling (README, scoring)",
        DpevalWarning,
        stacklevel=3,
    )
    return p
