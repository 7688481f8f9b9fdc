"""detectron2's file tensor storage for CSE outputs (stage 3, formats).

``DensePoseEvaluatorStorage.{rank}.bin`` (detectron2 ``SingleProcessFileTensorStorage``):
fixed-size records, the fields of a schema (name -> float32 shape) written in sorted
name order as raw bytes, record ``r`` at byte ``r * record_size``. Read-only and
memory-mapped here; :func:`write_storage` writes the same layout (tests, conversions).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from .._typing import PathLike
from ._validate import fail

__all__ = ["D2_CSE_SCHEMA", "TensorStorage", "write_storage"]

D2_CSE_SCHEMA: dict[str, tuple[int, ...]] = {
    "coarse_segm": (2, 112, 112),
    "embedding": (16, 112, 112),
}
"""detectron2's default CSE storage schema (NUM_COARSE_SEGM_CHANNELS = 2, EMBED_SIZE =
16, HEATMAP_SIZE = 112), float32."""
_STORAGE_NAME = re.compile(r"DensePoseEvaluatorStorage\.(\d+)\.bin$")


class TensorStorage:
    """detectron2's ``SingleProcessFileTensorStorage``, read-only and memory-mapped.

    Parameters
    ----------
    path : path
        ``DensePoseEvaluatorStorage.{rank}.bin``.
    schema : dict[str, tuple]
        Field name -> float32 shape; fields are laid out in sorted name order.

    Raises
    ------
    FormatError
        Missing file, or a size that is not a multiple of the record size.
    """

    def __init__(self, path: PathLike, schema: Mapping[str, tuple[int, ...]] = D2_CSE_SCHEMA):
        self.path = str(path)
        self.schema = {k: tuple(int(s) for s in schema[k]) for k in sorted(schema)}
        self.field_sizes = {k: int(np.prod(s)) for k, s in self.schema.items()}
        self.record_size = 4 * sum(self.field_sizes.values())
        try:
            size = os.path.getsize(self.path)
        except OSError:
            raise fail(self.path, "storage file not found", "pass it with --storage") from None
        if size % self.record_size:
            shapes = ", ".join(f"{k} {'x'.join(map(str, s))}" for k, s in self.schema.items())
            raise fail(
                self.path,
                f"size {size} bytes is not a multiple of the record size {self.record_size} "
                f"({shapes}, float32)",
                "the file is truncated or the schema differs: set --storage-schema K,D,S to "
                "the model's coarse channels, embedding size and heatmap size",
            )
        self.n_records = size // self.record_size
        self._mm = np.memmap(self.path, dtype=np.float32, mode="r") if size else np.zeros(0)

    def get(self, record_id: int) -> dict[str, np.ndarray]:
        """One record: field name -> float32 array of the schema's shape (a view)."""
        if not 0 <= record_id < self.n_records:
            raise fail(
                self.path,
                f"record {record_id} requested but the file holds {self.n_records}",
                "the results list and the storage file do not belong together",
            )
        start = record_id * (self.record_size // 4)
        out = {}
        for name, shape in self.schema.items():
            n = self.field_sizes[name]
            out[name] = np.asarray(self._mm[start : start + n]).reshape(shape)
            start += n
        return out


def write_storage(
    path: PathLike, records: Sequence[Mapping[str, np.ndarray]], schema: Mapping | None = None
) -> list[int]:
    """Write records in detectron2's file-storage layout (fields in sorted name order,
    raw float32); returns their record ids. For tests and conversions."""
    schema = dict(schema or D2_CSE_SCHEMA)
    ids = []
    with open(path, "wb") as fh:
        for r, rec in enumerate(records):
            for name in sorted(schema):
                a = np.ascontiguousarray(rec[name], dtype=np.float32)
                if a.shape != tuple(schema[name]):
                    raise fail(str(path), f"record {r} {name!r} is {a.shape}", f"{schema[name]}")
                fh.write(a.tobytes())
            ids.append(r)
    return ids


def _schema_from_shape(shape: Sequence[int] | None) -> dict[str, tuple[int, ...]]:
    if shape is None:
        return dict(D2_CSE_SCHEMA)
    k, d, s = (int(x) for x in shape)
    return {"coarse_segm": (k, s, s), "embedding": (d, s, s)}


def _find_storages(results: Path) -> dict[int, Path]:
    out = {}
    for p in sorted(results.parent.glob("DensePoseEvaluatorStorage.*.bin")):
        m = _STORAGE_NAME.search(p.name)
        if m:
            out[int(m.group(1))] = p
    return out
