"""Predictions files of every supported kind -> :class:`Predictions` (stage 3, formats).

(Over 500 lines: format detection and one reader per instance format, with the
checks each needs; the per-format modules hold the codecs, this one the dispatch.)

In: a path (file or directory) or an in-memory list of detection dicts. Out: validated
:class:`Predictions`; instance maps stay encoded until ``Detection.load_iuv()``.

Formats (detected from the content, not the extension; ``format=`` overrides):

``challenge-json``
    COCO DensePose challenge results: a JSON list of ``{image_id, category_id, bbox,
    score, uv_shape, uv_data}`` (spec §1.2a). Eager checks: every key present, ids
    integers, bbox and score finite, ``uv_shape`` = [3, H, W] positive ints, the PNG
    header of ``uv_data`` (size = uv_shape, pixel cap, 8-bit RGB), checked before any
    pixel is inflated, then the integrity of every PNG (chunk
    CRCs, a complete zlib stream of the right length, inflated in 1 MiB steps and not
    kept). Pixels are decoded lazily (``validate_all=True`` decodes all now, as ``dpeval
    validate`` does, which also checks part ids).
``d2-pickle`` / ``d2-compressed``
    detectron2 DensePose dumps: a pickle (or a torch ``.pth`` when torch is importable)
    of a list of ``{image_id, category_id, bbox (float XYWH), score, densepose}`` dicts,
    or of per-image ``{image_id, instances: [...]}`` dicts. ``densepose`` is a
    ``(3, H, W)`` uint8 array (or any object with ``labels_uv_uint8`` or ``.numpy()``);
    the compressed variant has ``shape_chw`` + base64 PNG ``labels_uv_str``. Detectron1's
    ``uv`` key is read the same way. Float maps are read as (I, U, V), U and V in [0, 1],
    and quantised like detectron2 (``trunc(U * 255)``). Pickles are read with a restricted
    unpickler (NumPy arrays and containers only; detectron2 classes become attribute bags).
``iuv-png-dir``
    a directory of ``*.png`` image-level IUV maps (H x W x 3, R = I, G = U*255, B = V*255),
    one per image, named after the COCO ``file_name`` stem or the image id; ``images=``
    resolves names and sizes. Gives ``Predictions(kind="dense")``.
``dpeval-npz``
    see :mod:`dpeval.formats.native`.

Zero-area boxes (w or h = 0) are kept with one counted :class:`DpevalWarning`: the
official evaluator scores them (pycocotools ``loadRes`` keeps every box), and such a
detection reads no pixel, has no mask and matches nobody, so it counts as a false
positive (in the ``all`` area range; the area ranges above 0 ignore it).

Map size against the box: the evaluator samples the map at integer offsets from the box
origin up to the truncated box size, so a map smaller than ``(floor(h), floor(w))`` is a
:class:`FormatError` (the reference evaluator would index outside it); a map larger than
``(ceil(h), ceil(w))`` is kept with a counted :class:`DpevalWarning` (its extra rows and
columns are never read). Empty inputs are a warning too; everything else that is wrong
is an error. Predictions on images missing from the ground truth are the caller's
business (``dpeval.api`` reports them), not the reader's.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import math
import os
import pickle
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .._typing import PathLike, unwrap_tensor
from ..errors import FormatError, with_hint
from ._streams import StreamChecks as _StreamChecks
from ._validate import (
    WarningTally,
    as_bbox,
    as_finite,
    as_int,
    check_iuv_array,
    fail,
    load_pickle,
    parse_json,
)
from .iuv_png import (
    _WS,
    PNG_SIGNATURE,
    _b64_bytes,
    _decode,
    check_png_stream,
    decode_iuv,
    encode_iuv,
    read_png_size,
)
from .iuv_png_dir import load_iuv_png_dir, save_iuv_png_dir
from .model import Detection, Predictions
from .native import NATIVE_FORMAT, is_native, load_native, save_native

__all__ = ["FORMATS", "detect_format", "load_predictions", "save_predictions"]

FORMATS = ("challenge-json", "d2-pickle", "d2-compressed", "dpeval-npz", "iuv-png-dir")
"""Every predictions format dpeval reads and writes."""

_CHALLENGE_KEYS = ("image_id", "category_id", "bbox", "score", "uv_shape", "uv_data")
_FIX_FORMATS = f"accepted formats: {', '.join(FORMATS)}"

ImagesArg = Mapping[int, Any] | None


def detect_format(source: PathLike | Sequence[Any]) -> str:
    """Name the format of a predictions file, directory or in-memory list.

    Returns
    -------
    str
        One of :data:`FORMATS`.

    Raises
    ------
    FormatError
        If the content matches no format (the message lists the accepted ones).
    """
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if path.is_dir():
            return "iuv-png-dir"
        head = _read_head(path)
        if head.startswith(b"PK\x03\x04"):
            if is_native(path):
                return NATIVE_FORMAT
            return "d2-pickle"  # a torch zip archive
        if head[:1] == b"\x80" or head[:1] in (b"(", b"]", b"}"):
            return "d2-pickle"  # pickle protocol 2+ (or 0/1 containers)
        stripped = head.lstrip(b"\xef\xbb\xbf \t\r\n")
        if stripped[:1] in (b"[", b"{"):
            return "challenge-json"
        if not head:
            raise fail(str(source), "the file is empty", _FIX_FORMATS)
        raise fail(str(source), "is not a known predictions format", _FIX_FORMATS)
    return _detect_records(source, "<memory>")


def _detect_records(records: Any, name: str) -> str:
    if not isinstance(records, (list, tuple)):
        raise fail(
            name,
            f"holds a {type(records).__name__}",
            f"expected a list of detections; {_FIX_FORMATS}",
        )
    if not records:
        return "challenge-json"
    first = records[0]
    keys = set(first) if isinstance(first, dict) else set()
    if "uv_data" in keys:
        return "challenge-json"
    if "instances" in keys:
        inner = first["instances"]
        return _detect_records(inner, name) if inner else "d2-pickle"
    dp = first.get("densepose") if isinstance(first, dict) else None
    if dp is not None and _field(dp, "labels_uv_str") is not None:
        return "d2-compressed"
    if "densepose" in keys or "uv" in keys:
        return "d2-pickle"
    raise fail(
        f"{name}: record 0",
        f"has keys {sorted(keys) if keys else type(first).__name__}",
        "expected 'uv_data' (challenge JSON) or 'densepose' (detectron2); " + _FIX_FORMATS,
    )


def load_predictions(
    source: PathLike | Sequence[Any] | Predictions,
    *,
    images: ImagesArg = None,
    format: str | None = None,
    validate_all: bool = False,
    workers: int = 1,
) -> Predictions:
    """Read predictions in any supported format.

    Parameters
    ----------
    source : path, list of dicts, or Predictions
        A file, a directory of IUV PNGs, or in-memory detection dicts.
    images : dict[int, ImageInfo], optional
        The ground-truth images (``GroundTruth.images``; dicts with ``file_name``,
        ``height``, ``width`` also work; a GroundTruth too). Used to match the files of a
        PNG directory to images and check their sizes; other formats ignore it.
    format : str, optional
        Force one of :data:`FORMATS` instead of detecting it.
    validate_all : bool
        Decode every map now, so any bad payload raises here.
    workers : int
        Processes that check the PNG streams of a large challenge file (chunk CRCs, the
        complete zlib stream; forked workers, where ``fork`` exists); the same checks and
        the same first error (in file order) as one process.

    Returns
    -------
    Predictions

    Raises
    ------
    FormatError
        On the first problem found, naming the file, the record and the fix.

    Examples
    --------
    >>> import numpy as np
    >>> recs = [{"image_id": 1, "category_id": 1, "bbox": [0, 0, 3, 2], "score": 0.9,
    ...          "densepose": np.zeros((3, 2, 3), np.uint8)}]
    >>> load_predictions(recs).detections[0].iuv_shape
    (3, 2, 3)
    """
    if isinstance(source, Predictions):
        return source
    if images is not None and not isinstance(images, Mapping):
        images = getattr(images, "images", images)  # a GroundTruth works too
    if format is not None and format not in FORMATS:
        raise fail("load_predictions", f"unknown format {format!r}", _FIX_FORMATS)
    fmt = format or detect_format(source)
    if not isinstance(source, (str, os.PathLike)):
        return _from_records(source, "<memory>", "", fmt, validate_all, workers)
    name = str(source)
    if fmt == NATIVE_FORMAT:
        return load_native(source, validate_all=validate_all)
    if fmt == "iuv-png-dir":
        return load_iuv_png_dir(source, images, validate_all=validate_all)
    try:
        raw = Path(source).read_bytes()
    except FileNotFoundError:
        raise fail(name, "file not found", "check the predictions path") from None
    digest = hashlib.sha256(raw).hexdigest()
    if fmt == "challenge-json":
        records = parse_json(raw, name)
        if isinstance(records, dict):
            hint = " (this looks like a ground-truth file)" if "annotations" in records else ""
            raise fail(
                name,
                f"the top level is a JSON object{hint}",
                "expected a list of {image_id, category_id, bbox, score, uv_shape, "
                "uv_data} detections",
            )
    else:
        records = load_pickle(raw, name, _FIX_FORMATS)
    return _from_records(records, name, digest, fmt, validate_all, workers)


def _from_records(
    records: Any, name: str, digest: str, fmt: str, validate_all: bool, workers: int = 1
) -> Predictions:
    if fmt in ("dpeval-npz", "iuv-png-dir"):
        raise fail(name, f"format {fmt!r} needs a file or directory path", _FIX_FORMATS)
    if not isinstance(records, (list, tuple)):
        raise fail(
            name, f"the top level is a {type(records).__name__}", "expected a list of detections"
        )
    records = _flatten_per_image(records, name)
    tally = WarningTally(name)
    reader = _challenge_record if fmt == "challenge-json" else _d2_record
    dets = []
    streams = _StreamChecks(workers if not validate_all else 1)
    for i, rec in enumerate(records):
        try:
            det = reader(rec, name, i, tally, streams)
            _check_box_fit(det, f"{name}: detection {i} (image_id={det.image_id})", tally)
            if validate_all:
                det.load_iuv()
        except FormatError as exc:
            first = streams.first_error(exc)  # a corrupt map further up wins
            if first is exc:
                raise
            raise first from None
        dets.append(det)
    streams.run()
    if not dets:
        tally.add("empty predictions (no detections)", "the list is empty")
    tally.emit(stacklevel=4)
    if fmt == "d2-pickle" and any(d._iuv is None for d in dets):
        fmt = "d2-compressed"
    return Predictions("instances", detections=tuple(dets), format=fmt, source=name, sha256=digest)


def _flatten_per_image(records: Sequence[Any], name: str) -> list[Any]:
    if not records or not isinstance(records[0], dict) or "instances" not in records[0]:
        return list(records)
    out = []
    for i, rec in enumerate(records):
        if not isinstance(rec, dict) or not isinstance(rec.get("instances"), (list, tuple)):
            raise fail(
                f"{name}: image record {i}",
                "has no 'instances' list",
                "per-image records need {'image_id', 'instances': [...]}",
            )
        for inst in rec["instances"]:
            if isinstance(inst, dict) and "image_id" not in inst and "image_id" in rec:
                inst = {**inst, "image_id": rec["image_id"]}
            out.append(inst)
    return out


def _where(name: str, i: int, rec: Any) -> str:
    """Location of detection ``i`` in messages: its index, and its image id when valid."""
    where = f"{name}: detection {i}"
    if isinstance(rec, dict) and isinstance(rec.get("image_id"), (int, np.integer)):
        where = f"{where} (image_id={rec['image_id']})"
    return where


def _head_fields(rec: Any, name: str, i: int, required: tuple[str, ...]) -> tuple[str, dict]:
    if not isinstance(rec, dict):
        where = f"{name}: detection {i}"
        raise fail(where, f"is a {type(rec).__name__}", "expected a detection object")
    missing = [k for k in required if k not in rec]
    where = _where(name, i, rec)
    if missing:
        raise fail(
            where,
            f"has no {', '.join(repr(k) for k in missing)}",
            f"each detection needs {', '.join(required)}",
        )
    out = {
        "image_id": as_int(rec["image_id"], where, "image_id"),
        "category_id": as_int(rec["category_id"], where, "category_id"),
        "bbox": as_bbox(rec["bbox"], where),
        "score": as_finite(rec["score"], where, "score"),
    }
    out["bbox"].flags.writeable = False
    return where, out


def _challenge_record(
    rec: Any, name: str, i: int, tally: WarningTally, streams: _StreamChecks | None = None
) -> Detection:
    where, head = _head_fields(rec, name, i, _CHALLENGE_KEYS)
    shape = _uv_shape(rec["uv_shape"], where, "uv_shape")
    data = rec["uv_data"]
    if not isinstance(data, str) or not data:
        raise fail(
            where,
            f"'uv_data' is {type(data).__name__ if data else 'empty'}",
            "expected base64 PNG text",
        )
    png = _check_png(data, shape, where, streams)
    return Detection(**head, iuv_shape=shape, index=i, _loader=_png_loader(png, shape, where))


def _png_loader(
    data: str | bytes, shape: tuple[int, int, int], where: str
) -> Callable[[], np.ndarray]:
    if isinstance(data, bytes) and data.startswith(PNG_SIGNATURE):  # checked at load
        return lambda: _decode(data, shape, where, checked=True)
    return lambda: decode_iuv(data, shape, where=where)


def _check_png(
    data: str, shape: tuple[int, int, int], where: str, streams: _StreamChecks | None = None
) -> bytes:
    """Check a base64 PNG without decoding its pixels -> the PNG bytes.

    The header (size against ``uv_shape``, pixel cap) is checked first, from the decoded
    text when it is one line of valid base64 (decoded once), else from its first 44
    characters before the whole text is decoded (MIME line breaks, broken base64, whose
    header problems are named first); then the PNG is checked by
    :func:`~dpeval.formats.iuv_png.check_png_stream` (chunk CRCs, complete zlib stream of
    the right length), so a corrupt map is found even on a detection the scorer never
    decodes (the official evaluator decodes every map).
    """
    try:  # the common case: one line of valid base64; its first 33 bytes are the header
        png: bytes | None = binascii.a2b_base64(data, strict_mode=True)
        head = png[:33]
    except (binascii.Error, ValueError):
        png = None
        prefix = data[:256].translate(_WS)[:44]
        try:
            head = base64.b64decode(prefix + "=" * (-len(prefix) % 4), validate=True)
        except (binascii.Error, ValueError):
            raise fail(
                where,
                "'uv_data' does not start with valid base64",
                "expected the base64 text of a PNG",
            ) from None
    if len(head) < 26:  # too short to hold a header: let the full decoder say why
        decode_iuv(data, shape, where=where)
        raise fail(where, "'uv_data' is too short to hold a PNG", "re-encode the map")
    height, width = read_png_size(head, where)
    if (height, width) != shape[1:]:
        raise fail(
            where,
            f"PNG is {height}x{width} (HxW) but uv_shape is {list(shape)}",
            "uv_shape must be [3, H, W] of the encoded map",
        )
    if png is None:
        png = _b64_bytes(data, where)
    if streams is None:
        check_png_stream(png, where)
    else:
        streams.add(png, where)
    return png


def _uv_shape(value: Any, where: str, key: str) -> tuple[int, int, int]:
    if hasattr(value, "tolist") and not isinstance(value, (list, tuple)):
        value = value.tolist()
    if not isinstance(value, (list, tuple)) or len(value) != 3:
        raise fail(where, f"{key!r} is {value!r}", "expected [3, H, W]")
    shape = tuple(as_int(v, where, key) for v in value)
    if shape[0] != 3 or shape[1] < 1 or shape[2] < 1:
        raise fail(where, f"{key!r} is {list(shape)}", "expected [3, H, W] with H, W >= 1")
    return shape  # type: ignore[return-value]


ZERO_AREA_NOTE = (
    "detection(s) with a zero-area box (w or h = 0): kept and scored as the official "
    "evaluator does, a detection that matches no person (a false positive; dropped on "
    "images with ignore regions)"
)
"""The warning for zero-area boxes; one rule for ``score``, ``validate`` and the leaderboard."""


def _check_box_fit(det: Detection, where: str, tally: WarningTally) -> None:
    _, _, w, h = det.bbox
    _, mh, mw = det.iuv_shape
    if w == 0 or h == 0:  # no pixel of the map is read; it is only a false positive
        tally.add(ZERO_AREA_NOTE, f"{where}: box {[float(v) for v in det.bbox]}")
        return
    if mh < math.floor(h) or mw < math.floor(w):
        raise fail(
            where,
            f"the IUV map is {mh}x{mw} (HxW) but the box is {h:g}x{w:g}",
            "the map must cover the box: resize it to H = int(h), W = int(w)",
        )
    if mh > math.ceil(h) or mw > math.ceil(w):
        tally.add(
            "detection(s) whose IUV map is larger than the box (extra pixels unused)",
            f"{where}: map {mh}x{mw}, box {h:g}x{w:g}",
        )


# --------------------------------------------------------------------------- detectron2


def _field(obj: Any, key: str) -> Any:
    if isinstance(obj, dict):
        return obj.get(key)
    return getattr(obj, key, None)


def _d2_record(
    rec: Any, name: str, i: int, tally: WarningTally, streams: _StreamChecks | None = None
) -> Detection:
    where, head = _head_fields(rec, name, i, ("image_id", "category_id", "bbox", "score"))
    dp = rec.get("densepose", rec.get("uv"))
    if dp is None:
        raise fail(
            where,
            "has no 'densepose' (or 'uv') IUV map",
            "expected a quantised (3, H, W) uint8 map or a compressed chart result",
        )
    compressed = _field(dp, "labels_uv_str")
    if compressed is not None:
        shape = _uv_shape(_field(dp, "shape_chw"), where, "shape_chw")
        if not isinstance(compressed, (str, bytes)):
            raise fail(where, "'labels_uv_str' is not text", "expected base64 PNG text")
        text = compressed if isinstance(compressed, str) else compressed.decode("latin1")
        png = _check_png(text, shape, where, streams)
        return Detection(**head, iuv_shape=shape, index=i, _loader=_png_loader(png, shape, where))
    arr = _field(dp, "labels_uv_uint8") if not isinstance(dp, np.ndarray) else dp
    if arr is None:
        arr = dp
    arr = unwrap_tensor(arr)
    if not isinstance(arr, (np.ndarray, list)):
        raise fail(
            where,
            f"'densepose' is a {type(dp).__name__}",
            "expected a (3, H, W) uint8 array, an object with 'labels_uv_uint8', or "
            "'shape_chw' + 'labels_uv_str'",
        )
    iuv = check_iuv_array(arr, where, "'densepose' map")
    if iuv.flags.writeable:
        iuv = iuv.view()
        iuv.flags.writeable = False
    return Detection(**head, iuv_shape=iuv.shape, index=i, _iuv=iuv)  # type: ignore[arg-type]


def _read_head(path: Path, n: int = 64) -> bytes:
    try:
        with open(path, "rb") as fh:
            return fh.read(n)
    except FileNotFoundError:
        raise fail(str(path), "file not found", "check the predictions path") from None
    except IsADirectoryError:  # pragma: no cover - directories are handled earlier
        raise fail(str(path), "is a directory", _FIX_FORMATS) from None


# --------------------------------------------------------------------------- writers


def save_predictions(
    preds: Predictions,
    path: PathLike,
    format: str | None = None,
    *,
    images: ImagesArg = None,
) -> None:
    """Write predictions in one of :data:`FORMATS`.

    Parameters
    ----------
    preds : Predictions
    path : path
        Output file, or output directory for ``iuv-png-dir`` (created).
    format : str, optional
        Default from the suffix: ``.json`` challenge-json, ``.pkl``/``.pickle``
        d2-pickle, ``.npz`` dpeval-npz, no suffix iuv-png-dir.
    images : dict[int, ImageInfo], optional
        For ``iuv-png-dir``: name files after ``file_name`` stems instead of ids.

    Raises
    ------
    FormatError
        Unknown format, or a format that cannot hold this kind of prediction.
    """
    fmt = format or _format_from_suffix(path)
    if fmt not in FORMATS:
        raise fail(str(path), f"unknown output format {fmt!r}", _FIX_FORMATS)
    if fmt == NATIVE_FORMAT:
        save_native(preds, path)
        return
    if (fmt == "iuv-png-dir") != (preds.kind == "dense"):
        raise fail(
            str(path),
            f"{preds.kind} predictions cannot be written as {fmt}",
            "dense maps go to iuv-png-dir or dpeval-npz; instance maps to "
            "challenge-json, d2-pickle, d2-compressed or dpeval-npz",
        )
    if fmt == "iuv-png-dir":
        save_iuv_png_dir(preds, path, images)
    elif fmt == "challenge-json":
        out = [
            {**_head_dict(d), "uv_shape": list(d.iuv_shape), "uv_data": encode_iuv(d.load_iuv())}
            for d in preds.detections
        ]
        Path(path).write_text(json.dumps(out, separators=(",", ":")))
    else:
        recs = []
        for d in preds.detections:
            iuv = np.ascontiguousarray(d.load_iuv())
            if fmt == "d2-compressed":
                dp: Any = {"shape_chw": tuple(iuv.shape), "labels_uv_str": encode_iuv(iuv)}
            else:
                dp = iuv
            recs.append({**_head_dict(d), "densepose": dp})
        Path(path).write_bytes(pickle.dumps(recs, protocol=4))


def _head_dict(d: Detection) -> dict[str, Any]:
    return {
        "image_id": d.image_id,
        "category_id": d.category_id,
        "bbox": [float(v) for v in d.bbox],
        "score": float(d.score),
    }


def _format_from_suffix(path: PathLike) -> str:
    suffix = Path(path).suffix.lower()
    by_suffix = {
        ".json": "challenge-json",
        ".pkl": "d2-pickle",
        ".pickle": "d2-pickle",
        ".npz": NATIVE_FORMAT,
        "": "iuv-png-dir",
    }
    if suffix not in by_suffix:
        py = "pass format=NAME"
        exc = fail(
            str(path), f"cannot tell the output format from {suffix!r}", f"{py}; {_FIX_FORMATS}"
        )
        raise with_hint(exc, py, "pass --to NAME", "--to")
    return by_suffix[suffix]
