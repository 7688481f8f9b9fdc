"""Shared infrastructure: the cache directory and atomic file writes (used by every stage).

The cache holds derived data only (geodesic tables, closest-vertex lookup tables,
converted official distance files); every entry is keyed by the template checksum and a
version. Every file dpeval writes for others to read (cache entries, exported templates,
rendered pages, synthetic images) goes through :func:`atomic_write`: it is written
under a temporary name in the same directory and moved into place with ``os.replace``,
so a concurrent reader never sees a partial file and a failed write leaves nothing
behind.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import secrets
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import numpy as np

from ._typing import PathLike

__all__ = [
    "atomic_write",
    "cache_dir",
    "content_key",
    "load_npy",
    "memo_npy",
    "save_npy_atomic",
    "write_atomic",
]


def cache_dir() -> Path:
    """dpeval's cache directory: ``$DPEVAL_CACHE_DIR`` or ``~/.cache/dpeval``.

    A leading ``~`` in ``DPEVAL_CACHE_DIR`` is expanded. The directory is not created
    here; writers create what they need.

    Returns
    -------
    pathlib.Path

    Examples
    --------
    >>> (cache_dir() / "lut").name
    'lut'
    """
    env = os.environ.get("DPEVAL_CACHE_DIR")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "dpeval"


@contextlib.contextmanager
def atomic_write(path: PathLike) -> Iterator[Path]:
    """Write a file atomically: yield a temporary path beside ``path``, then move it there.

    The caller writes the complete file to the yielded path (by name: ``np.save`` on an
    open handle, ``open_memmap``, ``pickle.dump``...). When the block ends normally the
    file replaces ``path`` with ``os.replace`` (atomic on one file system); when it
    raises, the temporary file is removed and ``path`` is left as it was. The parent
    directory is created if needed; the file gets the usual permissions (``0o666``
    less the umask), not the ``0o600`` of :func:`tempfile.mkstemp`.

    Parameters
    ----------
    path : path
        Final location.

    Yields
    ------
    pathlib.Path
        A new, empty file in the same directory (a hidden name ending in ``.tmp``).

    Examples
    --------
    >>> import tempfile
    >>> p = Path(tempfile.mkdtemp()) / "a.txt"
    >>> with atomic_write(p) as tmp:
    ...     _ = tmp.write_text("done")
    >>> p.read_text()
    'done'
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{secrets.token_hex(6)}.tmp")
    os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
    try:
        yield tmp
        os.replace(tmp, target)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def write_atomic(path: PathLike, data: bytes | str) -> None:
    """Write ``data`` (bytes, or text as UTF-8) to ``path`` with :func:`atomic_write`.

    Parameters
    ----------
    path : path
    data : bytes or str

    Examples
    --------
    >>> import tempfile
    >>> p = Path(tempfile.mkdtemp()) / "b.bin"
    >>> write_atomic(p, b"xyz")
    >>> p.read_bytes()
    b'xyz'
    """
    payload = data.encode("utf-8") if isinstance(data, str) else data
    with atomic_write(path) as tmp:
        tmp.write_bytes(payload)


def save_npy_atomic(path: Path, array: np.ndarray) -> bool:
    """Write ``array`` to ``path`` as ``.npy`` atomically; False (and nothing written) on
    OS errors (a cache that cannot be written is not an error)."""
    try:
        with atomic_write(path) as tmp, open(tmp, "wb") as fh:
            np.save(fh, array, allow_pickle=False)
    except OSError:
        return False
    return True


def load_npy(path: Path, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray | None:
    """The cached array if it exists with this shape and dtype, else None."""
    try:
        a = np.load(path, allow_pickle=False)
    except (OSError, ValueError):
        return None
    return a if a.shape == shape and a.dtype == dtype else None


def content_key(parts: Iterable[bytes | str | np.ndarray]) -> str:
    """A sha256 hex digest of everything a derived result depends on (arrays by dtype,
    shape and bytes; text as UTF-8), for content-addressed cache entries."""
    h = hashlib.sha256(b"dpeval-content-key-v1")
    for part in parts:
        if isinstance(part, np.ndarray):
            a = np.ascontiguousarray(part)
            h.update(f"{a.dtype.str}{a.shape}".encode())
            h.update(memoryview(a).cast("B"))
        else:
            h.update(part.encode("utf-8") if isinstance(part, str) else bytes(part))
        h.update(b"\x00")
    return h.hexdigest()


def memo_npy(
    kind: str, key: str, shape: tuple[int, ...], dtype: np.dtype, compute: Callable[[], np.ndarray]
) -> np.ndarray:
    """``compute()``, remembered in ``cache_dir()/kind/<key>.npy`` across runs.

    ``key`` must be a :func:`content_key` of every input of ``compute`` (the entry is
    never invalidated otherwise). A cached file of another shape or dtype is ignored and
    rewritten; a cache that cannot be written only costs the recomputation.
    """
    path = cache_dir() / kind / f"{key[:40]}.npy"
    found = load_npy(path, shape, np.dtype(dtype))
    if found is not None:
        return found
    out = np.asarray(compute())
    save_npy_atomic(path, out)
    return out
