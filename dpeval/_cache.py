"""dpeval's on-disk cache: location and atomic writes (shared by every stage).

The cache holds derived data only (geodesic tables, closest-vertex lookup tables,
converted official distance files); every entry is keyed by the template checksum and a
version, written to a temporary file in the same directory and moved into place with
``os.replace`` so concurrent runs never see a partial file.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np

__all__ = ["cache_dir", "load_npy", "save_npy_atomic"]


def cache_dir() -> Path:
    """``$DPEVAL_CACHE_DIR`` or ``~/.cache/dpeval``."""
    env = os.environ.get("DPEVAL_CACHE_DIR")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "dpeval"


def save_npy_atomic(path: Path, array: np.ndarray) -> bool:
    """Write ``array`` to ``path`` atomically; False (and nothing written) on OS errors."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    except OSError:
        return False
    try:
        with os.fdopen(fd, "wb") as fh:
            np.save(fh, array, allow_pickle=False)
        os.replace(tmp, path)
        return True
    except OSError:
        return False
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def load_npy(path: Path, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray | None:
    """The cached array if it exists with this shape and dtype, else None."""
    try:
        a = np.load(path, allow_pickle=False)
    except (OSError, ValueError):
        return None
    return a if a.shape == shape and a.dtype == dtype else None
