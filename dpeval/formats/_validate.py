"""Shared input checks for the format readers (stage 3, formats).

Everything here turns raw file content (JSON values, pickled objects, arrays) into
checked numbers, or raises one :class:`~dpeval.errors.FormatError` whose message says
where (file, record index and id), what was found, what was expected and how to fix it.
Recoverable oddities are counted by :class:`WarningTally` and reported once per kind.

It also holds :class:`SafeUnpickler`, the restricted unpickler used for detectron2
dumps: it rebuilds NumPy arrays and plain containers, stands in a bare attribute bag for
detectron2/DensePose classes (so no detectron2 install is needed), and refuses any
other global, so loading a predictions pickle never runs arbitrary code.
"""

from __future__ import annotations

import io
import json
import math
import pickle
import warnings
from collections import Counter
from typing import Any

import numpy as np

from .._safe_pickle import SafeUnpickler, safe_pickle_loads
from ..errors import DpevalWarning, FormatError

N_PARTS = 24
"""Largest part id (I): 0 is background, 1..24 are the DensePose charts."""

UNIT_TOL = 1e-6
"""Tolerance on U, V (and other [0, 1] values) given as floats: [-tol, 1 + tol] passes."""


def fail(where: str, what: str, fix: str = "") -> FormatError:
    """Build the one-line error ``"<where>: <what>; <fix>"`` (returned, not raised)."""
    msg = f"{where}: {what}"
    if fix:
        msg += f"; {fix}"
    return FormatError(msg)


class WarningTally:
    """Count recoverable oddities and emit one :class:`DpevalWarning` per kind.

    Parameters
    ----------
    source : str
        File name used as the message prefix.
    """

    def __init__(self, source: str) -> None:
        self.source = source
        self._counts: Counter[str] = Counter()
        self._first: dict[str, str] = {}

    def add(self, kind: str, example: str) -> None:
        """Record one occurrence of ``kind``; ``example`` is kept for the first one."""
        self._counts[kind] += 1
        self._first.setdefault(kind, example)

    def emit(self, stacklevel: int = 3) -> None:
        """Warn once per kind: ``"<source>: <count> x <kind> (first: <example>)"``."""
        for kind, n in self._counts.items():
            warnings.warn(
                f"{self.source}: {n} x {kind} (first: {self._first[kind]})",
                DpevalWarning,
                stacklevel=stacklevel,
            )


def parse_json(text: bytes | str, source: str) -> Any:
    """``json.loads`` with errors that give line and column, and a clear empty-file case."""
    if isinstance(text, bytes):
        if text.startswith(b"\xef\xbb\xbf"):
            text = text[3:]
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as e:
            raise fail(
                source, f"is not UTF-8 text (byte {e.start})", "save the JSON as UTF-8"
            ) from None
    if not text.strip():
        raise fail(source, "the file is empty", "expected a JSON document; re-export the file")
    duplicates: list[tuple[str, dict[str, Any]]] = []

    def pairs_hook(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        obj = dict(pairs)
        if len(obj) != len(pairs):
            seen: set[str] = set()
            for key, _ in pairs:
                if key in seen:
                    duplicates.append((key, obj))
                    break
                seen.add(key)
        return obj

    try:
        doc = json.loads(text, object_pairs_hook=pairs_hook)
    except json.JSONDecodeError as e:
        if e.pos >= len(text.rstrip()) or e.msg.startswith("Unterminated string"):
            raise fail(
                source,
                f"malformed JSON at line {e.lineno}, column {e.colno}: {e.msg} at the end of "
                "the file",
                "the file looks truncated; write it again completely",
            ) from None
        raise fail(
            source,
            f"malformed JSON at line {e.lineno}, column {e.colno}: {e.msg}",
            "fix or re-export the file",
        ) from None
    except RecursionError:
        raise fail(
            source,
            "JSON nested too deeply to read",
            "flatten the document (DensePose files nest at most a few levels)",
        ) from None
    except ValueError as e:  # e.g. Python's limit on digits in an integer literal
        raise fail(source, f"unreadable JSON value: {e}", "write numbers in plain form") from None
    if duplicates:
        key, obj = duplicates[0]
        more = f" ({len(duplicates)} objects with duplicate keys)" if len(duplicates) > 1 else ""
        raise fail(
            f"{source}: {_json_path(doc, obj)}",
            f"key {key!r} appears more than once in one object{more} (a JSON reader keeps the "
            "last value silently, so the record is ambiguous)",
            f"keep one {key!r} per object",
        )
    return doc


def _json_path(doc: Any, target: dict[str, Any]) -> str:
    """Where ``target`` sits in ``doc``: ``"annotations[3] (id=7)"``, ``"record 2"``..."""

    def find(node: Any, path: str) -> str | None:
        if node is target:
            return path
        items = node.items() if isinstance(node, dict) else enumerate(node)
        for k, child in items:
            if isinstance(child, (dict, list)):
                sub = f"{path}.{k}" if isinstance(k, str) else f"{path}[{k}]"
                hit = find(child, sub)
                if hit is not None:
                    return hit
        return None

    if isinstance(doc, list):
        for i, rec in enumerate(doc):
            hit = find(rec, "")
            if hit is not None:
                has_id = isinstance(rec, dict) and "image_id" in rec
                image = f" (image_id={rec['image_id']})" if has_id else ""
                return f"record {i}{image}" + (f": in {hit.lstrip('.')}" if hit else "")
    elif isinstance(doc, dict):
        for key, value in doc.items():
            if not isinstance(value, list):
                continue
            for i, rec in enumerate(value):
                hit = find(rec, "")
                if hit is not None:
                    ident = f" (id={rec['id']})" if isinstance(rec, dict) and "id" in rec else ""
                    return f"{key}[{i}]{ident}" + (f": in {hit.lstrip('.')}" if hit else "")
    return "top level"


def as_int(value: Any, where: str, name: str) -> int:
    """An integer field (``bool`` refused; integral floats such as ``785.0`` accepted)."""
    if type(value) is int:  # the common case first (bool is not int by type)
        return value
    if isinstance(value, (bool, np.bool_)):
        raise fail(where, f"{name!r} is {value!r}", "expected an integer")
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)) and math.isfinite(value) and value == int(value):
        return int(value)
    raise fail(where, f"{name!r} is {value!r}", "expected an integer")


