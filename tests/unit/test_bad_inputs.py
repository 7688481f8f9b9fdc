"""Inputs that must not pass silently (issue 13 B): each is refused or reported.

Every case here was once accepted without a word (or crashed with a traceback); the
tests check the message names the file, the record and the fix, and that the readers,
``dpeval.score`` and the leaderboard apply the same rule.
"""

from __future__ import annotations

import base64
import copy
import json
import struct
import warnings
import zlib
from pathlib import Path

import numpy as np
import pytest
from pycocotools import mask as mask_utils

from dpeval.errors import DpevalWarning, FormatError
from dpeval.formats import load_ground_truth, load_predictions
from dpeval.formats._rle import invalid_rle_strings, valid_run_list
from dpeval.formats.iuv_png import check_png_stream, encode_iuv

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.fixture(scope="module")
def gt_doc() -> dict:
    return json.loads((EXAMPLES / "gt.json").read_text())


@pytest.fixture(scope="module")
def pred_recs() -> list:
    return json.loads((EXAMPLES / "preds.json").read_text())


def _write(tmp_path: Path, name: str, doc) -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(doc))
    return path


# ----------------------------------------------------------------- dp_masks RLE


def _rle_twin(s: bytes) -> list[int] | None:
    """Slow, obvious decoder of a pycocotools counts string (``rleFrString``)."""
    counts: list[int] = []
    p = 0
    while p < len(s):
        x = k = 0
        while True:
            if p >= len(s):
                return None
            c = s[p] - 48
            if not 0 <= c <= 63:
                return None
            x |= (c & 0x1F) << (5 * k)
            p += 1
            k += 1
            if not c & 0x20:
                if c & 0x10:
                    x |= -1 << (5 * k)
                break
        if len(counts) > 2:
            x += counts[-2]
        counts.append(x)
    return counts


def test_rle_check_matches_slow_twin():
    rng = np.random.default_rng(0)
    good = []
    for _ in range(60):
        m = rng.random((16, 16)) < rng.random() * 0.5
        m = np.kron(m, np.ones((16, 16), bool)).astype(np.uint8)
        good.append(mask_utils.encode(np.asfortranarray(m))["counts"])
    bad = []
    for s in good:
        b = bytearray(s)
        op = rng.integers(3)
        if op == 0 and len(b) > 1:
            b = b[:-1]
        elif op == 1:
            b[rng.integers(len(b))] = int(rng.integers(40, 120))
        else:
            b += b"1"
        bad.append(bytes(b))
    strings = [*good, *bad, b"", b"zz", b"0", b"\x01"]

    def invalid(s: bytes) -> bool:
        runs = _rle_twin(s)
        return runs is None or sum(runs) != 65536 or min(runs) < 0

    expected = [i for i, s in enumerate(strings) if invalid(s)]
    assert invalid_rle_strings(strings, 65536) == expected
    assert not set(expected) & set(range(len(good)))  # pycocotools' own strings pass
    assert len(expected) > 40  # most mutations break the tiling


def test_run_list_rule():
    assert valid_run_list([100, 65436], 65536)
    assert not valid_run_list([100, 65435], 65536)
    assert not valid_run_list([-1, 65537], 65536)
    assert not valid_run_list([1.5, 65534.5], 65536)


def test_invalid_gt_rle_is_refused_at_load(tmp_path, gt_doc):
    doc = copy.deepcopy(gt_doc)
    ann = doc["annotations"][3]
    k = next(i for i, m in enumerate(ann["dp_masks"]) if m)
    ann["dp_masks"][k]["counts"] = ann["dp_masks"][k]["counts"][:-3]  # cut
    path = _write(tmp_path, "gt.json", doc)
    with pytest.raises(FormatError) as e:
        load_ground_truth(path)
    msg = str(e.value)
    assert f"gt.json: annotation 3 (id={ann['id']}): dp_masks[{k}] is not a valid RLE" in msg
    assert "pycocotools.mask.encode" in msg


