"""``dpeval leaderboard serve``: the worker starts whatever the working directory, and
the server says when the worker keeps dying (``/healthz`` 503, a banner on ``/``)."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("flask")

from dpeval.leaderboard.db import Database, default_db_path
from dpeval.leaderboard.server import create_app
from dpeval.leaderboard.supervisor import Supervisor, worker_command

GT = Path(__file__).resolve().parents[2] / "examples" / "gt.json"


def _shadowing_dir(tmp_path: Path) -> Path:
    """A directory with a ``dpeval/`` package that exits 7 when imported."""
    d = tmp_path / "checkout"
    (d / "dpeval").mkdir(parents=True)
    (d / "dpeval" / "__init__.py").write_text("raise SystemExit(7)\n")
    return d


def test_worker_ignores_a_dpeval_folder_in_the_working_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(_shadowing_dir(tmp_path))
    store = tmp_path / "lb"
    cmd, cwd, env = worker_command("lb", GT, default_db_path(store))
    assert Path(cmd[cmd.index("--store") + 1]).is_absolute()
    probe = [*cmd[:3], "--help"]  # python -m dpeval.leaderboard.worker --help
    ok = subprocess.run(probe, cwd=cwd, env=env, capture_output=True, text=True, timeout=120)
    assert ok.returncode == 0, ok.stderr
    # the old launch (inherited working directory) imports the shadowing package
    old = subprocess.run(probe, capture_output=True, text=True, timeout=120)
    assert old.returncode == 7


class _Proc:
    def __init__(self, code: int | None) -> None:
        self.code = code

    def poll(self) -> int | None:
        return self.code


def test_supervisor_health_after_quick_exits(tmp_path):
    db = Database(tmp_path / "s.db")
    sup = Supervisor([sys.executable, "-c", "raise SystemExit(5)"], db)
    assert sup.health()["ok"]
    sup.proc, sup._started = _Proc(5), time.monotonic()
    sup.quick_exits, sup.last_exit = Supervisor.UNHEALTHY_AFTER, 5
    h = sup.health()
    assert not h["ok"] and "last exit code 5" in h["message"]
    sup.proc, sup._started = _Proc(None), time.monotonic() - 30  # a worker that stays up
    assert sup.health()["ok"]


def test_supervisor_loop_marks_a_dying_worker(tmp_path):
    db = Database(tmp_path / "s.db")
    sup = Supervisor([sys.executable, "-c", "raise SystemExit(5)"], db)
    sup.UNHEALTHY_AFTER = 2  # type: ignore[misc]  # keeps the test short (back-off 1 s)
    sup.start()
    try:
        deadline = time.monotonic() + 60
        while sup.health()["ok"] and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not sup.health()["ok"] and sup.last_exit == 5
    finally:
        sup.stop()


def test_healthz_503_and_banner_when_the_worker_is_down(tmp_path):
    app = create_app(tmp_path / "lb", GT)
    client = app.test_client()
    r = client.get("/healthz")
    assert r.status_code == 200 and r.json["ok"] is True

    class Down:
        def health(self):
            return {"ok": False, "restarts": 4, "quick_exits": 4, "last_exit": 1,
                    "message": "the scoring worker keeps exiting <now>"}  # fmt: skip

    app.extensions["dpeval"].supervisor = Down()
    r = client.get("/healthz")
    assert r.status_code == 503 and r.json["ok"] is False
    assert r.json["worker"]["last_exit"] == 1
    page = client.get("/").get_data(as_text=True)
    assert "Scoring is down:" in page and "&lt;now&gt;" in page  # escaped


def test_upload_with_a_category_the_ground_truth_lacks_is_refused():
    import json

    from dpeval.errors import FormatError
    from dpeval.formats import load_ground_truth
    from dpeval.leaderboard.upload import check_upload

    gt = load_ground_truth(GT)
    recs = json.loads((GT.parent / "preds.json").read_text())
    recs[2]["category_id"] = 3
    with pytest.raises(FormatError, match=r"record 2 .*category_id 3 is not a category"):
        check_upload(json.dumps(recs).encode(), gt.images, gt.categories)
    assert check_upload(json.dumps(recs[:2]).encode(), gt.images, gt.categories) == 2
