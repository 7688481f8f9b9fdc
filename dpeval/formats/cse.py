"""Continuous Surface Embeddings predictions (stage 3, formats).

(Over 500 lines: three on-disk layouts of the same records, each with a reader and a
writer that must stay symmetric; they are kept together so a change to one is seen
beside the others.)

In: detectron2 CSE results, in any of the three layouts below. Out:
:class:`CsePredictions`, one :class:`CseDetection` per detection whose head-resolution
maps (``coarse_segm`` (K, S, S) and ``embedding`` (D, S, S), float32) are read lazily,
so a minival-sized file never sits in memory at once.

``d2-cse``
    detectron2's ``coco_densepose_predictions.pth`` (torch) or a pickle: a list of
    ``{image_id, category_id, bbox (XYWH), score, coarse_segm, embedding}`` (arrays or
    tensors; per-image ``{image_id, instances: [...]}`` records are flattened). Read with
    the restricted unpickler, never executing pickled code.
``d2-cse-storage``
    the same list whose records hold ``record_id`` and ``rank`` instead of the maps,
    plus detectron2's file tensor storage ``DensePoseEvaluatorStorage.{rank}.bin``
    (:class:`TensorStorage`): fixed-size records, fields in sorted name order
    (``coarse_segm`` then ``embedding``), raw float32 bytes, record ``r`` at byte
    ``r * record_size``. Storage files are found beside the results file unless given.
``dpeval-cse-npz``
    dpeval's own ``.npz`` (uncompressed members, memory-mapped on read)::

        format ()  "dpeval-cse-npz"   version () 1
        image_id, category_id (N,) int64   bbox (N, 4) float64   score (N,) float64
        shape (N, 4) int64    K, D, H, W of each detection
        coarse_offset, embed_offset (N + 1,) int64   into the flat arrays below
        coarse, embedding  (total,) float32           C-order (K, H, W) / (D, H, W) maps

Checks: the usual head fields (ids, finite box and score), 3-D maps with equal H, W in
both, the same D in every detection, finite values (checked when a map is read:
``NaN/inf`` is an error naming the detection), storage ranks and record ids in range,
and a storage size that is a multiple of the record size.
"""

from __future__ import annotations

import hashlib
import os
import zipfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .._typing import PathLike, unwrap_tensor
from ._validate import as_bbox, as_finite, as_int, fail, load_pickle
from .cse_storage import (
    _STORAGE_NAME,
    D2_CSE_SCHEMA,
    TensorStorage,
    _find_storages,
    _schema_from_shape,
    write_storage,
)

__all__ = [
    "CSE_FORMATS",
    "D2_CSE_SCHEMA",
    "CseDetection",
    "CsePredictions",
    "TensorStorage",
    "is_cse_records",
    "is_cse_source",
    "load_cse_predictions",
    "save_cse_native",
    "write_storage",
]

CSE_FORMATS = ("d2-cse", "d2-cse-storage", "dpeval-cse-npz")
NATIVE_CSE_FORMAT = "dpeval-cse-npz"
_MARKERS = (b"coarse_segm", b"record_id")


@dataclass(frozen=True, eq=False)
class CseDetection:
    """One CSE detection.

    Attributes
    ----------
    image_id, category_id : int
    bbox : (4,) float64
        XYWH.
    score : float
    shape : (K, D, H, W)
        Coarse channels, embedding size and head resolution.
    index : int
        Position in the results list (for messages).
    """

    image_id: int
    category_id: int
    bbox: np.ndarray
    score: float
    shape: tuple[int, int, int, int]
    index: int = -1
    where: str = ""
    _maps: tuple[np.ndarray, np.ndarray] | None = field(default=None, repr=False)
    _loader: Callable[[], tuple[np.ndarray, np.ndarray]] | None = field(default=None, repr=False)

    @property
    def embed_dim(self) -> int:
        return self.shape[1]

    def load(self) -> tuple[np.ndarray, np.ndarray]:
        """``coarse_segm (K, H, W)`` and ``embedding (D, H, W)``, float32.

        Raises
        ------
        FormatError
            Non-finite values (named by detection), unreadable storage record.
        """
        coarse, emb = self._maps if self._maps is not None else self._loader()  # type: ignore[misc]
        for name, a in (("coarse_segm", coarse), ("embedding", emb)):
            if not np.isfinite(a).all():
                bad = int(np.count_nonzero(~np.isfinite(a)))
                raise fail(
                    self.where or f"detection {self.index}",
                    f"{name!r} holds {bad} NaN/inf value(s)",
                    "the model produced non-finite outputs; fix or drop this detection",
                )
        return coarse, emb


