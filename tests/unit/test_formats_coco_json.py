"""dpeval.formats.coco_json: ground-truth loading, validation messages, round trip."""

from __future__ import annotations

import copy
import json
import pickle
from pathlib import Path

import numpy as np
import pytest

from dpeval.errors import DpevalWarning, FormatError
from dpeval.formats import GroundTruth, load_ground_truth, save_ground_truth

DATA = Path(__file__).resolve().parents[1] / "data" / "formats"
SHARED = Path(__file__).resolve().parents[1] / "data" / "densepose_real"  # CC BY-NC fixtures
DEMO = SHARED / "densepose_demo_single_annotation.pkl"


@pytest.fixture
def doc() -> dict:
    return json.loads((DATA / "tiny_gt.json").read_text())


def _load_err(doc: dict, tmp_path: Path, match: str) -> str:
    path = tmp_path / "gt.json"
    path.write_text(json.dumps(doc))
    with pytest.raises(FormatError, match=match) as e:
        load_ground_truth(path)
    return str(e.value)


def test_fixture_loads_with_all_fields():
    gt = load_ground_truth(DATA / "tiny_gt.json")
    assert isinstance(gt, GroundTruth)
    assert sorted(gt.images) == [785, 872]
    assert gt.images[785].height == 425 and gt.images[785].width == 640
    assert gt.images[785].ignore_regions is None
    a, b, c = gt.annotations
    assert a.has_dense and not b.has_dense and not c.has_dense
    assert c.iscrowd and not a.iscrowd
    assert a.n_points == 12 and b.n_points == 0 and b.dp_x is None
    assert a.dp_I.dtype == np.int64 and a.dp_I.min() >= 1 and a.dp_I.max() <= 24
    assert a.dp_masks is not None and len(a.dp_masks) == 14
    assert a.dp_masks[0]["size"] == [256, 256] and a.dp_masks[1] is None
    assert isinstance(b.segmentation, list)  # kept raw
    assert a.bbox.dtype == np.float64 and list(a.bbox) == [278.7, 42.6, 215.0, 342.0]
    assert [p.index for p in gt.annotations] == [0, 1, 2]
    assert len(gt.sha256) == 64 and gt.source.endswith("tiny_gt.json")
    assert gt.categories == {1: "person"}
    assert {k: len(v) for k, v in gt.by_image().items()} == {785: 1, 872: 2}


def test_dict_input_is_not_modified(doc):
    before = copy.deepcopy(doc)
    gt = load_ground_truth(doc)
    assert doc == before and gt.source == "<memory>" and gt.sha256 == ""


def test_pycocotools_reads_the_same_file():
    from pycocotools.coco import COCO

    coco = COCO(str(DATA / "tiny_gt.json"))
    gt = load_ground_truth(DATA / "tiny_gt.json")
    assert sorted(coco.getImgIds()) == sorted(gt.images)
    assert sorted(coco.getAnnIds()) == sorted(a.id for a in gt.annotations)
    dense = coco.loadAnns(1)[0]
    np.testing.assert_array_equal(gt.annotations[0].dp_x, dense["dp_x"])


def test_save_load_round_trip(tmp_path):
    gt = load_ground_truth(DATA / "tiny_gt.json")
    save_ground_truth(gt, tmp_path / "out.json")
    back = load_ground_truth(tmp_path / "out.json")
    assert back.images == gt.images
    for a, b in zip(gt.annotations, back.annotations, strict=True):
        for k in ("id", "image_id", "category_id", "area", "iscrowd", "has_dense"):
            assert getattr(a, k) == getattr(b, k)
        np.testing.assert_array_equal(a.bbox, b.bbox)
        for k in ("dp_x", "dp_y", "dp_I", "dp_U", "dp_V"):
            if a.has_dense:
                np.testing.assert_array_equal(getattr(a, k), getattr(b, k))
        assert a.dp_masks == b.dp_masks and a.segmentation == b.segmentation


def test_posetrack_ignore_regions(doc, tmp_path):
    doc["images"][0]["ignore_regions_x"] = [[0, 10, 10, 0], [5, 6, 7]]
    doc["images"][0]["ignore_regions_y"] = [[0, 0, 10, 10], [1, 2, 1]]
    gt = load_ground_truth(doc)
    regions = gt.images[785].ignore_regions
    assert len(regions) == 2 and regions[0].shape == (4, 2)
    np.testing.assert_array_equal(regions[1], [[5, 1], [6, 2], [7, 1]])
    save_ground_truth(gt, tmp_path / "pt.json")
    back = load_ground_truth(tmp_path / "pt.json").images[785].ignore_regions
    np.testing.assert_array_equal(back[0], regions[0])
    doc["images"][0]["ignore_regions_y"] = [[0, 0, 10]]
    _load_err(doc, tmp_path, "not two lists of the same length")