def as_finite(value: Any, where: str, name: str) -> float:
    """A finite real number field."""
    if type(value) is float and math.isfinite(value):  # the common case first
        return value
    if isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(
        value, (bool, np.bool_)
    ):
        f = float(value)
        if math.isfinite(f):
            return f
    raise fail(where, f"{name!r} is {value!r}", "expected a finite number")


def as_bbox(value: Any, where: str, name: str = "bbox") -> np.ndarray:
    """``[x, y, w, h]``: 4 finite numbers with ``w, h >= 0`` -> ``(4,) float64``."""
    if type(value) is list and len(value) == 4:  # the common case: four plain numbers
        t = (type(value[0]), type(value[1]), type(value[2]), type(value[3]))
        if all(k is float or k is int for k in t):
            box = np.array([float(v) for v in value])
            if np.isfinite(box).all() and box[2] >= 0 and box[3] >= 0:
                return box
    if hasattr(value, "tolist") and not isinstance(value, (list, tuple)):
        value = value.tolist()
    if not isinstance(value, (list, tuple)) or len(value) != 4:
        raise fail(
            where,
            f"{name!r} is {_short(value)}",
            "expected [x, y, w, h] with 4 finite numbers",
        )
    box = np.array([as_finite(v, where, f"{name}[{i}]") for i, v in enumerate(value)])
    if box[2] < 0 or box[3] < 0:
        raise fail(
            where,
            f"{name!r} has a negative size (w={box[2]:g}, h={box[3]:g})",
            "expected [x, y, w, h] with w, h >= 0 (not [x1, y1, x2, y2])",
        )
    return box


def as_float_array(value: Any, where: str, name: str) -> np.ndarray:
    """A flat list of finite numbers -> ``(N,) float64``."""
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise fail(where, f"{name!r} is {_short(value)}", "expected a list of numbers") from None
    if arr.ndim != 1:
        raise fail(where, f"{name!r} has shape {arr.shape}", "expected a flat list of numbers")
    bad = ~np.isfinite(arr)
    if bad.any():
        i = int(np.argmax(bad))
        raise fail(
            where,
            f"{name!r} holds {int(bad.sum())} non-finite value(s) (first at {i}: {arr[i]})",
            "expected finite numbers; NaN/Infinity are not allowed",
        )
    return arr


def check_range(
    arr: np.ndarray, lo: float, hi: float, where: str, name: str, fix: str = ""
) -> None:
    """Raise if any value of ``arr`` lies outside ``[lo, hi]``."""
    if arr.size == 0:
        return
    bad = (arr < lo) | (arr > hi)
    if bad.any():
        i = int(np.argmax(bad))
        raise fail(
            where,
            f"{name!r} has {int(bad.sum())} value(s) outside [{lo:g}, {hi:g}] "
            f"(first at {i}: {arr[i]:g})",
            fix or f"expected values in [{lo:g}, {hi:g}]",
        )


