"""CSE inputs: detectron2 storage and dumps, native npz, checkpoints, meshes, bad inputs."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pytest

from dpeval.cli import main
from dpeval.cse import MeshBank, score_cse
from dpeval.cse.alignment import mesh_alignment
from dpeval.cse.meshes import checkpoint_embeddings, load_mesh
from dpeval.errors import FormatError
from dpeval.formats.cse import (
    TensorStorage,
    is_cse_source,
    load_cse_predictions,
    save_cse_d2,
    save_cse_native,
)

pytestmark = pytest.mark.filterwarnings("ignore::dpeval.errors.DpevalWarning")

SQUARE_OBJ = "v 0 0 0\nv 1 0 0\nv 0 1 0\nv 1 1 0\nf 1 2 3\nf 2 4 3\n"
EMB = np.array([[1, 0], [0, 1], [-1, 0], [0, -1]], np.float32)
SCHEMA = (2, 2, 8)  # K, D, S


def _maps(rng: np.random.Generator, k: int = 2, d: int = 2, s: int = 8):
    return rng.normal(size=(k, s, s)).astype(np.float32), rng.normal(size=(d, s, s)).astype(
        np.float32
    )


@pytest.fixture()
def case(tmp_path: Path) -> dict:
    (tmp_path / "square.obj").write_text(SQUARE_OBJ)
    np.save(tmp_path / "emb.npy", EMB)
    rng = np.random.default_rng(0)
    anns = []
    for i in range(3):
        anns.append(
            {
                "id": i + 1,
                "image_id": 1,
                "category_id": 1,
                "bbox": [5 + 20 * i, 5, 16, 16],
                "area": 256,
                "iscrowd": 0,
                "dp_x": (rng.uniform(0, 255, 6)).tolist(),
                "dp_y": (rng.uniform(0, 255, 6)).tolist(),
                "dp_vertex": rng.integers(0, 4, 6).tolist(),
                "ref_model": "square",
                "segmentation": [[5 + 20 * i, 5, 21 + 20 * i, 5, 21 + 20 * i, 21, 5 + 20 * i, 21]],
            }
        )
    gt = {"images": [{"id": 1, "height": 40, "width": 80}], "annotations": anns}
    (tmp_path / "gt.json").write_text(json.dumps(gt))
    recs = []
    for i in range(4):
        c, e = _maps(rng)
        recs.append(
            {
                "image_id": 1,
                "category_id": 1,
                "bbox": [4.5 + 19 * i, 4.2, 17.3, 16.8],
                "score": 0.9 - 0.1 * i,
                "coarse_segm": c,
                "embedding": e,
            }
        )
    (tmp_path / "preds.pkl").write_bytes(pickle.dumps(recs))
    return {"dir": tmp_path, "recs": recs, "gt": str(tmp_path / "gt.json")}


def _write_d2_storage(path: Path, recs: list[dict]) -> None:
    """detectron2's SingleProcessFileTensorStorage.put, written independently: fields in
    sorted name order (coarse_segm, embedding), raw float32 bytes, records back to back."""
    with open(path, "wb") as fh:
        for r in recs:
            for name in sorted(("embedding", "coarse_segm")):
                fh.write(np.asarray(r[name], np.float32).tobytes())


def _bank(d: Path) -> MeshBank:
    return MeshBank({"square": d / "square.obj"}, embeddings={"square": d / "emb.npy"})


def _key(s) -> dict:
    return {k: v for k, v in s.metrics.items() if k != "points"} | {
        "pts": s.metrics["points"]["AUC30"]
    }


def test_storage_round_trip_and_same_scores(case: dict) -> None:
    d, recs = case["dir"], case["recs"]
    _write_d2_storage(d / "DensePoseEvaluatorStorage.0.bin", recs[:2])
    _write_d2_storage(d / "DensePoseEvaluatorStorage.1.bin", recs[2:])
    refs = []
    for i, r in enumerate(recs):
        head = {k: r[k] for k in ("image_id", "category_id", "bbox", "score")}
        refs.append({**head, "rank": i // 2, "record_id": i % 2})
    (d / "results.pkl").write_bytes(pickle.dumps(refs))
    st = TensorStorage(
        d / "DensePoseEvaluatorStorage.1.bin", {"coarse_segm": (2, 8, 8), "embedding": (2, 8, 8)}
    )
    assert st.n_records == 2
    np.testing.assert_array_equal(st.get(1)["embedding"], recs[3]["embedding"])
    np.testing.assert_array_equal(st.get(0)["coarse_segm"], recs[2]["coarse_segm"])
    assert is_cse_source(d / "results.pkl") and is_cse_source(d / "preds.pkl")
    p = load_cse_predictions(d / "results.pkl", storage_shape=SCHEMA)  # storages found beside it
    assert p.format == "d2-cse-storage"
    for det, r in zip(p.detections, recs, strict=True):
        c, e = det.load()
        np.testing.assert_array_equal(c, r["coarse_segm"])
        np.testing.assert_array_equal(e, r["embedding"])
    a = score_cse(d / "results.pkl", case["gt"], bank=_bank(d), storage_shape=SCHEMA)
    b = score_cse(d / "preds.pkl", case["gt"], bank=_bank(d))
    assert _key(a) == _key(b)


def test_native_npz_and_d2_pickle_round_trip(case: dict) -> None:
    d = case["dir"]
    p = load_cse_predictions(d / "preds.pkl")
    save_cse_native(p, d / "p.npz")
    save_cse_d2(p, d / "p2.pkl")
    q = load_cse_predictions(d / "p.npz")
    r = load_cse_predictions(d / "p2.pkl")
    assert q.format == "dpeval-cse-npz" and is_cse_source(d / "p.npz")
    for x, y, z in zip(p.detections, q.detections, r.detections, strict=True):
        assert x.shape == y.shape == z.shape
        np.testing.assert_array_equal(x.bbox, y.bbox)
        for u, v, w in zip(x.load(), y.load(), z.load(), strict=True):
            np.testing.assert_array_equal(u, v)
            np.testing.assert_array_equal(u, w)


def test_torch_pth_dump(case: dict) -> None:
    torch = pytest.importorskip("torch")
    d, recs = case["dir"], case["recs"]
    trecs = [
        {
            **r,
            "coarse_segm": torch.from_numpy(r["coarse_segm"]),
            "embedding": torch.from_numpy(r["embedding"]),
        }
        for r in recs
    ]
    torch.save(trecs, d / "coco_densepose_predictions.pth")
    p = load_cse_predictions(d / "coco_densepose_predictions.pth")
    np.testing.assert_array_equal(p.detections[2].load()[1], recs[2]["embedding"])


def test_checkpoint_vertex_direct_and_vertex_feature(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    direct = rng.normal(size=(600, 4))
    phi = rng.normal(size=(700, 8))
    coef = rng.normal(size=(8, 4))
    state = {
        "roi_heads.embedder.embedder_cat_600.embeddings": direct,
        "roi_heads.embedder.embedder_smpl_700.embeddings": coef,
        "roi_heads.box_predictor.bias": np.zeros(3),
    }
    (tmp_path / "model.pkl").write_bytes(pickle.dumps({"model": state}))
    with pytest.raises(FormatError, match=r"--mesh-basis smpl_700=phi_smpl_700_256\.pkl"):
        checkpoint_embeddings(tmp_path / "model.pkl")
    (tmp_path / "phi.pkl").write_bytes(pickle.dumps({"features": phi}))
    out = checkpoint_embeddings(tmp_path / "model.pkl", {"smpl_700": tmp_path / "phi.pkl"})
    want = direct / np.linalg.norm(direct, axis=1, keepdims=True)
    np.testing.assert_allclose(out["cat_600"], want, rtol=1e-6)
    f = phi @ coef
    np.testing.assert_allclose(
        out["smpl_700"], f / np.linalg.norm(f, axis=1, keepdims=True), rtol=1e-5
    )


def test_meshes_pickle_registry_and_alignment(tmp_path: Path) -> None:
    v = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [1, 1, 0]], float)
    f = np.array([[0, 1, 2], [1, 3, 2]])
    (tmp_path / "a.pkl").write_bytes(pickle.dumps({"vertices": v, "faces": f}))
    (tmp_path / "b.obj").write_text(SQUARE_OBJ)
    (tmp_path / "reg.json").write_text(json.dumps({"a": "a.pkl", "b": {"mesh": "b.obj"}}))
    m = load_mesh("a", tmp_path / "a.pkl")
    step = 2**-14  # the engine rounds to its grid (a power of two; 2^-14 on this square)
    assert m.n_vertices == 4 and float(m.pairs([0], [3])[0]) == pytest.approx(np.sqrt(2), abs=step)
    # b's embeddings are a's rotated by one vertex: key vertex k of a matches vertex k+1
    ea = EMB
    eb = np.roll(EMB, 1, axis=0)
    bank = MeshBank(registry=tmp_path / "reg.json", embeddings={"a": ea, "b": eb})
    kv = {"a": {"p": 0, "q": 3}, "b": {"p": 1, "q": 0}}
    res = mesh_alignment(bank, kv)
    # a->b: p: vertex 1 vs key 1 -> 0; q: vertex 0 (=a's 3 rolled) vs key 0 -> 0
    assert res.pairs["a->b"]["GE"] == 0.0 and res.pairs["a->b"]["GPS"] == 1.0
    # b->a: p (b vertex 1 = a's 0) -> a vertex 0 vs a key 0: 0; q (b vertex 0 = a's 3)
    # -> a vertex 3 vs a key 3: 0
    assert res.ge == 0.0
    kv["b"]["q"] = 3  # now q on b is off by d(0, 3) = sqrt(2)
    res = mesh_alignment(bank, kv)
    assert res.pairs["a->b"]["GE"] == pytest.approx(np.sqrt(2) / 2, abs=2**-14)
    assert res.pairs["a->b"]["GPS"] == pytest.approx((1 + np.exp(-2 / (2 * 0.255**2))) / 2)


# ------------------------------------------------------------------ bad inputs


def _run(capsys, argv: list[str]) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    errors = [line for line in err if line.startswith("dpeval: error:")]
    assert len(errors) == 1, err
    return errors[0]


def test_bad_unknown_mesh(case: dict, capsys) -> None:
    d = case["dir"]
    msg = _run(capsys, ["score", str(d / "preds.pkl"), case["gt"], "-q"])
    assert "'square'" in msg and "--mesh square=FILE" in msg


def test_bad_embedding_rows_and_dims(case: dict, capsys) -> None:
    d = case["dir"]
    np.save(d / "e5.npy", np.ones((5, 2), np.float32))
    np.save(d / "e3d.npy", np.ones((4, 3), np.float32))
    base = ["score", str(d / "preds.pkl"), case["gt"], "--mesh", f"square={d / 'square.obj'}", "-q"]
    msg = _run(capsys, [*base, "--vertex-embeddings", f"square={d / 'e5.npy'}"])
    assert "5 rows" in msg and "4 vertices" in msg
    msg = _run(capsys, [*base, "--vertex-embeddings", f"square={d / 'e3d.npy'}"])
    assert "D = 2" in msg and "D = 3" in msg


def test_bad_nan_embedding_names_detection(case: dict, capsys) -> None:
    d, recs = case["dir"], case["recs"]
    recs[1]["embedding"][0, 3, 3] = np.nan
    (d / "nan.pkl").write_bytes(pickle.dumps(recs))
    base = ["score", str(d / "nan.pkl"), case["gt"], "--mesh", f"square={d / 'square.obj'}"]
    msg = _run(capsys, [*base, "--vertex-embeddings", f"square={d / 'emb.npy'}", "-q"])
    assert "detection 1" in msg and "NaN" in msg


def test_bad_dp_vertex_out_of_range(case: dict, capsys) -> None:
    d = case["dir"]
    gt = json.loads(Path(case["gt"]).read_text())
    gt["annotations"][2]["dp_vertex"][4] = 4
    (d / "gt_bad.json").write_text(json.dumps(gt))
    base = [
        "score",
        str(d / "preds.pkl"),
        str(d / "gt_bad.json"),
        "--mesh",
        f"square={d / 'square.obj'}",
    ]
    msg = _run(capsys, [*base, "--vertex-embeddings", f"square={d / 'emb.npy'}", "-q"])
    assert "annotation 2" in msg and "'square'" in msg and "4 vertices" in msg


def test_bad_storage_size(case: dict, capsys) -> None:
    d, recs = case["dir"], case["recs"]
    _write_d2_storage(d / "DensePoseEvaluatorStorage.0.bin", recs[:2])
    with open(d / "DensePoseEvaluatorStorage.0.bin", "ab") as fh:
        fh.write(b"\0" * 12)
    refs = [
        {
            **{k: r[k] for k in ("image_id", "category_id", "bbox", "score")},
            "rank": 0,
            "record_id": 0,
        }
        for r in recs[:1]
    ]
    (d / "results.pkl").write_bytes(pickle.dumps(refs))
    base = ["score", str(d / "results.pkl"), case["gt"], "--storage-schema", "2,2,8", "-q"]
    msg = _run(capsys, base)
    assert "not a multiple of the record size" in msg


def test_bad_iuv_predictions_on_cse_only_ground_truth(case: dict, capsys) -> None:
    d = case["dir"]
    iuv = [{"image_id": 1, "category_id": 1, "bbox": [5, 5, 16, 16], "score": 0.9,
            "densepose": np.zeros((3, 16, 16), np.uint8)}]  # fmt: skip
    (d / "iuv.pkl").write_bytes(pickle.dumps(iuv))
    msg = _run(capsys, ["score", str(d / "iuv.pkl"), case["gt"], "-q"])
    assert "annotation 0" in msg and "dp_vertex" in msg


def test_obj_mesh_keeps_file_vertex_ids(tmp_path: Path) -> None:
    # texture coordinates that differ per face must not split or reorder vertices
    obj = SQUARE_OBJ.replace(
        "f 1 2 3\nf 2 4 3\n",
        "vt 0 0\nvt 1 0\nvt 0 1\nvt 1 1\nvt 0.5 0.5\nf 1/1 2/2 3/3\nf 2/5 4/4 3/3\n",
    )
    (tmp_path / "uv.obj").write_text(obj)
    m = load_mesh("uv", tmp_path / "uv.obj")
    assert m.n_vertices == 4
    np.testing.assert_array_equal(m.faces, [[0, 1, 2], [1, 3, 2]])
    np.testing.assert_array_equal(m.vertices[3], [1, 1, 0])


def test_cli_demo_then_score_is_perfect(tmp_path: Path, capsys) -> None:
    gt = str(Path(__file__).resolve().parents[1] / "data" / "cse" / "synth_small.json")
    preds, emb, out = tmp_path / "p.npz", tmp_path / "e.npz", tmp_path / "s.json"
    argv = ["cse", "demo", gt, str(preds), "--embeddings-out", str(emb), "--dim", "8"]
    assert main(argv) == 0
    assert "12 CSE detections" in capsys.readouterr().out
    argv = ["score", str(preds), gt, "--vertex-embeddings", f"open={emb}", "--json", str(out)]
    assert main([*argv, "-q"]) == 0
    doc = json.loads(out.read_text())
    assert doc["metrics"]["gpsm"]["AP"] == 1.0 and doc["metrics"]["cse"]["embed_dim"] == 8


def test_cli_align(tmp_path: Path, capsys) -> None:
    (tmp_path / "a.obj").write_text(SQUARE_OBJ)
    (tmp_path / "b.obj").write_text(SQUARE_OBJ)
    np.save(tmp_path / "ea.npy", EMB)
    np.save(tmp_path / "eb.npy", np.roll(EMB, 1, axis=0))
    (tmp_path / "kv.json").write_text(json.dumps({"a": {"p": 0, "q": 3}, "b": {"p": 1, "q": 3}}))
    argv = ["cse", "align", "--keyvertices", str(tmp_path / "kv.json")]
    argv += ["--mesh", f"a={tmp_path / 'a.obj'}", "--mesh", f"b={tmp_path / 'b.obj'}"]
    argv += ["--vertex-embeddings", f"a={tmp_path / 'ea.npy'}"]
    argv += ["--vertex-embeddings", f"b={tmp_path / 'eb.npy'}", "--json", str(tmp_path / "al.json")]
    assert main(argv) == 0
    assert "mesh alignment: GE" in capsys.readouterr().out
    res = json.loads((tmp_path / "al.json").read_text())
    assert res["pairs"]["a->b"]["GE"] == pytest.approx(np.sqrt(2) / 2, abs=2**-14)


def test_cli_validate_and_geodists_table(case: dict, capsys) -> None:
    d = case["dir"]
    assert main(["validate", "--predictions", str(d / "preds.pkl"), "--gt", case["gt"]]) == 0
    assert "4 CSE detections (D = 2)" in capsys.readouterr().out
    # a user's full table is used as is: distances / 10 -> errors fall under 30 cm
    v = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [1, 1, 0]], float)
    table = 0.1 * np.linalg.norm(v[:, None] - v[None], axis=2)
    (d / "geo.pkl").write_bytes(pickle.dumps(table.astype(np.float32)))
    base = ["score", str(d / "preds.pkl"), case["gt"], "--mesh", f"square={d / 'square.obj'}"]
    base += ["--vertex-embeddings", f"square={d / 'emb.npy'}", "--metric", "points", "-q"]
    assert main([*base, "--json", str(d / "a.json")]) == 0
    assert main([*base, "--geodists", f"square={d / 'geo.pkl'}", "--json", str(d / "b.json")]) == 0
    a = json.loads((d / "a.json").read_text())["metrics"]
    b = json.loads((d / "b.json").read_text())["metrics"]
    assert b["cse"]["meshes"]["square"]["geodesics"] == "user table"
    assert b["points"]["AUC30"] > a["points"]["AUC30"]


def test_bad_category(case: dict, capsys) -> None:
    d, recs = case["dir"], case["recs"]
    recs[2]["category_id"] = 0  # a contiguous class id, not the dataset's
    (d / "cat.pkl").write_bytes(pickle.dumps(recs))
    base = ["score", str(d / "cat.pkl"), case["gt"], "--mesh", f"square={d / 'square.obj'}"]
    msg = _run(capsys, [*base, "--vertex-embeddings", f"square={d / 'emb.npy'}", "-q"])
    assert "detection 2" in msg and "category_id 0" in msg


def test_two_categories_two_meshes_per_category_ap(tmp_path: Path) -> None:
    from dpeval.cse.demo import perfect_predictions
    from dpeval.formats import load_ground_truth
    from dpeval.integrations.detectron2 import DensePoseEvaluator

    (tmp_path / "sq.obj").write_text(SQUARE_OBJ)
    rng = np.random.default_rng(4)
    anns = []
    for i, (cat, mesh) in enumerate([(1, "cat_4"), (2, "dog_4"), (1, "cat_4"), (2, "dog_4")]):
        x = 5 + 20 * i
        anns.append(
            {
                "id": i + 1,
                "image_id": 1 + i // 2,
                "category_id": cat,
                "bbox": [x, 5, 16, 16],
                "area": 256,
                "iscrowd": 0,
                "dp_x": rng.uniform(0, 255, 5).tolist(),
                "dp_y": rng.uniform(0, 255, 5).tolist(),
                "dp_vertex": rng.integers(0, 4, 5).tolist(),
                "ref_model": mesh,
                "segmentation": [[x, 5, x + 16, 5, x + 16, 21, x, 21]],
            }
        )
    gt = load_ground_truth(
        {
            "images": [
                {"id": 1, "height": 40, "width": 100},
                {"id": 2, "height": 40, "width": 100},
            ],
            "annotations": anns,
            "categories": [{"id": 1, "name": "cat"}, {"id": 2, "name": "dog"}],
        }
    )
    emb = {"cat_4": EMB, "dog_4": np.roll(EMB, 1, axis=0)}
    bank = MeshBank({"cat_4": tmp_path / "sq.obj", "dog_4": tmp_path / "sq.obj"}, embeddings=emb)
    preds = perfect_predictions(gt, emb)
    s = score_cse(preds, gt, bank=bank)
    assert s.metrics["cse"]["per_category_AP"]["gps_perpart"] == {"cat": 1.0, "dog": 1.0}
    assert sorted(s.metrics["cse"]["meshes"]) == ["cat_4", "dog_4"]
    # the dog detections scored with the cat's embeddings: wrong vertices, AP of dogs drops
    swapped = perfect_predictions(gt, {"cat_4": EMB, "dog_4": EMB})
    s2 = score_cse(swapped, gt, bank=bank)
    per_cat = s2.metrics["cse"]["per_category_AP"]["gps_perpart"]
    assert per_cat["cat"] == 1.0 and per_cat["dog"] < 1.0
    ev = DensePoseEvaluator(gt, meshes={"cat_4": tmp_path / "sq.obj", "dog_4": tmp_path / "sq.obj"},
                            vertex_embeddings=emb, category_map={0: 1, 1: 2})  # fmt: skip
    recs = []
    for d in preds.detections:
        c, e = d.load()
        recs.append({"image_id": d.image_id, "category_id": d.category_id, "bbox": list(d.bbox),
                     "score": d.score, "coarse_segm": c, "embedding": e})  # fmt: skip
    ev._records = recs
    res = ev.evaluate()
    assert res["densepose_gps"]["AP-cat"] == 100.0 and res["densepose_gps"]["AP-dog"] == 100.0
