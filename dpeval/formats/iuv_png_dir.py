"""Image-level IUV maps as a directory of PNG files, the ``iuv-png-dir`` format (stage 3,
formats).

In: a folder of ``<file_name stem or image id>.png`` maps, H x W x 3 (R = I, G = U*255,
B = V*255), one per image. Out: dense :class:`~dpeval.formats.model.Predictions` whose
maps decode lazily (each PNG's integrity is checked at load); and back.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from .._typing import PathLike
from ._validate import WarningTally, fail
from .iuv_png import check_png_stream, decode_iuv
from .model import DenseMap, ImageInfo, Predictions

__all__ = ["load_iuv_png_dir", "save_iuv_png_dir"]


def _image_table(images: Mapping[int, Any] | None) -> dict[int, tuple[str, int | None, int | None]]:
    table = {}
    for image_id, info in (images or {}).items():
        if isinstance(info, ImageInfo):
            table[int(image_id)] = (info.file_name, info.height, info.width)
        elif isinstance(info, Mapping):
            table[int(image_id)] = (
                str(info.get("file_name", "")),
                info.get("height"),
                info.get("width"),
            )
        else:
            table[int(image_id)] = (str(info), None, None)
    return table


def load_iuv_png_dir(
    path: PathLike, images: Mapping[int, Any] | None = None, *, validate_all: bool = False
) -> Predictions:
    """Read a directory of image-level IUV PNGs (the ``iuv-png-dir`` format).

    Parameters
    ----------
    path : path
        Folder of ``*.png`` files, H x W x 3 (R = I, G = U*255, B = V*255), one per
        image, named ``<file_name stem>.png`` or ``<image id>.png``.
    images : dict[int, ImageInfo], optional
        Resolves file-name stems to ids and gives the expected sizes.
    validate_all : bool
        Decode every map now.

    Returns
    -------
    Predictions
        ``kind == "dense"``; maps are decoded lazily by ``DenseMap.load_iuv()``.

    Raises
    ------
    FormatError
        Files that match no image (named), two files for one image, a PNG whose header
        size differs from the image size, or any PNG check of :func:`decode_iuv`.
    """
    path = Path(path)
    name = str(path)
    if not path.is_dir():
        raise fail(name, "is not a directory", "iuv-png-dir needs a folder of *.png maps")
    table = _image_table(images)
    by_stem = {Path(fn).stem: i for i, (fn, _, _) in table.items() if fn}
    files = sorted(p for p in path.iterdir() if p.is_file())
    tally = WarningTally(name)
    found: list[tuple[int, tuple[int, int, int], Callable[[], np.ndarray]]] = []
    unmatched: list[str] = []
    owner: dict[int, str] = {}
    for f in files:
        if f.suffix.lower() != ".png":
            tally.add("non-PNG file(s) ignored", f.name)
            continue
        image_id = by_stem.get(f.stem)
        if image_id is None and f.stem.isdigit():
            image_id = int(f.stem)
            if table and image_id not in table:
                image_id = None
        if image_id is None:
            unmatched.append(f.name)
            continue
        if image_id in owner:
            raise fail(
                f"{name}/{f.name}",
                f"maps to image {image_id}, as {owner[image_id]} does",
                "keep one PNG per image",
            )
        owner[image_id] = f.name
        where = f"{name}/{f.name} (image_id={image_id})"
        height, width = check_png_stream(f.read_bytes(), where)  # corrupt files fail now
        _, ih, iw = table.get(image_id, ("", None, None))
        if ih is not None and (height, width) != (ih, iw):
            raise fail(
                where,
                f"PNG is {height}x{width} (HxW) but the image is {ih}x{iw}",
                "image-level IUV maps must have the image size",
            )
        shape = (3, height, width)
        found.append((image_id, shape, _file_loader(f, shape, where)))
    if unmatched:
        hint = (
            "pass images= (the ground truth) to match COCO file names"
            if not table
            else "name each PNG after its image's file_name stem or id"
        )
        shown = ", ".join(unmatched[:5]) + (
            f" and {len(unmatched) - 5} more" if len(unmatched) > 5 else ""
        )
        raise fail(name, f"{len(unmatched)} PNG file(s) match no image: {shown}", hint)
    found.sort(key=lambda t: t[0])  # by image id, whatever the file names
    maps = [
        DenseMap(image_id=i, iuv_shape=s, index=k, _loader=f) for k, (i, s, f) in enumerate(found)
    ]
    if validate_all:
        for m in maps:
            m.load_iuv()
    if not maps:
        tally.add("empty predictions (no PNG maps)", name)
    tally.emit(stacklevel=4)
    return Predictions("dense", dense=tuple(maps), format="iuv-png-dir", source=name)


def _file_loader(f: Path, shape: tuple[int, int, int], where: str) -> Callable[[], np.ndarray]:
    return lambda: decode_iuv(f.read_bytes(), shape, where=where)


def save_iuv_png_dir(
    preds: Predictions, path: PathLike, images: Mapping[int, Any] | None = None
) -> None:
    """Write dense predictions as one ``<stem or id>.png`` per image into ``path`` (created)."""
    path = Path(path)
    table = _image_table(images)
    path.mkdir(parents=True, exist_ok=True)
    for m in preds.dense:
        stem = Path(table[m.image_id][0]).stem if table.get(m.image_id, ("",))[0] else ""
        iuv = m.load_iuv()
        img = Image.fromarray(np.ascontiguousarray(iuv.transpose(1, 2, 0)), mode="RGB")
        img.save(path / f"{stem or m.image_id}.png", format="PNG")
