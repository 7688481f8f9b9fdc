"""dpeval.formats.predictions: detection, every reader/writer pair, bad inputs."""

from __future__ import annotations

import json
import pickle
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

from dpeval.errors import DpevalWarning, FormatError
from dpeval.formats import (
    FORMATS,
    ImageInfo,
    Predictions,
    detect_format,
    encode_iuv,
    load_predictions,
    save_predictions,
)

DATA = Path(__file__).resolve().parents[1] / "data" / "formats"
SHARED = Path(__file__).resolve().parents[1] / "data" / "densepose_real"  # CC BY-NC fixtures
CHALLENGE = SHARED / "densepose_challenge_example_results.json"


def _iuv(h: int, w: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    iuv = rng.integers(0, 256, (3, h, w), dtype=np.uint8)
    iuv[0] = rng.integers(0, 25, (h, w))
    return iuv


def _d2_records(n: int = 3) -> list[dict]:
    recs = []
    for k in range(n):
        h, w = 5 + k, 4 + 2 * k
        recs.append(
            {
                "image_id": 10 + k // 2,
                "category_id": 1,
                "bbox": [1.25 * k, 2.5, w + 0.75, h + 0.5],  # float XYWH, map = int(w), int(h)
                "score": np.float32(0.9 - 0.1 * k),
                "densepose": _iuv(h, w, seed=k),
            }
        )
    return recs


def _same(a: Predictions, b: Predictions) -> None:
    assert a.kind == b.kind
    xs, ys = (a.detections, b.detections) if a.kind == "instances" else (a.dense, b.dense)
    assert len(xs) == len(ys)
    for x, y in zip(xs, ys, strict=True):
        assert x.image_id == y.image_id and x.iuv_shape == y.iuv_shape
        if a.kind == "instances":
            assert x.category_id == y.category_id and x.score == y.score
            np.testing.assert_array_equal(x.bbox, y.bbox)
        np.testing.assert_array_equal(x.load_iuv(), y.load_iuv())


# ----------------------------------------------------------------------------- readers


def test_fixture_challenge_json():
    p = load_predictions(DATA / "tiny_results.json", validate_all=True)
    assert p.format == "challenge-json" and p.kind == "instances" and len(p.detections) == 2
    d0, d1 = p.detections
    assert d0.image_id == 785 and d0.score == 0.9 and d0.iuv_shape == (3, 6, 5)
    np.testing.assert_array_equal(d1.load_iuv(), d0.load_iuv()[:, ::-1])
    assert set(np.unique(d0.load_iuv()[0])) == {0, 1, 2, 3, 24}
    assert len(p.sha256) == 64


def test_real_challenge_file():
    p = load_predictions(CHALLENGE, validate_all=True)
    assert p.format == "challenge-json" and len(p.detections) == 21
    assert {d.image_id for d in p.detections} == {785, 872, 885}
    for d in p.detections:
        iuv = d.load_iuv()
        assert iuv.shape == d.iuv_shape and iuv[0].max() <= 24
        assert not iuv[1:, iuv[0] == 0].any()  # U = V = 0 on background


def test_d2_in_memory_and_pickle(tmp_path):
    recs = _d2_records()
    p = load_predictions(recs)
    assert p.format == "d2-pickle" and [d.iuv_shape for d in p.detections] == [
        (3, 5, 4),
        (3, 6, 6),
        (3, 7, 8),
    ]
    assert p.detections[0].score == float(np.float32(0.9))
    path = tmp_path / "d2.pkl"
    path.write_bytes(pickle.dumps(recs))
    _same(p, load_predictions(path))


def test_d2_object_variants_and_per_image_records(tmp_path):
    iuv = _iuv(5, 4)

    class FakeTensor:  # anything with .numpy() (torch tensors after .cpu())
        def __init__(self, a):
            self.a = a

        def cpu(self):
            return self

        def numpy(self):
            return self.a

    base = {"image_id": 1, "category_id": 1, "bbox": [0, 0, 4, 5], "score": 0.5}
    for dp in (
        SimpleNamespace(labels_uv_uint8=iuv),
        {"labels_uv_uint8": iuv},
        SimpleNamespace(labels_uv_uint8=FakeTensor(iuv)),
        FakeTensor(iuv),
        iuv.astype(np.int64),
    ):
        np.testing.assert_array_equal(
            load_predictions([{**base, "densepose": dp}]).detections[0].load_iuv(), iuv
        )
    d1 = load_predictions([{**base, "uv": iuv}])  # Detectron1 key
    np.testing.assert_array_equal(d1.detections[0].load_iuv(), iuv)
    per_image = [{"image_id": 1, "instances": [{**base, "densepose": iuv}] * 2}]
    p = load_predictions(per_image)
    assert len(p.detections) == 2 and p.detections[1].index == 1


def test_d2_float_maps_quantised_like_detectron2():
    iuv = np.zeros((3, 2, 2))
    iuv[0] = [[0, 3], [24, 1]]
    iuv[1] = [[0, 0.5], [1.0, 0.999]]
    iuv[2] = [[0, 0.1], [0.2, 1e-9]]
    p = load_predictions(
        [{"image_id": 1, "category_id": 1, "bbox": [0, 0, 2, 2], "score": 1, "densepose": iuv}]
    )
    out = p.detections[0].load_iuv()
    np.testing.assert_array_equal(out[0], [[0, 3], [24, 1]])
    np.testing.assert_array_equal(out[1], [[0, 127], [255, 254]])  # trunc(U * 255)
    np.testing.assert_array_equal(out[2], [[0, 25], [51, 0]])


def test_d2_compressed_pickle_with_detectron2_classes(tmp_path, monkeypatch):
    # a pickle that references detectron2 classes loads without detectron2 installed
    import base64
    import io
    import sys
    import types

    iuv = _iuv(9, 7)
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(iuv.transpose(1, 2, 0))).save(buf, format="PNG")
    mod = types.ModuleType("densepose")  # stands in for the real package while pickling

    class DensePoseChartResultCompressed:
        def __init__(self, shape_chw, labels_uv_str):
            self.shape_chw = shape_chw
            self.labels_uv_str = labels_uv_str

    DensePoseChartResultCompressed.__module__ = mod.__name__
    DensePoseChartResultCompressed.__qualname__ = "DensePoseChartResultCompressed"
    mod.DensePoseChartResultCompressed = DensePoseChartResultCompressed
    with monkeypatch.context() as m:
        m.setitem(sys.modules, "densepose", mod)
        obj = DensePoseChartResultCompressed((3, 9, 7), base64.encodebytes(buf.getvalue()).decode())
        rec = {"image_id": 3, "category_id": 1, "bbox": [0.0, 0.0, 7.2, 9.9], "score": 0.7}
        raw = pickle.dumps([{**rec, "densepose": obj}])
    assert b"densepose" in raw and "densepose" not in sys.modules
    path = tmp_path / "compressed.pkl"
    path.write_bytes(raw)
    assert detect_format(path) == "d2-pickle"
    p = load_predictions(path)
    assert p.format == "d2-compressed"
    np.testing.assert_array_equal(p.detections[0].load_iuv(), iuv)


