"""dpeval.formats.native: the dpeval .npz layout, round trips, corrupt files."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import pytest

from dpeval.errors import FormatError
from dpeval.formats import Predictions, load_native, load_predictions, save_native
from dpeval.formats.model import DenseMap, Detection
from dpeval.formats.native import CODEC, NATIVE_FORMAT, NATIVE_VERSION, _deflate, _undo_filter


def _preds(n: int = 5) -> Predictions:
    rng = np.random.default_rng(3)
    dets = []
    for k in range(n):
        h, w = int(rng.integers(1, 30)), int(rng.integers(1, 30))
        iuv = rng.integers(0, 256, (3, h, w), dtype=np.uint8)
        iuv[0] = rng.integers(0, 25, (h, w))
        box = np.array([rng.uniform(0, 600), rng.uniform(0, 400), w + 0.3, h + 0.9])
        dets.append(Detection(k // 2, 1, box, float(rng.random()), (3, h, w), k, _iuv=iuv))
    return Predictions("instances", tuple(dets))


def test_layout(tmp_path):
    save_native(_preds(4), tmp_path / "p.npz")
    with np.load(tmp_path / "p.npz", allow_pickle=False) as z:
        assert str(z["format"]) == NATIVE_FORMAT and int(z["version"]) == NATIVE_VERSION
        assert str(z["codec"]) == CODEC and str(z["kind"]) == "instances"
        assert z["bbox"].shape == (4, 4) and z["bbox"].dtype == np.float64
        assert z["hw"].shape == (4, 2) and z["offset"].shape == (5,)
        assert z["offset"][0] == 0 and z["offset"][-1] == len(z["payload"])
    with zipfile.ZipFile(tmp_path / "p.npz") as z:  # members stored, not deflated twice
        assert {i.compress_type for i in z.infolist()} == {zipfile.ZIP_STORED}


def test_round_trip_exact(tmp_path):
    src = _preds(7)
    save_native(src, tmp_path / "p.npz")
    back = load_native(tmp_path / "p.npz", validate_all=True)
    assert back.format == NATIVE_FORMAT and len(back.sha256) == 64
    for a, b in zip(src.detections, back.detections, strict=True):
        assert (a.image_id, a.category_id, a.score, a.iuv_shape, a.index) == (
            b.image_id,
            b.category_id,
            b.score,
            b.iuv_shape,
            b.index,
        )
        np.testing.assert_array_equal(a.bbox, b.bbox)
        np.testing.assert_array_equal(a.load_iuv(), b.load_iuv())


def test_empty_and_dense(tmp_path):
    save_native(Predictions("instances"), tmp_path / "e.npz")
    assert load_native(tmp_path / "e.npz").detections == ()
    m = np.zeros((3, 4, 6), np.uint8)
    m[0, 1, 2] = 24
    dense = Predictions("dense", dense=(DenseMap(9, (3, 4, 6), 0, _iuv=m),))
    save_native(dense, tmp_path / "d.npz")
    back = load_predictions(tmp_path / "d.npz")
    assert back.kind == "dense" and back.dense[0].image_id == 9
    np.testing.assert_array_equal(back.dense[0].load_iuv(), m)


def test_filter_is_invertible_on_wrapping_values():
    iuv = np.array([[[0, 24], [3, 0]], [[255, 0], [1, 254]], [[0, 255], [255, 0]]], np.uint8)
    import zlib

    filtered = np.frombuffer(zlib.decompress(_deflate(iuv)), np.uint8).reshape(iuv.shape)
    np.testing.assert_array_equal(_undo_filter(filtered), iuv)


def _rewrite(src: Path, dst: Path, **changes) -> None:
    with np.load(src) as z:
        arrays = {k: z[k] for k in z.files}
    arrays.update(changes)
    for k, v in list(arrays.items()):
        if v is None:
            del arrays[k]
    np.savez(dst, **arrays)


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        ({"format": np.array("other")}, "not a dpeval predictions file"),
        ({"version": np.array(99)}, "has format version 99; this dpeval reads version 1"),
        ({"codec": np.array("lz4")}, "has codec 'lz4'"),
        ({"score": None}, r"lacks the member\(s\) \['score'\]"),
        ({"bbox": np.zeros((2, 4))}, r"member 'bbox' has shape \(2, 4\)"),
        ({"score": np.array([np.nan, 0, 0])}, "'score' holds non-finite values"),
        ({"offset": np.array([0, 5, 3, 10])}, "'offset' is not increasing"),
    ],
)
def test_corrupt_files(tmp_path, changes, match):
    save_native(_preds(3), tmp_path / "p.npz")
    _rewrite(tmp_path / "p.npz", tmp_path / "bad.npz", **changes)
    with pytest.raises(FormatError, match=match):
        load_native(tmp_path / "bad.npz")


def test_corrupt_payload_is_lazy(tmp_path):
    save_native(_preds(3), tmp_path / "p.npz")
    with np.load(tmp_path / "p.npz") as z:
        payload = z["payload"].copy()
    payload[int(np.load(tmp_path / "p.npz")["offset"][1]) + 3] ^= 0xFF
    _rewrite(tmp_path / "p.npz", tmp_path / "bad.npz", payload=payload)
    p = load_native(tmp_path / "bad.npz")
    p.detections[0].load_iuv()
    with pytest.raises(FormatError, match=r"map 1 \(image_id=0\)"):
        p.detections[1].load_iuv()


def test_not_a_zip(tmp_path):
    (tmp_path / "x.npz").write_bytes(b"hello")
    with pytest.raises(FormatError, match=r"is not a readable \.npz file"):
        load_native(tmp_path / "x.npz")