@dataclass(frozen=True, eq=False)
class CsePredictions:
    """CSE detections read from one source (``kind`` is always ``"cse"``)."""

    detections: tuple[CseDetection, ...]
    format: str = "d2-cse"
    source: str = "<memory>"
    sha256: str = ""
    kind: str = "cse"

    @property
    def embed_dim(self) -> int | None:
        return self.detections[0].embed_dim if self.detections else None


# --------------------------------------------------------------------------- detection


def is_cse_records(records: Any) -> bool:
    """True for a list whose first detection holds CSE maps or a storage reference."""
    if isinstance(records, CsePredictions):
        return True
    if not isinstance(records, (list, tuple)) or not records:
        return False
    first = records[0]
    if isinstance(first, dict) and isinstance(first.get("instances"), (list, tuple)):
        return is_cse_records(first["instances"])
    return isinstance(first, dict) and (
        "embedding" in first or ("record_id" in first and "densepose" not in first)
    )


def is_cse_source(source: Any) -> bool:
    """Cheap content test: a dpeval CSE ``.npz``, or a pickle / torch file whose first
    MiB names ``coarse_segm`` or ``record_id`` (the keys of detectron2's CSE results)."""
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if not path.is_file():
            return False
        try:
            with zipfile.ZipFile(path) as z:
                if "format.npy" in z.namelist():
                    return "coarse_offset.npy" in z.namelist()
        except (zipfile.BadZipFile, OSError):
            pass
        with open(path, "rb") as fh:
            head = fh.read(1 << 20)
        return b"densepose" not in head and any(m in head for m in _MARKERS)
    return is_cse_records(source)


def _flatten(records: Sequence[Any], name: str) -> list[Any]:
    out = []
    for _i, rec in enumerate(records):
        if isinstance(rec, dict) and isinstance(rec.get("instances"), (list, tuple)):
            for inst in rec["instances"]:
                if isinstance(inst, dict) and "image_id" not in inst and "image_id" in rec:
                    inst = {**inst, "image_id": rec["image_id"]}
                out.append(inst)
        else:
            out.append(rec)
    return out


def _as_maps(coarse: Any, emb: Any, where: str) -> tuple[np.ndarray, np.ndarray]:
    out = []
    for key, a in (("coarse_segm", coarse), ("embedding", emb)):
        a = unwrap_tensor(a)
        try:
            arr = np.asarray(a, dtype=np.float32)
        except (TypeError, ValueError):
            raise fail(
                where, f"{key!r} is a {type(a).__name__}", "expected a float array"
            ) from None
        if arr.ndim == 4 and arr.shape[0] == 1:
            arr = arr[0]  # detectron2 keeps a leading batch axis of 1 in some versions
        if arr.ndim != 3 or min(arr.shape) < 1:
            raise fail(where, f"{key!r} has shape {arr.shape}", "expected (C, S, S)")
        out.append(arr)
    if out[0].shape[1:] != out[1].shape[1:]:
        raise fail(
            where,
            f"'coarse_segm' is {out[0].shape} but 'embedding' is {out[1].shape}",
            "both maps need the same head resolution",
        )
    return out[0], out[1]


