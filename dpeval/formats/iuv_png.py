"""IUV maps as base64 PNG text, the challenge ``uv_data`` encoding (stage 3, formats).

In: a ``(3, H, W) uint8`` IUV map (channel 0 = part id I, 1 = U*255, 2 = V*255).
Out: the base64 text of an 8-bit RGB PNG with R = I, G = U*255, B = V*255, as written by
the official ``encode_results_for_competition.py``; and back.

Decoding is defensive because the text comes from submissions:

- the PNG header (IHDR) is parsed by hand *before* any pixel is inflated: the size must
  equal the expected ``(H, W)`` and ``W * H`` must not exceed :data:`MAX_PIXELS`
  (40 M pixels, a 6000x6000 map; far beyond any person box or COCO image), so a
  decompression bomb is refused with a :class:`~dpeval.errors.FormatError` before
  Pillow allocates anything;
- accepted PNG kinds: 8-bit RGB (colour type 2, what the challenge writes); palette
  (type 3, 1..8-bit indices), whose palette maps every pixel to one exact RGB triple
  (optipng, or Pillow for few colours, produce it); 8-bit RGBA (type 6) only when every
  alpha value is 255 (then it is RGB plus a constant). Grey (L, LA) and 16-bit PNGs
  are refused: they cannot carry three independent 8-bit channels, or would be
  rescaled;
- MIME base64 (line breaks, spaces) is accepted; any other non-alphabet character,
  bad padding or a truncated/garbled PNG is a FormatError;
- part ids above 24 are a FormatError. U = V = 0 on background is what the challenge
  files hold but is *not* required (the evaluator never reads U, V where I = 0).

The decoded array is a read-only ``(3, H, W)`` view of the pixels Pillow decoded
(``np.asarray(img).transpose(2, 0, 1)``: no extra copy, not C-contiguous).
"""

from __future__ import annotations

import base64
import binascii
import io
import struct
import warnings
import zlib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from .._typing import PathLike
from ..errors import FormatError

try:  # ISA-L's inflate: the same streams, about 2.5x less CPU than zlib's
    from isal import isal_zlib as _inflate

    _INFLATE_ERRORS: tuple[type[Exception], ...] = (zlib.error, _inflate.error)
except ImportError:  # pragma: no cover - isal is a dependency; zlib where it cannot install
    _inflate = zlib  # type: ignore[assignment]
    _INFLATE_ERRORS = (zlib.error,)
from ._validate import WarningTally, check_parts, fail
from .model import DenseMap, ImageInfo, Predictions

__all__ = [
    "MAX_PIXELS",
    "check_png_stream",
    "decode_iuv",
    "encode_iuv",
    "load_iuv_png_dir",
    "png_header",
    "read_png_size",
    "save_iuv_png_dir",
]

MAX_PIXELS = 40_000_000
"""Largest accepted PNG (W * H pixels); bigger headers are refused before decoding."""

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_COLOUR_TYPES = {0: "grey", 2: "RGB", 3: "palette", 4: "grey+alpha", 6: "RGBA"}
_WS = {ord(c): None for c in " \t\r\n\v\f"}


def encode_iuv(iuv: np.ndarray, *, compress_level: int = 6) -> str:
    """Encode an IUV map as base64 PNG text (the challenge ``uv_data``).

    Parameters
    ----------
    iuv : (3, H, W) uint8
        Part ids (0..24), U*255, V*255.
    compress_level : int
        zlib level 0..9 passed to Pillow (6 is Pillow's default).

    Returns
    -------
    str
        ASCII base64 text (no line breaks) of an 8-bit RGB PNG.

    Raises
    ------
    FormatError
        If ``iuv`` is not ``(3, H, W) uint8`` with part ids <= 24.

    Examples
    --------
    >>> import numpy as np
    >>> iuv = np.zeros((3, 2, 3), np.uint8); iuv[0, 1, 2] = 7
    >>> bool((decode_iuv(encode_iuv(iuv), (3, 2, 3)) == iuv).all())
    True
    """
    iuv = np.asarray(iuv)
    if iuv.dtype != np.uint8 or iuv.ndim != 3 or iuv.shape[0] != 3 or 0 in iuv.shape:
        raise fail(
            "encode_iuv",
            f"got an array of shape {iuv.shape} and dtype {iuv.dtype}",
            "expected (3, H, W) uint8 with H, W >= 1",
        )
    check_parts(iuv[0], "encode_iuv")
    img = Image.fromarray(np.ascontiguousarray(iuv.transpose(1, 2, 0)), mode="RGB")
    buf = io.BytesIO()
    img.save(buf, format="PNG", compress_level=compress_level)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def png_header(png: bytes, where: str) -> tuple[int, int, int, int]:
    """Parse the PNG signature and IHDR chunk -> ``(width, height, bit_depth, colour_type)``.

    Only the first 26 bytes are read, so this is safe on untrusted data.
    """
    if len(png) < 26 or not png.startswith(PNG_SIGNATURE):
        what = "is empty" if not png else "is not a PNG (bad signature)"
        if len(png) < 26 and png.startswith(PNG_SIGNATURE[: len(png)]) and png:
            what = f"is a truncated PNG ({len(png)} bytes)"
        raise fail(where, what, "expected a base64-encoded 8-bit RGB PNG")
    if png[12:16] != b"IHDR":
        raise fail(where, "PNG has no IHDR header chunk", "re-encode the map as an RGB PNG")
    width, height, depth, colour = struct.unpack(">IIBB", png[16:26])
    return width, height, depth, colour


