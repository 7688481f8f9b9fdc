"""DensePose-COCO ground truth JSON -> :class:`GroundTruth` (stage 3, formats).

(Over 500 lines: one check per DensePose field, each with its own message naming the
file, the record and the fix; splitting them would scatter the ground truth's rules.)

In: a COCO JSON file (or its parsed dict) with the DensePose fields ``dp_x, dp_y, dp_I,
dp_U, dp_V, dp_masks`` (spec §1.1). Out: a validated :class:`GroundTruth`.

Checks (each failure is one :class:`~dpeval.errors.FormatError` naming the file, the
record index and id, what was found, what was expected, and the fix):

- the file: empty, malformed JSON (line, column), top level not an object, missing
  ``images`` / ``annotations`` lists;
- images: integer ``id`` (unique), positive integer ``height`` and ``width``; PoseTrack
  ``ignore_regions_x`` / ``ignore_regions_y`` must be paired lists of polygons with
  matching lengths (at least 3 vertices each) and become ``ImageInfo.ignore_regions``;
- annotations: integer ``id`` (unique), ``image_id`` of a listed image, integer
  ``category_id``, ``bbox`` of 4 finite numbers with w, h >= 0;
- dense points, present when the annotation has ``dp_x`` (the official rule; such a
  person is evaluated, one without ``dp_x`` is ignored): all five lists present with equal
  lengths and finite values; ``dp_I`` integer-valued in 1..24; ``dp_U, dp_V`` in [0, 1];
  ``dp_x, dp_y`` in [0, 256] (the evaluator maps them with ``/255``; the DensePose docs
  describe a 256x256 box, so values in (255, 256] are kept with one counted warning);
  values within 1e-6 outside a range are float noise and kept as they are;
- ``dp_masks``: a list of 14 entries, each falsy (absent part) or an RLE dict with
  ``counts`` and ``size == [256, 256]`` whose runs tile the 256x256 mask exactly (all
  strings of the file are checked at once, :mod:`dpeval.formats._rle`; plain run-length
  lists are checked and compressed);
- every annotation's ``category_id`` is in ``categories`` (``[{id: 1, person}]`` when
  the file has no list);
- no object repeats a key (a JSON reader would keep the last value silently); a pickle,
  zip or PNG given as ground truth is named as such.

Warnings (one per kind, with a count): ``area`` missing (w*h used), ``iscrowd`` missing
(0 used), dense annotations without ``dp_masks``, ``dp_x``/``dp_y`` in (255, 256].
``segmentation`` is kept raw; other keys (``keypoints``...) are not kept.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from .._io import content_key, memo_npy
from .._typing import PathLike
from ._rle import invalid_rle_strings, valid_run_list
from ._validate import (
    N_PARTS,
    UNIT_TOL,
    WarningTally,
    as_bbox,
    as_finite,
    as_float_array,
    as_int,
    check_range,
    fail,
    parse_json,
)
from .model import N_MASK_PARTS, GroundTruth, GtPerson, ImageInfo

__all__ = ["load_ground_truth", "save_ground_truth"]

DP_XY_MAX = 255.0
"""Evaluator scale of ``dp_x``/``dp_y`` (image x = bx + dp_x * bw / 255)."""
DP_XY_HARD_MAX = 256.0
"""Above this a point is an error; (255, 256] is kept with a warning."""
MASK_SIZE = (256, 256)
_DP_KEYS = ("dp_x", "dp_y", "dp_I", "dp_U", "dp_V")


def load_ground_truth(source: PathLike | dict[str, Any]) -> GroundTruth:
    """Read and validate a DensePose-COCO ground-truth file.

    Parameters
    ----------
    source : path or dict
        A JSON file, or the already parsed dict (not modified).

    Returns
    -------
    GroundTruth
        Images by id, annotations in file order, categories; ``source`` and ``sha256`` of
        the file (``"<memory>"`` and ``""`` for a dict).

    Raises
    ------
    FormatError
        On the first problem found (see the module docstring for the checks).

    Examples
    --------
    >>> gt = load_ground_truth({"images": [{"id": 1, "height": 480, "width": 640}],
    ...                         "annotations": []})
    >>> gt.images[1].width
    640
    """
    if isinstance(source, dict):
        name, digest, doc = "<memory>", "", source
    elif isinstance(source, (str, os.PathLike)):
        path = Path(source)
        name = str(source)
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            raise fail(name, "file not found", "check the ground-truth path") from None
        except IsADirectoryError:
            raise fail(name, "is a directory", "expected a COCO JSON file") from None
        digest = hashlib.sha256(raw).hexdigest()
        _refuse_binary(raw, name)
        doc = parse_json(raw, name)
    else:
        raise fail(
            "load_ground_truth",
            f"got a {type(source).__name__}",
            "expected a path to a COCO JSON file or its parsed dict",
        )
    return _build(doc, name, digest)


def _refuse_binary(raw: bytes, name: str) -> None:
    """A pickle, zip (``.npz``, ``.pth``) or PNG is not a ground truth: say what it is."""
    kinds = (
        (b"\x80", "a Python pickle"),
        (b"PK\x03\x04", "a zip archive (.npz/.pth)"),
        (b"\x89PNG", "a PNG image"),
    )
    for magic, kind in kinds:
        if raw.startswith(magic):
            raise fail(
                name,
                f"is {kind}, not JSON",
                "the ground truth is a DensePose-COCO JSON file; predictions go first "
                "(dpeval score PREDICTIONS GROUND_TRUTH)",
            )


def _build(doc: Any, name: str, digest: str) -> GroundTruth:
    if not isinstance(doc, dict):
        raise fail(
            name,
            f"the top level is a JSON {type(doc).__name__}",
            "expected a COCO object with 'images' and 'annotations' (a list at the top level "
            "is a results file: pass it as predictions)",
        )
    for key in ("images", "annotations"):
        if key not in doc:
            raise fail(
                name,
                f"has no {key!r} list",
                "expected a COCO ground-truth object with 'images' and 'annotations'",
            )
        if not isinstance(doc[key], list):
            raise fail(name, f"{key!r} is a {type(doc[key]).__name__}", "expected a list")
    tally = WarningTally(name)
    images: dict[int, ImageInfo] = {}
    for i, rec in enumerate(doc["images"]):
        info = _image(rec, f"{name}: image {i}", i)
        if info.id in images:
            raise fail(
                f"{name}: image {i} (id={info.id})",
                "duplicate image id",
                "image ids must be unique",
            )
        images[info.id] = info
    people: list[GtPerson] = []
    seen: dict[int, int] = {}
    for i, rec in enumerate(doc["annotations"]):
        person = _annotation(rec, name, i, images, tally)
        if person.id in seen:
            raise fail(
                f"{name}: annotation {i} (id={person.id})",
                f"duplicate annotation id (also annotation {seen[person.id]})",
                "annotation ids must be unique",
            )
        seen[person.id] = i
        people.append(person)
    _check_rles(people, name)
    categories = _categories(doc.get("categories"), name)
    _check_categories(people, categories, name, "categories" in doc)
    tally.emit(stacklevel=4)
    return GroundTruth(
        images=images,
        annotations=tuple(people),
        categories=categories,
        source=name,
        sha256=digest,
    )


def _record_id(rec: Any, where: str, what: str, fix: str) -> tuple[int, str]:
    """The ``id`` of an image or annotation object ``what``, and ``where`` naming it;
    ``fix`` says what to do when it has none."""
    if not isinstance(rec, dict):
        raise fail(where, f"is a {type(rec).__name__}", f"expected an {what} object")
    if "id" not in rec:
        raise fail(where, "has no 'id'", fix)
    rec_id = as_int(rec["id"], where, "id")
    return rec_id, f"{where} (id={rec_id})"


def _image(rec: Any, where: str, index: int) -> ImageInfo:
    image_id, where = _record_id(rec, where, "image", "every image needs an integer id")
    size = []
    for key in ("height", "width"):
        if key not in rec:
            raise fail(where, f"has no {key!r}", "images need 'height' and 'width' in pixels")
        v = as_int(rec[key], where, key)
        if v <= 0:
            raise fail(where, f"{key!r} is {v}", "expected a positive pixel count")
        size.append(v)
    file_name = rec.get("file_name", "")
    if not isinstance(file_name, str):
        raise fail(where, f"'file_name' is {file_name!r}", "expected a string")
    return ImageInfo(
        id=image_id,
        height=size[0],
        width=size[1],
        file_name=file_name,
        ignore_regions=_ignore_regions(rec, where),
    )


def _ignore_regions(rec: dict[str, Any], where: str) -> tuple[np.ndarray, ...] | None:
    has_x, has_y = "ignore_regions_x" in rec, "ignore_regions_y" in rec
    if not has_x and not has_y:
        return None
    if has_x != has_y:
        raise fail(
            where,
            "has only one of 'ignore_regions_x' / 'ignore_regions_y'",
            "PoseTrack ignore regions need both coordinate lists",
        )
    xs, ys = rec["ignore_regions_x"], rec["ignore_regions_y"]
    if not isinstance(xs, list) or not isinstance(ys, list) or len(xs) != len(ys):
        raise fail(
            where,
            "'ignore_regions_x' and 'ignore_regions_y' are not two lists of the same length",
            "expected one x list and one y list per polygon",
        )
    regions = []
    for k, (px, py) in enumerate(zip(xs, ys, strict=True)):
        ax = as_float_array(px, where, f"ignore_regions_x[{k}]")
        ay = as_float_array(py, where, f"ignore_regions_y[{k}]")
        if len(ax) != len(ay):
            raise fail(
                where,
                f"ignore region {k} has {len(ax)} x but {len(ay)} y values",
                "each polygon vertex needs x and y",
            )
        if len(ax) < 3:
            raise fail(where, f"ignore region {k} has {len(ax)} vertices", "expected >= 3")
        poly = np.stack([ax, ay], axis=1)
        poly.flags.writeable = False
        regions.append(poly)
    return tuple(regions)


def _annotation(
    rec: Any, name: str, index: int, images: dict[int, ImageInfo], tally: WarningTally
) -> GtPerson:
    where = f"{name}: annotation {index}"
    fix = "every annotation needs a unique integer id"
    ann_id, where = _record_id(rec, where, "annotation", fix)
    for key in ("image_id", "category_id", "bbox"):
        if key not in rec:
            raise fail(where, f"has no {key!r}", "annotations need image_id, category_id, bbox")
    image_id = as_int(rec["image_id"], where, "image_id")
    if image_id not in images:
        raise fail(
            where,
            f"'image_id' {image_id} is not in 'images'",
            "every annotation must point to a listed image",
        )
    category_id = as_int(rec["category_id"], where, "category_id")
    bbox = as_bbox(rec["bbox"], where)
    bbox.flags.writeable = False
    if "area" in rec:
        area = as_finite(rec["area"], where, "area")
    else:
        area = float(bbox[2] * bbox[3])
        tally.add("annotation(s) without 'area' (bbox w*h used)", where)
    if "iscrowd" in rec:
        iscrowd = as_int(rec["iscrowd"], where, "iscrowd")
        if iscrowd not in (0, 1):
            raise fail(where, f"'iscrowd' is {iscrowd}", "expected 0 or 1")
    else:
        iscrowd = 0
        tally.add("annotation(s) without 'iscrowd' (0 used)", where)
    dense = _dense_points(rec, where, tally) if "dp_x" in rec else {}
    masks = _masks(rec.get("dp_masks"), where) if "dp_masks" in rec else None
    if dense and masks is None:
        tally.add("dense annotation(s) without 'dp_masks' (GPSm/IoU need them)", where)
    return GtPerson(
        id=ann_id,
        image_id=image_id,
        category_id=category_id,
        bbox=bbox,
        area=area,
        iscrowd=bool(iscrowd),
        has_dense="dp_x" in rec,
        dp_masks=masks,
        segmentation=rec.get("segmentation"),
        index=index,
        **dense,
    )


def _dense_points(rec: dict[str, Any], where: str, tally: WarningTally) -> dict[str, Any]:
    if "dp_vertex" in rec and not any(k in rec for k in _DP_KEYS[2:]):
        return _cse_points(rec, where, None)  # CSE ground truth without charts (LVIS)
    missing = [k for k in _DP_KEYS if k not in rec]
    if missing:
        raise fail(
            where,
            f"has 'dp_x' but no {', '.join(repr(k) for k in missing)}",
            "each point needs x, y, I, U, V (dp_x, dp_y, dp_I, dp_U, dp_V)",
        )
    arrays = {k: as_float_array(rec[k], where, k) for k in _DP_KEYS}
    n = len(arrays["dp_x"])
    for k in _DP_KEYS[1:]:
        if len(arrays[k]) != n:
            raise fail(
                where,
                f"{k!r} has {len(arrays[k])} values but 'dp_x' has {n}",
                "each point needs x, y, I, U, V",
            )
    parts = arrays["dp_I"]
    if (parts != np.round(parts)).any():
        i = int(np.argmax(parts != np.round(parts)))
        raise fail(where, f"'dp_I' has a non-integer value at {i}: {parts[i]}", "expected 1..24")
    check_range(parts, 1, N_PARTS, where, "dp_I", "expected part ids 1..24")
    for k in ("dp_U", "dp_V"):
        check_range(arrays[k], -UNIT_TOL, 1 + UNIT_TOL, where, k, "expected values in [0, 1]")
    for k in ("dp_x", "dp_y"):
        a = arrays[k]
        check_range(
            a,
            -UNIT_TOL,
            DP_XY_HARD_MAX + UNIT_TOL,
            where,
            k,
            "expected positions in the 256x256-normalised box, 0..255",
        )
    top = max((arrays[k].max() for k in ("dp_x", "dp_y") if n), default=0.0)
    if top > DP_XY_MAX + UNIT_TOL:
        tally.add(
            "annotation(s) with dp_x/dp_y in (255, 256] (kept; evaluator scale is /255)",
            f"{where} max {top:g}",
        )
    out: dict[str, Any] = {k: arrays[k] for k in _DP_KEYS}
    out["dp_I"] = parts.astype(np.int64)
    for a in out.values():
        a.flags.writeable = False
    if "dp_vertex" in rec:
        out.update(_cse_points(rec, where, out))
    return out


def _cse_points(rec: dict[str, Any], where: str, chart: dict[str, Any] | None) -> dict[str, Any]:
    """``dp_x, dp_y, dp_vertex, ref_model`` of a CSE annotation (detectron2 layout).

    ``dp_vertex`` holds 0-based vertex ids (-1 = no vertex, as detectron2 treats it);
    their upper bound is checked against the mesh when scoring.
    """
    if "ref_model" not in rec:
        raise fail(
            where,
            "has 'dp_vertex' but no 'ref_model'",
            'CSE annotations name their mesh, e.g. "ref_model": "smpl_27554"',
        )
    ref = rec["ref_model"]
    if not isinstance(ref, str) or not ref:
        raise fail(where, f"'ref_model' is {ref!r}", "expected a mesh name such as 'smpl_27554'")
    out: dict[str, Any] = dict(chart or {})
    if chart is None:
        for k in ("dp_x", "dp_y"):
            if k not in rec:
                raise fail(where, f"has 'dp_vertex' but no {k!r}", "each point needs x, y, vertex")
            a = as_float_array(rec[k], where, k)
            check_range(
                a, -UNIT_TOL, DP_XY_HARD_MAX + UNIT_TOL, where, k, "expected positions 0..255"
            )
            a.flags.writeable = False
            out[k] = a
    verts = as_float_array(rec["dp_vertex"], where, "dp_vertex")
    n = len(out["dp_x"])
    if len(verts) != n or len(out["dp_y"]) != n:
        raise fail(
            where,
            f"'dp_vertex' has {len(verts)} values, 'dp_x' {n}, 'dp_y' {len(out['dp_y'])}",
            "each point needs x, y and a vertex id",
        )
    if (verts != np.round(verts)).any():
        i = int(np.argmax(verts != np.round(verts)))
        raise fail(
            where, f"'dp_vertex' has a non-integer value at {i}: {verts[i]}", "expected vertex ids"
        )
    if n and verts.min() < -1:
        i = int(np.argmin(verts))
        raise fail(
            where,
            f"'dp_vertex' has {verts[i]:g} at {i} (mesh {ref!r})",
            "expected 0-based vertex ids (-1 = no vertex)",
        )
    v = verts.astype(np.int64)
    v.flags.writeable = False
    out["dp_vertex"] = v
    out["ref_model"] = ref
    return out


def _masks(value: Any, where: str) -> tuple[dict[str, Any] | None, ...] | None:
    if not value:
        return None
    if not isinstance(value, list) or len(value) != N_MASK_PARTS:
        n = len(value) if isinstance(value, list) else type(value).__name__
        raise fail(
            where,
            f"'dp_masks' is {n} entries" if isinstance(n, int) else f"'dp_masks' is a {n}",
            f"expected a list of {N_MASK_PARTS} entries (RLE dict, or empty for an absent part)",
        )
    out: list[dict[str, Any] | None] = []
    for k, m in enumerate(value):
        if not m:
            out.append(None)
            continue
        if not isinstance(m, dict) or "counts" not in m or "size" not in m:
            raise fail(
                where,
                f"dp_masks[{k}] is not an RLE dict",
                "expected {'counts': ..., 'size': [256, 256]} or an empty entry",
            )
        size = m["size"]
        if not isinstance(size, (list, tuple)) or [*size] != [*MASK_SIZE]:
            raise fail(where, f"dp_masks[{k}] has size {m['size']!r}", "expected [256, 256]")
        if not isinstance(m["counts"], (str, bytes, list)):
            raise fail(
                where,
                f"dp_masks[{k}]['counts'] is {type(m['counts']).__name__}",
                "expected an RLE string or list of run lengths",
            )
        if isinstance(m["counts"], list):  # uncompressed RLE: check, then compress
            if not valid_run_list(m["counts"], MASK_SIZE[0] * MASK_SIZE[1]):
                raise fail(
                    where,
                    f"dp_masks[{k}] is not a valid RLE of a 256x256 mask (its run lengths "
                    "are not non-negative integers summing to 65536)",
                    "re-encode the part mask with pycocotools.mask.encode",
                )
            from pycocotools import mask as mask_utils

            m = mask_utils.frPyObjects(m, *MASK_SIZE)
        out.append(m)
    return tuple(out)


def _check_rles(people: list[GtPerson], name: str) -> None:
    """Refuse compressed ``dp_masks`` whose runs do not tile the 256x256 mask exactly."""
    found = [
        (person, k, m["counts"])
        for person in people
        if person.dp_masks
        for k, m in enumerate(person.dp_masks)
        if m is not None and isinstance(m["counts"], (str, bytes))
    ]
    raw = [c.encode("utf-8") if isinstance(c, str) else c for _, _, c in found]
    n_pixels = MASK_SIZE[0] * MASK_SIZE[1]

    def check() -> np.ndarray:
        bad = invalid_rle_strings(raw, n_pixels)
        if bad:
            person, k, _ = found[bad[0]]
            more = f" ({len(bad)} invalid dp_masks entries in the file)" if len(bad) > 1 else ""
            raise fail(
                f"{name}: annotation {person.index} (id={person.id})",
                f"dp_masks[{k}] is not a valid RLE of a 256x256 mask (its runs do not add up "
                f"to 65536 pixels, or the counts string is truncated or garbled){more}",
                "re-encode the part masks with pycocotools.mask.encode, or leave the entry "
                "empty for an absent part",
            )
        return np.zeros(0, np.int64)  # the marker of a passed check

    if not raw:
        return
    lengths = np.fromiter((len(c) for c in raw), dtype=np.int64, count=len(raw))
    key = content_key(["rle-valid", str(n_pixels), lengths, b"".join(raw)])
    memo_npy("gt", key, (0,), np.dtype(np.int64), check)  # the same strings pass once


def _check_categories(
    people: list[GtPerson], categories: dict[int, str], name: str, listed: bool
) -> None:
    """Every annotation's ``category_id`` must be one of ``categories``."""
    for person in people:
        if person.category_id not in categories:
            known = ", ".join(f"{k} ({v or 'unnamed'})" for k, v in sorted(categories.items()))
            source = "'categories'" if listed else "the default categories (no 'categories' list)"
            raise fail(
                f"{name}: annotation {person.index} (id={person.id})",
                f"category_id {person.category_id} is not in {source}: {known}",
                "use a listed category id (DensePose people are category 1), or add the "
                "category to 'categories'",
            )