def test_unsafe_pickle_refused(tmp_path):
    path = tmp_path / "evil.pkl"
    path.write_bytes(pickle.dumps([{"image_id": 1, "densepose": SimpleNamespace(x=1)}]))
    with pytest.raises(FormatError, match=r"refusing to load types\.SimpleNamespace"):
        load_predictions(path)


def test_torch_archive_needs_torch(tmp_path):
    pytest.importorskip("zipfile")
    try:
        import torch  # noqa: F401

        pytest.skip("torch is installed")
    except ImportError:
        pass
    import zipfile

    path = tmp_path / "preds.pth"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("archive/data.pkl", pickle.dumps([]))
    assert detect_format(path) == "d2-pickle"
    with pytest.raises(FormatError, match="pip install torch"):
        load_predictions(path)


def test_png_dir(tmp_path):
    images = {
        785: ImageInfo(785, 6, 5, "COCO_val2014_000000000785.jpg"),
        872: ImageInfo(872, 4, 3, "COCO_val2014_000000000872.jpg"),
    }
    a, b = _iuv(6, 5), _iuv(4, 3, 1)
    for name, m in (("COCO_val2014_000000000785.png", a), ("872.png", b)):
        Image.fromarray(np.ascontiguousarray(m.transpose(1, 2, 0))).save(tmp_path / name)
    assert detect_format(tmp_path) == "iuv-png-dir"
    p = load_predictions(tmp_path, images=images, validate_all=True)
    assert p.kind == "dense" and p.format == "iuv-png-dir"
    got = {m.image_id: m.load_iuv() for m in p.dense}
    np.testing.assert_array_equal(got[785], a)
    np.testing.assert_array_equal(got[872], b)
    with pytest.raises(FormatError, match=r"1 PNG file\(s\) match no image: COCO_val2014_0+785"):
        load_predictions(tmp_path)  # without images only numeric names resolve
    (tmp_path / "stray.png").write_bytes((tmp_path / "872.png").read_bytes())
    with pytest.raises(FormatError, match=r"match no image: stray\.png"):
        load_predictions(tmp_path, images=images)
    (tmp_path / "stray.png").unlink()
    wrong = {**images, 872: ImageInfo(872, 40, 30, "x.jpg")}
    with pytest.raises(FormatError, match=r"PNG is 4x3 \(HxW\) but the image is 40x30"):
        load_predictions(tmp_path, images=wrong)
    (tmp_path / "notes.txt").write_text("hi")
    with pytest.warns(DpevalWarning, match="1 x non-PNG file"):
        load_predictions(tmp_path, images=images)


