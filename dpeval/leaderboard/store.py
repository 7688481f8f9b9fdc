"""Leaderboard store: one JSON file per entry under ``<store>/entries/``.

In: an entry dict (built by :mod:`dpeval.leaderboard.submit`). Out: a file
``<store>/entries/<slug>-<timestamp>-<shorthash>.json`` that is never replaced, and
:func:`read_entries`, which validates every file and names the bad one.

Writes go to a temporary file in the same directory, are flushed to disk, then linked
to the final name with ``os.link`` (``O_CREAT | O_EXCL`` where links are not
supported); both fail instead of replacing an existing name, so a second submission of
the same method is a second entry, never an overwrite.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import math
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import FormatError
from .text import has_control, is_http_url

__all__ = [
    "BOX_PROTOCOLS",
    "ENTRY_SCHEMA",
    "Entry",
    "GroupKey",
    "check_method",
    "entries_dir",
    "read_entries",
    "slugify",
    "validate_entry",
    "write_entry",
]

ENTRY_SCHEMA = "dpeval-leaderboard-entry/1"
BOX_PROTOCOLS = ("detected", "gt")
MAX_NAME_CHARS = 200
MAX_URL_CHARS = 500
MAX_DESCRIPTION_CHARS = 4000
MAX_SLUG_CHARS = 48
MAX_TRAINING_BYTES = 16384
INTERVAL_KEYS = ("gps_paper_AP", "gps_perpart_AP", "gpsm_AP", "iou_AP", "AUC10", "AUC30")

_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_SPLIT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_COMMIT = re.compile(r"^[0-9a-f]{7,64}$")
_DATE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")


GEODESICS_BEFORE = "engine-fw1"
"""The distances of entries written before entries recorded theirs (dpeval's engine
``fw1``: unrounded fields for small queries; the official templates' entries carried
``legacy`` numbers, but no such entry was ever published). Entries of another engine
version are ranked apart: their distances differ in the last digits."""


@dataclass(frozen=True)
class GroupKey:
    """What two entries must share to be ranked together (never mixed otherwise)."""

    split: str
    ground_truth_sha256: str
    template_id: str
    template_sha256: str
    protocol: str
    boxes: str
    geodesics: str = GEODESICS_BEFORE

    def label(self) -> str:
        """One line naming the group, e.g. ``split minival2014 · template open (4702…)``."""
        return (
            f"split {self.split} · boxes {self.boxes} · protocol {self.protocol} · "
            f"template {self.template_id} ({self.template_sha256[:12]}) · "
            f"geodesics {self.geodesics} · GT {self.ground_truth_sha256[:12]}"
        )


@dataclass(frozen=True)
class Entry:
    """One validated leaderboard entry.

    Attributes
    ----------
    id : str
        File name without ``.json`` (unique in the store).
    path : Path or None
        Where it was read from or written to.
    data : dict
        The JSON content (see :func:`validate_entry` for the schema).
    """

    id: str
    path: Path | None
    data: dict[str, Any]

    @property
    def name(self) -> str:
        return self.data["method"]["name"]

    @property
    def group(self) -> GroupKey:
        d = self.data
        return GroupKey(
            split=d["split"],
            ground_truth_sha256=d["inputs"]["ground_truth_sha256"],
            template_id=d["template"]["id"],
            template_sha256=d["template"]["sha256"],
            protocol=d["protocol"],
            boxes=d["boxes"],
            geodesics=d.get("geodesics", GEODESICS_BEFORE),
        )


def entries_dir(store: str | os.PathLike[str]) -> Path:
    """``<store>/entries``."""
    return Path(store) / "entries"


def slugify(name: str) -> str:
    """A file-name-safe slug: lower-case ASCII letters, digits and ``-`` only.

    Path separators, ``..``, dots and every other character become ``-``, so a slug can
    never leave the entries directory.

    Example
    -------
    >>> slugify("../../etc/My Net (R50)")
    'etc-my-net-r50'
    """
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:MAX_SLUG_CHARS].strip("-")
    return slug or "entry"


# ---------------------------------------------------------------------------- validation


def _fail(where: str, what: str) -> FormatError:
    return FormatError(
        f"{where}: {what}; a leaderboard entry must follow {ENTRY_SCHEMA} (write it "
        "with `dpeval leaderboard submit`, never by hand)"
    )


def _text(d: dict, key: str, where: str, limit: int, *, required: bool = False) -> str:
    v = d.get(key, "")
    if not isinstance(v, str):
        raise _fail(where, f"{key!r} must be a string, got {type(v).__name__}")
    if required and not v.strip():
        raise _fail(where, f"{key!r} must not be empty")
    if len(v) > limit:
        raise _fail(where, f"{key!r} has {len(v)} characters; at most {limit} are allowed")
    if has_control(v, multiline=True):
        raise _fail(where, f"{key!r} contains control characters")
    return v


def check_url(url: str, where: str) -> str:
    """Accept only empty or ``http(s)://`` URLs without spaces or control characters."""
    if url and (not is_http_url(url) or has_control(url)):
        raise _fail(where, f"url {url[:80]!r} must start with http:// or https:// (no spaces)")
    return url