def _categories(value: Any, name: str) -> dict[int, str]:
    if value is None:
        return {1: "person"}
    if not isinstance(value, list):
        raise fail(name, f"'categories' is a {type(value).__name__}", "expected a list")
    cats: dict[int, str] = {}
    for i, c in enumerate(value):
        where = f"{name}: category {i}"
        if not isinstance(c, dict) or "id" not in c:
            raise fail(where, "has no 'id'", "expected {'id': 1, 'name': 'person'}")
        cats[as_int(c["id"], where, "id")] = str(c.get("name", ""))
    return cats


def save_ground_truth(gt: GroundTruth, path: PathLike) -> None:
    """Write ``gt`` as DensePose-COCO JSON (what :func:`load_ground_truth` reads back).

    Only the modelled fields are written (no ``keypoints``); ``dp_I`` is written as
    integers, other numbers as floats, so a load/save/load round trip is exact.

    Parameters
    ----------
    gt : GroundTruth
    path : path
        Output ``.json`` file (overwritten).
    """
    images = []
    for im in gt.images.values():
        rec: dict[str, Any] = {"id": im.id, "height": im.height, "width": im.width}
        if im.file_name:
            rec["file_name"] = im.file_name
        if im.ignore_regions is not None:
            rec["ignore_regions_x"] = [r[:, 0].tolist() for r in im.ignore_regions]
            rec["ignore_regions_y"] = [r[:, 1].tolist() for r in im.ignore_regions]
        images.append(rec)
    anns = []
    for a in gt.annotations:
        rec = {
            "id": a.id,
            "image_id": a.image_id,
            "category_id": a.category_id,
            "bbox": [float(v) for v in a.bbox],
            "area": a.area,
            "iscrowd": int(a.iscrowd),
        }
        if a.segmentation is not None:
            rec["segmentation"] = a.segmentation
        if a.has_dense:
            for k in _DP_KEYS:
                if getattr(a, k) is not None:
                    rec[k] = getattr(a, k).tolist()
            if a.dp_vertex is not None:
                rec["dp_vertex"] = a.dp_vertex.tolist()
                rec["ref_model"] = a.ref_model
        if a.dp_masks is not None:
            rec["dp_masks"] = [m if m is not None else [] for m in a.dp_masks]
        anns.append(rec)
    cats = [{"id": k, "name": v} for k, v in gt.categories.items()]
    doc = {"images": images, "annotations": anns, "categories": cats}
    Path(path).write_text(json.dumps(doc, separators=(",", ":"), default=_bytes_to_str))


def _bytes_to_str(o: Any) -> Any:
    if isinstance(o, bytes):
        return o.decode("ascii")
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")
