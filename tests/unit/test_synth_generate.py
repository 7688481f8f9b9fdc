"""The dataset writer: determinism, readers, perfect-prediction score, atomicity, CLI."""

from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dpeval._output import emit
from dpeval.api import score
from dpeval.errors import ParamsError
from dpeval.evaluation.masks import decode_rle
from dpeval.formats import load_ground_truth
from dpeval.formats.model import Detection, Predictions
from dpeval.synth import generate
from dpeval.synth.cli import add_synth_parser, parse_size
from dpeval.synth.generate import SynthConfig, generate_dataset, json_path
from dpeval.synth.scene import SceneConfig

N_IMAGES = 10
SEED = 4


def _hashes(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("synth_a")
    path = generate_dataset(root, split="val", n_images=N_IMAGES, seed=SEED, workers=1)
    return root, path


def test_layout_and_counts(dataset):
    root, path = dataset
    assert path == json_path(root, "val")
    doc = json.loads(path.read_text())
    assert len(doc["images"]) == N_IMAGES
    for im in doc["images"]:
        assert (root / "images" / "val" / im["file_name"]).is_file()
        iuv = np.asarray(Image.open(root / "iuv" / "val" / im["iuv_file_name"]))
        assert iuv.shape == (im["height"], im["width"], 3) and iuv[..., 0].max() <= 24
    cat = doc["categories"][0]
    assert cat["id"] == 1 and cat["name"] == "person" and len(cat["keypoints"]) == 17
    ids = [a["id"] for a in doc["annotations"]]
    assert ids == list(range(1, len(ids) + 1))
    dense = [a for a in doc["annotations"] if "dp_x" in a]
    assert dense and all(len(a["dp_masks"]) == 14 for a in dense)
    n_pts = [len(a["dp_x"]) for a in dense]
    assert max(n_pts) >= 100 and max(n_pts) <= 14 * 14
    assert not list(root.rglob("*.tmp"))


def test_same_seed_same_bytes_whatever_the_workers(dataset, tmp_path):
    root, _ = dataset
    generate_dataset(tmp_path, split="val", n_images=N_IMAGES, seed=SEED, workers=2)
    assert _hashes(tmp_path) == _hashes(root)


def test_other_seed_or_split_differs(dataset, tmp_path):
    root, _ = dataset
    generate_dataset(tmp_path, split="val", n_images=2, seed=SEED + 1, workers=1)
    a = (root / "images/val/000001.jpg").read_bytes()
    assert (tmp_path / "images/val/000001.jpg").read_bytes() != a
    generate_dataset(tmp_path, split="train", n_images=2, seed=SEED, workers=1)
    assert (tmp_path / "images/train/000001.jpg").read_bytes() != a


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_loads_with_pycocotools_and_dpeval(dataset):
    from pycocotools.coco import COCO

    _, path = dataset
    coco = COCO(str(path))
    assert len(coco.getImgIds()) == N_IMAGES
    assert coco.loadCats(1)[0]["keypoints"][0] == "nose"
    for ann in coco.loadAnns(coco.getAnnIds()):
        assert coco.annToMask(ann).sum() == ann["area"]
    gt = load_ground_truth(path)
    assert len(gt.images) == N_IMAGES
    assert sum(a.has_dense for a in gt.annotations) == sum(
        "dp_x" in a for a in coco.loadAnns(coco.getAnnIds())
    )


def _solver(template):
    from dpeval.geodesic import GeodesicSolver

    return GeodesicSolver(template)


def test_ground_truth_as_predictions_scores_one(dataset, open_template):
    """Each dense person predicted with its GT box and its own visible IUV pixels."""
    root, path = dataset
    doc = json.loads(path.read_text())
    images = {im["id"]: im for im in doc["images"]}
    dets = []
    for a in doc["annotations"]:
        if "dp_x" not in a:
            continue
        im = images[a["image_id"]]
        iuv = np.asarray(Image.open(root / "iuv/val" / im["iuv_file_name"]))
        mask = decode_rle(a["segmentation"]).astype(bool)
        x, y, w, h = (int(t) for t in a["bbox"])
        crop = np.where(mask[y : y + h, x : x + w, None], iuv[y : y + h, x : x + w], 0)
        crop = np.ascontiguousarray(crop.transpose(2, 0, 1))
        dets.append(
            Detection(
                image_id=a["image_id"],
                category_id=1,
                bbox=np.asarray(a["bbox"], dtype=np.float64),
                score=1.0,
                iuv_shape=crop.shape,
                index=len(dets),
                _iuv=crop,
            )
        )
    assert any(max(d.iuv_shape[1:]) > 128 for d in dets)
    preds = Predictions("instances", detections=tuple(dets), format="memory")
    s = score(preds, path, solver=_solver(open_template))
    for key in ("gps_perpart", "gps_paper", "gpsm", "iou"):
        assert s.metrics[key]["AP"] == 1.0, key
        assert s.metrics[key]["AR"] == 1.0, key
    assert s.metrics["points"]["AUC10"] == 1.0
    assert s.metrics["points"]["AUC30"] == 1.0


def test_interrupted_run_leaves_no_json(dataset, tmp_path, monkeypatch):
    generate_dataset(tmp_path, split="val", n_images=2, seed=1, workers=1)
    assert json_path(tmp_path, "val").exists()
    real = generate._work

    def failing(job):
        if job[0] == 1:
            raise KeyboardInterrupt
        return real(job)

    monkeypatch.setattr(generate, "_work", failing)
    with pytest.raises(KeyboardInterrupt):
        generate_dataset(tmp_path, split="val", n_images=3, seed=2, workers=1)
    assert not json_path(tmp_path, "val").exists()
    assert not list(tmp_path.rglob("*.tmp"))


def test_bad_parameters_raise():
    with pytest.raises(ParamsError, match="--images"):
        generate_dataset("/nonexistent", n_images=0)
    with pytest.raises(ParamsError, match="--workers"):
        generate_dataset("/nonexistent", n_images=1, workers=0)
    with pytest.raises(ParamsError, match="WIDTHxHEIGHT"):
        parse_size("640by480")
    assert parse_size("320x240") == (320, 240)


def test_cli_writes_dataset_and_preview(tmp_path, capsys):
    parser = argparse.ArgumentParser(prog="dpeval")
    add_synth_parser(parser.add_subparsers(dest="command"))
    sheet = tmp_path / "sheet.png"
    args = parser.parse_args(
        ["synth", str(tmp_path / "out"), "--split", "val", "--images", "3", "--seed", "2",
         "--size", "160x120", "--max-people", "2", "--workers", "1", "--format", "png",
         "--preview", str(sheet)]
    )  # fmt: skip
    assert emit(args.func(args)) == 0  # handlers return lines; emit prints them
    out = capsys.readouterr().out
    assert "3 images" in out and "images/s" in out
    doc = json.loads(json_path(tmp_path / "out", "val").read_text())
    assert doc["images"][0]["file_name"].endswith(".png")
    assert Image.open(sheet).size[0] > 0


def test_small_config_round_trip(tmp_path):
    cfg = SynthConfig(scene=SceneConfig(width=96, height=64, max_people=1), effects=False)
    path = generate_dataset(tmp_path, split="val", n_images=2, seed=0, config=cfg)
    gt = load_ground_truth(path)
    assert all(im.width == 96 and im.height == 64 for im in gt.images.values())


def test_cli_scene_mix_options(tmp_path):
    from dpeval.synth.cli import parse_size_mix

    assert parse_size_mix("0,0.5,0.5") == (0.0, 0.5, 0.5)
    for bad, msg in (
        ("1,2", "three non-negative"),
        ("0.5,0.5,0.5", "sums to 1.5"),
        ("a,b,c", "three"),
        ("-0.5,1,0.5", "non-negative"),
        ("nan,0,1", "three"),
    ):
        with pytest.raises(ParamsError, match=msg):
            parse_size_mix(bad)
    parser = argparse.ArgumentParser(prog="dpeval")
    add_synth_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(
        ["synth", str(tmp_path / "out"), "--images", "4", "--size", "160x128", "--workers", "1",
         "--crowd-prob", "0", "--size-mix", "0,0,1", "-q"]
    )  # fmt: skip
    assert emit(args.func(args)) == 0  # handlers return lines; emit prints them
    gt = load_ground_truth(json_path(tmp_path / "out", "train"))
    assert not any(a.iscrowd for a in gt.annotations)  # no crowd groups at probability 0
    # only "large" people (standing height >= 170 px), so every box is tall in a 128 px frame
    # unless truncated by the border; at least one must be clipped to the full height
    assert max(a.bbox[3] for a in gt.annotations) >= 100
    bad = parser.parse_args(["synth", str(tmp_path / "x"), "--crowd-prob", "1.5", "-q"])
    with pytest.raises(ParamsError, match="crowd-prob"):
        bad.func(bad)