def _head(rec: Any, name: str, i: int) -> tuple[str, dict[str, Any]]:
    where = f"{name}: detection {i}"
    if not isinstance(rec, dict):
        raise fail(where, f"is a {type(rec).__name__}", "expected a detection dict")
    if isinstance(rec.get("image_id"), (int, np.integer)):
        where = f"{where} (image_id={rec['image_id']})"
    missing = [k for k in ("image_id", "category_id", "bbox", "score") if k not in rec]
    if missing:
        raise fail(
            where, f"has no {missing}", "each detection needs image_id, category_id, bbox, score"
        )
    bbox = as_bbox(unwrap_tensor(rec["bbox"]), where)
    bbox.flags.writeable = False
    return where, {
        "image_id": as_int(rec["image_id"], where, "image_id"),
        "category_id": as_int(rec["category_id"], where, "category_id"),
        "bbox": bbox,
        "score": as_finite(float(np.asarray(unwrap_tensor(rec["score"]))), where, "score"),
    }


def _from_records(
    records: Any,
    name: str,
    digest: str,
    storage_paths: Mapping[int, Path],
    schema: Mapping[str, tuple[int, ...]],
    storage_hint: str,
) -> CsePredictions:
    if not isinstance(records, (list, tuple)):
        raise fail(name, f"holds a {type(records).__name__}", "expected a list of detections")
    recs = _flatten(records, name)
    dets = []
    fmt = "d2-cse"
    opened: dict[int, TensorStorage] = {}  # storages are opened when first referenced
    for i, rec in enumerate(recs):
        where, head = _head(rec, name, i)
        if "coarse_segm" in rec and "embedding" in rec:
            c, e = _as_maps(rec["coarse_segm"], rec["embedding"], where)
            c.flags.writeable = e.flags.writeable = False
            shape = (c.shape[0], e.shape[0], c.shape[1], c.shape[2])
            dets.append(CseDetection(**head, shape=shape, index=i, where=where, _maps=(c, e)))
            continue
        if "record_id" not in rec:
            raise fail(
                where,
                f"has keys {sorted(rec)}",
                "expected CSE maps 'coarse_segm' + 'embedding', or 'record_id' + 'rank' "
                "pointing into a DensePoseEvaluatorStorage file",
            )
        fmt = "d2-cse-storage"
        rank = as_int(rec.get("rank", 0), where, "rank")
        rid = as_int(rec["record_id"], where, "record_id")
        if rank not in opened and rank in storage_paths:
            opened[rank] = TensorStorage(storage_paths[rank], schema)
        st = opened.get(rank)
        if st is None:
            raise fail(
                where,
                f"refers to storage rank {rank}, but no DensePoseEvaluatorStorage.{rank}.bin "
                f"was given{storage_hint}",
                "pass the storage file(s) with --storage FILE",
            )
        if "embedding" not in st.schema or "coarse_segm" not in st.schema:
            raise fail(st.path, "is not a CSE storage", "its schema needs coarse_segm, embedding")
        if not 0 <= rid < st.n_records:
            raise fail(
                where,
                f"record_id {rid} but {st.path} holds {st.n_records} records",
                "the results list and the storage file do not belong together",
            )
        k, d = st.schema["coarse_segm"][0], st.schema["embedding"][0]
        hw = st.schema["embedding"][1:]
        dets.append(
            CseDetection(
                **head,
                shape=(k, d, hw[0], hw[1]),
                index=i,
                where=where,
                _loader=_storage_loader(st, rid),
            )
        )
    _check_dims(dets, name)
    return CsePredictions(tuple(dets), format=fmt, source=name, sha256=digest)


def _storage_loader(st: TensorStorage, rid: int) -> Callable[[], tuple[np.ndarray, np.ndarray]]:
    def load() -> tuple[np.ndarray, np.ndarray]:
        r = st.get(rid)
        return r["coarse_segm"], r["embedding"]

    return load


def _check_dims(dets: list[CseDetection], name: str) -> None:
    dims = {d.embed_dim for d in dets}
    if len(dims) > 1:
        first = dets[0]
        other = next(d for d in dets if d.embed_dim != first.embed_dim)
        raise fail(
            other.where,
            f"embedding has D = {other.embed_dim} but detection {first.index} has "
            f"D = {first.embed_dim}",
            "every detection of one model has the same embedding size",
        )