def test_gt_rle_run_lists_are_checked_and_compressed(gt_doc):
    doc = copy.deepcopy(gt_doc)
    ann = doc["annotations"][0]
    k = next(i for i, m in enumerate(ann["dp_masks"]) if m)
    full = mask_utils.decode(ann["dp_masks"][k])
    flat = full.ravel(order="F")  # COCO runs are column-major, starting with zeros
    cuts = np.flatnonzero(np.diff(flat)) + 1
    as_list = np.diff(np.r_[0, cuts, flat.size]).tolist()
    if flat[0]:
        as_list = [0, *as_list]
    assert sum(as_list) == 65536
    ann["dp_masks"][k] = {"counts": as_list, "size": [256, 256]}
    gt = load_ground_truth(doc)
    back = mask_utils.decode(gt.annotations[0].dp_masks[k])
    assert (back == full).all()
    ann["dp_masks"][k] = {"counts": [*as_list[:-1], as_list[-1] + 1], "size": [256, 256]}
    with pytest.raises(FormatError, match=r"annotation 0 \(id=\d+\): dp_masks\[\d+\] is not"):
        load_ground_truth(doc)


# ----------------------------------------------------------------- categories


def test_gt_annotation_category_must_be_listed(gt_doc):
    doc = copy.deepcopy(gt_doc)
    doc["annotations"][5]["category_id"] = 2
    with pytest.raises(FormatError) as e:
        load_ground_truth(doc)
    msg = str(e.value)
    assert "annotation 5 (id=" in msg and "category_id 2 is not in 'categories': 1 (person)" in msg
    del doc["categories"]
    with pytest.raises(FormatError, match="not in the default categories"):
        load_ground_truth(doc)


def test_prediction_category_not_in_gt_is_refused(pred_recs):
    from dpeval.formats.consistency import check_images
    from dpeval.leaderboard.submit import check_predictions

    gt = load_ground_truth(EXAMPLES / "gt.json")
    recs = copy.deepcopy(pred_recs)
    recs[4]["category_id"] = 2
    p = load_predictions(recs)
    for check in (lambda: check_images(p, gt, False), lambda: check_predictions(p, gt)):
        with pytest.raises(FormatError) as e:
            check()
        msg = str(e.value)
        assert "<memory>: record 4 (image_id=" in msg
        assert "category_id 2 is not a category of the ground truth" in msg
        assert "set category_id to 1" in msg


# ----------------------------------------------------------------- duplicate keys


def test_duplicate_json_keys_are_refused(tmp_path, gt_doc, pred_recs):
    text = json.dumps(gt_doc["annotations"][2])
    dup = text.replace('"iscrowd"', '"category_id": 1, "iscrowd"', 1)
    gt_text = json.dumps(gt_doc).replace(text, dup, 1)
    assert gt_text != json.dumps(gt_doc)
    path = tmp_path / "gt.json"
    path.write_text(gt_text)
    with pytest.raises(FormatError) as e:
        load_ground_truth(path)
    msg = str(e.value)
    assert f"annotations[2] (id={gt_doc['annotations'][2]['id']})" in msg
    assert "key 'category_id' appears more than once" in msg

    rec = json.dumps(pred_recs[1])
    preds_text = json.dumps(pred_recs).replace(rec, rec.replace('"score"', '"score": 1.0, "score"'))
    path = tmp_path / "preds.json"
    path.write_text(preds_text)
    with pytest.raises(FormatError, match=r"record 1 \(image_id=\d+\): key 'score' appears"):
        load_predictions(path)


# ----------------------------------------------------------------- corrupt IUV maps


