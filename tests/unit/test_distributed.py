"""Scale-out on Dask: the same numbers and bytes on a 2-process LocalCluster as locally.

One cluster (2 single-threaded worker processes) serves the whole module, so the suite
pays its start-up once.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import distributed
import numpy as np
import pytest
from _cases import EuclideanSolver, make_case, records

import dpeval
from dpeval.cli import main
from dpeval.distributed import local_cluster, open_client, shard_bounds
from dpeval.errors import FormatError, ParamsError
from dpeval.evaluation.inputs import read_inputs
from dpeval.evaluation.prepare import prepare
from dpeval.evaluation.sharded import map_images
from dpeval.formats import save_predictions
from dpeval.formats.model import Detection, Predictions

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def client():
    # LocalCluster(n_workers=2, processes=True, threads_per_worker=1), profiler off
    with local_cluster(2) as cluster, distributed.Client(cluster) as c:
        yield c


def _noisy_case(tmp_path: Path, n_images: int = 24, noise_seed: int = 3):
    """A GT file and the same predictions as challenge JSON and as a native .npz: boxes
    shifted, maps partly wrong, false positives, so every number is non-trivial."""
    gt_dict, dets = make_case(seed=7, n_images=n_images, points=40)
    rng = np.random.default_rng(noise_seed)
    noisy = []
    for img, bbox, score, iuv in dets:
        iuv = iuv.copy()
        flip = rng.random(iuv.shape[1:]) < 0.3
        iuv[0][flip] = rng.integers(0, 25, int(flip.sum()))
        iuv[1][flip] = rng.integers(0, 256, int(flip.sum()))
        box = [bbox[0] + rng.integers(-6, 7), bbox[1] + rng.integers(-6, 7), bbox[2], bbox[3]]
        noisy.append((img, box, float(score * rng.uniform(0.5, 1.0)), iuv))
        if rng.random() < 0.5:  # a false positive near the person
            noisy.append((img, [bbox[0] + 20, bbox[1] + 10, 30.0, 40.0], 0.3, iuv[:, :40, :30]))
    gt, preds = records(gt_dict, noisy)
    tmp_path.mkdir(parents=True, exist_ok=True)
    gt_path = tmp_path / "gt.json"
    gt_path.write_text(json.dumps(gt_dict))
    paths = {}
    for fmt, name in (("challenge-json", "preds.json"), ("dpeval-npz", "preds.npz")):
        paths[fmt] = tmp_path / name
        save_predictions(preds, paths[fmt], format=fmt, images=gt.images)
    return gt_path, paths


@pytest.fixture(scope="module")
def noisy(tmp_path_factory):
    """(gt path, model A paths by format, model B paths by format), written once."""
    root = tmp_path_factory.mktemp("noisy")
    gt_path, paths_a = _noisy_case(root / "a")
    _, paths_b = _noisy_case(root / "b", noise_seed=4)
    return gt_path, paths_a, paths_b


@pytest.mark.parametrize("fmt", ["challenge-json", "dpeval-npz"])
def test_score_on_cluster_is_byte_identical(client, noisy, open_template, fmt):
    gt_path, paths, _ = noisy
    solver = EuclideanSolver(open_template)
    opts = dict(template=open_template, solver=solver)
    local = dpeval.score(paths[fmt], gt_path, workers=1, **opts)
    seen = []
    remote = dpeval.score(paths[fmt], gt_path, client=client, progress=seen.append, **opts)
    assert remote.to_json() == local.to_json()
    assert 0 < local.metrics["gps_perpart"]["AP"] < 1  # not a trivial case
    assert seen == sorted(seen) and seen[-1] == 24  # images done, growing


def test_per_image_results_identical_and_in_order(client, noisy, open_template):
    """Small shards (many tasks finishing out of order) give the local results exactly."""
    from dpeval.evaluation.images import ImageOptions, ImagePlan, run_images
    from dpeval.evaluation.prepare import _gt_points, top_detections

    gt_path, paths, _ = noisy
    p, g = read_inputs(paths["dpeval-npz"], gt_path)
    tops = top_detections(p, 20)
    by_key: dict = {}
    for i, a in enumerate(g.annotations):
        by_key.setdefault((a.image_id, a.category_id), []).append(i)
    keys = sorted(set(by_key) | set(tops))
    plan = ImagePlan(g, p, _gt_points(g, open_template), by_key, tops, keys)
    opts = ImageOptions()
    lut = open_template.uv8_lut
    local = run_images(plan, lut, opts, 1, None)
    remote = map_images(client, plan, lut, opts, images_per_shard=1)
    assert [r.key for r in remote] == keys
    for a, b in zip(local, remote, strict=True):
        for x, y in zip(a, b, strict=True):
            if isinstance(x, np.ndarray):
                assert x.dtype == y.dtype and np.array_equal(x, y)
            else:
                assert x == y


def test_worker_error_reaches_the_client(client, open_template):
    """A corrupt map decoded on a worker raises the reader's FormatError here."""
    gt_dict, dets = make_case(seed=1, n_images=2, points=10)
    gt, preds = records(gt_dict, dets)
    bad = Detection(
        image_id=1, category_id=1, bbox=preds.detections[0].bbox, score=0.99,
        iuv_shape=(3, 4, 4), index=0, _loader=_broken_loader,
    )  # fmt: skip
    preds = Predictions("instances", detections=(bad, *preds.detections[1:]), format="memory")
    with pytest.raises(FormatError, match="broken map"):
        prepare(preds, gt, open_template, EuclideanSolver(open_template), client=client)


