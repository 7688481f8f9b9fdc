"""CSE stage: the scoring run behind ``dpeval.score`` / ``dpeval score`` for CSE inputs.

In: CSE predictions (any layout of :mod:`dpeval.formats.cse`), CSE ground truth and the
mesh options. Out: :class:`~dpeval.summary.Summary` with ``gps_paper``, ``gps_perpart``
(detectron2's CSE GPS), ``gpsm``, ``iou``, ``points`` and a ``cse`` block (rule version,
meshes, per-category AP).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import ParamsError
from ..evaluation.run import evaluate_similarities
from ..formats.model import GroundTruth
from ..params import EvalParams
from ..summary import Summary, make_summary
from .meshes import MeshBank, parse_named
from .score import CSE_RULES, compute_cse_similarities

__all__ = ["cse_bank", "evaluate_cse", "score_cse"]

_LABELS = {
    "gps_paper": "cse-gps/kappa-0.255",
    "gps_perpart": "cse-gps/detectron2-kappa",
    "gpsm": "cse-gpsm/{kappa}/{protocol}",
    "iou": "cse-iou/{protocol}",
}


@dataclass(frozen=True)
class _MeshesId:
    id: str
    checksum: str


def cse_bank(
    *,
    meshes: Any = None,
    registry: Any = None,
    vertex_embeddings: Any = None,
    checkpoint: Any = None,
    mesh_basis: Any = None,
    geodists: Any = None,
) -> MeshBank:
    """A :class:`MeshBank` from CLI-style options (``NAME=FILE`` lists or mappings)."""
    emb = vertex_embeddings
    if not isinstance(emb, Mapping):
        emb = parse_named(emb, "--vertex-embeddings")
    return MeshBank(
        parse_named(meshes, "--mesh"),
        registry=registry,
        embeddings=emb,
        checkpoint=checkpoint,
        bases=parse_named(mesh_basis, "--mesh-basis"),
        geodists=parse_named(geodists, "--geodists"),
    )


def _label(key: str, p: EvalParams) -> str:
    return _LABELS[key].format(kappa=p.kappa, protocol=p.protocol)


def evaluate_cse(
    sims: Any, gt: GroundTruth, wanted: Sequence[str], **options: Any
) -> dict[str, Any]:
    """AP/AR per wanted mode (plus per-category AP) and the pointwise block:
    :func:`~dpeval.evaluation.run.evaluate_similarities` with the CSE labels (``options``:
    its ``kappa``, ``protocol``, ``min_iou``, ``max_dets``)."""
    return evaluate_similarities(sims, gt, wanted, label=_label, per_category=True, **options)


def score_cse(
    preds: Any,
    gt: Any,
    *,
    bank: MeshBank | None = None,
    metrics: Sequence[str] = ("gps", "gpsm", "iou", "points"),
    kappa: str = "per-part",
    protocol: str = "detectron2",
    min_iou: float = 0.5,
    max_dets: int = 20,
    storage: Any = None,
    storage_shape: Sequence[int] | None = None,
    allow_unknown_images: bool = False,
    progress: Callable[[int], None] | None = None,
) -> Summary:
    """Score CSE predictions (rules: :mod:`dpeval.cse.score`).

    Parameters
    ----------
    preds : path, list of dicts or CsePredictions
    gt : path, dict or GroundTruth
        With ``dp_vertex`` / ``ref_model``.
    bank : MeshBank, optional
        Meshes and vertex embeddings (default: only the ``open`` template, no embeddings).
    metrics, kappa, protocol, min_iou, max_dets
        As :func:`dpeval.score`; ``kappa`` picks GPSm's GPS (``per-part`` = detectron2's
        CSE rule, ``paper`` = 0.255 everywhere); ``protocol`` the GT ``dp_masks`` rule
        (default ``detectron2``).
    storage, storage_shape
        detectron2 storage files and their (K, D, S) schema.

    Returns
    -------
    Summary
    """
    import warnings

    from ..errors import DpevalWarning, FormatError
    from ..formats import load_ground_truth
    from ..formats.cse import CsePredictions, load_cse_predictions

    bank = bank or MeshBank()
    g = gt if isinstance(gt, GroundTruth) else load_ground_truth(gt)
    p = load_cse_predictions(preds, storage=storage, storage_shape=storage_shape)
    bad_cat = [d for d in p.detections if d.category_id not in g.categories]
    if bad_cat:
        raise FormatError(
            f"{bad_cat[0].where}: category_id {bad_cat[0].category_id} is not a ground-truth "
            f"category ({sorted(g.categories)}); {len(bad_cat)} detection(s) affected. Map the "
            "model's contiguous class ids to the dataset's category ids"
        )
    unknown = [d for d in p.detections if d.image_id not in g.images]
    n_unknown = len(unknown)
    if unknown:
        if not allow_unknown_images:
            raise FormatError(
                f"{unknown[0].where}: image is not in the ground truth {g.source}; "
                f"{n_unknown} prediction(s) on unknown images. Score against the matching "
                "ground truth, or pass --allow-unknown-images"
            )
        warnings.warn(
            f"{p.source}: left out {n_unknown} prediction(s) on images absent from the "
            "ground truth",
            DpevalWarning,
            stacklevel=2,
        )
        p = CsePredictions(
            tuple(d for d in p.detections if d.image_id in g.images), p.format, p.source, p.sha256
        )
    wanted = list(metrics)
    if "all" in wanted:
        wanted = ["gps", "gpsm", "iou", "points"]
    bad = [m for m in wanted if m not in ("gps", "gpsm", "iou", "points")]
    if bad:
        raise ParamsError(f"unknown metric(s) {bad} for CSE; choose from gps, gpsm, iou, points")
    EvalParams(kappa=kappa, protocol=protocol, min_iou=min_iou, max_dets=max_dets)  # type: ignore[arg-type]
    sims = compute_cse_similarities(
        g,
        p,
        bank,
        protocol=protocol,
        with_masks="gpsm" in wanted or "iou" in wanted,
        max_dets=max_dets,
        progress=progress,
    )
    res = evaluate_cse(
        sims, g, wanted, kappa=kappa, protocol=protocol, min_iou=min_iou, max_dets=max_dets
    )
    used = sorted({a.ref_model for a in g.annotations if a.ref_model})
    mesh_info = {}
    for name in used:
        m = bank.mesh(name)
        mesh_info[name] = {
            "vertices": m.n_vertices,
            "sha256": m.checksum,
            "geodesics": "user table" if m.geodists is not None else "dpeval engine",
        }
    res["metrics"]["cse"] = {
        "rules": CSE_RULES,
        "meshes": mesh_info,
        "embed_dim": p.embed_dim,
        "per_category_AP": res.pop("per_category"),
    }
    ident = _MeshesId(
        "cse:" + "+".join(used),
        hashlib.sha256("".join(mesh_info[n]["sha256"] for n in used).encode()).hexdigest(),
    )
    counts = {"predictions left out (image not in the ground truth)": n_unknown}
    return make_summary(ident, p, g, res, protocol=protocol, warnings=counts if n_unknown else {})
