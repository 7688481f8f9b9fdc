"""A restricted unpickler shared by every reader of pickles (internal).

It rebuilds only NumPy arrays, plain containers and attribute bags for detectron2 /
DensePose result records; any other global is refused, so a predictions dump or a
``Pdist_matrix.pkl`` can never run code on load. Python 2 pickles are read as latin1.
"""

from __future__ import annotations

import io
import pickle
from typing import Any

__all__ = ["PickledObject", "SafeUnpickler", "safe_pickle_load", "safe_pickle_loads"]


class PickledObject:
    """Stand-in for a detectron2/DensePose class found in a pickle: an attribute bag."""

    _qualname = "?"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.args = args
        self.__dict__.update(kwargs)

    def __setstate__(self, state: Any) -> None:
        if isinstance(state, tuple) and len(state) == 2:  # (dict, slots)
            state = {**(state[0] or {}), **(state[1] or {})}
        if isinstance(state, dict):
            self.__dict__.update(state)
        else:
            self.__dict__["state"] = state

    def __repr__(self) -> str:
        return f"<pickled {self._qualname} {sorted(self.__dict__)}>"


_STUB_MODULES = ("densepose", "detectron2", "projects.", "__main__")
_SAFE_GLOBALS = {
    ("collections", "OrderedDict"),
    ("collections", "defaultdict"),
    ("builtins", "set"),
    ("builtins", "frozenset"),
    ("builtins", "tuple"),
    ("builtins", "list"),
    ("builtins", "dict"),
    ("builtins", "slice"),
    ("builtins", "complex"),
    ("builtins", "bytearray"),
    ("_codecs", "encode"),  # Python 2 byte strings
    ("copyreg", "_reconstructor"),
    ("builtins", "object"),
}
_NUMPY_NAMES = {"_reconstruct", "scalar", "ndarray", "dtype", "_frombuffer", "frombuffer"}


class SafeUnpickler(pickle.Unpickler):
    """Unpickler that only rebuilds NumPy arrays, plain containers and attribute bags.

    detectron2 / DensePose classes (``DensePoseChartResultQuantized``...) become
    :class:`PickledObject`; torch tensors are refused with a hint (the caller handles
    torch files separately); any other global raises :class:`pickle.UnpicklingError`.
    """

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _SAFE_GLOBALS:
            return super().find_class(module, name)
        if module.split(".")[0] == "numpy" and name in _NUMPY_NAMES:
            return super().find_class(module, name)
        if module.startswith(_STUB_MODULES):
            return type(name, (PickledObject,), {"_qualname": f"{module}.{name}"})
        if module.split(".")[0] == "torch":
            raise pickle.UnpicklingError(
                f"the pickle holds torch objects ({module}.{name}); save NumPy arrays "
                "(tensor.cpu().numpy()) or `pip install torch` and pass the .pth file"
            )
        raise pickle.UnpicklingError(
            f"refusing to load {module}.{name} (dpeval unpickles only NumPy arrays, builtin "
            "containers and detectron2/DensePose result records, so no pickle runs code)"
        )


def safe_pickle_loads(data: bytes) -> Any:
    """Unpickle ``data`` with :class:`SafeUnpickler` (Python 2 pickles read as latin1)."""
    return SafeUnpickler(io.BytesIO(data), encoding="latin1").load()


def safe_pickle_load(fh: Any) -> Any:
    """Unpickle from an open binary file with :class:`SafeUnpickler`."""
    return SafeUnpickler(fh, encoding="latin1").load()