def load_cse_predictions(
    source: Any,
    *,
    storage: Sequence[PathLike] | Mapping[int, PathLike] | None = None,
    storage_shape: Sequence[int] | None = None,
) -> CsePredictions:
    """Read CSE predictions (see the module docstring for the layouts).

    Parameters
    ----------
    source : path, list of dicts, or CsePredictions
    storage : paths or {rank: path}, optional
        ``DensePoseEvaluatorStorage.{rank}.bin`` files (rank from the name, else the
        list position); default: those next to ``source``.
    storage_shape : (K, D, S), optional
        Storage schema (default detectron2's 2, 16, 112).

    Returns
    -------
    CsePredictions

    Raises
    ------
    FormatError

    Example
    -------
    >>> recs = [{"image_id": 1, "category_id": 1, "bbox": [0, 0, 4, 4], "score": 0.9,
    ...          "coarse_segm": np.zeros((2, 8, 8)), "embedding": np.zeros((16, 8, 8))}]
    >>> load_cse_predictions(recs).detections[0].shape
    (2, 16, 8, 8)
    """
    if isinstance(source, CsePredictions):
        return source
    schema = _schema_from_shape(storage_shape)
    paths: dict[int, Path] = {}
    if isinstance(storage, Mapping):
        paths = {int(k): Path(v) for k, v in storage.items()}
    elif storage:
        for pos, p in enumerate(storage):
            m = _STORAGE_NAME.search(Path(p).name)
            paths[int(m.group(1)) if m else pos] = Path(p)
    hint = ""
    if not isinstance(source, (str, os.PathLike)):
        return _from_records(source, "<memory>", "", paths, schema, hint)
    path = Path(source)
    name = str(source)
    if not path.exists():
        raise fail(name, "file not found", "check the predictions path")
    if zipfile.is_zipfile(path) and _is_native(path):
        return _load_native(path)
    if not paths:
        paths = _find_storages(path)
        hint = f" (none found beside {path.name})"
    raw = path.read_bytes()
    digest = hashlib.sha256(raw).hexdigest()
    records = load_pickle(raw, name, "expected detectron2's CSE results list")
    del raw
    return _from_records(records, name, digest, paths, schema, hint)


# --------------------------------------------------------------------------- native


def _is_native(path: Path) -> bool:
    with zipfile.ZipFile(path) as z:
        return "coarse_offset.npy" in z.namelist()


def save_cse_native(preds: CsePredictions, path: PathLike) -> None:
    """Write CSE predictions as a ``dpeval-cse-npz`` file (maps as float32, exact)."""
    dets = preds.detections
    n = len(dets)
    shape = np.array([d.shape for d in dets], np.int64).reshape(n, 4)
    sizes_c = shape[:, 0] * shape[:, 2] * shape[:, 3]
    sizes_e = shape[:, 1] * shape[:, 2] * shape[:, 3]
    c_off = np.concatenate([[0], np.cumsum(sizes_c)]).astype(np.int64)
    e_off = np.concatenate([[0], np.cumsum(sizes_e)]).astype(np.int64)
    coarse = np.empty(int(c_off[-1]), np.float32)
    emb = np.empty(int(e_off[-1]), np.float32)
    for i, d in enumerate(dets):
        c, e = d.load()
        coarse[c_off[i] : c_off[i + 1]] = c.ravel()
        emb[e_off[i] : e_off[i + 1]] = e.ravel()
    with open(path, "wb") as fh:
        np.savez(
            fh,
            format=np.array(NATIVE_CSE_FORMAT),
            version=np.array(1),
            image_id=np.array([d.image_id for d in dets], np.int64),
            category_id=np.array([d.category_id for d in dets], np.int64),
            bbox=np.array([d.bbox for d in dets], np.float64).reshape(n, 4),
            score=np.array([d.score for d in dets], np.float64),
            shape=shape,
            coarse_offset=c_off,
            embed_offset=e_off,
            coarse=coarse,
            embedding=emb,
        )