# ----------------------------------------------------------------------------- writers


@pytest.mark.parametrize(
    ("fmt", "name"),
    [
        ("challenge-json", "p.json"),
        ("d2-pickle", "p.pkl"),
        ("d2-compressed", "p.pickle"),
        ("dpeval-npz", "p.npz"),
    ],
)
def test_instance_round_trips(tmp_path, fmt, name):
    src = load_predictions(_d2_records(4))
    save_predictions(src, tmp_path / name, fmt)
    back = load_predictions(tmp_path / name)
    assert back.format == fmt
    _same(src, back)
    # and from there through every other writer again
    for other in ("challenge-json", "dpeval-npz"):
        out = tmp_path / f"again.{other}"
        save_predictions(back, out, other)
        _same(src, load_predictions(out))


def test_suffix_defaults_and_wrong_kind(tmp_path):
    src = load_predictions(_d2_records(1))
    save_predictions(src, tmp_path / "a.json")
    assert detect_format(tmp_path / "a.json") == "challenge-json"
    with pytest.raises(FormatError, match=r"cannot tell the output format from '\.txt'"):
        save_predictions(src, tmp_path / "a.txt")
    with pytest.raises(FormatError, match="instances predictions cannot be written as"):
        save_predictions(src, tmp_path / "dir", "iuv-png-dir")
    with pytest.raises(FormatError, match="unknown output format 'coco'"):
        save_predictions(src, tmp_path / "a.json", "coco")


def test_dense_round_trip_png_dir_and_npz(tmp_path):
    images = {1: ImageInfo(1, 6, 5, "a/b/img_one.jpg"), 2: ImageInfo(2, 3, 8)}
    src_dir = tmp_path / "src"
    src_dir.mkdir()
    for i, info in images.items():
        m = _iuv(info.height, info.width, i)
        Image.fromarray(np.ascontiguousarray(m.transpose(1, 2, 0))).save(src_dir / f"{i}.png")
    src = load_predictions(src_dir)
    save_predictions(src, tmp_path / "named", images=images)
    assert sorted(p.name for p in (tmp_path / "named").iterdir()) == ["2.png", "img_one.png"]
    _same(src, load_predictions(tmp_path / "named", images=images))
    save_predictions(src, tmp_path / "dense.npz")
    back = load_predictions(tmp_path / "dense.npz")
    assert back.kind == "dense"
    _same(src, back)
    with pytest.raises(FormatError, match="dense predictions cannot be written as challenge"):
        save_predictions(src, tmp_path / "x.json")


