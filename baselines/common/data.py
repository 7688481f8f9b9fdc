"""DensePose-COCO / DensePose-Synth data as a torch ``Dataset`` (the baselines' input stage).

In: a DensePose-COCO-style ground-truth JSON (read with :func:`dpeval.formats.load_ground_truth`),
the images, and optionally image-level IUV PNGs (the layout ``dpeval synth`` writes)::

    ROOT/annotations/densepose_synth_<split>.json
    ROOT/images/<split>/<file_name>
    ROOT/iuv/<split>/<iuv_file_name>      H x W x 3 RGB: I, U*255, V*255 (synth only)

Out: one dict of tensors per image (see :meth:`SynthDataset.__getitem__`) and a
:func:`collate` that pads a batch to a multiple of 32. Real DensePose-COCO has no IUV
maps: ``iuv`` is then None. Dense points are placed in the image exactly as the
evaluator places them: ``x = bx + dp_x * bw / 255`` (same for y).

No augmentation happens here: a horizontal flip would need DensePose's part and UV
symmetry tables, which the open template does not provide.
"""

from __future__ import annotations

import json
import math
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from dpeval.errors import FormatError
from dpeval.formats import GroundTruth, GtPerson, load_ground_truth

__all__ = [
    "MEAN",
    "STD",
    "SynthDataset",
    "collate",
    "decode_dp_masks",
    "decode_segmentation",
    "load_image",
    "normalize",
    "pad_batch",
    "read_iuv",
]

MEAN = (0.485, 0.456, 0.406)
"""Per-channel RGB mean (of images scaled to [0, 1]) subtracted before the network."""
STD = (0.229, 0.224, 0.225)
"""Per-channel RGB standard deviation the images are divided by."""
SIZE_DIVISOR = 32
"""Batches are zero-padded to a multiple of this (the coarsest backbone stride)."""
DP_MASK_SIZE = 256


def normalize(rgb: np.ndarray) -> Tensor:
    """(H, W, 3) uint8 RGB -> (3, H, W) float32 ``(rgb / 255 - MEAN) / STD``."""
    x = torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1).float().div_(255.0)
    mean = torch.tensor(MEAN).view(3, 1, 1)
    std = torch.tensor(STD).view(3, 1, 1)
    return (x - mean) / std


def _read_rgb(path: Path, where: str) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            return np.array(im.convert("RGB"))
    except FileNotFoundError:
        raise FormatError(
            f"{where}: image file {path} not found; check --data / image_dir (images are read "
            "from ROOT/images/<split>/<file_name>)"
        ) from None
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise FormatError(
            f"{where}: cannot read image {path} ({exc}); re-create or replace the file"
        ) from None


def load_image(path: str | Path) -> Tensor:
    """Read an image file -> (3, H, W) float32, normalised with :data:`MEAN`, :data:`STD`.

    Raises
    ------
    FormatError
        Missing or unreadable file.
    """
    return normalize(_read_rgb(Path(path), str(path)))


def read_iuv(path: str | Path, height: int, width: int, where: str = "") -> Tensor:
    """Read an image-level IUV PNG -> (3, H, W) uint8 (I, U*255, V*255).

    Raises
    ------
    FormatError
        Missing or unreadable file, wrong size, or part ids above 24.
    """
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    where = where or str(path)
    try:
        with Image.open(path) as im:
            arr = np.array(im.convert("RGB"))
    except FileNotFoundError:
        raise FormatError(
            f"{where}: IUV map {path} not found; pass load_iuv=False (or --no-iuv) for data "
            "without dense maps, or point iuv_dir at ROOT/iuv/<split>"
        ) from None
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise FormatError(f"{where}: cannot read IUV map {path} ({exc}); re-create it") from None
    if arr.shape[:2] != (height, width):
        raise FormatError(
            f"{where}: IUV map {path} is {arr.shape[0]}x{arr.shape[1]} (HxW) but the image "
            f"is {height}x{width}; image-level IUV maps must have the image size"
        )
    if arr[..., 0].max(initial=0) > 24:
        raise FormatError(
            f"{where}: IUV map {path} has part id {int(arr[..., 0].max())} in its R channel; "
            "expected 0 (background) or 1..24"
        )
    return torch.from_numpy(np.ascontiguousarray(arr.transpose(2, 0, 1)))


def _decode_rle(rle: Any) -> np.ndarray:
    from pycocotools import mask as mask_utils

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        return mask_utils.decode(rle)