def _png_with_bad_stream(iuv: np.ndarray) -> bytes:
    """A PNG whose IDAT holds a corrupt zlib stream under a *correct* CRC."""
    png = base64.b64decode(encode_iuv(iuv))
    (n,) = struct.unpack(">I", png[33:37])
    data = bytearray(png[41 : 41 + n])
    data[len(data) // 2] ^= 0xFF
    data[len(data) // 2 + 1] ^= 0xFF
    chunk = b"IDAT" + bytes(data)
    return png[:33] + png[33:37] + chunk + struct.pack(">I", zlib.crc32(chunk)) + png[45 + n :]


def test_png_integrity_check():
    rng = np.random.default_rng(1)
    iuv = rng.integers(0, 25, (3, 40, 30)).astype(np.uint8)
    png = base64.b64decode(encode_iuv(iuv))
    assert check_png_stream(png, "x") == (40, 30)
    flipped = png[:50] + bytes([png[50] ^ 1]) + png[51:]
    cases = {
        "cut": png[: len(png) // 2],
        "no IEND": png[:-12],
        "CRC": flipped,
        "stream": _png_with_bad_stream(iuv),
    }
    for what, bad in cases.items():
        with pytest.raises(FormatError, match="PNG data is truncated or corrupt"):
            check_png_stream(bad, f"map {what}")


def test_corrupt_map_on_untouched_detection_fails_at_load(tmp_path, pred_recs):
    recs = copy.deepcopy(pred_recs)
    far = recs[0]
    far["bbox"] = [600.0, 440.0, 30.0, 30.0]  # touches no GT box: never decoded by score
    iuv = np.zeros((3, 30, 30), np.uint8)
    far["uv_shape"] = [3, 30, 30]
    far["uv_data"] = base64.b64encode(_png_with_bad_stream(iuv)).decode()
    path = _write(tmp_path, "preds.json", recs)
    with pytest.raises(FormatError) as e:
        load_predictions(path)
    msg = str(e.value)
    assert "preds.json: detection 0 (image_id=" in msg and "truncated or corrupt" in msg


# ----------------------------------------------------------------- zero-area boxes


def test_zero_area_box_one_rule(pred_recs, open_template):
    """Kept and scored as the official evaluator does: an unmatched false positive."""
    from dpeval import score
    from dpeval.geodesic import GeodesicSolver
    from dpeval.leaderboard.submit import check_predictions

    solver = GeodesicSolver(open_template)
    doc = json.loads((EXAMPLES / "gt.json").read_text())  # images 1-3 keep it fast
    doc["images"] = [im for im in doc["images"] if im["id"] <= 3]
    doc["annotations"] = [a for a in doc["annotations"] if a["image_id"] <= 3]
    gt = load_ground_truth(doc)
    pred_recs = [r for r in pred_recs if r["image_id"] <= 3]
    iuv = np.zeros((3, 1, 1), np.uint8)

    def extra(bbox):
        return {"image_id": 1, "category_id": 1, "bbox": bbox, "score": 0.99,
                "uv_shape": [3, 1, 1], "uv_data": encode_iuv(iuv)}  # fmt: skip

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        zero = load_predictions([*pred_recs, extra([300.0, 200.0, 0.0, 0.0])])
    texts = [str(w.message) for w in caught if issubclass(w.category, DpevalWarning)]
    assert len(texts) == 1 and "1 x detection(s) with a zero-area box" in texts[0]
    assert "larger than the box" not in texts[0]  # the old, misleading warning
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DpevalWarning)
        counts = check_predictions(zero, gt)  # the leaderboard accepts it too
        far = load_predictions([*pred_recs, extra([630.0, 470.0, 1.0, 1.0])])
        opts = {"template": open_template, "metrics": "gps", "solver": solver, "workers": 1}
        base = score(load_predictions(pred_recs), gt, **opts)
        s_zero = score(zero, gt, **opts)
        s_far = score(far, gt, **opts)
    assert not any("zero-area" in k for k in counts)  # accepted; the reader warned once
    ap = {n: s.metrics["gps_perpart"]["AP"] for n, s in
          (("base", base), ("zero", s_zero), ("far", s_far))}  # fmt: skip
    assert ap["zero"] < ap["base"]  # a false positive above every true positive
    assert ap["zero"] == pytest.approx(ap["far"], abs=1e-12)


# ----------------------------------------------------------------- wrong kind of file


def test_pickle_given_as_ground_truth(tmp_path):
    import pickle

    path = tmp_path / "gt.pkl"
    path.write_bytes(pickle.dumps([{"image_id": 1}], protocol=4))
    with pytest.raises(FormatError) as e:
        load_ground_truth(path)
    msg = str(e.value)
    assert "gt.pkl: is a Python pickle, not JSON" in msg and "truncated" not in msg


def test_refused_pickle_message_names_no_wrong_kind():
    """The restricted unpickler serves templates too: it must not say "predictions"."""
    import os
    import pickle

    from dpeval._safe_pickle import safe_pickle_loads

    with pytest.raises(pickle.UnpicklingError) as e:
        safe_pickle_loads(pickle.dumps(os.getcwd))
    assert "refusing to load" in str(e.value) and "predictions" not in str(e.value)
