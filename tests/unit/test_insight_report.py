"""The HTML report of the bundled example renders; the CLI of report and compare."""

from __future__ import annotations

import argparse
import base64
import io
import json
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from _cases import EuclideanSolver

from dpeval._output import emit
from dpeval.insight import analyze, write_report
from dpeval.insight.cli import add_insight_parsers
from dpeval.insight.html import SECTION_IDS

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


class _Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.imgs: list[str] = []
        self.ids: list[str] = []
        self.links: list[str] = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if "id" in a:
            self.ids.append(a["id"])
        if tag == "img":
            self.imgs.append(a.get("src", ""))
        if tag in ("link", "script") or (tag == "a" and not a.get("href", "#").startswith("#")):
            self.links.append(str(a))


@pytest.fixture(scope="module")
def insight(open_template):
    return analyze(
        EXAMPLES / "preds.json", EXAMPLES / "gt.json", template=open_template,
        resamples=50, seed=0, workers=1, solver=EuclideanSolver(open_template),
    )  # fmt: skip


def test_report_renders_self_contained(insight, tmp_path):
    from PIL import Image

    path = write_report(insight, tmp_path)
    page = _Page()
    page.feed(path.read_text(encoding="utf-8"))
    assert set(SECTION_IDS) <= set(page.ids)
    assert len(page.imgs) == 7
    for src in page.imgs:
        assert src.startswith("data:image/png;base64,"), src[:40]
        data = base64.b64decode(src.split(",", 1)[1], validate=True)
        assert data.startswith(PNG_MAGIC)
        w, h = Image.open(io.BytesIO(data)).size
        assert w > 200 and h > 200
    assert page.links == []  # nothing loaded from elsewhere
    for name in ("summary.json", "intervals.csv", "per_part.csv", "taxonomy.csv",
                 "confusion.csv", "rcp.csv", "instances.csv", "insight.json"):  # fmt: skip
        assert (tmp_path / name).stat().st_size > 0, name
    pngs = sorted(p.name for p in (tmp_path / "figures").glob("*.png"))
    assert pngs == sorted(["per_part.png", "coarse_parts.png", "rcp.png", "body_error.png",
                           "taxonomy.png", "confusion.png", "gallery.png"])  # fmt: skip
    numbers = json.loads((tmp_path / "insight.json").read_text())
    assert numbers["options"]["resamples"] == 50


def test_insight_numbers_match_the_summary(insight):
    m = insight.summary.metrics
    iv = insight.intervals
    assert iv.loc["gpsm_AP", "value"] == pytest.approx(m["gpsm"]["AP"], abs=1e-12)
    assert iv.loc["AUC30", "value"] == pytest.approx(m["points"]["AUC30"], abs=1e-12)
    assert len(insight.instances) == 12
    assert insight.instances["best_gps"].is_monotonic_increasing
    assert np.isclose(insight.rcp.loc[0, "auc10"], m["points"]["AUC10"])


def _cli(argv):
    p = argparse.ArgumentParser()
    add_insight_parsers(p.add_subparsers())
    args = p.parse_args(argv)
    return emit(args.func(args))  # handlers return an Outcome; emit prints it


def test_compare_cli_gate(tmp_path, monkeypatch, capsys, open_template):
    import dpeval.geodesic

    monkeypatch.setattr(dpeval.geodesic, "GeodesicSolver", EuclideanSolver)
    preds = json.loads((EXAMPLES / "preds.json").read_text())
    first = preds[0]["image_id"]
    worse = tmp_path / "worse.json"
    worse.write_text(json.dumps([d for d in preds if d["image_id"] == first]))
    a, gt = str(EXAMPLES / "preds.json"), str(EXAMPLES / "gt.json")
    common = ["--resamples", "200", "--workers", "1"]
    assert _cli(["compare", a, str(worse), gt, *common]) == 0
    out = capsys.readouterr().out
    assert "gpsm_AP" in out and "AUC10" in out
    assert _cli(["compare", a, str(worse), gt, "--fail-if-worse", *common]) == 1
    assert "significantly worse" in capsys.readouterr().out
    assert _cli(["compare", str(worse), a, gt, "--fail-if-worse", "--metric", "gpsm", *common]) == 0
    assert _cli(["compare", a, a, gt, "--fail-if-worse", *common]) == 0
    out = capsys.readouterr().out
    assert "1.000" in out


def test_body_error_figure_quiet_on_unmeasured_faces(open_template):
    """Faces with no measured corner stay grey (NaN) without a numpy warning, and a
    face's colour is the mean of its measured corners only."""
    import warnings

    from dpeval.insight.figures import body_error_figure

    err = np.full(open_template.n_vertices, np.nan)
    err[: open_template.n_vertices // 3] = 0.05
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        fig = body_error_figure(open_template, err)
    import matplotlib.pyplot as plt

    plt.close(fig)
