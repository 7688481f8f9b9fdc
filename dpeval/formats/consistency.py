"""Checks of predictions against their ground truth (stage 3, formats).

In: loaded :class:`~dpeval.formats.model.Predictions` and
:class:`~dpeval.formats.model.GroundTruth`. Out: nothing, or one
:class:`~dpeval.errors.FormatError` naming the predictions file, the record and the fix.
Used by ``dpeval score`` (:func:`dpeval.api.score`), ``report``/``compare``,
``validate`` and the leaderboard, so every command refuses the same inputs.
"""

from __future__ import annotations

from ._validate import fail
from .model import GroundTruth, Predictions

__all__ = ["check_categories"]


def check_categories(p: Predictions, g: GroundTruth) -> None:
    """Refuse detections whose ``category_id`` is not a ground-truth category.

    The official evaluator matches detections to ground truth of the same category
    only, so such a detection can never match and every AP silently drops to 0.

    Parameters
    ----------
    p : Predictions
        Instance predictions (dense maps have no category and pass).
    g : GroundTruth

    Raises
    ------
    FormatError
        The first detection with an unknown category, with the count of all of them.

    Examples
    --------
    >>> from dpeval.formats import GroundTruth, Predictions
    >>> gt = GroundTruth(images={}, annotations=())
    >>> check_categories(Predictions("instances", detections=()), gt)
    """
    if p.kind != "instances":
        return
    bad = [d for d in p.detections if d.category_id not in g.categories]
    if not bad:
        return
    first = bad[0]
    known = ", ".join(f"{k} ({v or 'unnamed'})" for k, v in sorted(g.categories.items()))
    ids = sorted({d.category_id for d in bad})
    raise fail(
        f"{p.source}: record {first.index} (image_id={first.image_id})",
        f"category_id {first.category_id} is not a category of the ground truth {g.source} "
        f"({known}); {len(bad)} detection(s) with category ids {ids[:5]} could never match",
        "DensePose detections are people: set category_id to 1 (or to the ground truth's id)",
    )