def _broken_loader():
    raise FormatError("preds.json: record 0 (image_id=1): broken map; re-encode it")


def test_cli_scheduler_byte_identical(client, tmp_path):
    """``dpeval score --scheduler ADDRESS`` on the shipped example equals the local run."""
    ex = REPO / "examples"
    args = [str(ex / "preds.json"), str(ex / "gt.json"), "-q", "--json"]
    assert main(["score", *args, str(tmp_path / "local.json")]) == 0
    addr = client.scheduler.address
    assert main(["score", *args, str(tmp_path / "dask.json"), "--scheduler", addr]) == 0
    assert (tmp_path / "dask.json").read_bytes() == (tmp_path / "local.json").read_bytes()


def test_bad_scheduler_spec_is_one_line(capsys):
    ex = REPO / "examples"
    rc = main(["score", str(ex / "preds.json"), str(ex / "gt.json"), "--scheduler", "local:0"])
    err = capsys.readouterr().err
    assert rc == 2 and err.startswith("dpeval: error: --scheduler 'local:0'")
    assert len(err.strip().splitlines()) == 1
    with pytest.raises(ParamsError), open_client("local:x"):
        pass
    with pytest.raises(ParamsError, match="no such scheduler file"), open_client("nope.json"):
        pass


def test_shard_bounds_cover_everything_once():
    for n in (0, 1, 7, 100):
        for k in (1, 3, 8, 200):
            b = shard_bounds(n, k)
            assert [i for a, c in b for i in range(a, c)] == list(range(n))
            assert len(b) <= max(1, k)


def test_core_import_does_not_import_dask():
    code = (
        "import sys, dpeval, dpeval.api, dpeval.evaluation, dpeval.distributed, dpeval.insight; "
        "bad = [m for m in sys.modules if m.split('.')[0] in ('dask', 'distributed')]; "
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO)


def _tables(open_template, path, gt_path):
    from dpeval.insight.analysis import score_tables

    solver = EuclideanSolver(open_template)
    return score_tables(path, gt_path, template=open_template, solver=solver, workers=1).tables