def _member_memmap(path: Path, zf: zipfile.ZipFile, member: str) -> np.ndarray:
    """Memory-map an uncompressed ``.npy`` member of a zip (np.savez output)."""
    info = zf.getinfo(member)
    if info.compress_type != zipfile.ZIP_STORED:
        with zf.open(member) as fh:
            return np.lib.format.read_array(fh)
    with open(path, "rb") as fh:
        fh.seek(info.header_offset)
        local = fh.read(30)
        n_name = int.from_bytes(local[26:28], "little")
        n_extra = int.from_bytes(local[28:30], "little")
        start = info.header_offset + 30 + n_name + n_extra
        fh.seek(start)
        version = np.lib.format.read_magic(fh)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(fh)
        else:
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(fh)
        offset = fh.tell()
    if fortran or not shape or int(np.prod(shape)) == 0:
        return np.zeros(shape, dtype)
    return np.memmap(path, dtype=dtype, mode="r", offset=offset, shape=shape)


def _load_native(path: Path) -> CsePredictions:
    name = str(path)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    with zipfile.ZipFile(path) as zf:
        small = {}
        for key in (
            "format",
            "version",
            "image_id",
            "category_id",
            "bbox",
            "score",
            "shape",
            "coarse_offset",
            "embed_offset",
        ):
            if f"{key}.npy" not in zf.namelist():
                raise fail(name, f"has no {key!r} member", "not a dpeval-cse-npz file")
            with zf.open(f"{key}.npy") as fh:
                small[key] = np.lib.format.read_array(fh, allow_pickle=False)
        coarse = _member_memmap(path, zf, "coarse.npy")
        emb = _member_memmap(path, zf, "embedding.npy")
    if str(small["format"]) != NATIVE_CSE_FORMAT or int(small["version"]) != 1:
        raise fail(
            name, f"format {small['format']} v{small['version']}", "expected dpeval-cse-npz v1"
        )
    shape, c_off, e_off = small["shape"], small["coarse_offset"], small["embed_offset"]
    n = len(small["image_id"])
    if shape.shape != (n, 4) or len(c_off) != n + 1 or len(e_off) != n + 1:
        raise fail(name, "member lengths disagree", "the file is damaged; rewrite it")
    if c_off[-1] != coarse.size or e_off[-1] != emb.size:
        raise fail(name, "map payload sizes disagree with the offsets", "rewrite the file")
    dets = []
    for i in range(n):
        k, d, h, w = (int(x) for x in shape[i])
        if k * h * w != c_off[i + 1] - c_off[i] or d * h * w != e_off[i + 1] - e_off[i]:
            raise fail(
                f"{name}: detection {i}", f"shape {shape[i].tolist()} disagrees with offsets"
            )
        where, head = _head(
            {
                "image_id": int(small["image_id"][i]),
                "category_id": int(small["category_id"][i]),
                "bbox": small["bbox"][i],
                "score": float(small["score"][i]),
            },
            name,
            i,
        )
        loader = _native_loader(coarse, emb, int(c_off[i]), int(e_off[i]), (k, d, h, w))
        dets.append(CseDetection(**head, shape=(k, d, h, w), index=i, where=where, _loader=loader))
    _check_dims(dets, name)
    return CsePredictions(tuple(dets), format=NATIVE_CSE_FORMAT, source=name, sha256=digest)


def _native_loader(coarse, emb, co, eo, shape) -> Callable[[], tuple[np.ndarray, np.ndarray]]:
    k, d, h, w = shape

    def load() -> tuple[np.ndarray, np.ndarray]:
        c = np.asarray(coarse[co : co + k * h * w]).reshape(k, h, w)
        e = np.asarray(emb[eo : eo + d * h * w]).reshape(d, h, w)
        return c, e

    return load


def save_cse_d2(preds: CsePredictions, path: PathLike) -> None:
    """Write detectron2's results layout (a pickle list of dicts with the maps)."""
    import pickle

    recs = []
    for d in preds.detections:
        c, e = d.load()
        recs.append(
            {
                "image_id": d.image_id,
                "category_id": d.category_id,
                "bbox": [float(v) for v in d.bbox],
                "score": float(d.score),
                "coarse_segm": np.ascontiguousarray(c),
                "embedding": np.ascontiguousarray(e),
            }
        )
    Path(path).write_bytes(pickle.dumps(recs, protocol=4))
