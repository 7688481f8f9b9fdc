"""Insight stage: matplotlib figures (Agg backend, imported inside the functions).

In: the DataFrames of :mod:`dpeval.insight.tables`, :mod:`~dpeval.insight.taxonomy` and
:mod:`~dpeval.insight.bootstrap`, the template. Out: ``matplotlib.figure.Figure``
objects (and :func:`save_png` to write them). Colours: the Okabe-Ito palette for
categories and ``cividis``/``viridis`` for values, both readable with colour-blindness
and in grey print. Every axis carries its unit.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..template import N_PARTS, PART_NAMES, BodyTemplate
from .taxonomy import CATEGORIES

__all__ = [
    "OKABE_ITO",
    "body_error_figure",
    "confusion_figure",
    "instance_figure",
    "part_bar_figure",
    "rcp_figure",
    "save_png",
    "taxonomy_figure",
    "vertex_error",
]

OKABE_ITO: tuple[str, ...] = (
    "#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000",
    "#999999",
)  # fmt: skip
"""Okabe-Ito colour-blind-safe palette (blue, orange, green, vermillion, purple, sky
blue, yellow, black, grey)."""

_CATEGORY_COLOURS = {
    "correct": "#009E73",
    "background_miss": "#999999",
    "lr_swap": "#D55E00",
    "front_back": "#E69F00",
    "wrong_part": "#CC79A7",
    "far_error": "#0072B2",
}
_CATEGORY_LABELS = {
    "correct": "correct (< 10 cm)",
    "background_miss": "background miss",
    "lr_swap": "left/right swap",
    "front_back": "front/back confusion",
    "wrong_part": "wrong part",
    "far_error": "far error (right part)",
}


def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def save_png(fig: Any, path: Any, dpi: int = 110) -> None:
    """Write ``fig`` as PNG and close it."""
    plt = _plt()
    fig.savefig(path, dpi=dpi, format="png")
    plt.close(fig)


def part_bar_figure(df: Any, title: str) -> Any:
    """Bar charts of mean / median geodesic error (cm) and GPS per part.

    Parameters
    ----------
    df : pandas.DataFrame
        :func:`~dpeval.insight.tables.part_errors` or ``coarse_part_errors`` (the
        ``all`` row is drawn as a dashed line).
    title : str

    Returns
    -------
    matplotlib.figure.Figure
    """
    plt = _plt()
    rows = df.drop(index="all", errors="ignore")
    overall = df.loc["all"] if "all" in df.index else None
    labels = [str(n) for n in rows["name"]]
    x = np.arange(len(rows))
    fig, axes = plt.subplots(2, 1, figsize=(max(7.0, 0.42 * len(rows) + 2), 7.2), sharex=True)
    w = 0.38
    ax = axes[0]
    ax.bar(x - w / 2, rows["mean_error_cm"], w, color=OKABE_ITO[0], label="mean")
    ax.bar(x + w / 2, rows["median_error_cm"], w, color=OKABE_ITO[1], label="median")
    if overall is not None:
        ax.axhline(overall["mean_error_cm"], color=OKABE_ITO[0], ls="--", lw=1, label="mean, all")
        ax.axhline(
            overall["median_error_cm"], color=OKABE_ITO[1], ls=":", lw=1.2, label="median, all"
        )
    top = np.nanmax(rows[["mean_error_cm", "median_error_cm"]].to_numpy(dtype=float), initial=0)
    ax.set_ylim(0, max(top, 1.0) * 1.3)
    ax.set_ylabel("geodesic error (cm)\npoints with a prediction")
    ax.set_title(title)
    ax.legend(fontsize=8, ncol=4, loc="upper left")
    ax.grid(axis="y", alpha=0.3)
    ax = axes[1]
    ax.bar(x, rows["gps"], 0.6, color=OKABE_ITO[2], label="mean point GPS")
    ax.bar(x, -rows["miss_rate"], 0.6, color=OKABE_ITO[8], label="miss rate (down)")
    if overall is not None:
        ax.axhline(overall["gps"], color="black", ls="--", lw=1, label="GPS, all")
    ax.axhline(0, color="black", lw=0.6)
    ax.set_ylim(-1, 1.25)
    ax.set_ylabel("GPS (per-part kappa)  /  miss rate\n(fraction)")
    ax.legend(fontsize=8, ncol=3, loc="upper left")
    ax.grid(axis="y", alpha=0.3)
    ax.set_xticks(x)
    ax.set_xticklabels(labels, rotation=60, ha="right", fontsize=8)
    ax.set_xlabel("part")
    fig.tight_layout()
    return fig


def rcp_figure(curves: Any) -> Any:
    """RCP curves overall, per coarse part and per area range, AUC10/AUC30 in the legend.

    Parameters
    ----------
    curves : pandas.DataFrame
        :func:`~dpeval.insight.tables.rcp_curves`.
    """
    plt = _plt()
    groups = [("overall", "overall"), ("coarse", "per coarse part"), ("area", "per GT area")]
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.8), sharey=True)
    styles = ["-", "--", "-.", ":"]
    lines = [c for c in OKABE_ITO if c != "#F0E442"]  # yellow is too light for thin lines
    for ax, (group, title) in zip(axes, groups, strict=True):
        sub = curves[curves["group"] == group]
        for i, (_, r) in enumerate(sub.iterrows()):
            if r["n_points"] == 0:
                continue
            ax.plot(
                r["t_cm"],
                r["rcp"],
                color=lines[i % len(lines)],
                ls=styles[(i // 8) % 4] if group != "coarse" else styles[i % 2],
                lw=1.6,
                label=f"{r['label']}  AUC10 {r['auc10']:.3f}  AUC30 {r['auc30']:.3f}",
            )
        ax.set_xlim(0, 30)
        ax.set_ylim(0, 1)
        ax.axvline(10, color="grey", lw=0.6, ls=":")
        ax.set_xlabel("geodesic threshold (cm)")
        ax.set_title(f"RCP, {title}")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="lower right")
    axes[0].set_ylabel("ratio of correct points (fraction)")
    fig.tight_layout()
    return fig


def vertex_error(
    template: BodyTemplate,
    gt_vertex: np.ndarray,
    dist: np.ndarray,
    *,
    cap: float = 0.30,
    smooth_steps: int = 6,
) -> np.ndarray:
    """Per-vertex mean error (metres) of the GT points at each surface location.

    Errors are clipped at ``cap`` (a miss counts as ``cap``); the sums and counts are
    diffused ``smooth_steps`` times to the mesh neighbours so sparse points colour
    their surroundings. NaN where no point reaches.

    Returns
    -------
    (V,) float64
    """
    from scipy import sparse

    v = np.asarray(gt_vertex, dtype=np.int64)
    d = np.asarray(dist, dtype=np.float64)
    ok = (v >= 0) & ~np.isnan(d)
    val = np.minimum(d[ok], cap)
    n_v = template.n_vertices
    s = np.bincount(v[ok], weights=val, minlength=n_v)
    c = np.bincount(v[ok], minlength=n_v).astype(np.float64)
    f = np.asarray(template.faces)
    i = np.concatenate([f[:, 0], f[:, 1], f[:, 2], f[:, 1], f[:, 2], f[:, 0]])
    j = np.concatenate([f[:, 1], f[:, 2], f[:, 0], f[:, 0], f[:, 1], f[:, 2]])
    adj = sparse.coo_matrix((np.ones(len(i)), (i, j)), shape=(n_v, n_v)).tocsr()
    adj.data[:] = 1.0
    step = adj + sparse.identity(n_v, format="csr")
    for _ in range(smooth_steps):
        s = step @ s
        c = step @ c
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(c > 1e-9, s / np.where(c > 1e-9, c, 1), np.nan)


def body_error_figure(template: BodyTemplate, vert_err: np.ndarray, *, cap: float = 0.30) -> Any:
    """Front and back views of the template coloured by per-vertex error (cm).

    Parameters
    ----------
    template : BodyTemplate
    vert_err : (V,) float
        Metres, NaN = no data (drawn light grey); :func:`vertex_error`.
    """
    plt = _plt()
    from matplotlib.cm import ScalarMappable
    from matplotlib.collections import PolyCollection
    from matplotlib.colors import Normalize

    cmap = plt.get_cmap("cividis")
    finite = vert_err[np.isfinite(vert_err)]
    top_cm = float(np.percentile(finite, 99)) * 100 if len(finite) else cap * 100
    top_cm = min(max(5.0 * np.ceil(top_cm / 5.0), 5.0), cap * 100)  # colour range to 99th pct
    norm = Normalize(0, top_cm)
    verts = np.asarray(template.vertices, dtype=np.float64)
    faces = np.asarray(template.faces)
    corner = vert_err[faces] if len(faces) else np.zeros((0, 3))
    seen = np.isfinite(corner)  # a face none of whose corners was measured stays NaN
    with np.errstate(invalid="ignore"):
        face_err = np.where(seen, corner, 0.0).sum(axis=1) / seen.sum(axis=1)
    fig, axes = plt.subplots(1, 2, figsize=(9.5, 7.5))
    for ax, sign, title in ((axes[0], 1.0, "front"), (axes[1], -1.0, "back")):
        p = verts[faces]
        normal = np.cross(p[:, 1] - p[:, 0], p[:, 2] - p[:, 0])
        normal /= np.maximum(np.linalg.norm(normal, axis=1, keepdims=True), 1e-12)
        facing = sign * normal[:, 2] > 0
        depth = sign * p[:, :, 2].mean(axis=1)
        order = np.where(facing)[0]
        order = order[np.argsort(depth[order], kind="stable")]
        screen = np.stack([sign * p[order, :, 0], p[order, :, 1]], axis=2)
        e = face_err[order]
        rgb = np.where(np.isnan(e)[:, None], np.array([0.85, 0.85, 0.85, 1.0]), cmap(norm(e * 100)))
        shade = 0.6 + 0.4 * np.abs(normal[order, 2])[:, None]
        rgb[:, :3] = np.clip(rgb[:, :3] * shade, 0, 1)
        ax.add_collection(
            PolyCollection(screen, facecolors=rgb, edgecolors="none", antialiased=False)
        )
        lo, hi = verts.min(axis=0), verts.max(axis=0)
        ax.set_xlim(min(lo[0], -hi[0]) - 0.05, max(hi[0], -lo[0]) + 0.05)
        ax.set_ylim(lo[1] - 0.05, hi[1] + 0.05)
        ax.set_aspect("equal")
        ax.set_xticks([])
        ax.set_yticks([])
        for spine in ax.spines.values():
            spine.set_visible(False)
        side = "left" if sign > 0 else "right"
        ax.set_title(f"{title}\n(person's right on the viewer's {side})", fontsize=10)
    sm = ScalarMappable(norm=norm, cmap=cmap)
    cb = fig.colorbar(sm, ax=axes, fraction=0.04, pad=0.02, extend="max")
    cb.set_label(
        f"mean geodesic error of GT points (cm; misses and errors capped at {cap * 100:.0f})"
    )
    fig.suptitle("Error on the body (grey: no GT point nearby)")
    return fig


def taxonomy_figure(counts: Any) -> Any:
    """Stacked bars of the error categories per part (fractions) with the overall bar.

    Parameters
    ----------
    counts : pandas.DataFrame
        :func:`~dpeval.insight.taxonomy.taxonomy_counts`.
    """
    plt = _plt()
    cats = list(CATEGORIES)
    order = ["all", *[p for p in counts.index if p != "all"]]
    df = counts.loc[order]
    n = df["n_points"].to_numpy(dtype=np.float64)
    frac = df[cats].to_numpy(dtype=np.float64) / np.where(n > 0, n, 1)[:, None]
    labels = [f"{r['name']} (n={int(r['n_points'])})" for _, r in df.iterrows()]
    fig, ax = plt.subplots(figsize=(10, 0.3 * len(df) + 1.8))
    y = np.arange(len(df))[::-1]
    left = np.zeros(len(df))
    for k, c in enumerate(cats):
        ax.barh(
            y,
            frac[:, k],
            left=left,
            color=_CATEGORY_COLOURS[c],
            label=_CATEGORY_LABELS[c],
            edgecolor="white",
            linewidth=0.4,
            hatch="//" if c == "lr_swap" else None,
        )
        left += frac[:, k]
    ax.set_yticks(y)
    ax.set_yticklabels(labels, fontsize=8)
    ax.set_xlim(0, 1)
    ax.set_xlabel("fraction of GT points")
    ax.set_title("Error taxonomy per GT part (first row: all points)")
    ax.legend(ncol=3, fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.06 - 1.2 / len(df)))
    fig.tight_layout()
    return fig


def confusion_figure(conf: Any) -> Any:
    """GT part (rows 1..24) x predicted part (columns 0..24) confusion, row-normalised.

    Parameters
    ----------
    conf : pandas.DataFrame
        :func:`~dpeval.insight.taxonomy.part_confusion`.
    """
    plt = _plt()
    m = conf.to_numpy(dtype=np.float64)[1:]
    rows = m.sum(axis=1, keepdims=True)
    frac = m / np.where(rows > 0, rows, 1)
    fig, ax = plt.subplots(figsize=(10, 9))
    im = ax.imshow(frac, cmap="viridis", vmin=0, vmax=1, aspect="auto")
    ax.set_xticks(range(N_PARTS + 1))
    ax.set_xticklabels([f"{p} {PART_NAMES[p]}" for p in range(N_PARTS + 1)], rotation=70,
                       ha="right", fontsize=7)  # fmt: skip
    ax.set_yticks(range(N_PARTS))
    ax.set_yticklabels([f"{p} {PART_NAMES[p]}" for p in range(1, N_PARTS + 1)], fontsize=7)
    ax.set_xlabel("predicted part (0 = background / no prediction)")
    ax.set_ylabel("GT part")
    ax.set_title("Part confusion (each row sums to 1)")
    cb = fig.colorbar(im, ax=ax, fraction=0.04)
    cb.set_label("fraction of the GT part's points")
    fig.tight_layout()
    return fig


def instance_figure(items: list[dict[str, Any]], ncols: int = 4) -> Any:
    """Gallery of instances.

    Parameters
    ----------
    items : list of dict
        Each with ``title``, ``gt_box`` and ``det_box`` ([x, y, w, h] or None),
        ``points`` (N, 2) image coordinates, ``err_cm`` (N,) (inf = miss), optional
        ``image`` (H, W, 3) uint8 crop with ``origin`` (x0, y0), optional ``iuv``
        (3, h, w) of the detection.
    """
    plt = _plt()
    from matplotlib.colors import Normalize
    from matplotlib.patches import Rectangle

    n = max(len(items), 1)
    ncols = min(ncols, n)
    nrows = (n + ncols - 1) // ncols
    fig, axes = plt.subplots(nrows, ncols, figsize=(3.6 * ncols, 3.9 * nrows + 0.6), squeeze=False)
    norm = Normalize(0, 30)
    cmap = plt.get_cmap("cividis")
    sc = None
    for ax, it in zip(axes.ravel(), items, strict=False):
        gx, gy, gw, gh = it["gt_box"]
        boxes = [it["gt_box"]] + ([it["det_box"]] if it.get("det_box") is not None else [])
        x0 = min(b[0] for b in boxes) - 5
        y0 = min(b[1] for b in boxes) - 5
        x1 = max(b[0] + b[2] for b in boxes) + 5
        y1 = max(b[1] + b[3] for b in boxes) + 5
        if it.get("image") is not None:
            ox, oy = it["origin"]
            img = it["image"]
            ax.imshow(img, extent=(ox, ox + img.shape[1], oy + img.shape[0], oy))
        if it.get("iuv") is not None and it.get("det_box") is not None:
            dx, dy, dw, dh = it["det_box"]
            part = it["iuv"][0].astype(np.float64)
            part[part == 0] = np.nan
            ax.imshow(part, cmap="tab20", vmin=1, vmax=24, alpha=0.45, interpolation="nearest",
                      extent=(dx, dx + part.shape[1], dy + part.shape[0], dy))  # fmt: skip
        ax.add_patch(Rectangle((gx, gy), gw, gh, fill=False, ec=OKABE_ITO[2], lw=1.5))
        if it.get("det_box") is not None:
            dx, dy, dw, dh = it["det_box"]
            ax.add_patch(Rectangle((dx, dy), dw, dh, fill=False, ec=OKABE_ITO[3], lw=1.5, ls="--"))
        pts = np.asarray(it["points"], dtype=np.float64).reshape(-1, 2)
        err = np.asarray(it["err_cm"], dtype=np.float64)
        miss = ~np.isfinite(err)
        if (~miss).any():
            sc = ax.scatter(pts[~miss, 0], pts[~miss, 1], c=err[~miss], cmap=cmap, norm=norm, s=9,
                            edgecolors="white", linewidths=0.3)  # fmt: skip
        if miss.any():
            ax.scatter(pts[miss, 0], pts[miss, 1], marker="x", s=12, color=OKABE_ITO[3], lw=0.8)
        ax.set_xlim(x0, x1)
        ax.set_ylim(y1, y0)
        ax.set_aspect("equal")
        ax.set_title(it["title"], fontsize=8)
        ax.tick_params(labelsize=6)
        ax.set_xlabel("x (px)", fontsize=7)
        ax.set_ylabel("y (px)", fontsize=7)
    for ax in axes.ravel()[len(items) :]:
        ax.axis("off")
    fig.suptitle(
        "Worst GT people (green: GT box, dashed vermillion: best detection; dots: GT points "
        "coloured by error, x: missed)",
        fontsize=9,
    )
    fig.tight_layout(rect=(0, 0.1, 1, 0.96))
    if sc is not None:
        cax = fig.add_axes((0.3, 0.06, 0.4, 0.012))
        cb = fig.colorbar(sc, cax=cax, orientation="horizontal")
        cb.set_label("geodesic error (cm)", fontsize=8)
    return fig
