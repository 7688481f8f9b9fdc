"""Continuous Surface Embeddings (CSE): score detectron2 CSE models on CPU, on any mesh.

In: CSE predictions (:mod:`dpeval.formats.cse`), ground truth with ``dp_vertex`` /
``ref_model``, meshes and vertex embeddings (:mod:`dpeval.cse.meshes`). Out: the same
summaries as IUV scoring (:mod:`dpeval.cse.run`), with the rule set of
:mod:`dpeval.cse.score`; plus detectron2's mesh-alignment metrics
(:mod:`dpeval.cse.alignment`).
"""

from __future__ import annotations

from .embed import nearest_vertices, normalize_embeddings, resize_bilinear, spectral_embeddings
from .meshes import CseMesh, MeshBank, load_mesh, load_vertex_embeddings
from .run import cse_bank, score_cse
from .score import CSE_RULES, compute_cse_similarities

__all__ = [
    "CSE_RULES",
    "CseMesh",
    "MeshBank",
    "compute_cse_similarities",
    "cse_bank",
    "load_mesh",
    "load_vertex_embeddings",
    "nearest_vertices",
    "normalize_embeddings",
    "resize_bilinear",
    "score_cse",
    "spectral_embeddings",
]
