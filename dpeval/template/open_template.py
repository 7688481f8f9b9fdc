"""Stage 1 (template): the embedded open template (``smpl_assets/open_template.npz``).

In: the ``.npz`` file shipped as ``dpeval._assets`` (or any file written in its layout).
Out: a :class:`~dpeval.template.model.BodyTemplate` with skinning data and build facts
in ``meta``. The file is CC0 and rebuilt byte-for-byte by
``smpl_assets/build_open_template.py``.
"""

from __future__ import annotations

import json
import zipfile
from importlib import resources
from pathlib import Path

import numpy as np

from ..errors import TemplateError
from .model import BodyTemplate

__all__ = ["load_open_template", "open_template_path"]

_OPEN_FILE = "open_template.npz"
_OPEN_KEYS = {
    "vertices": (np.float32, 2),
    "faces": (np.int32, 2),
    "face_part": (np.uint8, 1),
    "chart_part": (np.uint8, 1),
    "chart_uv": (np.float32, 2),
    "chart_vertex": (np.int32, 1),
    "chart_faces": (np.int32, 2),
    "mirror": (np.int32, 1),
    "skin_joint": (np.int16, 2),
    "skin_weight": (np.float32, 2),
    "joint_name": (np.str_, 1),
    "joint_position": (np.float32, 2),
    "joint_parent": (np.int16, 1),
    "source_vertex": (np.int32, 1),
}


def open_template_path() -> Path:
    """Path of the embedded open template file (``smpl_assets/open_template.npz``)."""
    return Path(str(resources.files("dpeval._assets").joinpath(_OPEN_FILE)))


def load_open_template(path: Path) -> BodyTemplate:
    """Read a template ``.npz`` in the open layout (not cached: see ``load_template``).

    Raises
    ------
    TemplateError
        The file is missing, not an ``.npz``, or a key is missing or has the wrong
        dtype or dimension.
    """
    try:
        with zipfile.ZipFile(path) as _:
            pass
        data = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise TemplateError(
            f"{path}: the embedded template file is missing; reinstall dpeval or rebuild "
            "it with smpl_assets/build_open_template.py"
        ) from None
    except (OSError, ValueError, zipfile.BadZipFile) as exc:
        raise TemplateError(f"{path}: not a readable .npz template ({exc})") from None
    with data:
        arrays: dict[str, np.ndarray] = {}
        for key, (dtype, ndim) in _OPEN_KEYS.items():
            if key not in data.files:
                raise TemplateError(
                    f"{path}: key {key!r} is missing; expected keys {sorted(_OPEN_KEYS)}"
                )
            a = data[key]
            if a.ndim != ndim or not np.issubdtype(a.dtype, dtype):
                raise TemplateError(
                    f"{path}: {key!r} must be a {ndim}-D {np.dtype(dtype).name} array, "
                    f"got {a.ndim}-D {a.dtype}"
                )
            arrays[key] = a
        meta = json.loads(str(data["meta_json"])) if "meta_json" in data.files else {}
    skin_keys = ("skin_joint", "skin_weight", "joint_name", "joint_position", "joint_parent")
    skin = {k: arrays.pop(k) for k in skin_keys}
    source_vertex = arrays.pop("source_vertex")
    meta = {**meta, "source_vertex": source_vertex}
    return BodyTemplate(
        id=str(meta.get("id", "open")),
        skinning=skin,
        meta=meta,
        source=str(path),
        **arrays,
    )
