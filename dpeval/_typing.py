"""Type aliases shared by dpeval modules (shapes are given in docstrings)."""

from __future__ import annotations

import os
from typing import Union

import numpy as np
import numpy.typing as npt

PathLike = Union[str, "os.PathLike[str]"]
FloatArray = npt.NDArray[np.floating]
Float32Array = npt.NDArray[np.float32]
Float64Array = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.integer]
BoolArray = npt.NDArray[np.bool_]
ArrayLike = npt.ArrayLike


def unwrap_tensor(obj: object) -> object:
    """A tensor-like (torch: ``detach``, ``cpu``, ``numpy``) as a NumPy array; anything
    else unchanged. dpeval never imports torch: this is duck-typed."""
    if isinstance(obj, np.ndarray):
        return obj
    for step in ("detach", "cpu"):
        if callable(getattr(obj, step, None)):
            obj = getattr(obj, step)()
    return obj.numpy() if callable(getattr(obj, "numpy", None)) else obj


def as_array(obj: object) -> np.ndarray:
    """:func:`unwrap_tensor`, then ``np.asarray``."""
    return np.asarray(unwrap_tensor(obj))
