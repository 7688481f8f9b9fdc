"""A contact sheet of a generated split, for looking at the data.

In: the ground-truth JSON written by :func:`~dpeval.synth.generate.generate_dataset`
(images and IUV PNGs next to it). Out: one PNG with, per image, the photo with boxes
and keypoints (green: dense person, orange: person without dense points, red: crowd)
next to the IUV overlay (part colours with U/V iso-lines) and the sampled dp points.
"""

from __future__ import annotations

import colorsys
import json
from pathlib import Path

import numpy as np

from .._typing import PathLike

__all__ = ["iuv_colours", "make_contact_sheet"]


def _palette() -> np.ndarray:
    pal = np.zeros((25, 3))
    for i in range(1, 25):
        hue = ((i - 1) * 7 % 24) / 24.0
        pal[i] = colorsys.hsv_to_rgb(hue, 0.85, 0.95)
    return pal


def iuv_colours(iuv: np.ndarray) -> np.ndarray:
    """``(H, W, 3) uint8`` false colours of an ``(H, W, 3)`` IUV map: one colour per
    part, darkened on U and V iso-lines (every 1/8), black background."""
    pal = _palette()
    col = pal[iuv[..., 0]]
    u, v = iuv[..., 1].astype(np.int64), iuv[..., 2].astype(np.int64)
    line = ((u % 32) < 4) | ((v % 32) < 4)
    col = col * np.where(line, 0.45, 1.0)[..., None]
    col[iuv[..., 0] == 0] = 0
    return (255 * col).astype(np.uint8)


def make_contact_sheet(
    gt_json: PathLike,
    out_png: PathLike,
    *,
    n_images: int = 8,
    columns: int = 2,
    thumb_width: int = 320,
) -> Path:
    """Write a contact sheet of the first ``n_images`` images of a synth split.

    Parameters
    ----------
    gt_json : path
        ``annotations/densepose_synth_<split>.json`` under the output directory.
    out_png : path
    n_images, columns, thumb_width : int
        Pairs (photo, IUV overlay) per sheet, pairs per row, and width of each panel.

    Returns
    -------
    Path
        ``out_png`` (a palette PNG, usually well under 1 MB).
    """
    from PIL import Image, ImageDraw

    gt_json = Path(gt_json)
    doc = json.loads(gt_json.read_text())
    root = gt_json.parent.parent
    info = doc.get("info", {})
    img_dir = root / info.get("image_dir", "images")
    iuv_dir = root / info.get("iuv_dir", "iuv")
    by_image: dict[int, list[dict]] = {}
    for a in doc["annotations"]:
        by_image.setdefault(a["image_id"], []).append(a)
    images = doc["images"][:n_images]
    if not images:
        raise ValueError(f"{gt_json}: no images to show")
    w0, h0 = images[0]["width"], images[0]["height"]
    s = thumb_width / w0
    tw, th = thumb_width, round(h0 * s)
    rows = -(-len(images) // columns)
    sheet = Image.new("RGB", (2 * tw * columns, th * rows), (0, 0, 0))
    pal = _palette()
    for n, rec in enumerate(images):
        photo = Image.open(img_dir / rec["file_name"]).convert("RGB")
        iuv = np.asarray(Image.open(iuv_dir / rec["iuv_file_name"]).convert("RGB"))
        colours = iuv_colours(iuv)
        base = np.asarray(photo) // 3
        over = np.where(iuv[..., :1] > 0, colours, base).astype(np.uint8)
        left = photo.resize((tw, th), Image.Resampling.BILINEAR)
        right = Image.fromarray(over).resize((tw, th), Image.Resampling.NEAREST)
        dl, dr = ImageDraw.Draw(left), ImageDraw.Draw(right)
        for a in by_image.get(rec["id"], []):
            _draw_annotation(dl, dr, a, s, pal)
        x, y = (n % columns) * 2 * tw, (n // columns) * th
        sheet.paste(left, (x, y))
        sheet.paste(right, (x + tw, y))
    out_png = Path(out_png)
    sheet.quantize(colors=256, dither=Image.Dither.NONE).save(out_png, optimize=True)
    return out_png


def _draw_annotation(dl, dr, a: dict, s: float, pal: np.ndarray) -> None:
    from .pose import COCO_SKELETON

    x, y, w, h = a["bbox"]
    colour = (255, 40, 40) if a["iscrowd"] else (40, 230, 40) if "dp_x" in a else (255, 160, 0)
    box = [x * s, y * s, (x + w) * s, (y + h) * s]
    dl.rectangle(box, outline=colour, width=1)
    dr.rectangle(box, outline=colour, width=1)
    kp = np.asarray(a.get("keypoints") or [0] * 51, dtype=float).reshape(17, 3)
    for i, j in COCO_SKELETON:
        if kp[i - 1, 2] > 0 and kp[j - 1, 2] > 0:
            dl.line([kp[i - 1, 0] * s, kp[i - 1, 1] * s, kp[j - 1, 0] * s, kp[j - 1, 1] * s],
                    fill=(255, 255, 0), width=1)  # fmt: skip
    for px, py, v in kp:
        if v > 0:
            c = (255, 255, 255) if v == 2 else (120, 120, 120)
            dl.ellipse([px * s - 1.5, py * s - 1.5, px * s + 1.5, py * s + 1.5], fill=c)
    if "dp_x" in a:
        for dx, dy, part in zip(a["dp_x"], a["dp_y"], a["dp_I"], strict=True):
            px, py = (x + dx * w / 255) * s, (y + dy * h / 255) * s
            c = tuple(int(255 * t) for t in pal[int(part)])
            dr.ellipse([px - 1.2, py - 1.2, px + 1.2, py + 1.2], fill=(255, 255, 255), outline=c)
