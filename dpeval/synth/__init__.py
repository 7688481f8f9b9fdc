"""DensePose-Synth: synthetic DensePose-COCO data with exact ground truth.

Stages: :mod:`~dpeval.synth.pose` (shapes, poses, skinning) -> :mod:`~dpeval.synth.scene`
(camera and people) -> :mod:`~dpeval.synth.render` (Numba z-buffer: image, IUV, depth)
-> :mod:`~dpeval.synth.annotate` (COCO records, dp points, dp_masks) ->
:mod:`~dpeval.synth.generate` (the deterministic, atomic dataset writer behind
``dpeval synth``). :mod:`~dpeval.synth.preview` draws contact sheets.

Names are imported lazily, so ``import dpeval.synth.cli`` stays cheap.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = [
    "AnnotateConfig",
    "BodyModel",
    "BodyShape",
    "Camera",
    "Frame",
    "Pose",
    "Renderer",
    "SceneConfig",
    "SynthConfig",
    "annotate_frame",
    "generate_dataset",
    "make_contact_sheet",
    "render_sample",
    "sample_scene",
]

_WHERE = {
    "AnnotateConfig": "annotate",
    "annotate_frame": "annotate",
    "BodyModel": "pose",
    "BodyShape": "pose",
    "Pose": "pose",
    "Camera": "render",
    "Frame": "render",
    "Renderer": "render",
    "SceneConfig": "scene",
    "sample_scene": "scene",
    "SynthConfig": "generate",
    "generate_dataset": "generate",
    "render_sample": "generate",
    "make_contact_sheet": "preview",
}


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(importlib.import_module(f".{_WHERE[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