def test_bootstrap_on_cluster_same_intervals(client, noisy, open_template):
    import pandas as pd

    from dpeval.insight.bootstrap import bootstrap_metrics, compare_metrics

    gt_path, paths, paths_b = noisy
    ta = _tables(open_template, paths["challenge-json"], gt_path)
    local = bootstrap_metrics(ta, resamples=203, seed=5)
    remote = bootstrap_metrics(ta, resamples=203, seed=5, client=client)
    pd.testing.assert_frame_equal(remote, local, check_exact=True)
    assert (local["ci_high"] > local["ci_low"]).all()  # real intervals, not a constant
    other = bootstrap_metrics(ta, resamples=203, seed=6, client=client)
    assert not other["ci_low"].equals(local["ci_low"])  # the seed matters

    tb = _tables(open_template, paths_b["challenge-json"], gt_path)
    local = compare_metrics(ta, tb, resamples=150, seed=2)
    remote = compare_metrics(ta, tb, resamples=150, seed=2, client=client)
    pd.testing.assert_frame_equal(remote, local, check_exact=True)
    assert (local["diff"] != 0).any()


def test_cli_compare_scheduler_same_output(client, tmp_path, capsys, monkeypatch):
    """``dpeval compare --scheduler`` prints what the local run prints (model B: the
    shipped example with shuffled scores and two detections dropped). Geodesics run on
    the client either way; a straight-line stand-in keeps this test fast."""
    import dpeval.geodesic

    monkeypatch.setattr(dpeval.geodesic, "GeodesicSolver", EuclideanSolver)
    ex = REPO / "examples"
    dets = json.loads((ex / "preds.json").read_text())
    rng = np.random.default_rng(0)
    for d in dets:
        d["score"] = float(rng.random())
    (tmp_path / "b.json").write_text(json.dumps(dets[2:]))
    args = ["compare", str(ex / "preds.json"), str(tmp_path / "b.json"), str(ex / "gt.json")]
    args += ["--resamples", "120", "--seed", "3"]
    assert main(args) == 0
    local = capsys.readouterr().out
    assert main([*args, "--scheduler", client.scheduler.address]) == 0
    assert capsys.readouterr().out == local
    assert "+0.0000  [+0.0000, +0.0000]" not in local.splitlines()[2]  # B differs from A


def _hashes(root: Path) -> dict[str, str]:
    import hashlib

    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def test_synth_on_cluster_same_bytes(client, tmp_path):
    """Shards rendered by the workers give the local run's bytes (images, maps, JSON);
    also through ``dpeval synth --scheduler``."""
    from dpeval.synth.generate import SynthConfig, generate_dataset
    from dpeval.synth.scene import SceneConfig

    cfg = SynthConfig(scene=SceneConfig(width=96, height=72, max_people=2))
    opts = dict(split="val", n_images=5, seed=11, config=cfg)
    generate_dataset(tmp_path / "local", workers=1, **opts)
    ticks = []
    generate_dataset(tmp_path / "dask", client=client, progress=ticks.append, **opts)
    local = _hashes(tmp_path / "local")
    assert len(local) == 11 and _hashes(tmp_path / "dask") == local
    assert sum(ticks) == 5

    args = ["synth", "--images", "5", "--seed", "11", "--size", "96x72", "--max-people", "2"]
    args += ["--split", "val", "-q"]
    assert main([*args, str(tmp_path / "cli"), "--scheduler", client.scheduler.address]) == 0
    assert _hashes(tmp_path / "cli") == local