def decode_segmentation(segmentation: Any, height: int, width: int) -> np.ndarray:
    """COCO segmentation (polygons, RLE or uncompressed RLE) -> (H, W) uint8 {0, 1}.

    None or an empty list gives zeros.
    """
    from pycocotools import mask as mask_utils

    if not segmentation:
        return np.zeros((height, width), dtype=np.uint8)
    if isinstance(segmentation, list):
        rle = mask_utils.merge(mask_utils.frPyObjects(segmentation, height, width))
    elif isinstance(segmentation, dict) and isinstance(segmentation.get("counts"), list):
        rle = mask_utils.frPyObjects(segmentation, height, width)
    else:
        rle = segmentation
    return np.ascontiguousarray(_decode_rle(rle), dtype=np.uint8)


def decode_dp_masks(dp_masks: Sequence[Any] | None) -> np.ndarray | None:
    """The 14 coarse part RLEs -> (256, 256) uint8 labels 0..14 (a later part wins).

    None when the person has no ``dp_masks``.
    """
    if dp_masks is None:
        return None
    label = np.zeros((DP_MASK_SIZE, DP_MASK_SIZE), dtype=np.uint8)
    for k, rle in enumerate(dp_masks, start=1):
        if rle:
            label[_decode_rle(rle) > 0] = k
    return label


def _dense_points(p: GtPerson) -> dict[str, Tensor] | None:
    if not p.has_dense or p.dp_x is None:
        return None
    bx, by, bw, bh = (float(v) for v in p.bbox)
    return {
        "x": torch.tensor(bx + p.dp_x * bw / 255.0, dtype=torch.float32),
        "y": torch.tensor(by + p.dp_y * bh / 255.0, dtype=torch.float32),
        "I": torch.tensor(np.asarray(p.dp_I), dtype=torch.int64),
        "U": torch.tensor(np.asarray(p.dp_U), dtype=torch.float32),
        "V": torch.tensor(np.asarray(p.dp_V), dtype=torch.float32),
    }


def _xyxy(people: Sequence[GtPerson]) -> Tensor:
    if not people:
        return torch.zeros((0, 4), dtype=torch.float32)
    b = np.stack([np.asarray(p.bbox, dtype=np.float64) for p in people])
    b[:, 2:] += b[:, :2]
    return torch.from_numpy(b).float()