def test_real_demo_annotation_as_ground_truth():
    with DEMO.open("rb") as f:
        demo = pickle.load(f, encoding="latin1")
    h, w = demo["ICrop"].shape[:2]  # the crop is the person box
    ann = {
        "id": 1,
        "image_id": 1,
        "category_id": 1,
        "bbox": [0.0, 0.0, float(w), float(h)],
        "area": float(w * h),
        "iscrowd": 0,
        "dp_x": (demo["x"] * 255.0 / w).tolist(),
        "dp_y": (demo["y"] * 255.0 / h).tolist(),
        "dp_I": demo["I"].tolist(),
        "dp_U": demo["U"].tolist(),
        "dp_V": demo["V"].tolist(),
        "dp_masks": [[]] * 14,
    }
    gt = load_ground_truth({"images": [{"id": 1, "height": h, "width": w}], "annotations": [ann]})
    person = gt.annotations[0]
    assert person.has_dense and person.n_points == 125 == len(demo["I"])
    np.testing.assert_array_equal(person.dp_I, demo["I"].astype(np.int64))
    assert set(np.unique(person.dp_I)) <= set(range(1, 25))
    assert 0 <= person.dp_U.min() and person.dp_U.max() <= 1
    assert 0 <= person.dp_V.min() and person.dp_V.max() <= 1
    assert 0 <= person.dp_x.min() and person.dp_x.max() <= 255
    # mapping back to crop pixels (the evaluator's /255 rule) gives the original points
    np.testing.assert_allclose(person.bbox[0] + person.dp_x * person.bbox[2] / 255, demo["x"])
    assert person.dp_masks == (None,) * 14


def test_empty_and_malformed_files(tmp_path):
    p = tmp_path / "gt.json"
    p.write_text("  \n")
    with pytest.raises(FormatError, match=r"gt\.json: the file is empty"):
        load_ground_truth(p)
    p.write_text('{"images": [],\n "annotations": [}')
    with pytest.raises(FormatError, match="malformed JSON at line 2, column"):
        load_ground_truth(p)
    p.write_text("[]")
    with pytest.raises(FormatError, match="top level is a JSON list"):
        load_ground_truth(p)
    with pytest.raises(FormatError, match="file not found"):
        load_ground_truth(tmp_path / "missing.json")
    p.write_text("[" * 200_000)
    with pytest.raises(FormatError, match="nested too deeply"):
        load_ground_truth(p)
    p.write_text('{"images": [{"id": ' + "7" * 5000 + "}]}")
    with pytest.raises(FormatError, match="unreadable JSON value"):
        load_ground_truth(p)


