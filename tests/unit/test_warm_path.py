"""The warm-path speed-ups give the same numbers as the code they replace.

- PNG decoding: ISA-L inflate + the Numba unfilter kernel against its plain-Python twin
  (every filter type, crafted row by row) and against Pillow (real encoder output, RGB and
  RGBA), and its refusals (bad filter type, short or corrupt stream).
- GT masks: the cached, bit-packed masks of :func:`gt_masks` equal :func:`gt_mask` of every
  annotation, on real DensePose masks, for both protocols; a changed box, mask string or
  image size misses the cache.
"""

from __future__ import annotations

import dataclasses
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest

from dpeval.errors import FormatError
from dpeval.evaluation.masks import gt_mask, gt_masks
from dpeval.formats import _kernels, _reference, iuv_png
from dpeval.formats.coco_json import load_ground_truth

GOLDEN = Path(__file__).resolve().parents[1] / "data" / "official_golden"


def _png(raw_rows: bytes, width: int, height: int, colour: int = 2) -> bytes:
    """A PNG whose IDAT holds ``raw_rows`` (filter bytes included) as they are."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, colour, 0, 0, 0)
    return (
        iuv_png.PNG_SIGNATURE
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(raw_rows))
        + chunk(b"IEND", b"")
    )


def _filter(rows: np.ndarray, types: np.ndarray, bpp: int) -> bytes:
    """Encode pixel rows (H, stride) with the given per-row filter types (PNG spec 9.2)."""
    out = bytearray()
    prev = np.zeros(rows.shape[1], dtype=np.int64)
    for r, ft in enumerate(types):
        cur = rows[r].astype(np.int64)
        left = np.concatenate([np.zeros(bpp, np.int64), cur[:-bpp]])
        upleft = np.concatenate([np.zeros(bpp, np.int64), prev[:-bpp]])
        if ft == 0:
            pred = np.zeros_like(cur)
        elif ft == 1:
            pred = left
        elif ft == 2:
            pred = prev
        elif ft == 3:
            pred = (left + prev) // 2
        else:
            p = left + prev - upleft
            pa, pb, pc = np.abs(p - left), np.abs(p - prev), np.abs(p - upleft)
            pred = np.where((pa <= pb) & (pa <= pc), left, np.where(pb <= pc, prev, upleft))
        out.append(int(ft))
        out += ((cur - pred) % 256).astype(np.uint8).tobytes()
        prev = cur
    return bytes(out)


@pytest.fixture()
def kernel_path(monkeypatch):
    """decode_iuv takes the ISA-L + kernel path from the first map on."""
    monkeypatch.setattr(iuv_png._kernel_turn, "calls", iuv_png._kernel_turn.n)


@pytest.mark.parametrize("bpp", [3, 4])
def test_unfilter_kernel_equals_twin_on_every_filter(bpp):
    rng = np.random.default_rng(bpp)
    for case in range(60):
        h, w = int(rng.integers(1, 30)), int(rng.integers(1, 30))
        stride = w * bpp
        raw = rng.integers(0, 256, h * (stride + 1)).astype(np.uint8)
        if case % 2:  # mostly-zero rows, like IUV backgrounds
            raw[rng.random(raw.size) < 0.8] = 0
        raw[:: stride + 1] = np.arange(h) % 5  # every filter type, in turn
        a = np.empty((h, stride), np.uint8)
        b = np.empty((h, stride), np.uint8)
        assert _kernels.png_unfilter(raw, h, stride, bpp, a) == -1
        assert _reference.png_unfilter(raw, h, stride, bpp, b) == -1
        np.testing.assert_array_equal(a, b)


def test_unfilter_reports_the_first_bad_filter_row():
    raw = np.zeros(3 * (6 + 1), np.uint8)
    raw[7] = 5  # row 1
    out = np.empty((3, 6), np.uint8)
    assert _kernels.png_unfilter(raw, 3, 6, 3, out) == 1
    assert _reference.png_unfilter(raw, 3, 6, 3, out) == 1


@pytest.mark.parametrize("colour", [2, 6])
def test_decode_with_each_filter_type_matches_pillow(kernel_path, colour):
    rng = np.random.default_rng(colour)
    bpp = 3 if colour == 2 else 4
    h, w = 23, 17
    pix = rng.integers(0, 256, (h, w, bpp)).astype(np.uint8)
    pix[..., 0] %= 25
    if bpp == 4:
        pix[..., 3] = 255
    for types in (np.arange(h) % 5, np.full(h, 4), np.full(h, 3), np.full(h, 1)):
        png = _png(_filter(pix.reshape(h, -1), types, bpp), w, h, colour)
        fast = iuv_png.decode_iuv(png, (3, h, w))
        slow = iuv_png._decode_pillow(png, "x")[..., :3].transpose(2, 0, 1)
        np.testing.assert_array_equal(fast, slow)
        np.testing.assert_array_equal(fast, pix[..., :3].transpose(2, 0, 1))


def test_decode_of_encoder_output_matches_pillow(kernel_path):
    rng = np.random.default_rng(0)
    for _ in range(40):
        h, w = (int(t) for t in rng.integers(1, 80, 2))
        iuv = np.zeros((3, h, w), np.uint8)
        fg = rng.random((h, w)) < 0.7
        iuv[0][fg] = rng.integers(1, 25, int(fg.sum()))
        iuv[1] = np.where(fg, np.linspace(0, 255, w, dtype=np.uint8)[None, :], 0)
        iuv[2] = np.where(fg, rng.integers(0, 256, (h, w)), 0)
        text = iuv_png.encode_iuv(iuv)
        np.testing.assert_array_equal(iuv_png.decode_iuv(text, (3, h, w)), iuv)


def test_fast_path_refuses_what_pillow_refuses(kernel_path):
    pix = np.zeros((4, 5 * 3), np.uint8)
    good = _filter(pix, np.zeros(4, int), 3)
    bad_filter = bytearray(good)
    bad_filter[2 * 16] = 9
    with pytest.raises(FormatError, match="row 2 has PNG filter type 9"):
        iuv_png.decode_iuv(_png(bytes(bad_filter), 5, 4), (3, 4, 5))
    with pytest.raises(FormatError, match="bytes of pixel data"):
        iuv_png.decode_iuv(_png(good[:-16], 5, 4), (3, 4, 5))
    png = bytearray(_png(good, 5, 4))
    png[45] ^= 0xFF  # inside IDAT: CRC mismatch
    with pytest.raises(FormatError, match=r"CRC mismatch|corrupt"):
        iuv_png.decode_iuv(bytes(png), (3, 4, 5))
    rgba = np.zeros((4, 5 * 4), np.uint8)  # alpha 0: refused as on the Pillow path
    with pytest.raises(FormatError, match="non-opaque alpha"):
        iuv_png.decode_iuv(_png(_filter(rgba, np.zeros(4, int), 4), 5, 4, 6), (3, 4, 5))


@pytest.mark.parametrize("protocol", ["challenge2019", "detectron2"])
def test_cached_gt_masks_equal_direct_masks(protocol, tmp_path, monkeypatch):
    monkeypatch.setenv("DPEVAL_CACHE_DIR", str(tmp_path))
    gt = load_ground_truth(GOLDEN / "gt.json")
    direct = [
        gt_mask(
            a.bbox,
            a.dp_masks,
            a.segmentation,
            gt.images[a.image_id].height,
            gt.images[a.image_id].width,
            protocol,
        )
        for a in gt.annotations
    ]
    first = gt_masks(gt, protocol)  # computed and stored
    assert list((tmp_path / "gt").glob("*-masks.npy"))
    again = gt_masks(gt, protocol)  # read back, bit-unpacked
    assert sum(m.area for m in direct) > 0
    for d, f, g in zip(direct, first, again, strict=True):
        for m in (f, g):
            assert (m.x0, m.y0, m.area) == (d.x0, d.y0, d.area)
            np.testing.assert_array_equal(m.mask, d.mask)


def test_gt_mask_cache_misses_on_any_changed_input(tmp_path, monkeypatch):
    monkeypatch.setenv("DPEVAL_CACHE_DIR", str(tmp_path))
    gt = load_ground_truth(GOLDEN / "gt.json")
    k = next(i for i, a in enumerate(gt.annotations) if a.dp_masks)
    base = gt_masks(gt, "challenge2019")[k]
    a = gt.annotations[k]

    def variant(**changes):
        anns = list(gt.annotations)
        anns[k] = dataclasses.replace(a, **changes)
        return dataclasses.replace(gt, annotations=tuple(anns))

    wider = a.bbox.copy()
    wider[2] += 7.0
    m = gt_masks(variant(bbox=wider), "challenge2019")[k]
    assert m.mask.shape[1] == base.mask.shape[1] + 7 or m.x0 + m.mask.shape[1] == (
        gt.images[a.image_id].width
    )
    present = [j for j, r in enumerate(a.dp_masks) if r]
    masks = list(a.dp_masks)
    masks[present[0]] = None  # one part mask dropped: a different mask
    m = gt_masks(variant(dp_masks=tuple(masks)), "challenge2019")[k]
    direct = gt_mask(
        a.bbox, tuple(masks), a.segmentation, gt.images[a.image_id].height,
        gt.images[a.image_id].width, "challenge2019",
    )  # fmt: skip
    assert m.area == direct.area != base.area
    images = dict(gt.images)
    info = images[a.image_id]
    images[a.image_id] = dataclasses.replace(info, width=int(a.bbox[0]) + 3)
    m = gt_masks(dataclasses.replace(gt, images=images), "challenge2019")[k]
    assert m.mask.shape[1] <= 3


def _records(n: int, corrupt: tuple[int, ...]) -> list[dict]:
    iuv = np.zeros((3, 4, 5), np.uint8)
    iuv[0, 1:3, 1:4] = 3
    good = iuv_png.encode_iuv(iuv)
    raw = bytearray(iuv_png._b64_bytes(good, "x"))
    raw[-20] ^= 0x55  # inside the IDAT data: its CRC no longer matches
    import base64

    bad = base64.b64encode(bytes(raw)).decode()
    return [
        {"image_id": 1 + i // 10, "category_id": 1, "bbox": [0, 0, 5, 4], "score": 0.5,
         "uv_shape": [3, 4, 5], "uv_data": bad if i in corrupt else good}
        for i in range(n)
    ]  # fmt: skip


def _same_error_with_one_and_two_workers(recs: list[dict]) -> str:
    """The FormatError message of loading ``recs`` with 1 and with 2 workers (equal)."""
    from dpeval.formats import load_predictions

    messages = []
    for workers in (1, 2):
        with pytest.raises(FormatError) as e:
            load_predictions(recs, format="challenge-json", workers=workers)
        messages.append(str(e.value))
    assert messages[0] == messages[1]
    return messages[0]


@pytest.mark.parametrize("corrupt", [(700,), (650, 40), (3, 1190)])
def test_parallel_stream_checks_report_the_first_corrupt_map(corrupt):
    from dpeval.formats import load_predictions

    message = _same_error_with_one_and_two_workers(_records(1200, corrupt))
    assert f"detection {min(corrupt)} " in message and "CRC mismatch" in message
    ok = load_predictions(_records(1200, ()), format="challenge-json", workers=2)
    assert len(ok.detections) == 1200


@pytest.mark.parametrize(("corrupt", "bad_score"), [(100, 900), (900, 100), (500, 500)])
def test_a_later_bad_record_does_not_hide_an_earlier_corrupt_map(corrupt, bad_score):
    """With several workers the maps are checked after the loop; a record the loop refuses
    must not hide a corrupt map above it: the error is the single-process one."""
    recs = _records(1200, (corrupt,))
    recs[bad_score] = {**recs[bad_score], "score": "high"}
    message = _same_error_with_one_and_two_workers(recs)
    first = min(corrupt, bad_score)
    assert f"detection {first} " in message
    assert ("'score'" in message) == (first == bad_score)