class SynthDataset(torch.utils.data.Dataset):
    """Images, boxes, masks, dense points and (synth only) IUV maps of one split.

    Parameters
    ----------
    root : path
        Dataset root (``ROOT/annotations``, ``ROOT/images/<split>``, ``ROOT/iuv/<split>``).
    split : str
    annotations : path, optional
        Ground-truth JSON; default ``root/annotations/densepose_synth_<split>.json``.
    image_dir, iuv_dir : path, optional
        Defaults ``root/images/<split>`` and ``root/iuv/<split>``.
    load_iuv : bool, default True
        Read the image-level IUV maps. When ``iuv_dir`` is not a directory (real
        DensePose-COCO), ``iuv`` is None for every image.
    max_images : int, optional
        Keep only the first images (sorted by id).

    Raises
    ------
    FormatError
        Unreadable ground truth (from dpeval's reader); missing, unreadable or wrongly
        sized image and IUV files are reported when the item is read.

    Examples
    --------
    >>> ds = SynthDataset("synth", "val")  # doctest: +SKIP
    >>> item = ds[0]; item["image"].shape, item["boxes"].shape  # doctest: +SKIP
    (torch.Size([3, 480, 640]), torch.Size([2, 4]))
    """

    def __init__(
        self,
        root: str | Path,
        split: str,
        *,
        annotations: str | Path | None = None,
        image_dir: str | Path | None = None,
        iuv_dir: str | Path | None = None,
        load_iuv: bool = True,
        max_images: int | None = None,
    ):
        root = Path(root)
        self.root, self.split = root, split
        self.annotations = Path(
            annotations
            if annotations is not None
            else root / "annotations" / f"densepose_synth_{split}.json"
        )
        self.image_dir = Path(image_dir) if image_dir is not None else root / "images" / split
        self.iuv_dir = Path(iuv_dir) if iuv_dir is not None else root / "iuv" / split
        self.gt: GroundTruth = load_ground_truth(self.annotations)
        ids = sorted(self.gt.images)
        if max_images is not None:
            ids = ids[: max(int(max_images), 0)]
        self._ids = ids
        self._people = self.gt.by_image()
        self.load_iuv = bool(load_iuv) and self.iuv_dir.is_dir()
        self._iuv_names = self._iuv_file_names() if self.load_iuv else {}

    def _iuv_file_names(self) -> dict[int, str]:
        """``iuv_file_name`` of each image (dpeval's reader drops it); stem + .png if absent."""
        names = {i: Path(self.gt.images[i].file_name).stem + ".png" for i in self._ids}
        doc = json.loads(self.annotations.read_bytes())
        for rec in doc.get("images", []):
            if isinstance(rec, dict) and rec.get("iuv_file_name") and rec.get("id") in names:
                names[rec["id"]] = str(rec["iuv_file_name"])
        return names

    @property
    def image_ids(self) -> list[int]:
        """Image ids in dataset order (ascending)."""
        return list(self._ids)

    def __len__(self) -> int:
        return len(self._ids)

    def _where(self, image_id: int) -> str:
        return f"{self.annotations}: image id {image_id} ({self.gt.images[image_id].file_name!r})"

    def image_and_iuv(self, i: int) -> tuple[Tensor, Tensor | None]:
        """Only the normalised image (3, H, W) and the IUV map (or None) of item ``i``.

        The cheap path for dense training (no masks or points decoded); same checks as
        :meth:`__getitem__`.
        """
        image_id = self._ids[i]
        info = self.gt.images[image_id]
        rgb = self._rgb(image_id)
        iuv = None
        if self.load_iuv:
            iuv = read_iuv(
                self.iuv_dir / self._iuv_names[image_id],
                info.height,
                info.width,
                self._where(image_id),
            )
        return normalize(rgb), iuv

    def _rgb(self, image_id: int) -> np.ndarray:
        info = self.gt.images[image_id]
        where = self._where(image_id)
        rgb = _read_rgb(self.image_dir / info.file_name, where)
        if rgb.shape[:2] != (info.height, info.width):
            raise FormatError(
                f"{where}: image file is {rgb.shape[0]}x{rgb.shape[1]} (HxW) but the ground "
                f"truth says {info.height}x{info.width}; fix the JSON's height/width or the file"
            )
        return rgb

    def __getitem__(self, i: int) -> dict[str, Any]:
        """One image.

        Returns
        -------
        dict
            ``image`` (3, H, W) float32 normalised; ``image_id``, ``height``, ``width``
            int; ``file_name`` str; ``iuv`` (3, H, W) uint8 or None; ``boxes`` (K, 4)
            float32 xyxy of the non-crowd people; ``crowd_boxes`` (C, 4) float32;
            ``masks`` (K, H, W) uint8 instance masks (zeros without segmentation);
            ``dp``: K entries, None or a dict ``x``, ``y`` (image pixels, float32), ``I``
            (int64, 1..24), ``U``, ``V`` (float32) and ``dp_masks`` ((256, 256) uint8
            labels 0..14, or None); ``ann_ids`` (K,) int64.
        """
        image_id = self._ids[i]
        info = self.gt.images[image_id]
        image, iuv = self.image_and_iuv(i)
        people = self._people.get(image_id, [])
        persons = [p for p in people if not p.iscrowd]
        crowds = [p for p in people if p.iscrowd]
        h, w = info.height, info.width
        masks = np.zeros((len(persons), h, w), dtype=np.uint8)
        dp: list[dict[str, Tensor] | None] = []
        for k, p in enumerate(persons):
            masks[k] = decode_segmentation(p.segmentation, h, w)
            points = _dense_points(p)
            if points is not None:
                label = decode_dp_masks(p.dp_masks)
                points["dp_masks"] = None if label is None else torch.from_numpy(label)
            dp.append(points)
        return {
            "image": image,
            "image_id": int(image_id),
            "file_name": info.file_name,
            "height": int(h),
            "width": int(w),
            "iuv": iuv,
            "boxes": _xyxy(persons),
            "crowd_boxes": _xyxy(crowds),
            "masks": torch.from_numpy(masks),
            "dp": dp,
            "ann_ids": torch.tensor([p.id for p in persons], dtype=torch.int64),
        }


def pad_batch(tensors: Sequence[Tensor], divisor: int = SIZE_DIVISOR, value: float = 0.0) -> Tensor:
    """Stack (C, H_i, W_i) tensors into (B, C, Hp, Wp), padded bottom/right with ``value``.

    ``Hp``, ``Wp`` are the largest sizes rounded up to a multiple of ``divisor``.
    """
    if not tensors:
        raise ValueError("pad_batch needs at least one tensor")
    hp = math.ceil(max(t.shape[-2] for t in tensors) / divisor) * divisor
    wp = math.ceil(max(t.shape[-1] for t in tensors) / divisor) * divisor
    first = tensors[0]
    out = first.new_full((len(tensors), first.shape[0], hp, wp), value)
    for b, t in enumerate(tensors):
        out[b, :, : t.shape[-2], : t.shape[-1]] = t
    return out


def collate(batch: Sequence[dict[str, Any]]) -> tuple[Tensor, list[dict[str, Any]]]:
    """DataLoader ``collate_fn``: images zero-padded to a multiple of 32, targets as a list.

    Returns
    -------
    images : (B, 3, Hp, Wp) float32
    targets : list of B dicts
        The items without their ``image``.
    """
    images = pad_batch([b["image"] for b in batch])
    targets = [{k: v for k, v in b.items() if k != "image"} for b in batch]
    return images, targets