def test_leaderboard_pool_worker_killed_mid_job_scored_once(client, tmp_path):
    """Jobs scored on the cluster: a Dask worker killed mid-job -> the job is rerun on
    another worker and scored once (one entry, one claim); a broken upload fails with
    a clean one-line message; the remote entry equals the local worker's."""
    import hashlib
    import os
    import signal
    import threading
    import time

    from dpeval.leaderboard.db import Database, default_db_path, uploads_dir
    from dpeval.leaderboard.pool import PoolScorer
    from dpeval.leaderboard.worker import ScoringWorker

    store = tmp_path / "lb"
    db = Database(default_db_path(store))
    team_id, _ = db.add_team("gamma")
    dets = json.loads((REPO / "examples" / "preds.json").read_bytes())
    good = json.dumps([d for d in dets if d["image_id"] == dets[0]["image_id"]]).encode()
    broken = json.loads(good)
    broken[0]["uv_shape"] = [3, 5, 5]  # the PNG is not 5x5: the reader says so
    uploads = {"Good": good, "Broken": json.dumps(broken).encode()}
    ids = {}
    for name, data in uploads.items():

        def place(sub_id: int, data=data) -> str:
            uploads_dir(store).mkdir(parents=True, exist_ok=True)
            (uploads_dir(store) / f"{sub_id}.json").write_bytes(data)
            return f"{sub_id}.json"

        ids[name] = db.add_submission(
            team_id, {"name": name}, size=len(data), sha256=hashlib.sha256(data).hexdigest(),
            place_file=place, per_team=10, queue_cap=10,
        )  # fmt: skip
    marker = tmp_path / f"{ids['Good']}.json.pid"  # pause the good job's first run
    good_upload = f"{ids['Good']}.json"

    def pause_first_good_run(upload: str) -> None:  # runs on the Dask worker (by value)
        if os.path.basename(upload) != good_upload:
            return
        try:
            fd = os.open(marker, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            return  # not the first run
        os.write(fd, str(os.getpid()).encode())
        os.close(fd)
        time.sleep(60)

    worker = ScoringWorker(store, REPO / "examples" / "gt.json", resamples=10)
    pool = PoolScorer(worker, client, remote_fault=pause_first_good_run)
    assert pool.slots == 2
    runner = threading.Thread(target=pool.run, kwargs={"once": True, "poll_s": 0.1})
    runner.start()
    end = time.monotonic() + 60
    while not (marker.exists() and marker.read_text()) and time.monotonic() < end:
        time.sleep(0.1)
    killed = int(marker.read_text())
    os.kill(killed, signal.SIGKILL)  # the Dask worker running the good job
    runner.join(240)
    assert killed not in client.run(os.getpid).values()  # a fresh worker replaced it
    assert not runner.is_alive()
    good_row, broken_row = db.get(ids["Good"]), db.get(ids["Broken"])
    assert (good_row.state, good_row.attempts) == ("done", 1)  # one claim, rerun by Dask
    assert (broken_row.state, broken_row.attempts) == ("failed", 1)
    assert "\n" not in broken_row.error and str(tmp_path) not in broken_row.error
    entries = [p for p in (store / "entries").glob("*.json") if not p.name.startswith(".")]
    assert len(entries) == 1
    remote = json.loads(entries[0].read_text())
    assert remote["server"]["submission_id"] == ids["Good"]

    # the same upload scored by the local worker gives the same numbers
    db.requeue(ids["Good"])
    (entries[0]).unlink()
    worker.run(once=True)
    (local_path,) = [p for p in (store / "entries").glob("*.json") if p.name[0] != "."]
    local = json.loads(local_path.read_text())
    for key in ("score", "intervals", "inputs"):
        assert local[key] == remote[key], key


def test_pool_resends_a_lost_ground_truth(client, tmp_path):
    """The scheduler may lose the scattered ground truth with a killed worker (seen in CI:
    'lose scattered data', then every job 'cancelled ... already forgotten'); the pool
    scatters it again and the job is scored."""
    from dpeval.leaderboard.pool import PoolScorer
    from dpeval.leaderboard.worker import ScoringWorker

    dets = json.loads((REPO / "examples" / "preds.json").read_bytes())
    upload = tmp_path / "up.json"
    upload.write_text(json.dumps([d for d in dets if d["image_id"] == dets[0]["image_id"]]))
    worker = ScoringWorker(tmp_path / "lb", REPO / "examples" / "gt.json", resamples=10)
    pool = PoolScorer(worker, client)
    lost = pool._gt
    client.cancel(lost, force=True)  # what a lost scatter looks like to the job
    entry = pool.build(str(upload), worker.ground_truth(), name="x", resamples=10)
    assert pool._gt is not lost
    assert entry["score"]