def read_png_size(png: bytes, where: str) -> tuple[int, int]:
    """``(height, width)`` of a PNG from its header, refusing oversized or unusable ones."""
    width, height, depth, colour = png_header(png, where)
    if width == 0 or height == 0:
        raise fail(where, f"PNG is {width}x{height}", "expected H, W >= 1")
    if width * height > MAX_PIXELS:
        raise fail(
            where,
            f"PNG header claims {width}x{height} = {width * height} pixels, over the "
            f"{MAX_PIXELS} pixel cap (decompression-bomb guard)",
            "IUV maps are box- or image-sized; re-encode at the right size",
        )
    if not ((depth == 8 and colour in (2, 6)) or (colour == 3 and depth in (1, 2, 4, 8))):
        kind = _COLOUR_TYPES.get(colour, f"colour type {colour}")
        raise fail(
            where,
            f"PNG is {depth}-bit {kind}",
            "expected an 8-bit RGB PNG (R = I, G = U*255, B = V*255)",
        )
    return height, width


_CHUNK_OUT = 1 << 20
"""Inflate at most this many bytes at a time when checking a stream (memory stays flat)."""


def check_png_stream(png: bytes, where: str) -> tuple[int, int]:
    """Check a PNG's integrity without decoding its pixels -> ``(height, width)``.

    Every chunk's CRC-32 is verified, an ``IEND`` must close the file, and the
    concatenated ``IDAT`` zlib stream is inflated in 1 MiB steps (nothing is kept) and
    must end exactly at the size the header implies (one filter byte plus the packed
    pixels per row; Adam7-interlaced files are only inflated to the end of the stream).
    About five times cheaper than :func:`decode_iuv`; part ids are not looked at.

    Parameters
    ----------
    png : bytes
        The whole PNG file.
    where : str
        Location for error messages.

    Returns
    -------
    (int, int)
        Height and width from the header.

    Raises
    ------
    FormatError
        A bad header (as :func:`read_png_size`), a chunk whose CRC does not match, a
        missing ``IDAT``/``IEND``, or a zlib stream that is corrupt, short or too long.
    """
    height, width = read_png_size(png, where)
    depth, colour, interlace = png[24], png[25], png[28] if len(png) > 28 else 0
    channels = {2: 3, 3: 1, 6: 4}[colour]
    expected = height * (1 + (width * channels * depth + 7) // 8)

    def corrupt(what: str) -> FormatError:
        return fail(where, f"PNG data is truncated or corrupt ({what})", "re-encode the map; "
                    "the text may have been cut or edited")  # fmt: skip

    pos, idat, ended = 8, [], False
    while pos + 8 <= len(png):
        (length,) = struct.unpack(">I", png[pos : pos + 4])
        kind = png[pos + 4 : pos + 8]
        end = pos + 12 + length
        if end > len(png):
            raise corrupt(f"chunk {kind!r} at byte {pos} runs past the end of the file")
        (crc,) = struct.unpack(">I", png[end - 4 : end])
        if zlib.crc32(png[pos + 4 : end - 4]) != crc:
            raise corrupt(f"CRC mismatch in chunk {kind!r} at byte {pos}")
        if kind == b"IDAT":
            idat.append(png[pos + 8 : end - 4])
        elif kind == b"IEND":
            ended = True
            break
        pos = end
    if not ended:
        raise corrupt("no IEND chunk: the file is truncated")
    if not idat:
        raise corrupt("no IDAT chunk: no pixel data")
    inflate = _inflate.decompressobj()
    total = 0
    data = b"".join(idat)
    try:
        while data:
            out = inflate.decompress(data, _CHUNK_OUT)
            total += len(out)
            if interlace == 0 and total > expected:
                raise corrupt(f"pixel data longer than the {height}x{width} header")
            data = inflate.unconsumed_tail
        total += len(inflate.flush())
    except _INFLATE_ERRORS as e:
        raise corrupt(f"zlib: {e}") from None
    if not inflate.eof:
        raise corrupt("the zlib stream of the pixel data ends early")
    if interlace == 0 and total != expected:
        raise corrupt(f"{total} bytes of pixel data, the {height}x{width} header needs {expected}")
    return height, width


def _b64_bytes(data: str | bytes, where: str) -> bytes:
    if isinstance(data, (bytes, bytearray, memoryview)):
        data = bytes(data)
        if data.startswith(PNG_SIGNATURE):
            return data
        try:
            data = data.decode("ascii")
        except UnicodeDecodeError:
            raise fail(where, "is neither PNG bytes nor base64 text", "") from None
    if not isinstance(data, str):
        raise fail(where, f"is a {type(data).__name__}", "expected base64 PNG text")
    text = data.translate(_WS)  # MIME base64 wraps lines
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as e:
        raise fail(
            where,
            f"is not valid base64 ({e}; {len(text)} characters)",
            "expected the base64 text of a PNG; the data may be truncated or garbled",
        ) from None


def decode_iuv(
    data: str | bytes,
    shape: tuple[int, int, int] | None = None,
    *,
    where: str = "uv_data",
) -> np.ndarray:
    """Decode base64 PNG text (or raw PNG bytes) into an IUV map.

    Parameters
    ----------
    data : str or bytes
        Base64 text (line breaks allowed) or the PNG bytes themselves.
    shape : (3, H, W), optional
        Expected shape; checked against the PNG header before any pixel is decoded.
    where : str
        Location for error messages, e.g. ``"preds.json: detection 4 (image_id=785)"``.

    Returns
    -------
    (3, H, W) uint8
        Read-only view; channel 0 = I (0..24), 1 = U*255, 2 = V*255.

    Raises
    ------
    FormatError
        Bad base64, not a PNG, a size that differs from ``shape`` or exceeds
        :data:`MAX_PIXELS`, an unsupported PNG kind, truncated pixel data, part ids > 24.

    Examples
    --------
    >>> import numpy as np
    >>> decode_iuv(encode_iuv(np.ones((3, 4, 5), np.uint8))).shape
    (3, 4, 5)
    """
    png = _b64_bytes(data, where)
    height, width = read_png_size(png, where)
    if shape is not None and (len(shape) != 3 or tuple(shape[1:]) != (height, width)):
        raise fail(
            where,
            f"PNG is {height}x{width} (HxW) but uv_shape is {list(shape)}",
            "uv_shape must be [3, H, W] of the encoded map",
        )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(png), formats=("PNG",))
            img.load()
    except (OSError, SyntaxError, ValueError, EOFError, zlib.error, struct.error) as e:
        raise fail(
            where,
            f"PNG data is truncated or corrupt ({e})",
            "re-encode the map; the text may have been cut",
        ) from None
    except Image.DecompressionBombError as e:  # pragma: no cover - our cap is lower
        raise fail(where, str(e), "") from None
    if img.mode == "RGB":
        arr = np.asarray(img)
    elif img.mode == "RGBA":
        rgba = np.asarray(img)
        if (rgba[:, :, 3] != 255).any():
            raise fail(
                where,
                "PNG is RGBA with a non-opaque alpha channel",
                "expected an RGB PNG (R = I, G = U*255, B = V*255); drop the alpha channel",
            )
        arr = rgba[:, :, :3]
    elif img.mode == "P":
        arr = np.asarray(img.convert("RGB"))
    else:  # pragma: no cover - the header check leaves only the three above
        raise fail(where, f"PNG has mode {img.mode}", "expected an 8-bit RGB PNG")
    iuv = arr.transpose(2, 0, 1)
    if iuv.flags.writeable:
        iuv.flags.writeable = False
    check_parts(iuv[0], where)
    return iuv


