"""dpeval.formats.iuv_png: encode/decode of challenge uv_data, real file, bad inputs."""

from __future__ import annotations

import base64
import io
import json
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dpeval.errors import FormatError
from dpeval.formats import MAX_PIXELS, decode_iuv, encode_iuv

SHARED = Path(__file__).resolve().parents[1] / "data" / "densepose_real"  # CC BY-NC fixtures
CHALLENGE = SHARED / "densepose_challenge_example_results.json"


def _iuv(h: int = 7, w: int = 5, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    iuv = rng.integers(0, 256, (3, h, w), dtype=np.uint8)
    iuv[0] = rng.integers(0, 25, (h, w))
    return iuv


def _png_b64(arr_hwc: np.ndarray) -> str:
    buf = io.BytesIO()
    Image.fromarray(arr_hwc).save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode()


def _raw_png(width: int, height: int, colour: int = 2, depth: int = 8, body: bytes = b"") -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    ihdr = struct.pack(">IIBBBBB", width, height, depth, colour, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", body) + chunk(b"IEND", b"")


def test_round_trip_exact_and_layout():
    iuv = _iuv()
    text = encode_iuv(iuv)
    out = decode_iuv(text, (3, 7, 5))
    assert out.dtype == np.uint8 and out.shape == (3, 7, 5)
    np.testing.assert_array_equal(out, iuv)
    img = Image.open(io.BytesIO(base64.b64decode(text)))
    assert img.mode == "RGB" and img.size == (5, 7)  # W, H
    np.testing.assert_array_equal(np.asarray(img)[:, :, 0], iuv[0])  # R = I


def test_decoded_is_read_only():
    out = decode_iuv(encode_iuv(_iuv()))
    with pytest.raises(ValueError):
        out[0, 0, 0] = 1


def test_mime_base64_and_raw_bytes_accepted():
    iuv = _iuv(30, 40)
    raw = base64.b64decode(encode_iuv(iuv))
    mime = base64.encodebytes(raw).decode()  # 76-char lines
    assert "\n" in mime
    np.testing.assert_array_equal(decode_iuv(mime, (3, 30, 40)), iuv)
    np.testing.assert_array_equal(decode_iuv(raw), iuv)
    np.testing.assert_array_equal(decode_iuv(mime.encode()), iuv)


def test_palette_and_opaque_rgba_accepted_grey_refused():
    iuv = np.zeros((3, 4, 4), np.uint8)
    iuv[0, 1:3, 1:3] = 5
    iuv[1, 1:3, 1:3] = 100
    hwc = np.ascontiguousarray(iuv.transpose(1, 2, 0))
    colours, index = np.unique(hwc.reshape(-1, 3), axis=0, return_inverse=True)
    pal = Image.fromarray(index.reshape(4, 4).astype(np.uint8), mode="P")
    pal.putpalette(colours.astype(np.uint8).ravel().tolist())
    buf = io.BytesIO()
    pal.save(buf, format="PNG")
    assert Image.open(io.BytesIO(buf.getvalue())).mode == "P"
    np.testing.assert_array_equal(decode_iuv(buf.getvalue()), iuv)
    rgba = np.concatenate([hwc, np.full((4, 4, 1), 255, np.uint8)], axis=2)
    np.testing.assert_array_equal(decode_iuv(_png_b64(rgba)), iuv)
    rgba[0, 0, 3] = 0
    with pytest.raises(FormatError, match="non-opaque alpha"):
        decode_iuv(_png_b64(rgba))
    with pytest.raises(FormatError, match="8-bit grey"):
        decode_iuv(_png_b64(hwc[:, :, 0]))


def test_header_size_must_match_shape():
    text = encode_iuv(_iuv(7, 5))
    with pytest.raises(FormatError, match=r"PNG is 7x5 \(HxW\) but uv_shape is \[3, 5, 7\]"):
        decode_iuv(text, (3, 5, 7), where="p.json: detection 3 (image_id=9)")
    with pytest.raises(FormatError, match=r"^p\.json: detection 3"):
        decode_iuv(text, (3, 5, 7), where="p.json: detection 3 (image_id=9)")


def test_decompression_bomb_refused_before_decoding():
    bomb = _raw_png(10_000, 10_000, body=zlib.compress(b"\0" * 1000))
    with pytest.raises(FormatError, match="pixel cap"):
        decode_iuv(base64.b64encode(bomb).decode())
    assert 10_000 * 10_000 > MAX_PIXELS
    # a real (highly compressible) bomb made by Pillow is refused the same way
    big = _raw_png(7000, 7000)
    with pytest.raises(FormatError, match="decompression-bomb guard"):
        decode_iuv(big)


def test_sixteen_bit_refused():
    with pytest.raises(FormatError, match="16-bit RGB"):
        decode_iuv(_raw_png(4, 4, depth=16))


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ("", "is empty"),
        ("abc$def=", "not valid base64"),
        ("iVBORw0KGgoAAAANSUhEUgAAAA", "not valid base64"),  # cut, bad padding
        (base64.b64encode(b"GIF89a" + b"\0" * 40).decode(), "not a PNG"),
        (base64.b64encode(b"\x89PNG\r\n").decode(), "truncated PNG"),
    ],
)
def test_garbage_is_a_format_error(data, message):
    with pytest.raises(FormatError, match=message):
        decode_iuv(data)


def test_truncated_png_body():
    raw = base64.b64decode(encode_iuv(_iuv(40, 40)))
    cut = base64.b64encode(raw[: len(raw) // 2]).decode()
    with pytest.raises(FormatError, match="truncated or corrupt"):
        decode_iuv(cut, (3, 40, 40))


def test_part_ids_above_24_refused():
    iuv = _iuv()
    hwc = np.ascontiguousarray(iuv.transpose(1, 2, 0))
    hwc[2, 3, 0] = 25
    with pytest.raises(FormatError, match=r"1 pixel\(s\) with part id > 24 \(max 25\)"):
        decode_iuv(_png_b64(hwc))
    bad = iuv.copy()
    bad[0, 0, 0] = 200
    with pytest.raises(FormatError, match="part id > 24"):
        encode_iuv(bad)


def test_encode_refuses_wrong_shape_or_dtype():
    with pytest.raises(FormatError, match=r"expected \(3, H, W\) uint8"):
        encode_iuv(np.zeros((5, 4, 3), np.uint8))
    with pytest.raises(FormatError, match="dtype float64"):
        encode_iuv(np.zeros((3, 4, 5)))


def test_real_challenge_file_decodes_entry_by_entry():
    entries = json.loads(CHALLENGE.read_text())
    assert len(entries) == 21
    for k, e in enumerate(entries):
        iuv = decode_iuv(e["uv_data"], tuple(e["uv_shape"]), where=f"entry {k}")
        assert iuv.shape == tuple(e["uv_shape"])
        assert iuv[0].max() <= 24
        background = iuv[0] == 0
        assert not iuv[1][background].any() and not iuv[2][background].any()
        # the challenge boxes are integer-sized: H, W equal the box size
        assert (iuv.shape[1], iuv.shape[2]) == (e["bbox"][3], e["bbox"][2])
        np.testing.assert_array_equal(decode_iuv(encode_iuv(iuv), iuv.shape), iuv)