def _number(v: Any, where: str, what: str) -> None:
    if v is None:
        return
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        raise _fail(where, f"{what} must be a finite number or null, got {v!r}")


def _obj(d: Any, key: str, where: str) -> dict:
    v = d.get(key) if isinstance(d, dict) else None
    if not isinstance(v, dict):
        raise _fail(where, f"{key!r} must be an object")
    return v


def _sha(v: Any, where: str, what: str) -> None:
    if not isinstance(v, str) or not _SHA256.match(v):
        raise _fail(where, f"{what} must be 64 lower-case hex characters, got {v!r}")


def check_method(method: dict[str, Any], split: Any, where: str = "<entry>") -> None:
    """Check the submitter's fields: name (required), team, url, description, split.

    Raises
    ------
    FormatError
        A field of the wrong type, too long, with control characters, a non-http(s)
        URL, or a split outside ``[A-Za-z0-9._-]{1,64}``.
    """
    _text(method, "name", where, MAX_NAME_CHARS, required=True)
    _text(method, "team", where, MAX_NAME_CHARS)
    check_url(_text(method, "url", where, MAX_URL_CHARS), where)
    _text(method, "description", where, MAX_DESCRIPTION_CHARS)
    if not isinstance(split, str) or not _SPLIT.match(split):
        raise _fail(where, f"'split' {split!r} must be 1-64 characters of [A-Za-z0-9._-]")


def validate_entry(data: Any, where: str = "<entry>") -> dict[str, Any]:
    """Check an entry against the schema; return it unchanged.

    Schema (``ENTRY_SCHEMA``): ``schema``; ``method`` {name (required), team, url
    (http/https or empty), description}; ``split``; ``boxes`` (``detected`` or ``gt``);
    ``protocol``; ``template`` {id, sha256}; ``inputs`` {predictions_sha256,
    ground_truth_sha256, ...}; ``score`` (the ``dpeval score --json`` object, whose
    template, protocol and input checksums must agree with the entry's); ``intervals``
    {metric: {value, ci_low, ci_high, std}}; ``bootstrap`` {resamples, seed, level};
    ``validation`` {warnings: {message: count}}; ``dpeval_version``; ``hardware``;
    ``date`` (UTC ISO, ``...Z``); ``git_commit`` (hex or null); optional ``training``
    (a JSON object of at most 16 KiB: how the predictions were made).

    Raises
    ------
    FormatError
        Naming ``where``, the field and what was expected.
    """
    if not isinstance(data, dict):
        raise _fail(where, "the file must hold one JSON object")
    if data.get("schema") != ENTRY_SCHEMA:
        raise _fail(where, f"'schema' is {data.get('schema')!r}, expected {ENTRY_SCHEMA!r}")
    check_method(_obj(data, "method", where), data.get("split"), where)
    if data.get("boxes") not in BOX_PROTOCOLS:
        raise _fail(where, f"'boxes' is {data.get('boxes')!r}, expected one of {BOX_PROTOCOLS}")
    for key in ("protocol", "dpeval_version"):
        _text(data, key, where, 64, required=True)
    _text(data, "geodesics", where, 64, required=False)
    tpl = _obj(data, "template", where)
    _text(tpl, "id", where, 200, required=True)
    _sha(tpl.get("sha256"), where, "template.sha256")
    inputs = _obj(data, "inputs", where)
    for key in ("predictions_sha256", "ground_truth_sha256"):
        _sha(inputs.get(key), where, f"inputs.{key}")
    score = _obj(data, "score", where)
    metrics = _obj(score, "metrics", where)
    for mname, block in metrics.items():
        if not isinstance(block, dict):
            raise _fail(where, f"score.metrics.{mname} must be an object")
        for k, v in block.items():
            if k not in ("label", "RCP") and not isinstance(v, (list, dict, str)):
                _number(v, where, f"score.metrics.{mname}.{k}")
    if score.get("template") != {"id": tpl["id"], "sha256": tpl["sha256"]}:
        raise _fail(where, "score.template does not match the entry's template")
    if score.get("protocol") != data["protocol"]:
        raise _fail(where, "score.protocol does not match the entry's protocol")
    sin = _obj(score, "inputs", where)
    for key in ("predictions_sha256", "ground_truth_sha256"):
        if sin.get(key) != inputs[key]:
            raise _fail(where, f"score.inputs.{key} does not match inputs.{key}")
    intervals = _obj(data, "intervals", where)
    for key, iv in intervals.items():
        if not isinstance(iv, dict):
            raise _fail(where, f"intervals.{key} must be an object")
        for k in ("value", "ci_low", "ci_high"):
            _number(iv.get(k), where, f"intervals.{key}.{k}")
    boot = _obj(data, "bootstrap", where)
    if not isinstance(boot.get("resamples"), int) or boot["resamples"] < 1:
        raise _fail(where, "bootstrap.resamples must be a positive integer")
    warn = _obj(_obj(data, "validation", where), "warnings", where)
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in warn.values()):
        raise _fail(where, "validation.warnings must map messages to integer counts")
    _obj(data, "hardware", where)
    date = data.get("date")
    if not isinstance(date, str) or not _DATE.match(date):
        raise _fail(where, f"'date' {date!r} must be UTC ISO 8601 ending in Z")
    commit = data.get("git_commit")
    if commit is not None and (not isinstance(commit, str) or not _COMMIT.match(commit)):
        raise _fail(where, f"'git_commit' {commit!r} must be a hex commit id or null")
    if "training" in data:
        training = _obj(data, "training", where)
        try:
            size = len(json.dumps(training, allow_nan=False))
        except (TypeError, ValueError):
            raise _fail(where, "'training' must hold only finite JSON values") from None
        if size > MAX_TRAINING_BYTES:
            raise _fail(where, f"'training' is {size} bytes; at most {MAX_TRAINING_BYTES}")
    return data