def check_iuv_array(arr: Any, where: str, name: str = "IUV map") -> np.ndarray:
    """Validate and quantise an in-memory IUV map -> ``(3, H, W) uint8``.

    ``uint8`` arrays are taken as stored (I, U*255, V*255). Other integer arrays must hold
    values in 0..255. Float arrays are read as (I, U, V) with U, V in [0, 1] and quantised
    as detectron2 does: ``trunc(U * 255)``. In every case I must lie in 0..24.
    """
    if not isinstance(arr, np.ndarray):
        arr = np.asarray(arr)
    if arr.ndim != 3 or arr.shape[0] != 3 or arr.shape[1] < 1 or arr.shape[2] < 1:
        raise fail(where, f"{name} has shape {arr.shape}", "expected (3, H, W) with H, W >= 1")
    if arr.dtype == np.uint8:
        out = arr
    elif np.issubdtype(arr.dtype, np.integer):
        check_range(arr.ravel(), 0, 255, where, name, "expected uint8 values 0..255")
        out = arr.astype(np.uint8)
    elif np.issubdtype(arr.dtype, np.floating):
        if not np.isfinite(arr).all():
            raise fail(where, f"{name} holds non-finite values", "expected finite I, U, V")
        parts = arr[0]
        if (parts != np.round(parts)).any():
            raise fail(where, f"{name} channel 0 (I) is not integer-valued", "expected 0..24")
        check_range(parts.ravel(), 0, N_PARTS, where, f"{name} I", "expected part ids 0..24")
        for c, label in ((1, "U"), (2, "V")):
            check_range(
                arr[c].ravel(),
                -UNIT_TOL,
                1 + UNIT_TOL,
                where,
                f"{name} {label}",
                f"float {label} must lie in [0, 1] (or pass uint8 {label}*255)",
            )
        out = np.empty(arr.shape, np.uint8)
        out[0] = parts
        out[1:] = np.clip(arr[1:] * 255.0, 0, 255)  # trunc(clamp(U * 255)), as detectron2
    else:
        raise fail(where, f"{name} has dtype {arr.dtype}", "expected uint8 (or float I, U, V)")
    check_parts(out[0], where, name)
    return out


def check_parts(parts: np.ndarray, where: str, name: str = "IUV map") -> None:
    """Raise if a part-id plane holds values above 24."""
    top = int(parts.max()) if parts.size else 0
    if top > N_PARTS:
        n = int(np.count_nonzero(parts > N_PARTS))
        raise fail(
            where,
            f"{name} has {n} pixel(s) with part id > {N_PARTS} (max {top})",
            "channel 0 (I) must hold 0 (background) or 1..24; check the channel order "
            "(I, U*255, V*255)",
        )


def _short(value: Any, n: int = 60) -> str:
    s = repr(value)
    return s if len(s) <= n else s[: n - 3] + "..."


# --------------------------------------------------------------------------- pickles


def load_pickle(raw: bytes, name: str, fix: str) -> Any:
    """Unpickle a predictions dump safely (torch ``.pth`` zip archives need torch)."""
    if raw.startswith(b"PK\x03\x04"):
        return _torch_load(raw, name)
    if not raw:
        raise fail(name, "the file is empty", fix)
    try:
        return safe_pickle_loads(raw)
    except pickle.UnpicklingError as e:
        raise fail(name, f"cannot be unpickled: {e}", "save plain NumPy arrays") from None
    except (
        EOFError,
        ValueError,
        TypeError,
        AttributeError,
        IndexError,
        KeyError,
        ImportError,
        UnicodeDecodeError,
    ) as e:
        raise fail(
            name,
            f"is not a readable pickle ({type(e).__name__}: {e})",
            f"the file may be truncated; {fix}",
        ) from None


def _torch_load(raw: bytes, name: str) -> Any:
    try:
        import torch
    except ImportError:
        raise fail(
            name,
            "is a torch (.pth) archive and torch is not installed",
            "`pip install torch` to read it, or re-save the list with pickle and "
            "tensors as NumPy arrays",
        ) from None

    class _TorchUnpickler(SafeUnpickler):
        def find_class(self, module: str, cls: str) -> Any:
            if module.split(".")[0] == "torch":
                return pickle.Unpickler.find_class(self, module, cls)
            return super().find_class(module, cls)

    class _Module:  # the pickle_module protocol torch.load uses
        Unpickler = _TorchUnpickler
        __name__ = "dpeval_safe_pickle"

        @staticmethod
        def load(f: Any, **kw: Any) -> Any:
            return _TorchUnpickler(f, **kw).load()

    try:
        return torch.load(
            io.BytesIO(raw), map_location="cpu", pickle_module=_Module, weights_only=False
        )
    except Exception as e:  # torch raises many types; report them as one
        raise fail(
            name,
            f"torch.load failed ({type(e).__name__}: {e})",
            "save the predictions as a plain pickle of NumPy arrays",
        ) from None
