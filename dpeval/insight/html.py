"""Insight stage output: one self-contained HTML report plus PNGs, CSV and JSON.

In: an :class:`~dpeval.insight.analysis.Insight`. Out, under ``out_dir``:
``report.html`` (inline base64 PNGs, inline CSS, no script, no network),
``figures/*.png``, ``summary.json`` (the ``dpeval score`` JSON), ``intervals.csv``,
``per_part.csv``, ``coarse_parts.csv``, ``rcp.csv``, ``taxonomy.csv``,
``confusion.csv``, ``instances.csv`` and ``insight.json`` (intervals, taxonomy totals,
options).
"""

from __future__ import annotations

import base64
import html
import io
import json
import logging
import math
from pathlib import Path
from typing import Any

import numpy as np

from ..summary import METRIC_KEYS

__all__ = ["SECTION_IDS", "gallery_items", "write_report"]

log = logging.getLogger(__name__)

SECTION_IDS: tuple[str, ...] = (
    "summary", "per-part", "rcp", "body-map", "taxonomy", "confusion", "oracles", "gallery",
    "notes",
)  # fmt: skip
"""``id`` of each report section, in page order."""

_TITLES = {
    "gps_paper_AP": "AP, GPS kappa 0.255 (paper)",
    "gps_perpart_AP": "AP, GPS per-part kappa (2018/2019 challenges)",
    "gpsm_AP": "AP, GPSm (2019 challenge, detectron2)",
    "iou_AP": "AP, mask IoU",
    "AUC10": "AUC10 (RCP area up to 10 cm)",
    "AUC30": "AUC30 (RCP area up to 30 cm)",
}

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:2em auto;
max-width:1250px;color:#222;line-height:1.4;padding:0 1em}
h1{font-size:1.6em;margin-bottom:.2em} h2{border-bottom:2px solid #0072B2;padding-bottom:.2em;
margin-top:2em} table{border-collapse:collapse;margin:.8em 0;font-size:.9em}
th,td{border:1px solid #ccc;padding:.25em .6em;text-align:right}
th{background:#eef3f8} td.l,th.l{text-align:left} img{max-width:100%;height:auto;
border:1px solid #ddd;margin:.5em 0} .meta{color:#555;font-size:.9em}
nav a{margin-right:1em} details{margin:.5em 0} code{background:#f4f4f4;padding:0 .2em}
"""


def _png(fig: Any, path: Path | None, dpi: int = 100) -> str:
    """Base64 PNG of ``fig`` (also written to ``path``); closes the figure."""
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    plt.close(fig)
    data = buf.getvalue()
    if path is not None:
        path.write_bytes(data)
    return base64.b64encode(data).decode("ascii")


def _img(b64: str, alt: str) -> str:
    return f'<img src="data:image/png;base64,{b64}" alt="{html.escape(alt)}">'


def _fmt(x: Any, nd: int = 3) -> str:
    if isinstance(x, (float, np.floating)):
        return "–" if math.isnan(float(x)) else f"{float(x):.{nd}f}"
    return html.escape(str(x))


def _table(df: Any, cols: list[str], heads: list[str], nd: int = 3, index: str = "") -> str:
    out = ["<table><tr>"]
    if index:
        out.append(f'<th class="l">{html.escape(index)}</th>')
    out += [
        f'<th class="{"l" if c == "name" else ""}">{html.escape(h)}</th>'
        for c, h in zip(cols, heads, strict=True)
    ]
    out.append("</tr>")
    for idx, r in df.iterrows():
        out.append("<tr>")
        if index:
            out.append(f'<td class="l">{html.escape(str(idx))}</td>')
        for c in cols:
            cls = ' class="l"' if c in ("name", "what") else ""
            out.append(f"<td{cls}>{_fmt(r[c], nd)}</td>")
        out.append("</tr>")
    out.append("</table>")
    return "".join(out)


def gallery_items(ins: Any, n: int = 8, images: str | Path | None = None) -> list[dict[str, Any]]:
    """The ``n`` worst GT people as :func:`~dpeval.insight.figures.instance_figure` items.

    With ``images`` (a directory holding the GT ``file_name`` files), each item carries
    the image crop and the best detection's IUV map.
    """
    items = []
    sims, gt, preds = ins.sims, ins.gt, ins.preds
    pg = np.asarray(sims.point_gt)
    for _, r in ins.instances.head(n).iterrows():
        a = gt.annotations[int(r["ann_index"])]
        gx, gy, gw, gh = (float(t) for t in a.bbox)
        sel = (pg == int(r["ann_index"])) & ~np.isnan(sims.point_dist)
        dp_x = np.asarray(a.dp_x, dtype=np.float64)
        dp_y = np.asarray(a.dp_y, dtype=np.float64)
        pts = np.stack([gx + dp_x * gw / 255.0, gy + dp_y * gh / 255.0], axis=1)
        valid = ~np.isnan(sims.point_dist[pg == int(r["ann_index"])])
        det = preds.detections[int(r["det_index"])] if r["det_index"] >= 0 else None
        item: dict[str, Any] = {
            "title": f"image {a.image_id}, GT #{int(r['ann_index'])}: GPS {r['best_gps']:.2f}",
            "gt_box": [gx, gy, gw, gh],
            "det_box": [float(t) for t in det.bbox] if det is not None else None,
            "points": pts[valid],
            "err_cm": sims.point_dist[sel] * 100,
        }
        if images is not None:
            info = gt.images.get(a.image_id)
            path = Path(images) / info.file_name if info is not None else None
            if path is not None and path.is_file():
                try:
                    from PIL import Image

                    img = np.asarray(Image.open(path).convert("RGB"))
                    boxes = [item["gt_box"]] + ([item["det_box"]] if det is not None else [])
                    x0 = max(int(min(b[0] for b in boxes)) - 10, 0)
                    y0 = max(int(min(b[1] for b in boxes)) - 10, 0)
                    x1 = int(max(b[0] + b[2] for b in boxes)) + 10
                    y1 = int(max(b[1] + b[3] for b in boxes)) + 10
                    item["image"] = img[y0:y1, x0:x1]
                    item["origin"] = (x0, y0)
                    if det is not None:
                        item["iuv"] = det.load_iuv()
                except Exception as exc:
                    log.warning("gallery: cannot read %s: %s", path, exc)
            else:
                log.warning("gallery: image %s not found under %s", a.image_id, images)
        items.append(item)
    return items


def write_report(
    ins: Any, out_dir: str | Path, *, images: str | Path | None = None, n_worst: int = 8
) -> Path:
    """Write the HTML report, the PNG figures and the numbers.

    Parameters
    ----------
    ins : Insight
        From :func:`dpeval.insight.analyze`.
    out_dir : path
        Created if needed.
    images : path, optional
        Directory of the GT images, for image crops with IUV overlays in the gallery.
    n_worst : int
        People in the gallery.

    Returns
    -------
    Path
        ``out_dir / "report.html"``.
    """
    from . import figures as F

    out = Path(out_dir)
    fig_dir = out / "figures"
    fig_dir.mkdir(parents=True, exist_ok=True)
    figs = ins.figures()
    pngs = {name: _png(fig, fig_dir / f"{name}.png") for name, fig in figs.items()}
    pngs["gallery"] = _png(
        F.instance_figure(gallery_items(ins, n_worst, images)), fig_dir / "gallery.png"
    )

    (out / "summary.json").write_text(ins.summary.to_json())
    ins.intervals.to_csv(out / "intervals.csv")
    ins.per_part.to_csv(out / "per_part.csv")
    ins.coarse_parts.to_csv(out / "coarse_parts.csv")
    rcp = ins.rcp.copy()
    rcp["t_cm"] = rcp["t_cm"].map(json.dumps)
    rcp["rcp"] = rcp["rcp"].map(json.dumps)
    rcp.to_csv(out / "rcp.csv", index=False)
    ins.taxonomy.to_csv(out / "taxonomy.csv")
    ins.confusion.to_csv(out / "confusion.csv")
    ins.instances.to_csv(out / "instances.csv", index=False)
    if ins.oracles is not None:
        ins.oracles.to_csv(out / "oracles.csv")
    numbers = {
        "intervals": json.loads(ins.intervals.to_json(orient="index")),
        "taxonomy_all": {k: int(v) for k, v in ins.taxonomy.loc["all"].drop("name").items()},
        "options": ins.options,
    }
    (out / "insight.json").write_text(json.dumps(numbers, indent=1, sort_keys=True))

    s = ins.summary
    opts = ins.options
    iv = ins.intervals.copy()
    iv.insert(0, "name", [_TITLES.get(k, k) for k in iv.index])
    tax = ins.taxonomy.loc["all"]
    n_pts = max(int(tax["n_points"]), 1)
    tax_rows = "".join(
        f"<tr><td class='l'>{html.escape(F._CATEGORY_LABELS[c])}</td><td>{int(tax[c])}</td>"
        f"<td>{100 * int(tax[c]) / n_pts:.1f}%</td></tr>"
        for c in F._CATEGORY_LABELS
    )
    official = "".join(
        f"<details><summary>{html.escape(k)} official summary</summary><pre>"
        + html.escape("\n".join(s.official_summary[k]))
        + "</pre></details>"
        for k in METRIC_KEYS
        if k in s.official_summary
    )
    nav = "".join(f'<a href="#{i}">{i}</a>' for i in SECTION_IDS)
    pp_cols = ["name", "n_points", "mean_error_cm", "median_error_cm", "miss_rate", "gps",
               "auc10", "auc30"]  # fmt: skip
    pp_heads = ["part", "GT points", "mean err (cm)", "median err (cm)", "miss rate", "GPS",
                "AUC10", "AUC30"]  # fmt: skip
    n_points = int(s.metrics.get("points", {}).get("n_points", 0))
    if ins.oracles is None:
        oracle_html = "<p>Not computed (<code>dpeval report --no-oracles</code>).</p>"
    else:
        oracle_html = _table(
            ins.oracles,
            ["what", "gps_perpart_AP", "gps_paper_AP", "gpsm_AP", "AUC10", "AUC30"],
            ["what replaces the prediction", "GPS AP (per-part κ)", "GPS AP (κ 0.255)",
             "GPSm AP", "AUC10", "AUC30"],
            index="mode",
        )  # fmt: skip
    summary_table = _table(
        iv,
        ["name", "value", "ci_low", "ci_high", "std"],
        ["metric", "value", "95% low", "95% high", "bootstrap s.e."],
        index="key",
    )
    doc = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>dpeval report</title>
<style>{_CSS}</style></head><body>
<h1>DensePose evaluation report</h1>
<p class="meta">dpeval {html.escape(s.dpeval_version)} · template {html.escape(s.template_id)} ·
protocol {html.escape(s.protocol)} · {len(ins.gt.images)} images,
{len(ins.instances)} dense GT people, {n_points} GT points ·
predictions sha256 <code>{html.escape(s.predictions_sha256[:16])}</code>, ground truth sha256
<code>{html.escape(s.ground_truth_sha256[:16])}</code></p>
<nav>{nav}</nav>
<section id="summary"><h2>Summary with 95% confidence intervals</h2>
<p>Percentile intervals of an image-level bootstrap: {opts.get("resamples")} resamples of
the {len(ins.gt.images)} images with replacement, seed {opts.get("seed")}. Values are
fractions.</p>
{summary_table}
{official}
</section>
<section id="per-part"><h2>Per part</h2>
<p>Geodesic error of each GT point under its person's best detection (highest per-part
GPS). Mean and median use the points with a prediction; misses are counted in the miss
rate, and as 0 in GPS and the AUCs.</p>
{_img(pngs["per_part"], "per-part error and GPS")}
{_img(pngs["coarse_parts"], "coarse-part error and GPS")}
<details><summary>Per-part table</summary>
{_table(ins.per_part, pp_cols, pp_heads, index="id")}</details>
</section>
<section id="rcp"><h2>Ratio of correct points (RCP)</h2>
{_img(pngs["rcp"], "RCP curves")}</section>
<section id="body-map"><h2>Error on the body</h2>
<p>Template front and back, coloured by the mean geodesic error of the GT points at each
surface location (spread to neighbouring vertices where points are sparse).</p>
{_img(pngs["body_error"], "error painted on the body")}</section>
<section id="taxonomy"><h2>Error taxonomy</h2>
<p>Each GT point in the first matching category: correct (&lt; 10 cm); background miss
(nothing predicted there); left/right swap (the prediction is within 10 cm of the
mirror of the GT point and closer to it than to the GT point); front/back confusion
(predicted part is the GT part's front/back partner); wrong part; far error (right
part, &ge; 10 cm).</p>
<table><tr><th class="l">category</th><th>points</th><th>share</th></tr>{tax_rows}</table>
{_img(pngs["taxonomy"], "error taxonomy per part")}</section>
<section id="confusion"><h2>Part confusion</h2>
{_img(pngs["confusion"], "part confusion matrix")}</section>
<section id="oracles"><h2>What if the parts were perfect</h2>
<p>The official evaluator's upper-bound modes: at every GT point inside a detection's box,
ground-truth quantities replace the predicted ones before the closest vertex is found
(points outside the box still count as misses; masks, and so the IoU half of GPSm, are
unchanged). The gap between <code>model</code> and <code>gt-parts</code> is what perfect part
segmentation would add; <code>gt-parts-uv0</code> and <code>uv0</code> show how much the chart
coordinates contribute. Values are fractions.</p>
{oracle_html}</section>
<section id="gallery"><h2>Worst instances</h2>
<p>The {min(n_worst, len(ins.instances))} GT people with the lowest per-part GPS under
their best detection{" (image crops with the detection's part map)" if images else ""}.</p>
{_img(pngs["gallery"], "worst instances")}</section>
<section id="notes"><h2>Files</h2>
<p>Numbers: <code>summary.json</code>, <code>intervals.csv</code>, <code>per_part.csv</code>,
<code>coarse_parts.csv</code>, <code>rcp.csv</code>, <code>taxonomy.csv</code>,
<code>confusion.csv</code>, <code>instances.csv</code>, <code>oracles.csv</code>,
<code>insight.json</code>;
figures in <code>figures/</code>.</p></section>
</body></html>
"""
    path = out / "report.html"
    path.write_text(doc, encoding="utf-8")
    return path
