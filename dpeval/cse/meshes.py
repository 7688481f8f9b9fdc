"""CSE stage: meshes and their vertex embeddings.

In: mesh files (detectron2 mesh pickles with ``vertices``/``faces``, any format trimesh
reads, or the built-in ``open`` template), an optional registry JSON mapping
``ref_model`` names to files, vertex embeddings (``.npy``/``.npz``/``.pt``/``.pkl``) or a
detectron2 checkpoint (+ the ``phi_<mesh>_256.pkl`` basis of ``vertex_feature``
embedders). Out: :class:`CseMesh` (geodesics from dpeval's engine, cached per mesh
checksum, or a user's ``geodists_<mesh>.pkl`` table) and ``(V, D)`` float32 L2-normalised
vertex embeddings.

Registry (``--meshes meshes.json``), paths relative to the JSON file::

    {"cat_5001": "meshes/cat_5001.pkl",
     "smpl_27554": {"mesh": "smpl_27554.pkl", "geodists": "geodists_smpl_27554.pkl",
                    "embeddings": "smpl_27554_embed.npy"}}
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .._typing import PathLike, as_array
from ..errors import FormatError, ParamsError
from .embed import normalize_embeddings

__all__ = [
    "CseMesh",
    "MeshBank",
    "checkpoint_embeddings",
    "load_mesh",
    "load_vertex_embeddings",
    "parse_named",
    "read_json",
]


def read_json(p: Path, what: str) -> Any:
    """The JSON document in file ``p``; ``what`` names the file when it is missing."""
    try:
        return json.loads(p.read_text())
    except FileNotFoundError:
        raise FormatError(f"{p}: {what} not found") from None
    except json.JSONDecodeError as e:
        raise FormatError(f"{p}: not JSON ({e.msg}, line {e.lineno})") from None


@dataclass(eq=False)
class CseMesh:
    """A mesh that CSE ground truth refers to.

    Attributes
    ----------
    name : str
    vertices : (V, 3) float64
    faces : (F, 3) int64
    source : str
    geodists : (V, V) float32 or None
        A user-supplied full table (legacy mode, like ``Pdist_matrix``).
    """

    name: str
    vertices: np.ndarray
    faces: np.ndarray
    source: str = ""
    geodists: np.ndarray | None = None
    template: Any = None
    _solver: Any = field(default=None, repr=False)

    @property
    def n_vertices(self) -> int:
        return len(self.vertices)

    @functools.cached_property
    def checksum(self) -> str:
        """sha256 of the geometry (float64 vertices, int64 faces): the cache key."""
        h = hashlib.sha256()
        h.update(np.ascontiguousarray(self.vertices, np.float64).tobytes())
        h.update(np.ascontiguousarray(self.faces, np.int64).tobytes())
        return h.hexdigest()

    @property
    def solver(self) -> Any:
        """dpeval's :class:`~dpeval.geodesic.GeodesicSolver` on this mesh (built once)."""
        if self._solver is None:
            from ..geodesic import GeodesicSolver

            if self.template is not None:
                self._solver = GeodesicSolver(self.template)
            else:
                plain = _PlainMesh(self.vertices, self.faces, self.checksum, self.name)
                self._solver = GeodesicSolver(plain, mode="engine")
        return self._solver

    def pairs(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Geodesic distances between aligned vertex ids (float64)."""
        a = np.asarray(a, dtype=np.int64)
        b = np.asarray(b, dtype=np.int64)
        if self.geodists is not None:
            return self.geodists[a, b].astype(np.float64)
        return self.solver.pairs(a, b)


@dataclass
class _PlainMesh:
    vertices: np.ndarray
    faces: np.ndarray
    checksum: str
    id: str


def _from_pickle(path: Path) -> Any:
    from ..formats._validate import load_pickle

    return load_pickle(path.read_bytes(), str(path), "expected a detectron2 mesh/tensor pickle")


def load_mesh(name: str, path: PathLike, geodists: PathLike | None = None) -> CseMesh:
    """Read a mesh: a detectron2 pickle (``vertices``, ``faces``, optional ``texcoords``
    / ``symmetry``) or any format trimesh reads (.obj, .ply, .off, .glb, ...).

    Raises
    ------
    FormatError
        Unreadable file, missing keys, bad shapes, a geodesic table of the wrong size.
    """
    p = Path(path)
    if not p.exists():
        raise FormatError(f"{p}: mesh file for {name!r} not found; check --mesh {name}=FILE")
    if p.suffix.lower() in (".pkl", ".pickle", ".pth", ".pt"):
        data = _from_pickle(p)
        if not isinstance(data, Mapping) or "vertices" not in data or "faces" not in data:
            keys = sorted(data) if isinstance(data, Mapping) else type(data).__name__
            raise FormatError(
                f"{p}: mesh pickle has {keys}; expected a dict with 'vertices' (V, 3) and "
                "'faces' (F, 3) as detectron2's mesh files"
            )
        v, f = as_array(data["vertices"]), as_array(data["faces"])
    else:
        import trimesh

        try:
            # vertex ids must stay the file's (dp_vertex refers to them): no merging,
            # no splitting at UV seams, file order kept
            m = trimesh.load(
                p, force="mesh", process=False, maintain_order=True, skip_materials=True
            )
        except Exception as e:  # trimesh raises many types
            raise FormatError(f"{p}: trimesh cannot read this mesh ({e})") from None
        v, f = np.asarray(m.vertices), np.asarray(m.faces)
    v = np.asarray(v, dtype=np.float64)
    f = np.asarray(f)
    if v.ndim != 2 or v.shape[1] != 3 or f.ndim != 2 or f.shape[1] != 3:
        raise FormatError(f"{p}: vertices {v.shape}, faces {f.shape}; expected (V, 3) and (F, 3)")
    if not np.isfinite(v).all():
        raise FormatError(f"{p}: mesh vertices hold NaN/inf values")
    f = f.astype(np.int64)
    if f.size and (f.min() < 0 or f.max() >= len(v)):
        raise FormatError(f"{p}: face indices outside 0..{len(v) - 1}")
    mesh = CseMesh(name, v, f, source=str(p))
    if geodists is not None:
        mesh.geodists = _load_geodists(Path(geodists), len(v))
    return mesh


def _load_geodists(p: Path, nv: int) -> np.ndarray:
    data = np.load(p) if p.suffix == ".npy" else as_array(_from_pickle(p))
    g = np.asarray(data, dtype=np.float32)
    if g.shape != (nv, nv):
        raise FormatError(f"{p}: geodesic table is {g.shape}; expected ({nv}, {nv}) for the mesh")
    return g


def open_mesh() -> CseMesh:
    """The built-in open template as CSE mesh ``open`` (geodesics from its solver)."""
    from ..template import load_template

    t = load_template("open")
    return CseMesh(
        "open",
        np.asarray(t.vertices, np.float64),
        np.asarray(t.faces, np.int64),
        source="dpeval open template",
        template=t,
    )


def parse_named(items: Any, flag: str) -> dict[str, str]:
    """``["NAME=FILE", ...]`` (or a mapping) -> ``{NAME: FILE}``."""
    if not items:
        return {}
    if isinstance(items, Mapping):
        return {str(k): str(v) for k, v in items.items()}
    out = {}
    for item in items:
        name, sep, path = str(item).partition("=")
        if not sep or not name or not path:
            raise ParamsError(f"{flag} {item!r}: expected NAME=FILE, e.g. {flag} smpl_27554=x.pkl")
        out[name] = path
    return out


def load_vertex_embeddings(path: PathLike, name: str) -> np.ndarray:
    """``(V, D)`` vertex embeddings from .npy / .npz / .pt / .pkl, L2-normalised.

    A dict-like file may hold several meshes: the entry ``name`` is used, else the only
    array, else ``embeddings``.
    """
    p = Path(path)
    if not p.exists():
        raise FormatError(f"{p}: vertex embeddings for {name!r} not found")
    suffix = p.suffix.lower()
    if suffix == ".npy":
        data: Any = np.load(p, allow_pickle=False)
    elif suffix == ".npz":
        with np.load(p, allow_pickle=False) as z:
            data = {k: z[k] for k in z.files}
    else:
        data = _from_pickle(p)
    if isinstance(data, Mapping):
        if name in data:
            data = data[name]
        elif "embeddings" in data:
            data = data["embeddings"]
        elif len(data) == 1:
            data = next(iter(data.values()))
        else:
            raise FormatError(
                f"{p}: holds {sorted(data)[:8]}; expected an entry named {name!r} or "
                "'embeddings', or a single (V, D) array"
            )
    e = as_array(data)
    if e.ndim != 2:
        raise FormatError(f"{p}: vertex embeddings have shape {e.shape}; expected (V, D)")
    e = e.astype(np.float64)
    if not np.isfinite(e).all():
        raise FormatError(f"{p}: vertex embeddings of {name!r} hold NaN/inf values")
    return normalize_embeddings(e)


_EMBEDDER_KEY = re.compile(r"(?:^|\.)embedder\.(?:embedder_)?(?P<mesh>[^.]+)\.(?P<what>\w+)$")


def checkpoint_embeddings(
    path: PathLike, bases: Mapping[str, PathLike] | None = None
) -> dict[str, np.ndarray]:
    """Vertex embeddings of every mesh found in a detectron2 checkpoint.

    Keys ``roi_heads.embedder.embedder_<mesh>.embeddings`` (and ``.features``):
    ``vertex_direct`` embedders hold ``embeddings`` (V, D) -> ``normalize(E)``;
    ``vertex_feature`` embedders hold ``embeddings`` (256, D) and, as a buffer or in
    the basis file ``phi_<mesh>_256.pkl`` (``bases[mesh]``, key ``features``), the
    fixed basis phi (V, 256) -> ``normalize(phi @ E)``.
    """
    p = Path(path)
    if not p.exists():
        raise FormatError(f"{p}: checkpoint not found")
    ck = _from_pickle(p)
    state = ck.get("model", ck) if isinstance(ck, Mapping) else None
    if not isinstance(state, Mapping):
        raise FormatError(f"{p}: not a detectron2 checkpoint (expected a dict with 'model')")
    found: dict[str, dict[str, np.ndarray]] = {}
    for key, value in state.items():
        m = _EMBEDDER_KEY.search(str(key))
        if m and m.group("what") in ("embeddings", "features"):
            found.setdefault(m.group("mesh"), {})[m.group("what")] = as_array(value)
    if not found:
        raise FormatError(
            f"{p}: no 'roi_heads.embedder.*' tensors; is this a CSE model checkpoint?"
        )
    out = {}
    for mesh, parts in sorted(found.items()):
        e = parts.get("embeddings")
        if e is None:
            raise FormatError(f"{p}: embedder of {mesh!r} has no 'embeddings' tensor")
        phi = parts.get("features")
        if phi is None and bases and mesh in bases:
            data = _from_pickle(Path(bases[mesh]))
            phi = as_array(data["features"] if isinstance(data, Mapping) else data)
        if phi is None and e.shape[0] <= 512:
            raise FormatError(
                f"{p}: {mesh!r} uses a vertex_feature embedder ({e.shape[0]} x {e.shape[1]}) "
                f"and the checkpoint has no basis; pass --mesh-basis {mesh}=phi_{mesh}_256.pkl"
            )
        if phi is not None:
            if phi.ndim != 2 or phi.shape[1] != e.shape[0]:
                raise FormatError(
                    f"{p}: basis of {mesh!r} is {phi.shape} but embeddings are {e.shape}; "
                    "expected phi (V, K) and E (K, D)"
                )
            e = phi.astype(np.float64) @ e.astype(np.float64)
        out[mesh] = normalize_embeddings(e)
    return out


class MeshBank:
    """Meshes and vertex embeddings by ``ref_model`` name, loaded on first use.

    Parameters
    ----------
    meshes : {name: path}
        ``--mesh NAME=FILE``.
    registry : path, optional
        ``--meshes meshes.json``.
    embeddings : {name: path}
        ``--vertex-embeddings NAME=FILE``.
    checkpoint : path, optional
        ``--checkpoint``; gives embeddings for every mesh in it.
    bases : {name: path}
        ``--mesh-basis NAME=FILE``.
    geodists : {name: path}
        Legacy full geodesic tables.
    """

    def __init__(
        self,
        meshes: Mapping[str, PathLike] | None = None,
        *,
        registry: PathLike | None = None,
        embeddings: Mapping[str, Any] | None = None,
        checkpoint: PathLike | None = None,
        bases: Mapping[str, PathLike] | None = None,
        geodists: Mapping[str, PathLike] | None = None,
    ) -> None:
        self._mesh_paths: dict[str, str] = {}
        self._geo_paths: dict[str, str] = dict(geodists or {})
        self._emb_paths: dict[str, Any] = {}
        if registry is not None:
            self._read_registry(Path(registry))
        self._mesh_paths.update({k: str(v) for k, v in (meshes or {}).items()})
        self._emb_paths.update(dict(embeddings or {}))
        self._checkpoint = checkpoint
        self._bases = dict(bases or {})
        self._meshes: dict[str, CseMesh] = {}
        self._emb: dict[str, np.ndarray] = {}
        self._ck: dict[str, np.ndarray] | None = None

    def _read_registry(self, p: Path) -> None:
        doc = read_json(p, "mesh registry")
        if not isinstance(doc, dict):
            raise FormatError(f"{p}: expected an object mapping mesh names to files")
        for name, entry in doc.items():
            spec = {"mesh": entry} if isinstance(entry, str) else entry
            if not isinstance(spec, dict) or "mesh" not in spec:
                raise FormatError(f"{p}: entry {name!r} needs a file or {{'mesh': FILE}}")
            base = p.parent
            self._mesh_paths[name] = str(base / spec["mesh"])
            if "geodists" in spec:
                self._geo_paths[name] = str(base / spec["geodists"])
            if "embeddings" in spec:
                self._emb_paths[name] = str(base / spec["embeddings"])

    @property
    def names(self) -> list[str]:
        return sorted({"open", *self._mesh_paths})

    def has(self, name: str) -> bool:
        return name == "open" or name in self._mesh_paths

    def given(self, name: str) -> bool:
        """True when the user named a file for mesh ``name`` (not the built-in one)."""
        return name in self._mesh_paths

    def mesh(self, name: str) -> CseMesh:
        """The mesh named ``name``; error naming the flag when unknown."""
        if name not in self._meshes:
            if name in self._mesh_paths:
                self._meshes[name] = load_mesh(
                    name, self._mesh_paths[name], self._geo_paths.get(name)
                )
            elif name == "open":
                m = open_mesh()
                if "open" in self._geo_paths:
                    m.geodists = _load_geodists(Path(self._geo_paths["open"]), m.n_vertices)
                self._meshes[name] = m
            else:
                raise ParamsError(
                    f"ground truth refers to mesh {name!r} (ref_model) but no such mesh was "
                    f"given; pass --mesh {name}=FILE (detectron2 pickle or .obj/.ply) or a "
                    f"--meshes registry (known: {self.names})"
                )
        return self._meshes[name]

    def embeddings(self, name: str) -> np.ndarray:
        """``(V, D)`` normalised vertex embeddings of mesh ``name`` (row count checked)."""
        if name not in self._emb:
            src = self._emb_paths.get(name)
            if isinstance(src, np.ndarray) or (
                src is not None and not isinstance(src, (str, Path))
            ):
                e = normalize_embeddings(np.asarray(src, dtype=np.float64))
                origin = "given array"
            elif src is not None:
                e = load_vertex_embeddings(src, name)
                origin = str(src)
            else:
                if self._checkpoint is not None and self._ck is None:
                    self._ck = checkpoint_embeddings(self._checkpoint, self._bases)
                if self._ck is None or name not in (self._ck or {}):
                    have = sorted(self._ck or {})
                    raise ParamsError(
                        f"no vertex embeddings for mesh {name!r}; pass --vertex-embeddings "
                        f"{name}=FILE or --checkpoint model.pth"
                        + (f" (the checkpoint has {have})" if self._checkpoint else "")
                    )
                e = self._ck[name]
                origin = str(self._checkpoint)
            nv = self.mesh(name).n_vertices
            if e.shape[0] != nv:
                raise FormatError(
                    f"{origin}: vertex embeddings of {name!r} have {e.shape[0]} rows but the "
                    f"mesh has {nv} vertices; give the embeddings of this mesh"
                )
            e.flags.writeable = False
            self._emb[name] = e
        return self._emb[name]
