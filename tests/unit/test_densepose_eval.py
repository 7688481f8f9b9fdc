"""The pycocotools-shaped ``DensePoseEval``: construction, stages, shapes, text, errors.

Expected numbers are the official evaluator's (``tests/data/official_golden``); the
summary text is rebuilt here from pycocotools' own format string with the ``OGPS``
measure of the DensePose code, so a changed layout fails.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from dpeval.errors import FormatError, StateError
from dpeval.evaluation import DensePoseEval
from dpeval.formats import load_ground_truth, load_predictions
from dpeval.params import EvalParams
from dpeval.template import load_template

GOLDEN = Path(__file__).resolve().parents[1] / "data" / "official_golden"
OFFICIAL = json.loads((GOLDEN / "official.json").read_text())

# pycocotools COCOeval.summarize()._summarize, with DensePose's measure name
I_STR = " {:<18} {} @[ {}={:<9} | area={:>6s} | maxDets={:>3d} ] = {:0.3f}"
ROWS = (
    [(1, None, "all")]
    + [(1, t, "all") for t in (0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95)]
    + [(1, None, "medium"), (1, None, "large")]
    + [(0, None, "all"), (0, 0.5, "all"), (0, 0.75, "all"), (0, None, "medium")]
    + [(0, None, "large")]
)


def official_lines(stats) -> list[str]:
    out = []
    for (ap, thr, area), v in zip(ROWS, stats, strict=True):
        title = "Average Precision" if ap else "Average Recall"
        kind = "(AP)" if ap else "(AR)"
        iou = f"{0.5:0.2f}:{0.95:0.2f}" if thr is None else f"{thr:0.2f}"
        out.append(I_STR.format(title, kind, "OGPS", iou, area, 20, v))
    return out


@pytest.fixture(scope="module")
def template(tmp_path_factory):
    assets = tmp_path_factory.mktemp("golden") / "assets"
    shutil.copytree(GOLDEN / "assets", assets)
    return load_template(assets)


@pytest.fixture(scope="module")
def evaluated(template):
    """Built from paths, in pycocotools' argument order (GT first)."""
    ev = DensePoseEval(
        str(GOLDEN / "gt.json"),
        GOLDEN / "preds.json",
        template=template,
        params=EvalParams(metric="gpsm"),  # similarities with masks, reused by every mode
        workers=1,
    )
    ev.evaluate()
    return ev


def test_paths_are_read(evaluated):
    assert evaluated.gt.source.endswith("gt.json")
    assert evaluated.preds.kind == "instances" and len(evaluated.preds.detections) == 238
    default = DensePoseEval(evaluated.gt, evaluated.preds).params
    assert (default.metric, default.kappa, default.protocol) == ("gps", "per-part", "challenge2019")
    assert default.max_dets == 20 and evaluated.params.metric == "gpsm"


def test_loaded_objects_give_the_same_numbers(evaluated, template):
    gt = load_ground_truth(GOLDEN / "gt.json")
    preds = load_predictions(GOLDEN / "preds.json", images=gt.images)
    ev = DensePoseEval(gt, preds, template=template, similarities=evaluated.similarities)
    assert ev.gt is gt and ev.preds is preds
    ev.evaluate()
    ev.accumulate()
    ev.summarize()
    np.testing.assert_allclose(ev.stats, OFFICIAL["modes"]["GPS"], rtol=0, atol=1e-12)


def test_swapped_arguments_fail_with_a_format_error(template):
    with pytest.raises(FormatError):
        DensePoseEval(GOLDEN / "preds.json", GOLDEN / "gt.json", template=template)


@pytest.mark.parametrize(("metric", "mode"), [("gps", "GPS"), ("gpsm", "GPSm"), ("iou", "IOU")])
def test_stages_shapes_and_summary_text(evaluated, template, metric, mode):
    ev = DensePoseEval(
        evaluated.gt,
        evaluated.preds,
        template=template,
        params=EvalParams(metric=metric),  # type: ignore[arg-type]
        similarities=evaluated.similarities,
    )
    ev.evaluate()
    ev.accumulate()
    # T thresholds, R recall points, K categories, A area ranges, M maxDets settings
    assert ev.eval["precision"].shape == (10, 101, 1, 3, 1)
    assert ev.eval["recall"].shape == (10, 1, 3, 1)
    assert ev.eval["scores"].shape == (10, 101, 1, 3, 1)
    assert ev.eval["params"] is ev.params
    p = ev.eval["precision"]
    assert np.all((p == -1) | ((p >= 0) & (p <= 1)))
    printed: list[str] = []
    lines = ev.summarize(print_function=printed.append)
    assert lines == printed == official_lines(OFFICIAL["modes"][mode])
    assert len(lines) == 18
    named = ev.stats_as_dict()
    stats = OFFICIAL["modes"][mode]
    assert named["AP"] == pytest.approx(stats[0], abs=1e-12)
    assert named["AP75"] == pytest.approx(stats[6], abs=1e-12)
    assert named["ARl"] == pytest.approx(stats[17], abs=1e-12)


def test_state_errors(evaluated, template):
    ev = DensePoseEval(
        evaluated.gt, evaluated.preds, template=template, similarities=evaluated.similarities
    )
    with pytest.raises(StateError, match="evaluate"):
        ev.accumulate()
    with pytest.raises(StateError, match="accumulate"):
        ev.summarize()
    with pytest.raises(StateError, match="accumulate"):
        ev.stats_as_dict()
    ev.evaluate()
    with pytest.raises(StateError, match="accumulate"):
        ev.summarize()


def test_run_chains_the_stages(evaluated, template):
    ev = DensePoseEval(
        evaluated.gt,
        evaluated.preds,
        template=template,
        params=EvalParams(metric="gpsm"),
        similarities=evaluated.similarities,
    )
    named = ev.run()
    assert named["AP"] == pytest.approx(OFFICIAL["modes"]["GPSm"][0], abs=1e-12)
    assert len(ev.stats) == 18


def test_max_dets_changes_the_numbers(evaluated, template):
    """maxDets 1 keeps one detection per image."""
    base = OFFICIAL["modes"]["GPS"]
    few = DensePoseEval(
        evaluated.gt, evaluated.preds, template=template, params=EvalParams(max_dets=1)
    )
    few.run()
    assert few.stats[13] < base[13]  # AR drops with one detection per image
    assert few.summarize()[0].endswith(f"maxDets=  1 ] = {few.stats[0]:0.3f}")
