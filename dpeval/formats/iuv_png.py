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

import numpy as np
from PIL import Image

from .._kernel_turn import KernelAfter
from ..errors import FormatError

try:  # ISA-L's inflate: the same streams, about 2.5x less CPU than zlib's
    from isal import isal_zlib as _inflate

    _INFLATE_ERRORS: tuple[type[Exception], ...] = (zlib.error, _inflate.error)
except ImportError:  # pragma: no cover - isal is a dependency; zlib where it cannot install
    _inflate = zlib  # type: ignore[assignment]
    _INFLATE_ERRORS = (zlib.error,)
from ._validate import check_parts, fail

__all__ = [
    "MAX_PIXELS",
    "check_png_stream",
    "decode_iuv",
    "encode_iuv",
    "png_header",
    "read_png_size",
    "warm_decoder",
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

    data = _idat_stream(png, where)
    inflate = _inflate.decompressobj()
    total = 0
    try:
        while data:
            out = inflate.decompress(data, _CHUNK_OUT)
            total += len(out)
            if interlace == 0 and total > expected:
                raise _corrupt(where, f"pixel data longer than the {height}x{width} header")
            data = inflate.unconsumed_tail
        total += len(inflate.flush())
    except _INFLATE_ERRORS as e:
        raise _corrupt(where, f"zlib: {e}") from None
    if not inflate.eof:
        raise _corrupt(where, "the zlib stream of the pixel data ends early")
    if interlace == 0 and total != expected:
        raise _corrupt(
            where, f"{total} bytes of pixel data, the {height}x{width} header needs {expected}"
        )
    return height, width


def _corrupt(where: str, what: str) -> FormatError:
    return fail(where, f"PNG data is truncated or corrupt ({what})", "re-encode the map; "
                "the text may have been cut or edited")  # fmt: skip


def _idat_stream(png: bytes, where: str, crc: bool = True) -> bytes:
    """The concatenated IDAT data of a PNG whose chunk CRCs all match (``crc=False``: a
    PNG :func:`check_png_stream` has passed) and which ends with IEND (FormatError
    otherwise)."""
    pos, idat, ended = 8, [], False
    while pos + 8 <= len(png):
        (length,) = struct.unpack(">I", png[pos : pos + 4])
        kind = png[pos + 4 : pos + 8]
        end = pos + 12 + length
        if end > len(png):
            raise _corrupt(where, f"chunk {kind!r} at byte {pos} runs past the end of the file")
        if crc and zlib.crc32(png[pos + 4 : end - 4]) != struct.unpack(">I", png[end - 4 : end])[0]:
            raise _corrupt(where, f"CRC mismatch in chunk {kind!r} at byte {pos}")
        if kind == b"IDAT":
            idat.append(png[pos + 8 : end - 4])
        elif kind == b"IEND":
            ended = True
            break
        pos = end
    if not ended:
        raise _corrupt(where, "no IEND chunk: the file is truncated")
    if not idat:
        raise _corrupt(where, "no IDAT chunk: no pixel data")
    return idat[0] if len(idat) == 1 else b"".join(idat)


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
    try:  # the common case first: one line of base64, nothing to strip
        return binascii.a2b_base64(data, strict_mode=True)
    except (binascii.Error, ValueError):
        pass
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
    return _decode(_b64_bytes(data, where), shape, where, checked=False)


def _decode(
    png: bytes, shape: tuple[int, int, int] | None, where: str, checked: bool
) -> np.ndarray:
    """:func:`decode_iuv` of PNG bytes; ``checked``: :func:`check_png_stream` passed them
    (their chunk CRCs are not computed again)."""
    height, width = read_png_size(png, where)
    if shape is not None and (len(shape) != 3 or tuple(shape[1:]) != (height, width)):
        raise fail(
            where,
            f"PNG is {height}x{width} (HxW) but uv_shape is {list(shape)}",
            "uv_shape must be [3, H, W] of the encoded map",
        )
    # 8-bit RGB(A), deflate, standard filters, not interlaced: ISA-L + the kernel
    if png[24:26] in (b"\x08\x02", b"\x08\x06") and png[26:29] == b"\0\0\0" and _kernel_turn():
        arr = _decode_rgb8(png, height, width, png[25], where, checked)
    else:
        arr = _decode_pillow(png, where)
    if arr.shape[2] == 4:
        rgba = arr
        if (rgba[:, :, 3] != 255).any():
            raise fail(
                where,
                "PNG is RGBA with a non-opaque alpha channel",
                "expected an RGB PNG (R = I, G = U*255, B = V*255); drop the alpha channel",
            )
        arr = rgba[:, :, :3]
    iuv = arr.transpose(2, 0, 1)
    if iuv.flags.writeable:
        iuv.flags.writeable = False
    check_parts(iuv[0], where)
    return iuv


_kernel_turn = KernelAfter(64)
"""IUV maps a process decodes with Pillow before ISA-L + :func:`~dpeval.formats._kernels.
png_unfilter` take over the 8-bit RGB(A) ones: a small run (the bundled example decodes
14) is not worth the kernel's first compilation; a large one decodes each map about 5x
faster. Both give the same bytes (tested on every PNG filter type)."""


def warm_decoder(n_maps: int) -> None:
    """Load the PNG unfilter kernel now when about ``n_maps`` maps will be decoded (more
    than Pillow's share): a process that forks decoding workers afterwards hands them a
    started Numba (about 0.4 s of each worker's start-up on the project machine)."""
    if n_maps > _kernel_turn.n:
        from ._kernels import png_unfilter

        png_unfilter(np.zeros(4, np.uint8), 1, 3, 3, np.zeros((1, 3), np.uint8))


def _decode_rgb8(
    png: bytes, height: int, width: int, colour: int, where: str, checked: bool = False
) -> np.ndarray:
    """(H, W, 3 or 4) uint8 pixels of a non-interlaced 8-bit RGB (2) or RGBA (6) PNG."""
    from ._kernels import png_unfilter

    channels = 3 if colour == 2 else 4
    stride = width * channels
    expected = height * (stride + 1)
    data = _idat_stream(png, where, crc=not checked)
    try:
        raw = _inflate.decompress(data, bufsize=expected)
    except _INFLATE_ERRORS as e:
        raise _corrupt(where, f"zlib: {e}") from None
    if len(raw) != expected:
        raise _corrupt(
            where, f"{len(raw)} bytes of pixel data, the {height}x{width} header needs {expected}"
        )
    out = np.empty((height, stride), dtype=np.uint8)
    bad = png_unfilter(np.frombuffer(raw, dtype=np.uint8), height, stride, channels, out)
    if bad >= 0:
        kind = raw[bad * (stride + 1)]
        raise _corrupt(where, f"row {bad} has PNG filter type {kind}; valid types are 0..4")
    return out.reshape(height, width, channels)


def _decode_pillow(png: bytes, where: str) -> np.ndarray:
    """(H, W, 3 or 4) uint8 pixels of any accepted PNG kind, decoded by Pillow (palette
    images expanded to RGB)."""
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
    if img.mode in ("RGB", "RGBA"):
        return np.asarray(img)
    if img.mode == "P":
        return np.asarray(img.convert("RGB"))
    raise fail(where, f"PNG has mode {img.mode}", "expected an 8-bit RGB PNG")  # pragma: no cover
