"""Continuous Surface Embeddings scoring: hand-computed case, kappa rule, resize parity
with torch, nearest vertex against its twin, perfect predictions on synth data."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from dpeval.cse import MeshBank, nearest_vertices, resize_bilinear, score_cse
from dpeval.cse import _reference as naive
from dpeval.cse.demo import perfect_predictions
from dpeval.cse.embed import normalize_embeddings, sample_bilinear, spectral_embeddings
from dpeval.cse.score import compute_cse_similarities
from dpeval.formats import load_ground_truth
from dpeval.formats.cse import load_cse_predictions

DATA = Path(__file__).resolve().parents[1] / "data" / "cse"
KAPPA = 0.255
# unit square, two triangles; flat, so geodesics are Euclidean: d(0,3) = sqrt(2), d(1,3) = 1
SQUARE_OBJ = "v 0 0 0\nv 1 0 0\nv 0 1 0\nv 1 1 0\nf 1 2 3\nf 2 4 3\n"
SQUARE_EMB = np.array([[1, 0], [0, 1], [-1, 0], [0, -1]], np.float32)


def _dp(c: float, w: float) -> float:
    """dp_x of pixel column c in a box of width w (the evaluator truncates back to c)."""
    return (c + 0.5) * 255 / w


@pytest.fixture()
def square(tmp_path: Path) -> str:
    p = tmp_path / "square.obj"
    p.write_text(SQUARE_OBJ)
    return str(p)


def _gt(ref_model: str = "square", dp_I: list | None = None) -> dict:
    ann = {
        "id": 1,
        "image_id": 1,
        "category_id": 1,
        "bbox": [10, 10, 20, 20],
        "area": 400,
        "iscrowd": 0,
        "dp_x": [_dp(2, 20), _dp(5, 20), _dp(7, 20), _dp(19, 20)],
        "dp_y": [_dp(3, 20), _dp(5, 20), _dp(9, 20), _dp(1, 20)],
        "dp_vertex": [0, 3, 1, 2],
        "ref_model": ref_model,
        "segmentation": [[10, 10, 30, 10, 30, 30, 10, 30]],
    }
    if dp_I is not None:
        ann.update(dp_I=dp_I, dp_U=[0.5] * 4, dp_V=[0.5] * 4)
    return {"images": [{"id": 1, "height": 100, "width": 100}], "annotations": [ann]}


def _pred(box=(10, 10, 18, 20), size=(20, 18)) -> list[dict]:
    h, w = size
    coarse = np.zeros((2, h, w), np.float32)
    coarse[1] = 1.0
    coarse[1, 9, 7] = -1.0  # point 3 lies on predicted background
    emb = np.zeros((2, h, w), np.float32)
    emb[:, 3, 2] = [0.9, 0.1]  # nearest vertex 0 (GT 0): d = 0
    emb[:, 5, 5] = [0.1, 0.8]  # nearest vertex 1 (GT 3): d = 1
    rec = {"image_id": 1, "category_id": 1, "bbox": list(box), "score": 0.9}
    return [{**rec, "coarse_segm": coarse, "embedding": emb}]


def _sims(gt: dict, preds: list, square: str, name: str = "square"):
    bank = MeshBank({name: square}, embeddings={name: SQUARE_EMB})
    g = load_ground_truth(gt)
    return compute_cse_similarities(g, load_cse_predictions(preds), bank, with_masks=True)


@pytest.mark.filterwarnings("ignore::dpeval.errors.DpevalWarning")
def test_hand_computed_square(square: str) -> None:
    s = _sims(_gt(), _pred(), square)
    im = s.images[0]
    # points: d = 0, 1, background (inf), outside the box (col 19 >= int(18): inf)
    expected = (1.0 + np.exp(-1.0 / (2 * KAPPA**2))) / 4
    assert im.gps_paper[0, 0] == pytest.approx(expected, rel=1e-12)
    assert im.gps_per_part[0, 0] == pytest.approx(expected, rel=1e-12)  # not smpl_27554
    np.testing.assert_array_equal(s.point_dist, [0.0, 1.0, np.inf, np.inf])
    np.testing.assert_array_equal(s.point_pred_vertex, [0, 1, -1, -1])
    # mask: 20x18 box minus one background pixel vs the 20x20 polygon
    assert im.mask_iou[0, 0] == pytest.approx(359 / 400)


@pytest.mark.filterwarnings("ignore::dpeval.errors.DpevalWarning")
def test_hand_computed_diagonal_and_missing_gt_vertex(square: str) -> None:
    gt = _gt()
    gt["annotations"][0]["dp_vertex"] = [3, -1, 1, 2]  # d(0, 3) = sqrt(2); GT -1 counts as 0
    s = _sims(gt, _pred(), square)
    d = s.point_dist[0]  # the engine's sqrt(2), on its distance grid (2^-14 on the square)
    assert d == np.floor(np.sqrt(2) / 2**-14 + 0.5) * 2**-14
    expected = np.exp(-(d**2) / (2 * KAPPA**2)) / 4
    assert s.images[0].gps_paper[0, 0] == pytest.approx(expected, rel=1e-9)


@pytest.mark.filterwarnings("ignore::dpeval.errors.DpevalWarning")
def test_box_shift_and_resize(square: str) -> None:
    # detection box shifted by 0.6 px: x - dx truncates toward zero, so pixel (2, 3) is
    # read at col int(12.5 + 0.5 - 10.6) = 2 -> same pixels; a 10x10 map is resized
    gt = _gt()
    pred = _pred(box=(9.6, 9.6, 20.9, 20.9), size=(20, 20))
    im = _sims(gt, pred, square).images[0]
    bh, bw = 20, 20
    g = load_ground_truth(gt).annotations[0]
    x = 10 + g.dp_x * 20 / 255
    y = 10 + g.dp_y * 20 / 255
    col, row = np.trunc(x - 9.6).astype(int), np.trunc(y - 9.6).astype(int)
    coarse, emb = pred[0]["coarse_segm"], pred[0]["embedding"]
    inside = (col < 20) & (row < 20)
    lab = coarse[:, row[inside], col[inside]].argmax(0)
    pv = nearest_vertices(emb[:, row[inside], col[inside]].T, SQUARE_EMB)
    pv[lab == 0] = -1
    d = {(0, 0): 0.0, (3, 1): 1.0, (2, 0): 1.0}  # a zero embedding ties: vertex 0
    gv = np.array([0, 3, 1, 2])[inside]
    terms = [
        np.exp(-(d[(a, b)] ** 2) / (2 * KAPPA**2)) if b >= 0 else 0.0
        for a, b in zip(gv, pv, strict=True)
    ]
    assert (bh, bw) == (20, 20)
    assert im.gps_paper[0, 0] == pytest.approx(sum(terms) / 4, rel=1e-12)


@pytest.mark.filterwarnings("ignore::dpeval.errors.DpevalWarning")
@pytest.mark.parametrize(
    ("ref_model", "dp_I", "per_part"),
    [
        ("smpl_27554", [1, 3, 5, 23], True),  # detectron2's only per-part case
        ("smpl_27554", None, False),  # no dp_I: 0.255
        ("square", [1, 3, 5, 23], False),  # another mesh: 0.255 even with dp_I
    ],
)
def test_per_part_kappa_exactly_when_detectron2_applies_it(square, ref_model, dp_I, per_part):
    s = _sims(_gt(ref_model, dp_I), _pred(), square, name=ref_model)
    im = s.images[0]
    if per_part:
        # point 1 (part 3, hands): kappa 0.107; point 0 has d = 0
        expected = (1.0 + np.exp(-1.0 / (2 * 0.107**2))) / 4
    else:
        expected = (1.0 + np.exp(-1.0 / (2 * KAPPA**2))) / 4
    assert im.gps_per_part[0, 0] == pytest.approx(expected, rel=1e-9)
    assert im.gps_paper[0, 0] == pytest.approx((1.0 + np.exp(-1.0 / (2 * KAPPA**2))) / 4)


@pytest.mark.parametrize(
    ("h", "w", "out_h", "out_w"),
    [(7, 5, 13, 4), (112, 112, 237, 95), (9, 9, 9, 9), (16, 16, 3, 40), (5, 8, 1, 1)],
)
def test_resize_matches_torch_interpolate(h, w, out_h, out_w) -> None:
    torch = pytest.importorskip("torch")
    torch.set_num_threads(1)
    rng = np.random.default_rng(h * w)
    src = rng.normal(size=(4, h, w)).astype(np.float32)
    ref = torch.nn.functional.interpolate(
        torch.from_numpy(src)[None], (out_h, out_w), mode="bilinear", align_corners=False
    )[0].numpy()
    ours = resize_bilinear(src, out_h, out_w)
    np.testing.assert_allclose(ours, ref, rtol=0, atol=2e-6)
    rows = rng.integers(0, out_h, 200)
    cols = rng.integers(0, out_w, 200)
    np.testing.assert_allclose(
        sample_bilinear(src, out_h, out_w, rows, cols), ref[:, rows, cols].T, atol=2e-6
    )
    if (h, w) == (7, 5):  # the pixel-by-pixel twin agrees bit for bit
        np.testing.assert_array_equal(ours, naive.resize_bilinear(src, out_h, out_w))


@pytest.mark.parametrize("method", ["blas", "numba", "kdtree", "auto"])
def test_nearest_vertices_matches_twin(method: str) -> None:
    rng = np.random.default_rng(1)
    verts = normalize_embeddings(rng.normal(size=(3000, 16)))
    pix = np.concatenate(
        [
            rng.normal(size=(300, 16)) * 3,  # unnormalised, far from the sphere
            verts[rng.integers(0, 3000, 2000)] + rng.normal(scale=1e-4, size=(2000, 16)),
            verts[rng.integers(0, 3000, 100)] * 0.5,  # inside the sphere
        ]
    ).astype(np.float32)
    np.testing.assert_array_equal(
        nearest_vertices(pix, verts, method=method), naive.nearest_vertices(pix, verts)
    )


@pytest.mark.parametrize("method", ["blas", "numba", "kdtree"])
def test_nearest_vertices_ties_go_to_lowest_index(method: str) -> None:
    rng = np.random.default_rng(2)
    verts = normalize_embeddings(rng.normal(size=(500, 8)))
    verts[[40, 300, 499]] = verts[120]  # exact duplicates of vertex 120 (and 40 < 120)
    pix = np.stack([verts[120], verts[300] * 2.0, verts[7], np.zeros(8)])
    out = nearest_vertices(pix, verts, method=method)
    zero = int(np.argmin((verts.astype(np.float64) ** 2).sum(axis=1)))  # smallest |e|^2
    assert out.tolist() == [40, 40, 7, zero]
    # equidistant pair: (1, 0) and (0, 1) from (1, 1) -> index 0
    assert nearest_vertices(np.array([[1.0, 1.0]]), np.eye(2), method=method).tolist() == [0]


def test_spectral_embeddings_are_unit_rows_and_smooth() -> None:
    import trimesh

    m = trimesh.creation.icosphere(subdivisions=3)
    e = spectral_embeddings(m.vertices, m.faces, dim=8)
    assert e.shape == (len(m.vertices), 8) and e.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(e, axis=1), 1.0, atol=1e-5)
    # first 3 eigenvectors on a sphere are the coordinates: antipodes map to opposites
    a = np.argmax(m.vertices[:, 2])
    b = np.argmin(m.vertices[:, 2])
    assert float(e[a, :3] @ e[b, :3]) < -0.5


@pytest.mark.filterwarnings("ignore::dpeval.errors.DpevalWarning")
def test_perfect_predictions_score_one_in_every_mode() -> None:
    gt = load_ground_truth(DATA / "synth_small.json")
    rng = np.random.default_rng(0)
    emb = normalize_embeddings(rng.normal(size=(13380, 16)))  # distinct rows for the open mesh
    bank = MeshBank(embeddings={"open": emb})
    preds = perfect_predictions(gt, {"open": emb})
    assert len(preds.detections) == sum(a.has_dense for a in gt.annotations)
    s = score_cse(preds, gt, bank=bank)
    for key in ("gps_paper", "gps_perpart", "gpsm", "iou"):
        assert s.metrics[key]["AP"] == pytest.approx(1.0), key
        assert s.metrics[key]["AR"] == pytest.approx(1.0), key
    assert s.metrics["points"]["AUC10"] == 1.0 and s.metrics["points"]["AUC30"] == 1.0
    assert s.metrics["cse"]["rules"] == "cse-d2-v1"
    # noisy embeddings: numbers drop below 1 (the test can fail)
    noisy = perfect_predictions(gt, {"open": emb}, noise=0.3)
    s2 = score_cse(noisy, gt, bank=bank)
    assert s2.metrics["points"]["AUC10"] < 0.9


def test_kdtree_window_covers_off_unit_norms() -> None:
    # vertex norms off 1 by up to 1e-3 and |p| = 5: the direction's nearest vertex is often
    # not the nearest in distance; the exact window must still find it
    rng = np.random.default_rng(5)
    v = rng.normal(size=(20000, 3))
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    v *= 1 + rng.uniform(-1e-3, 1e-3, (20000, 1))
    q = rng.normal(size=(1500, 3))
    q *= 5 / np.linalg.norm(q, axis=1, keepdims=True)
    np.testing.assert_array_equal(
        nearest_vertices(q, v, method="kdtree"), naive.nearest_vertices(q, v)
    )


def test_kdtree_wide_windows_many_duplicates() -> None:
    # 20 copies (second batched fetch) and 100 copies (ball query) of one row: the lowest
    # index must win, as in the twin
    rng = np.random.default_rng(6)
    v = normalize_embeddings(rng.normal(size=(400, 6)))
    v[np.arange(100, 120)] = v[300]
    v[np.arange(150, 250)] = v[50]
    q = np.stack([v[300] * 1.5, v[50] * 0.7, v[3] * 2.0])
    out = nearest_vertices(q, v, method="kdtree")
    np.testing.assert_array_equal(out, naive.nearest_vertices(q, v))
    assert out.tolist() == [100, 50, 3]
