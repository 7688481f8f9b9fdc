"""The content-addressed ground-truth cache (``cache_dir()/gt``): a second run skips the
RLE check and the GT closest-vertex search, and never answers from a stale entry."""

from __future__ import annotations

import copy
import importlib
import json
from pathlib import Path

import numpy as np
import pytest

from dpeval import score
from dpeval.errors import FormatError
from dpeval.formats import load_ground_truth

prepare = importlib.import_module("dpeval.evaluation.prepare")  # the module, not the function

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.fixture()
def cache(tmp_path, monkeypatch):
    d = tmp_path / "cache"
    monkeypatch.setenv("DPEVAL_CACHE_DIR", str(d))
    return d


def _gt_doc() -> dict:
    return json.loads((EXAMPLES / "gt.json").read_text())


def test_rle_check_is_remembered_per_content_not_per_file(cache, tmp_path):
    doc = _gt_doc()
    good = tmp_path / "gt.json"
    good.write_text(json.dumps(doc))
    load_ground_truth(good)
    assert len(list((cache / "gt").glob("*.npy"))) == 1  # the marker of a passed check
    load_ground_truth(good)  # the second read finds it
    assert len(list((cache / "gt").glob("*.npy"))) == 1
    bad = copy.deepcopy(doc)
    ann = bad["annotations"][2]
    k = next(i for i, m in enumerate(ann["dp_masks"]) if m)
    ann["dp_masks"][k]["counts"] = ann["dp_masks"][k]["counts"][:-2]
    good.write_text(json.dumps(bad))  # same path, new bytes: must not pass from the cache
    with pytest.raises(FormatError, match=r"dp_masks\[\d+\] is not a valid RLE"):
        load_ground_truth(good)
    assert len(list((cache / "gt").glob("*.npy"))) == 1  # a failed check leaves no marker


def test_gt_vertices_come_from_the_cache_and_follow_the_points(cache, open_template):
    gt = load_ground_truth(EXAMPLES / "gt.json")
    first = prepare._gt_points(gt, open_template)
    entries = sorted((cache / "gt").glob("*.npy"))
    assert entries, "the GT vertices were not cached"
    calls = []
    real = type(open_template).closest_vertices

    def spy(self, *a, **k):
        calls.append(1)
        return real(self, *a, **k)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(type(open_template), "closest_vertices", spy)
        again = prepare._gt_points(gt, open_template)
        assert not calls  # answered from the cache
        np.testing.assert_array_equal(again.vertex, first.vertex)
        # move one GT point's U far across its chart: the key changes, so it is recomputed
        doc = _gt_doc()
        ann = next(a for a in doc["annotations"] if a.get("dp_U"))
        ann["dp_U"][0] = 1.0 - ann["dp_U"][0]
        moved = prepare._gt_points(load_ground_truth(doc), open_template)
        assert calls
    direct = open_template.closest_vertices(moved.part, *_uv(load_ground_truth(doc)))
    np.testing.assert_array_equal(moved.vertex, direct)


def _uv(gt) -> tuple[np.ndarray, np.ndarray]:
    us = [np.asarray(a.dp_U, float) for a in gt.annotations if a.has_dense and a.n_points]
    vs = [np.asarray(a.dp_V, float) for a in gt.annotations if a.has_dense and a.n_points]
    return np.concatenate(us), np.concatenate(vs)


def test_scores_are_the_same_cold_and_warm(cache, open_template):
    opts = {"template": open_template, "metrics": "gps", "workers": 1}
    cold = score(EXAMPLES / "preds.json", EXAMPLES / "gt.json", **opts)
    warm = score(EXAMPLES / "preds.json", EXAMPLES / "gt.json", **opts)
    assert cold.metrics == warm.metrics
