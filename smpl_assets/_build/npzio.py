"""Byte-reproducible ``.npz`` writer (fixed zip timestamps, sorted keys, no pickles)."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np

ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)


def write_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Write ``arrays`` as an npz whose bytes depend only on the array contents."""
    with zipfile.ZipFile(path, "w") as archive:
        for name in sorted(arrays):
            arr = np.asarray(arrays[name])
            if arr.dtype.hasobject:
                raise TypeError(f"{name}: object arrays would be pickled; use a fixed-width dtype")
            buffer = io.BytesIO()
            np.lib.format.write_array(buffer, arr.copy(order="C"), version=(1, 0), allow_pickle=False)
            info = zipfile.ZipInfo(f"{name}.npy", date_time=ZIP_EPOCH)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            info.create_system = 3
            archive.writestr(info, buffer.getvalue(), compress_type=zipfile.ZIP_DEFLATED, compresslevel=9)
