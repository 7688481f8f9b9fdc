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