# --------------------------------------------------------------------------- PNG directories


def _image_table(images: Mapping[int, Any] | None) -> dict[int, tuple[str, int | None, int | None]]:
    table = {}
    for image_id, info in (images or {}).items():
        if isinstance(info, ImageInfo):
            table[int(image_id)] = (info.file_name, info.height, info.width)
        elif isinstance(info, Mapping):
            table[int(image_id)] = (
                str(info.get("file_name", "")),
                info.get("height"),
                info.get("width"),
            )
        else:
            table[int(image_id)] = (str(info), None, None)
    return table


def load_iuv_png_dir(
    path: PathLike, images: Mapping[int, Any] | None = None, *, validate_all: bool = False
) -> Predictions:
    """Read a directory of image-level IUV PNGs (the ``iuv-png-dir`` format).

    Parameters
    ----------
    path : path
        Folder of ``*.png`` files, H x W x 3 (R = I, G = U*255, B = V*255), one per
        image, named ``<file_name stem>.png`` or ``<image id>.png``.
    images : dict[int, ImageInfo], optional
        Resolves file-name stems to ids and gives the expected sizes.
    validate_all : bool
        Decode every map now.

    Returns
    -------
    Predictions
        ``kind == "dense"``; maps are decoded lazily by ``DenseMap.load_iuv()``.

    Raises
    ------
    FormatError
        Files that match no image (named), two files for one image, a PNG whose header
        size differs from the image size, or any PNG check of :func:`decode_iuv`.
    """
    path = Path(path)
    name = str(path)
    if not path.is_dir():
        raise fail(name, "is not a directory", "iuv-png-dir needs a folder of *.png maps")
    table = _image_table(images)
    by_stem = {Path(fn).stem: i for i, (fn, _, _) in table.items() if fn}
    files = sorted(p for p in path.iterdir() if p.is_file())
    tally = WarningTally(name)
    found: list[tuple[int, tuple[int, int, int], Callable[[], np.ndarray]]] = []
    unmatched: list[str] = []
    owner: dict[int, str] = {}
    for f in files:
        if f.suffix.lower() != ".png":
            tally.add("non-PNG file(s) ignored", f.name)
            continue
        image_id = by_stem.get(f.stem)
        if image_id is None and f.stem.isdigit():
            image_id = int(f.stem)
            if table and image_id not in table:
                image_id = None
        if image_id is None:
            unmatched.append(f.name)
            continue
        if image_id in owner:
            raise fail(
                f"{name}/{f.name}",
                f"maps to image {image_id}, as {owner[image_id]} does",
                "keep one PNG per image",
            )
        owner[image_id] = f.name
        where = f"{name}/{f.name} (image_id={image_id})"
        height, width = check_png_stream(f.read_bytes(), where)  # corrupt files fail now
        _, ih, iw = table.get(image_id, ("", None, None))
        if ih is not None and (height, width) != (ih, iw):
            raise fail(
                where,
                f"PNG is {height}x{width} (HxW) but the image is {ih}x{iw}",
                "image-level IUV maps must have the image size",
            )
        shape = (3, height, width)
        found.append((image_id, shape, _file_loader(f, shape, where)))
    if unmatched:
        hint = (
            "pass images= (the ground truth) to match COCO file names"
            if not table
            else "name each PNG after its image's file_name stem or id"
        )
        shown = ", ".join(unmatched[:5]) + (
            f" and {len(unmatched) - 5} more" if len(unmatched) > 5 else ""
        )
        raise fail(name, f"{len(unmatched)} PNG file(s) match no image: {shown}", hint)
    found.sort(key=lambda t: t[0])  # by image id, whatever the file names
    maps = [
        DenseMap(image_id=i, iuv_shape=s, index=k, _loader=f) for k, (i, s, f) in enumerate(found)
    ]
    if validate_all:
        for m in maps:
            m.load_iuv()
    if not maps:
        tally.add("empty predictions (no PNG maps)", name)
    tally.emit(stacklevel=4)
    return Predictions("dense", dense=tuple(maps), format="iuv-png-dir", source=name)


def _file_loader(f: Path, shape: tuple[int, int, int], where: str) -> Callable[[], np.ndarray]:
    return lambda: decode_iuv(f.read_bytes(), shape, where=where)


def save_iuv_png_dir(
    preds: Predictions, path: PathLike, images: Mapping[int, Any] | None = None
) -> None:
    """Write dense predictions as one ``<stem or id>.png`` per image into ``path`` (created)."""
    path = Path(path)
    table = _image_table(images)
    path.mkdir(parents=True, exist_ok=True)
    for m in preds.dense:
        stem = Path(table[m.image_id][0]).stem if table.get(m.image_id, ("",))[0] else ""
        iuv = m.load_iuv()
        img = Image.fromarray(np.ascontiguousarray(iuv.transpose(1, 2, 0)), mode="RGB")
        img.save(path / f"{stem or m.image_id}.png", format="PNG")
