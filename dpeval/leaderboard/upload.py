"""Leaderboard server: validation of one upload before it is queued (no Flask here).

In: the multipart form of ``POST /api/submissions`` (file name, text fields) and the
uploaded bytes; the hidden ground truth's image ids, sizes and categories. Out: the
method fields to store and the number of detections, or a one-line
:class:`~dpeval.errors.FormatError` that the server answers with ``400`` (nothing is
stored). Pixels are not decoded here (the worker does it): PNG headers, chunk CRCs and
the zlib streams are checked, and maps larger than their image are refused from
``uv_shape`` before anything is inflated.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import Any

from ..errors import DpevalWarning, FormatError
from .store import BOX_PROTOCOLS, check_method
from .text import has_control, one_line

__all__ = ["MAX_FILENAME_CHARS", "check_fields", "check_filename", "check_upload"]

MAX_FILENAME_CHARS = 255
METHOD_FIELDS = ("name", "url", "description")


def check_filename(name: str) -> None:
    """Refuse a client file name with a path, a leading dot or control characters.

    The name is never used (the server names the file); this only refuses odd clients.

    Raises
    ------
    FormatError
    """
    if (
        len(name) > MAX_FILENAME_CHARS
        or has_control(name)
        or "/" in name
        or "\\" in name
        or name.startswith(".")
    ):
        raise FormatError("the file name must be a plain name (no path, no leading dot)")


def check_fields(form: Mapping[str, str], split: str, team: str) -> dict[str, str]:
    """The submission's ``name``, ``url``, ``description`` and ``boxes``, checked.

    Parameters
    ----------
    form : mapping
        The form fields (missing ones are empty; ``boxes`` defaults to ``detected``).
    split : str
        The served split (checked with the method, as in an entry).
    team : str
        The registered team's name (the entry's team; never a form field).

    Returns
    -------
    dict
        ``{"name", "url", "description", "boxes"}``.

    Raises
    ------
    FormatError
        Bad box protocol, or a method field too long, with control characters, or a
        URL that is not http(s).
    """
    fields = {k: form.get(k, "") for k in (*METHOD_FIELDS, "boxes")}
    fields["boxes"] = fields["boxes"] or "detected"
    if fields["boxes"] not in BOX_PROTOCOLS:
        raise FormatError(f"'boxes' must be one of {list(BOX_PROTOCOLS)}")
    method = {k: fields[k] for k in METHOD_FIELDS} | {"team": team}
    try:
        check_method(method, split, "submission")
    except FormatError as exc:  # without the entry-schema remedy: this is not an entry
        raise FormatError(str(exc).split("; a leaderboard entry")[0]) from None
    return fields


def check_upload(
    raw: bytes, images: dict[int, Any], categories: dict[int, str] | None = None
) -> int:
    """Validate an uploaded challenge JSON without decoding pixels; return its detections.

    Changes the process-wide warning filters while it runs: the server calls it under a
    lock.

    Parameters
    ----------
    raw : bytes
        The uploaded file.
    images : dict[int, ImageInfo]
        The hidden ground truth's images (ids and sizes only).
    categories : dict[int, str], optional
        The hidden ground truth's categories (default ``{1: "person"}``).

    Returns
    -------
    int
        Number of detections.

    Raises
    ------
    FormatError
        One line naming the record and the problem (see the module docstring).
    """
    from ..formats import load_predictions
    from ..formats._validate import parse_json
    from ..formats.model import GroundTruth
    from .submit import check_predictions

    try:
        records = parse_json(raw, "upload")
    except FormatError:
        raise
    except RecursionError:
        raise FormatError("upload: malformed JSON (nested too deeply)") from None
    except ValueError as exc:  # e.g. integers over Python's digit limit
        raise FormatError(f"upload: malformed JSON ({one_line(str(exc), 120)})") from None
    if not isinstance(records, list):
        raise FormatError(
            "upload: the top level must be a JSON list of detections {image_id, "
            "category_id, bbox, score, uv_shape, uv_data} (COCO DensePose challenge format)"
        )
    gt = GroundTruth(
        images=images,
        annotations=(),
        categories=dict(categories or {1: "person"}),
        source="the ground truth",
    )
    _precheck_sizes(records, images)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DpevalWarning)
        preds = load_predictions(records, format="challenge-json")
        check_predictions(preds, gt)
    return len(preds.detections)


def _precheck_sizes(records: list[Any], images: dict[int, Any]) -> None:
    """Refuse maps larger than their image from ``uv_shape`` alone, before any inflating."""
    from ..formats.iuv_png import MAX_PIXELS
    from .submit import SIZE_TOLERANCE_PX

    for i, rec in enumerate(records):
        if not isinstance(rec, dict):
            continue  # the reader names it
        shape, img = rec.get("uv_shape"), images.get(rec.get("image_id"))  # type: ignore
        if img is None or not isinstance(shape, list) or len(shape) != 3:
            continue
        h, w = shape[1], shape[2]
        if not all(isinstance(v, int) for v in (h, w)) or h * w > MAX_PIXELS:
            continue  # the reader names these (over the cap: "pixel cap")
        if h > img.height + SIZE_TOLERANCE_PX or w > img.width + SIZE_TOLERANCE_PX:
            raise FormatError(
                f"upload: record {i} (image_id={rec['image_id']}): IUV map is {h}x{w} (HxW) "
                f"but the image is {img.height}x{img.width}; maps cover the box, so they "
                "cannot exceed it"
            )
