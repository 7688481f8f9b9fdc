"""CSE stage: detectron2's mesh-alignment metrics (``MeshAlignmentEvaluator``).

In: a key-vertex file (``{mesh: {keyvertex name: vertex id}}``, detectron2's
``mesh_keyvertices_v0.json`` layout) and the vertex embeddings of several meshes
(:class:`~dpeval.cse.meshes.MeshBank`). Out: :class:`AlignmentResult`.

For every ordered pair (mesh1, mesh2), mesh1 != mesh2: each key vertex of mesh1 is
matched to the vertex of mesh2 with the largest embedding dot product (first index on
ties, as ``torch.argmax``); the error is the geodesic distance on mesh2 from that vertex
to mesh2's key vertex of the same name. Per pair: GE = mean error, GPS = mean
``exp(-d^2 / (2 * 0.255^2))``. Per mesh1: the mean over mesh2; overall: the mean over
mesh1. detectron2 prints both x100; dpeval reports GE in mesh units and GPS as a
fraction.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .._typing import PathLike
from ..errors import FormatError, ParamsError
from ..params import KAPPA_PAPER
from .meshes import MeshBank, read_json

__all__ = ["AlignmentResult", "load_keyvertices", "mesh_alignment"]


@dataclass(frozen=True)
class AlignmentResult:
    """Mesh-alignment numbers.

    Attributes
    ----------
    ge, gps : float
        Means over meshes.
    ge_per_mesh, gps_per_mesh : dict[str, float]
    pairs : dict[str, dict[str, float]]
        ``"mesh1->mesh2"`` -> ``{"GE", "GPS"}``.
    """

    ge: float
    gps: float
    ge_per_mesh: dict[str, float]
    gps_per_mesh: dict[str, float]
    pairs: dict[str, dict[str, float]]

    def to_dict(self) -> dict[str, Any]:
        return {
            "GE": self.ge,
            "GPS": self.gps,
            "per_mesh": {"GE": self.ge_per_mesh, "GPS": self.gps_per_mesh},
            "pairs": self.pairs,
        }


def load_keyvertices(path: PathLike) -> dict[str, dict[str, int]]:
    """Read ``{mesh: {name: vertex id}}`` JSON."""
    p = Path(path)
    doc = read_json(p, "key-vertex file")
    if not isinstance(doc, dict) or not all(isinstance(v, dict) for v in doc.values()):
        raise FormatError(f"{p}: expected {{mesh: {{keyvertex name: vertex id}}}}")
    out = {}
    for mesh, kv in doc.items():
        ids = {}
        for name, v in kv.items():
            if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                raise FormatError(f"{p}: {mesh}.{name} is {v!r}; expected a vertex id >= 0")
            ids[str(name)] = v
        out[str(mesh)] = ids
    return out


def mesh_alignment(
    bank: MeshBank, keyvertices: dict[str, dict[str, int]], meshes: Sequence[str] | None = None
) -> AlignmentResult:
    """Geodesic error and GPS of cross-mesh key-vertex matching (module docstring).

    Raises
    ------
    ParamsError
        Fewer than two meshes, or a mesh without key vertices.
    FormatError
        Key vertex ids out of range, or a name of mesh1 missing on mesh2.
    """
    names = list(meshes) if meshes else sorted(keyvertices)
    if len(names) < 2:
        raise ParamsError(f"mesh alignment needs at least two meshes, got {names}")
    for n in names:
        if n not in keyvertices:
            raise ParamsError(f"no key vertices for mesh {n!r} (have {sorted(keyvertices)})")
        nv = bank.mesh(n).n_vertices
        bad = {k: v for k, v in keyvertices[n].items() if v >= nv}
        if bad:
            raise FormatError(f"key vertices of {n!r} out of range 0..{nv - 1}: {bad}")
    ge_mesh, gps_mesh, pairs = {}, {}, {}
    for m1 in names:
        e1 = bank.embeddings(m1)
        kv1 = keyvertices[m1]
        kv_names = list(kv1)
        idx1 = np.array([kv1[k] for k in kv_names], dtype=np.int64)
        errs, gpss = [], []
        for m2 in names:
            if m2 == m1:
                continue
            kv2 = keyvertices[m2]
            missing = [k for k in kv_names if k not in kv2]
            if missing:
                raise FormatError(
                    f"key vertices {missing} of {m1!r} are not named on {m2!r}; every mesh "
                    "needs the same key-vertex names"
                )
            e2 = bank.embeddings(m2)
            sim = e1[idx1].astype(np.float64) @ e2.astype(np.float64).T
            match = np.argmax(sim, axis=1)
            target = np.array([kv2[k] for k in kv_names], dtype=np.int64)
            d = bank.mesh(m2).pairs(match, target)
            g = np.exp(-(d**2) / (2 * KAPPA_PAPER**2))
            errs.append(float(d.mean()))
            gpss.append(float(g.mean()))
            pairs[f"{m1}->{m2}"] = {"GE": errs[-1], "GPS": gpss[-1]}
        ge_mesh[m1] = float(np.mean(errs))
        gps_mesh[m1] = float(np.mean(gpss))
    return AlignmentResult(
        float(np.mean(list(ge_mesh.values()))),
        float(np.mean(list(gps_mesh.values()))),
        ge_mesh,
        gps_mesh,
        pairs,
    )
