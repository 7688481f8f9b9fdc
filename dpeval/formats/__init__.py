"""Stage 3 of the data flow: files in, validated records out.

In: ground-truth JSON (DensePose-COCO), predictions in any supported format
(challenge JSON, detectron2 pickles, IUV PNG directories, dpeval ``.npz``).
Out: :class:`GroundTruth` and :class:`Predictions` (see :mod:`dpeval.formats.model`).
File keys such as ``dp_x`` or ``uv_data`` never leave this package.
"""

from __future__ import annotations

from .coco_json import load_ground_truth, save_ground_truth
from .iuv_png import MAX_PIXELS, decode_iuv, encode_iuv
from .model import DenseMap, Detection, GroundTruth, GtPerson, ImageInfo, Predictions
from .native import load_native, save_native
from .predictions import FORMATS, detect_format, load_predictions, save_predictions

__all__ = [
    "FORMATS",
    "MAX_PIXELS",
    "DenseMap",
    "Detection",
    "GroundTruth",
    "GtPerson",
    "ImageInfo",
    "Predictions",
    "decode_iuv",
    "detect_format",
    "encode_iuv",
    "load_ground_truth",
    "load_native",
    "load_predictions",
    "save_ground_truth",
    "save_native",
    "save_predictions",
]