# ---------------------------------------------------------------------------- I/O


def _stamp(date: str) -> str:
    """``2026-11-21T14:26:03.123456Z`` -> ``20261121T142603Z``."""
    return re.sub(r"[-:]", "", date.split(".")[0].rstrip("Z")) + "Z"


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):  # not supported everywhere (e.g. Windows)
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _link_exclusive(tmp: Path, target: Path, payload: bytes) -> bool:
    """Publish ``tmp`` as ``target`` unless ``target`` exists; True on success."""
    try:
        os.link(tmp, target)
        return True
    except FileExistsError:
        return False
    except OSError as exc:  # file systems without hard links: exclusive create instead
        if exc.errno == errno.EEXIST:
            return False
    try:
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError:
        return False
    with os.fdopen(fd, "wb") as fh:
        fh.write(payload)
        fh.flush()
        os.fsync(fh.fileno())
    return True


def write_entry(store: str | os.PathLike[str], data: dict[str, Any]) -> Entry:
    """Validate ``data`` and write it as a new, never-overwritten entry file.

    Parameters
    ----------
    store : path
        Store directory (created if missing).
    data : dict
        The entry.

    Returns
    -------
    Entry
        With ``path`` set to ``<store>/entries/<slug>-<timestamp>-<shorthash>.json``.

    Raises
    ------
    FormatError
        The entry does not follow the schema.
    """
    validate_entry(data, "new entry")
    payload = (json.dumps(data, indent=2, sort_keys=True, allow_nan=False) + "\n").encode()
    folder = entries_dir(store)
    folder.mkdir(parents=True, exist_ok=True)
    root = folder.resolve()
    stem = (
        f"{slugify(data['method']['name'])}-{_stamp(data['date'])}-"
        f"{hashlib.sha256(payload).hexdigest()[:10]}"
    )
    fd, tmp_name = tempfile.mkstemp(prefix=".tmp-", suffix=".json", dir=folder)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(payload)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)  # entries are public records (mkstemp makes them 0600)
        for n in range(1000):
            name = f"{stem}.json" if n == 0 else f"{stem}-{n + 1}.json"
            target = folder / name
            if target.resolve().parent != root:  # slugify makes this impossible; belt and braces
                raise FormatError(f"{name}: entry name would leave {root}")
            if _link_exclusive(tmp, target, payload):
                _fsync_dir(folder)
                return Entry(id=target.stem, path=target, data=data)
        raise FormatError(f"{folder}: 1000 entries named {stem}*; choose another method name")
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def read_entry(path: str | os.PathLike[str]) -> Entry:
    """Read and validate one entry file (errors name the file)."""
    p = Path(path)
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise FormatError(
            f"{p}: not valid UTF-8 JSON ({exc}); fix or remove this entry file"
        ) from None
    validate_entry(data, str(p))
    return Entry(id=p.stem, path=p, data=data)


def read_entries(store: str | os.PathLike[str]) -> list[Entry]:
    """Every entry of a store, validated, sorted by file name.

    Temporary files (names starting with ``.``) are skipped. A missing store or an
    empty one gives ``[]``.

    Raises
    ------
    FormatError
        The first malformed entry, naming its file.
    """
    folder = entries_dir(store)
    if not folder.is_dir():
        return []
    return [read_entry(p) for p in sorted(folder.glob("*.json")) if not p.name.startswith(".")]
