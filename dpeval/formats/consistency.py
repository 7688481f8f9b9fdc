"""Checks of predictions against their ground truth (stage 3, formats).

In: loaded :class:`~dpeval.formats.model.Predictions` and
:class:`~dpeval.formats.model.GroundTruth`. Out: nothing, or one
:class:`~dpeval.errors.FormatError` naming the predictions file, the record and the fix.
Used by ``dpeval score`` (:func:`dpeval.api.score`), ``report``/``compare``,
``validate`` and the leaderboard, so every command refuses the same inputs.
"""

from __future__ import annotations

import warnings

from ..errors import DpevalWarning, FormatError, with_hint
from ._validate import fail
from .model import GroundTruth, Predictions

__all__ = ["check_categories", "check_images"]


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


def check_images(
    p: Predictions, g: GroundTruth, allow_unknown: bool = False
) -> tuple[Predictions, int]:
    """Check categories, then refuse (or leave out) predictions on images not in the GT.

    Parameters
    ----------
    p : Predictions
    g : GroundTruth
    allow_unknown : bool
        Leave such predictions out with one counted :class:`~dpeval.errors.DpevalWarning`
        instead of failing.

    Returns
    -------
    predictions : Predictions
        ``p`` itself, or a copy without the predictions on unknown images.
    n_left_out : int

    Raises
    ------
    FormatError
        An unknown category (:func:`check_categories`), or the first prediction on an
        unknown image, with the count of all of them.
    """
    check_categories(p, g)
    items = p.detections if p.kind == "instances" else p.dense
    unknown = [x for x in items if x.image_id not in g.images]
    if not unknown:
        return p, 0
    ids = sorted({x.image_id for x in unknown})
    if not allow_unknown:
        first = unknown[0]
        py = ", or pass allow_unknown_images=True to leave them out"
        exc = FormatError(
            f"{p.source}: record {first.index} (image_id={first.image_id}): image is not in "
            f"the ground truth {g.source}; {len(unknown)} prediction(s) on {len(ids)} unknown "
            f"image(s) (first ids: {ids[:5]}); score against the matching ground truth{py}"
        )
        cli = ", or pass --allow-unknown-images to leave them out"
        raise with_hint(exc, py, cli, "--allow-unknown-images")
    warnings.warn(
        f"{p.source}: left out {len(unknown)} prediction(s) on {len(ids)} image(s) absent "
        f"from the ground truth (first ids: {ids[:5]})",
        DpevalWarning,
        stacklevel=3,
    )
    keep = tuple(x for x in items if x.image_id in g.images)
    if p.kind == "instances":
        kept = Predictions(
            "instances", detections=keep, format=p.format, source=p.source, sha256=p.sha256
        )
    else:
        kept = Predictions("dense", dense=keep, format=p.format, source=p.source, sha256=p.sha256)
    return kept, len(unknown)