@pytest.mark.parametrize(
    ("edit", "match"),
    [
        (lambda d: d.pop("annotations"), "has no 'annotations' list"),
        (lambda d: d.update(images={}), "'images' is a dict; expected a list"),
        (lambda d: d["images"].append(dict(d["images"][0])), r"image 2 \(id=785\): duplicate"),
        (lambda d: d["images"][1].pop("height"), r"image 1 \(id=872\): has no 'height'"),
        (lambda d: d["images"][1].update(width=0), "'width' is 0; expected a positive"),
        (lambda d: d["annotations"][2].update(id=1), r"annotation 2 \(id=1\): duplicate"),
        (lambda d: d["annotations"][1].update(image_id=5), "'image_id' 5 is not in 'images'"),
        (lambda d: d["annotations"][1].update(bbox=[1, 2, 3]), r"'bbox' is \[1, 2, 3\]"),
        (lambda d: d["annotations"][1].update(bbox=[1, 2, -3, 4]), "negative size"),
        (lambda d: d["annotations"][1].update(bbox=[1, 2, None, 4]), r"'bbox\[2\]' is None"),
        (lambda d: d["annotations"][1].update(category_id="person"), "'category_id' is 'person'"),
        (lambda d: d["annotations"][0]["dp_U"].pop(), "'dp_U' has 11 values but 'dp_x' has 12"),
        (lambda d: d["annotations"][0].pop("dp_V"), "has 'dp_x' but no 'dp_V'"),
        (lambda d: d["annotations"][0]["dp_I"].__setitem__(3, 25), r"'dp_I' has 1 value\(s\)"),
        (lambda d: d["annotations"][0]["dp_I"].__setitem__(3, 0), "outside \\[1, 24\\]"),
        (lambda d: d["annotations"][0]["dp_I"].__setitem__(3, 2.5), "non-integer value at 3"),
        (lambda d: d["annotations"][0]["dp_U"].__setitem__(0, 1.01), "'dp_U' has 1 value"),
        (lambda d: d["annotations"][0]["dp_V"].__setitem__(0, -0.2), "'dp_V' has 1 value"),
        (lambda d: d["annotations"][0]["dp_x"].__setitem__(0, 300.0), "'dp_x' has 1 value"),
        (lambda d: d["annotations"][0]["dp_y"].__setitem__(0, -1.0), "'dp_y' has 1 value"),
        (lambda d: d["annotations"][0]["dp_x"].__setitem__(0, "a"), "'dp_x' is"),
        (lambda d: d["annotations"][0]["dp_masks"].pop(), "'dp_masks' is 13 entries"),
        (
            lambda d: d["annotations"][0]["dp_masks"].__setitem__(0, {"counts": "x"}),
            r"dp_masks\[0\] is not an RLE dict",
        ),
        (
            lambda d: d["annotations"][0]["dp_masks"][0].update(size=[128, 128]),
            r"dp_masks\[0\] has size \[128, 128\]; expected \[256, 256\]",
        ),
    ],
)
def test_each_problem_has_its_message(doc, tmp_path, edit, match):
    edit(doc)
    msg = _load_err(doc, tmp_path, match)
    assert msg.startswith(str(tmp_path / "gt.json") + ":")
    assert ";" in msg  # what was found; the fix


def test_message_names_file_index_id_and_fix(doc, tmp_path):
    doc["annotations"][0]["dp_U"].pop()
    msg = _load_err(doc, tmp_path, "dp_U")
    assert msg == (
        f"{tmp_path / 'gt.json'}: annotation 0 (id=1): 'dp_U' has 11 values but 'dp_x' has 12; "
        "each point needs x, y, I, U, V"
    )


def test_non_finite_dense_values(doc, tmp_path):
    text = json.dumps(doc).replace('"dp_U": [', '"dp_U": [NaN, ', 1)
    text = text.replace('"dp_x": [', '"dp_x": [1.0, ', 1).replace('"dp_y": [', '"dp_y": [1.0, ', 1)
    text = text.replace('"dp_I": [', '"dp_I": [1.0, ', 1).replace('"dp_V": [', '"dp_V": [0.5, ', 1)
    (tmp_path / "gt.json").write_text(text)
    with pytest.raises(FormatError, match=r"'dp_U' holds 1 non-finite value\(s\) \(first at 0"):
        load_ground_truth(tmp_path / "gt.json")


def test_tolerances_and_warnings(doc):
    a = doc["annotations"][0]
    a["dp_U"][0] = 1 + 5e-7  # float noise: kept as is
    a["dp_x"][0] = 255.6  # 256-box convention: kept with a warning
    a["dp_y"][1] = 256.0
    del doc["annotations"][1]["area"]
    del doc["annotations"][2]["iscrowd"]
    with pytest.warns(DpevalWarning) as rec:
        gt = load_ground_truth(doc)
    msgs = sorted(str(w.message) for w in rec)
    assert len(msgs) == 3
    assert any("1 x annotation(s) with dp_x/dp_y in (255, 256]" in m for m in msgs)
    assert any("without 'area' (bbox w*h used)" in m for m in msgs)
    assert any("without 'iscrowd' (0 used)" in m for m in msgs)
    assert gt.annotations[0].dp_U[0] == 1 + 5e-7
    assert gt.annotations[1].area == 238.0 * 477.0


def test_warning_counted_once_per_kind(doc):
    base = doc["annotations"][1]
    doc["annotations"] += [{**base, "id": 100 + k} for k in range(5)]
    for a in doc["annotations"]:
        a.pop("area", None)
    with pytest.warns(DpevalWarning) as rec:
        load_ground_truth(doc)
    assert len(rec) == 1 and "8 x annotation(s) without 'area'" in str(rec[0].message)


def test_dense_without_masks_warns(doc):
    doc["annotations"][0].pop("dp_masks")
    with pytest.warns(DpevalWarning, match="without 'dp_masks'"):
        load_ground_truth(doc)