# ----------------------------------------------------------------------------- detection


def test_detection_by_content_not_extension(tmp_path):
    src = load_predictions(_d2_records(2))
    for fmt in ("challenge-json", "d2-pickle", "dpeval-npz"):
        path = tmp_path / f"misnamed_{fmt}.dat"
        save_predictions(src, path, fmt)
        assert detect_format(path) == fmt
        assert load_predictions(path).format == fmt
    # format= overrides detection
    with pytest.raises(FormatError, match="is not UTF-8 text"):
        load_predictions(tmp_path / "misnamed_d2-pickle.dat", format="challenge-json")
    with pytest.raises(FormatError, match="unknown format 'yaml'; accepted formats:"):
        load_predictions(tmp_path / "misnamed_d2-pickle.dat", format="yaml")


def test_unknown_content(tmp_path):
    path = tmp_path / "p.bin"
    path.write_bytes(b"GIF89a....")
    with pytest.raises(FormatError, match="not a known predictions format; accepted formats: "):
        load_predictions(path)
    path.write_bytes(b"")
    with pytest.raises(FormatError, match="the file is empty"):
        load_predictions(path)
    with pytest.raises(FormatError, match=r"expected 'uv_data' .* or 'densepose'"):
        load_predictions([{"image_id": 1, "bbox": [0, 0, 1, 1]}])
    assert set(FORMATS) >= {"challenge-json", "d2-pickle", "dpeval-npz", "iuv-png-dir"}


# ----------------------------------------------------------------------------- bad inputs


def _entry(**over) -> dict:
    e = {
        "image_id": 7,
        "category_id": 1,
        "bbox": [1.0, 2.0, 5, 6],
        "score": 0.5,
        "uv_shape": [3, 6, 5],
        "uv_data": encode_iuv(_iuv(6, 5)),
    }
    e.update(over)
    return e


def _json_err(tmp_path: Path, entries, match: str, **kw) -> str:
    path = tmp_path / "preds.json"
    path.write_text(entries if isinstance(entries, str) else json.dumps(entries))
    with pytest.raises(FormatError, match=match) as e:
        load_predictions(path, **kw)
    return str(e.value)


@pytest.mark.parametrize(
    ("entry", "match"),
    [
        (_entry(score=None), r"detection 1 \(image_id=7\): 'score' is None; expected a finite"),
        (_entry(bbox=[1, 2, 3]), r"'bbox' is \[1, 2, 3\]; expected \[x, y, w, h\]"),
        (_entry(image_id="7"), "'image_id' is '7'; expected an integer"),
        (_entry(uv_shape=[6, 5]), r"'uv_shape' is \[6, 5\]; expected \[3, H, W\]"),
        (_entry(uv_shape=[3, 5, 6], bbox=[0, 0, 6, 5]), r"PNG is 6x5 \(HxW\) but uv_shape"),
        (_entry(uv_data=""), "'uv_data' is empty"),
        (_entry(uv_data="%%%%"), "'uv_data' does not start with valid base64"),
        (_entry(bbox=[0, 0, 50, 60]), r"the IUV map is 6x5 \(HxW\) but the box is 60x50"),
        ({k: v for k, v in _entry().items() if k != "uv_data"}, "has no 'uv_data'"),
        ("not a dict", "detection 1: is a str; expected a detection object"),
    ],
)
def test_challenge_entry_errors(tmp_path, entry, match):
    msg = _json_err(tmp_path, [_entry(), entry], match)
    assert msg.startswith(str(tmp_path / "preds.json") + ": detection 1")


