"""Stage 3 of the data flow (formats): the in-memory records every reader produces.

Readers in :mod:`dpeval.formats` turn files into these frozen records; matching and
metrics read only these, never file keys (``dp_x``, ``uv_data``...).

- :class:`GroundTruth`: images and person annotations (DensePose-COCO).
- :class:`Predictions`: either instance detections (:class:`Detection`, each with a
  box-sized IUV map) or image-level dense IUV maps (:class:`DenseMap`).

IUV arrays are always ``(3, H, W) uint8``: channel 0 = part id I (0 background, 1..24),
channel 1 = U * 255, channel 2 = V * 255 (the challenge layout). Large payloads are
decoded lazily (:meth:`Detection.load_iuv`) so a minival-sized file never sits decoded
in memory at once.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

__all__ = [
    "N_MASK_PARTS",
    "DenseMap",
    "Detection",
    "GroundTruth",
    "GtPerson",
    "ImageInfo",
    "Predictions",
]

N_MASK_PARTS = 14
"""Number of coarse part masks in ``dp_masks`` (labels 1..14)."""


@dataclass(frozen=True)
class ImageInfo:
    """One image of the ground truth.

    Attributes
    ----------
    id : int
    height, width : int
        Image size in pixels.
    file_name : str
    ignore_regions : tuple of (K, 2) float arrays, optional
        PoseTrack-style ignore polygons (x, y), absent for COCO.
    """

    id: int
    height: int
    width: int
    file_name: str = ""
    ignore_regions: tuple[np.ndarray, ...] | None = None


@dataclass(frozen=True, eq=False)
class GtPerson:
    """One ground-truth annotation.

    Attributes
    ----------
    id, image_id, category_id : int
    bbox : (4,) float64
        [x, y, w, h], 0-indexed pixels.
    area : float
        COCO ``area`` (segmentation area), used for the area ranges.
    iscrowd : bool
    has_dense : bool
        True when the annotation has ``dp_x`` (the official ignore rule: a GT without
        dense points is ignored, whatever ``iscrowd`` says).
    dp_x, dp_y : (N,) float64 or None
        Point positions in the box, normalised to [0, 255] (the evaluator maps them
        with ``x = bx + dp_x * bw / 255``).
    dp_I : (N,) int64 or None
        Part ids 1..24.
    dp_U, dp_V : (N,) float64 or None
        Chart coordinates in [0, 1].
    dp_masks : tuple of 14 (RLE dict or None) or None
        Coarse part masks on the 256x256 box grid; None entries are empty parts.
    segmentation : Any
        The raw COCO segmentation (polygons or RLE), or None.
    index : int
        Position of the annotation in its file (for error messages).
    dp_vertex : (N,) int64 or None
        Continuous Surface Embeddings ground truth: 0-based vertex id of each point on
        the mesh named by ``ref_model`` (-1: no vertex). ``dp_I/dp_U/dp_V`` are then
        optional.
    ref_model : str or None
        Mesh name of ``dp_vertex`` (e.g. ``"smpl_27554"``, ``"open"``).
    """

    id: int
    image_id: int
    category_id: int
    bbox: np.ndarray
    area: float
    iscrowd: bool
    has_dense: bool
    dp_x: np.ndarray | None = None
    dp_y: np.ndarray | None = None
    dp_I: np.ndarray | None = None
    dp_U: np.ndarray | None = None
    dp_V: np.ndarray | None = None
    dp_masks: tuple[dict[str, Any] | None, ...] | None = None
    segmentation: Any = None
    index: int = -1
    dp_vertex: np.ndarray | None = None
    ref_model: str | None = None

    @property
    def n_points(self) -> int:
        """Number of annotated dense points (0 without dense annotation)."""
        return 0 if self.dp_x is None else len(self.dp_x)


@dataclass(frozen=True, eq=False)
class GroundTruth:
    """A DensePose-COCO ground-truth file.

    Attributes
    ----------
    images : dict[int, ImageInfo]
    annotations : tuple of GtPerson
        In file order.
    categories : dict[int, str]
    source : str
        Path (or ``"<memory>"``).
    sha256 : str
        sha256 of the file bytes ("" for in-memory input).
    """

    images: dict[int, ImageInfo]
    annotations: tuple[GtPerson, ...]
    categories: dict[int, str] = field(default_factory=lambda: {1: "person"})
    source: str = "<memory>"
    sha256: str = ""

    def by_image(self) -> dict[int, list[GtPerson]]:
        """Annotations grouped by image id (every image present, possibly empty)."""
        out: dict[int, list[GtPerson]] = {i: [] for i in self.images}
        for a in self.annotations:
            out.setdefault(a.image_id, []).append(a)
        return out


@dataclass(frozen=True, eq=False)
class Detection:
    """One predicted person with its box-sized IUV map.

    Attributes
    ----------
    image_id, category_id : int
    bbox : (4,) float64
        [x, y, w, h] of the detection.
    score : float
    iuv_shape : (3, H, W)
        Shape of the IUV map (H, W are the box size as ints).
    index : int
        Position in the predictions file (for error messages).
    """

    image_id: int
    category_id: int
    bbox: np.ndarray
    score: float
    iuv_shape: tuple[int, int, int]
    index: int = -1
    _iuv: np.ndarray | None = field(default=None, repr=False)
    _loader: Callable[[], np.ndarray] | None = field(default=None, repr=False)

    def load_iuv(self) -> np.ndarray:
        """The ``(3, H, W) uint8`` IUV map, decoded now if stored encoded.

        Raises
        ------
        FormatError
            If the payload does not decode to ``iuv_shape`` or holds values out of range.
        """
        if self._iuv is not None:
            return self._iuv
        assert self._loader is not None
        return self._loader()


@dataclass(frozen=True, eq=False)
class DenseMap:
    """An image-level dense prediction: one IUV map covering the whole image.

    Attributes
    ----------
    image_id : int
    iuv_shape : (3, H, W)
        H, W equal the image size.
    """

    image_id: int
    iuv_shape: tuple[int, int, int]
    index: int = -1
    _iuv: np.ndarray | None = field(default=None, repr=False)
    _loader: Callable[[], np.ndarray] | None = field(default=None, repr=False)

    def load_iuv(self) -> np.ndarray:
        """The ``(3, H, W) uint8`` IUV map of the whole image."""
        if self._iuv is not None:
            return self._iuv
        assert self._loader is not None
        return self._loader()


@dataclass(frozen=True, eq=False)
class Predictions:
    """What a reader found in a predictions file.

    Attributes
    ----------
    kind : {"instances", "dense"}
    detections : tuple of Detection
        Instance predictions (``kind == "instances"``), in file order.
    dense : tuple of DenseMap
        Image-level maps (``kind == "dense"``).
    format : str
        ``"challenge-json"``, ``"d2-pickle"``, ``"d2-compressed"``, ``"iuv-png-dir"``,
        ``"dpeval-npz"``...
    source, sha256 : str
    """

    kind: Literal["instances", "dense"]
    detections: tuple[Detection, ...] = ()
    dense: tuple[DenseMap, ...] = ()
    format: str = ""
    source: str = "<memory>"
    sha256: str = ""
