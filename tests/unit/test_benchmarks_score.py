"""``benchmarks/score.py --against-official``: the driver of the official evaluator.

The official ``densepose_cocoeval.py`` is not here (dpeval never downloads or copies it),
so two stand-ins written by these tests take its place: a class with the official method
names that sleeps briefly. One has the 2019 shape (eval data directory in the constructor,
``evaluate(calc_mode=...)``), the other the Detectron one (fixed relative data path, no
modes, Python 2 / old-NumPy leftovers the driver's shims must absorb). Nothing here builds
the minival case; the example files are scored.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import textwrap
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = (ROOT / "examples" / "preds.json", ROOT / "examples" / "gt.json", "example")

STANDIN_2019 = """
import os, time
import numpy as np

class denseposeCOCOeval:
    def __init__(self, eval_data_dir=None, cocoGt=None, cocoDt=None, iouType="segm", sigma=1.0):
        assert iouType == "uv", iouType
        assert os.path.isfile(os.path.join(eval_data_dir, "SMPL_subdiv.mat")), eval_data_dir
        assert len(cocoGt.getAnnIds()) > 0 and len(cocoDt.getAnnIds()) > 0
        self.params = type("P", (), {"iouType": iouType})()
        self.stats = []

    def evaluate(self, calc_mode="GPSm"):
        assert calc_mode in ("GPSm", "GPS", "IOU"), calc_mode
        self.mode = calc_mode
        time.sleep(0.05)

    def accumulate(self):
        time.sleep(0.01)

    def summarize(self):
        print(" Average Precision  (AP) @[ OGPS=0.50:0.95 | area=   all | maxDets= 20 ] = 0.5")
        self.stats = np.full(18, {"GPSm": 0.5, "GPS": 0.25, "IOU": 0.75}[self.mode])
"""

STANDIN_DETECTRON = """
import os, time
from StringIO import StringIO  # Python 2, as the original
import numpy as np

class denseposeCOCOeval:
    def __init__(self, cocoGt=None, cocoDt=None, iouType="segm", sigma=1.0):
        assert os.path.isfile("./DensePoseData/eval_data/SMPL_subdiv.mat")
        self.iouThrs = np.linspace(0.5, 0.95, np.round((0.95 - 0.5) / 0.05) + 1)
        self.kind = np.float
        self.stats = []

    def _decodeUvData(self, dt):
        return dt["uv_data"].decode("base64")  # Python 2 only

    def evaluate(self):
        dt = {"uv_data": self.png, "uv_shape": [3, 2, 3]}
        uv = self._decodeUvData(dt)
        assert uv.shape == (3, 2, 3) and dt["uv"] is uv and uv[0, 1, 2] == 7
        time.sleep(0.05)

    def accumulate(self):
        pass

    def summarize(self):
        self.stats = [0.125] * 18
"""


@pytest.fixture(scope="module")
def score_module():
    spec = importlib.util.spec_from_file_location("bench_score", ROOT / "benchmarks" / "score.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _args(module: Path, data: Path, **kw) -> argparse.Namespace:
    base = dict(
        against_official=str(module),
        official_data=str(data),
        official_class="denseposeCOCOeval",
        official_iou_type="uv",
        official_modes="GPSm,GPS,IOU",
        no_official_shims=False,
    )
    return argparse.Namespace(**{**base, **kw})


@pytest.fixture()
def data_dir(tmp_path):
    d = tmp_path / "eval_data"
    d.mkdir()
    (d / "SMPL_subdiv.mat").write_bytes(b"")  # the stand-ins only check that it is there
    return d


def test_three_modes_each_in_a_fresh_process(score_module, tmp_path, data_dir, capsys):
    module = tmp_path / "densepose_cocoeval.py"
    module.write_text(STANDIN_2019)
    ours = tmp_path / "dpeval.json"
    ours.write_text(json.dumps({"metrics": {"gpsm": {"AP": 0.5}, "iou": {"AP": 0.75}}}))
    warm = {"wall": 0.5, "peak_rss_mb": 100.0, "json": str(ours)}
    score_module.official_rows(_args(module, data_dir), EXAMPLE, warm)
    out = capsys.readouterr().out
    for mode in ("GPSm", "GPS", "IOU"):
        assert f"| example, official {mode} " in out
    assert "official total (3 processes, RSS max)" in out
    assert "official / dpeval warm:" in out
    assert "eval_data_dir=data, cocoGt=gt, cocoDt=dt, iouType=ioutype" in out
    assert "AP official 0.5000, dpeval 0.5000" in out
    assert "AP official 0.7500, dpeval 0.7500" in out
    assert "AP official 0.2500, dpeval -" in out  # no gps_perpart in our stand-in JSON
    for line in out.splitlines():
        if line.startswith("| example, official"):
            wall = float(line.split("|")[2].split()[0])
            assert wall >= 0.05  # the stand-in's evaluate() sleeps


def test_detectron_shape_and_python2_shims(score_module, tmp_path, data_dir, capsys):
    module = tmp_path / "densepose_cocoeval.py"
    png = _png_b64()
    module.write_text(STANDIN_DETECTRON.replace("self.png", repr(png)))
    warm = {"wall": 0.5, "peak_rss_mb": 100.0, "json": None}
    score_module.official_rows(_args(module, data_dir), EXAMPLE, warm)
    out = capsys.readouterr().out
    assert "official (evaluate() has no calc_mode)" in out
    assert "official total (1 process, RSS max)" in out
    assert "constructor: cocoGt=gt, cocoDt=dt, iouType=ioutype" in out
    with pytest.raises(SystemExit, match="failed with exit"):
        score_module.official_rows(_args(module, data_dir, no_official_shims=True), EXAMPLE, warm)


def _png_b64() -> str:
    import base64
    import io

    from PIL import Image

    rgb = np.zeros((2, 3, 3), np.uint8)
    rgb[1, 2, 0] = 7
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode()


def test_export_official_layout(score_module, tiny_template, tmp_path):
    import h5py

    from dpeval.geodesic import GeodesicSolver
    from dpeval.template import load_template

    solver = GeodesicSolver(tiny_template, cache=False)
    files = score_module.export_official_layout(tiny_template, tmp_path, solver)
    assert sorted(p.name for p in files) == sorted(
        ["SMPL_subdiv.mat", "SMPL_SUBDIV_TRANSFORM.mat", "Pdist_matrix.pkl", "Pdist_matrix.mat"]
    )
    n = tiny_template.n_vertices
    with h5py.File(tmp_path / "Pdist_matrix.mat", "r") as fh:
        mat = fh["Pdist_matrix"][...]
    assert mat.shape == (n * (n - 1) // 2, 1) and mat.dtype == np.float32
    back = load_template(tmp_path)  # the .pkl through dpeval's official-layout reader
    np.testing.assert_array_equal(np.asarray(back.pdist).reshape(-1), mat.reshape(-1))


def test_help_says_what_is_assumed(score_module):
    text = textwrap.dedent(score_module.OFFICIAL_HELP)
    for word in ("calc_mode", "loadRes", "DensePoseData/eval_data", "shims", "never downloads"):
        assert word in text
