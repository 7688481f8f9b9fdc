"""``dpeval cse ...``: CSE demo predictions and mesh-alignment metrics (CLI layer)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

__all__ = ["add_cse_parser"]


def _mesh_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--mesh", action="append", metavar="NAME=FILE", help="mesh NAME (repeat)")
    p.add_argument("--meshes", metavar="JSON", help="registry: mesh name -> file")


def add_cse_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register ``dpeval cse demo`` and ``dpeval cse align``."""
    cp = sub.add_parser("cse", help="Continuous Surface Embeddings tools (demo, mesh alignment)")
    csub = cp.add_subparsers(dest="cse_command", metavar="SUBCOMMAND")
    dp = csub.add_parser(
        "demo",
        help="CSE predictions made from CSE ground truth (spectral vertex embeddings)",
    )
    dp.add_argument(
        "ground_truth", help="ground truth with dp_vertex/ref_model (e.g. dpeval synth)"
    )
    dp.add_argument("output", help="predictions file: .npz (dpeval-cse-npz) or .pkl (detectron2)")
    dp.add_argument(
        "--embeddings-out", required=True, metavar="FILE.npz", help="vertex embeddings per mesh"
    )
    dp.add_argument("--dim", type=int, default=16, help="embedding size D (default 16)")
    dp.add_argument("--noise", type=float, default=0.0, help="Gaussian noise on embeddings")
    dp.add_argument("--seed", type=int, default=0)
    _mesh_args(dp)
    dp.set_defaults(func=_cmd_demo)
    ap = csub.add_parser("align", help="detectron2's mesh-alignment GE/GPS between meshes")
    ap.add_argument("--keyvertices", required=True, help="JSON {mesh: {name: vertex id}}")
    ap.add_argument(
        "--vertex-embeddings", action="append", metavar="NAME=FILE", help="per mesh (repeat)"
    )
    ap.add_argument("--checkpoint", help="detectron2 CSE checkpoint holding the embedders")
    ap.add_argument("--mesh-basis", action="append", metavar="NAME=FILE")
    ap.add_argument("--json", metavar="OUT", help="write the numbers as JSON")
    _mesh_args(ap)
    ap.set_defaults(func=_cmd_align)
    cp.set_defaults(func=lambda a: (cp.print_help(), 2)[1])
    return cp


def _cmd_demo(args: argparse.Namespace) -> list[str]:
    from ..errors import ParamsError
    from ..formats import load_ground_truth
    from ..formats.cse import save_cse_d2, save_cse_native
    from .demo import open_embeddings, perfect_predictions
    from .embed import spectral_embeddings
    from .run import cse_bank

    if args.dim < 1:
        raise ParamsError(f"--dim {args.dim}: expected a positive embedding size")
    gt = load_ground_truth(args.ground_truth)
    bank = cse_bank(meshes=args.mesh, registry=args.meshes)
    used = sorted({a.ref_model for a in gt.annotations if a.ref_model})
    if not used:
        raise ParamsError(
            f"{args.ground_truth}: no annotation has dp_vertex/ref_model; make CSE ground "
            "truth with `dpeval synth` or use detectron2's coco_cse files"
        )
    emb = {}
    for name in used:
        if name == "open" and not bank.given("open"):
            emb[name] = np.asarray(open_embeddings(args.dim))
        else:
            m = bank.mesh(name)
            emb[name] = spectral_embeddings(m.vertices, m.faces, args.dim)
    preds = perfect_predictions(gt, emb, noise=args.noise, seed=args.seed)
    out = Path(args.output)
    if out.suffix.lower() == ".npz":
        save_cse_native(preds, out)
    else:
        save_cse_d2(preds, out)
    with open(args.embeddings_out, "wb") as fh:
        np.savez(fh, **emb)
    return [
        f"{out}: {len(preds.detections)} CSE detections (D = {args.dim}, noise {args.noise}); "
        f"{args.embeddings_out}: vertex embeddings of {used}"
    ]


def _cmd_align(args: argparse.Namespace) -> list[str]:
    from .alignment import load_keyvertices, mesh_alignment
    from .run import cse_bank

    emb = args.vertex_embeddings or []
    bank = cse_bank(
        meshes=args.mesh,
        registry=args.meshes,
        vertex_embeddings=emb,
        checkpoint=args.checkpoint,
        mesh_basis=args.mesh_basis,
    )
    res = mesh_alignment(bank, load_keyvertices(args.keyvertices))
    if args.json:
        Path(args.json).write_text(json.dumps(res.to_dict(), indent=2, sort_keys=True) + "\n")
    return [f"mesh alignment: GE {res.ge:.4f} (mesh units)  GPS {res.gps:.4f}"] + [
        f"  {m:<16} GE {res.ge_per_mesh[m]:.4f}  GPS {res.gps_per_mesh[m]:.4f}"
        for m in sorted(res.ge_per_mesh)
    ]