def test_non_finite_score_in_json(tmp_path):
    text = json.dumps([_entry()]).replace('"score": 0.5', '"score": NaN')
    _json_err(tmp_path, text, "'score' is nan; expected a finite number")


def test_challenge_file_level_errors(tmp_path):
    _json_err(tmp_path, "", "the file is empty")
    _json_err(tmp_path, '[{"image_id": 1,', "malformed JSON at line 1, column 17")
    _json_err(tmp_path, {"images": [], "annotations": []}, "looks like a ground-truth file")


def test_lazy_payload_errors_and_validate_all(tmp_path):
    good = _entry()["uv_data"]
    cut = good[: len(good) // 2 // 4 * 4]  # header intact, pixels cut
    path = tmp_path / "preds.json"
    path.write_text(json.dumps([_entry(), _entry(uv_data=cut)]))
    # the integrity check (CRCs, zlib stream) at load finds it without decoding pixels
    with pytest.raises(FormatError, match=r"detection 1 \(image_id=7\): PNG data is truncated"):
        load_predictions(path)
    with pytest.raises(FormatError, match="PNG data is truncated"):
        load_predictions(path, validate_all=True)


def test_bad_part_ids_in_arrays():
    recs = _d2_records(1)
    recs[0]["densepose"][0, 0, 0] = 30
    with pytest.raises(FormatError, match=r"detection 0 \(image_id=10\): 'densepose' map has 1"):
        load_predictions(recs)
    recs[0]["densepose"] = np.zeros((2, 5, 4), np.uint8)
    with pytest.raises(FormatError, match=r"has shape \(2, 5, 4\); expected \(3, H, W\)"):
        load_predictions(recs)
    fl = np.zeros((3, 5, 4))
    fl[1, 0, 0] = 1.5
    recs[0]["densepose"] = fl
    with pytest.raises(FormatError, match="float U must lie in"):
        load_predictions(recs)


def test_warnings_are_counted_once(tmp_path):
    big = _entry(bbox=[0.0, 0.0, 2.0, 3.0])  # a 6x5 map on a 3x2 box: larger than the box
    path = tmp_path / "preds.json"
    path.write_text(json.dumps([big] * 4 + [_entry()]))
    with pytest.warns(DpevalWarning) as rec:
        load_predictions(path, images={7: ImageInfo(7, 10, 10)})
    assert len(rec) == 1
    msg = str(rec[0].message)
    assert msg.startswith(f"{path}: 4 x detection(s) whose IUV map is larger than the box")
    assert "(first: " in msg and "detection 0 (image_id=7): map 6x5, box 3x2" in msg
    path.write_text("[]")
    with pytest.warns(DpevalWarning, match="empty predictions"):
        assert load_predictions(path).detections == ()


def test_unknown_images_are_left_to_the_caller(tmp_path):
    path = tmp_path / "preds.json"
    path.write_text(json.dumps([_entry(image_id=99)]))
    p = load_predictions(path, images={7: ImageInfo(7, 10, 10)})  # no warning, no error
    assert p.detections[0].image_id == 99


def test_torch_archive_with_tensors(tmp_path):
    torch = pytest.importorskip("torch")
    recs = _d2_records(2)
    as_torch = [{**r, "densepose": torch.from_numpy(np.ascontiguousarray(r["densepose"]))}
                for r in recs]  # fmt: skip
    path = tmp_path / "preds.pth"
    torch.save(as_torch, path)
    p = load_predictions(path)
    assert [d.image_id for d in p.detections] == [r["image_id"] for r in recs]
    for d, r in zip(p.detections, recs, strict=True):
        np.testing.assert_array_equal(d.load_iuv(), r["densepose"])
    # the restricted unpickler still refuses arbitrary classes inside a torch archive
    import types

    torch.save([types.SimpleNamespace(x=1)], tmp_path / "evil.pth")
    with pytest.raises(FormatError, match="SimpleNamespace"):
        load_predictions(tmp_path / "evil.pth")
