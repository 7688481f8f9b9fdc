"""Leaderboard server: a real waitress server on loopback, the database, the worker.

Web routes run in a waitress thread (the 50-upload test and the rejection tests need no
worker); the end-to-end test runs ``dpeval leaderboard serve`` as a subprocess with its
supervised worker and kills that worker with SIGKILL; the worker tests run
``python -m dpeval.leaderboard.worker`` processes directly.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import http.client
import io
import json
import os
import signal
import sqlite3
import struct
import subprocess
import sys
import threading
import time
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("flask")
waitress = pytest.importorskip("waitress")

from dpeval.cli import main as dpeval_main  # noqa: E402
from dpeval.errors import ParamsError  # noqa: E402
from dpeval.leaderboard.db import (  # noqa: E402
    Database,
    LimitError,
    default_db_path,
    uploads_dir,
)
from dpeval.leaderboard.server import Limits, create_app  # noqa: E402
from dpeval.leaderboard.worker import EXIT_LOCKED  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
PREDS, GT = ROOT / "examples" / "preds.json", ROOT / "examples" / "gt.json"
FAULTS = ROOT / "tests" / "_worker_faults.py"  # worker/server processes with a fault point
RECORDS = json.loads(PREDS.read_text())


# ---------------------------------------------------------------------------- helpers


def _png(width: int, height: int, idat: bytes | None = None) -> bytes:
    """An 8-bit RGB PNG; without ``idat`` its pixels are all zero (compresses ~1000:1)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    if idat is None:
        comp = zlib.compressobj(9)
        row = b"\x00" * (1 + 3 * width)
        idat = b"".join(comp.compress(row) for _ in range(height)) + comp.flush()
    head = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", head) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def _upload_json(n: int = 1, **override) -> bytes:
    """The first ``n`` detections of the bundled example (valid against examples/gt.json)."""
    recs = [dict(r) for r in RECORDS[:n]]
    recs[0].update(override)
    return json.dumps(recs).encode()


def _multipart(fields: dict[str, str], file: bytes | None, filename: str) -> tuple[bytes, str]:
    boundary = "dpeval-test-boundary-7f3a"
    out = io.BytesIO()
    for k, v in fields.items():
        out.write(f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n'.encode())
        out.write(v.encode() + b"\r\n")
    if file is not None:
        out.write(
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; '
            f'filename="{filename}"\r\nContent-Type: application/json\r\n\r\n'.encode()
        )
        out.write(file + b"\r\n")
    out.write(f"--{boundary}--\r\n".encode())
    return out.getvalue(), f"multipart/form-data; boundary={boundary}"


def call(port, method, path, *, token=None, fields=None, file=None, filename="preds.json",
         cookie=None, body=None, headers=None):  # fmt: skip
    """One HTTP request with http.client -> (status, headers, body bytes)."""
    hdrs = dict(headers or {})
    if token is not None:
        hdrs["Authorization"] = f"Bearer {token}"
    if cookie is not None:
        hdrs["Cookie"] = f"dpeval_token={cookie}"
    if fields is not None or file is not None:
        body, hdrs["Content-Type"] = _multipart(fields or {}, file, filename)
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        conn.request(method, path, body=body, headers=hdrs)
        r = conn.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    finally:
        conn.close()


def submit(port, token, data=None, name="Net", **kw):
    fields = {"name": name, **kw.pop("fields", {})}
    return call(port, "POST", "/api/submissions", token=token, fields=fields,
                file=_upload_json() if data is None else data, **kw)  # fmt: skip


@contextlib.contextmanager
def running(app, threads: int = 8):
    """Serve ``app`` with waitress in a thread on a free loopback port; yield the port."""
    server = waitress.create_server(app, host="127.0.0.1", port=0, threads=threads, ident="t")
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        yield server.effective_port
    finally:
        server.close()
        for ch in list(server._map.values()):
            with contextlib.suppress(Exception):
                ch.close()
        server.task_dispatcher.shutdown()
        thread.join(5)


def _add_team(store: Path, name: str, capsys) -> str:
    capsys.readouterr()
    assert dpeval_main(["leaderboard", "admin", "add-team", name, "--store", str(store)]) == 0
    out = capsys.readouterr().out
    return next(line.split(": ", 1)[1] for line in out.splitlines() if line.startswith("token: "))


def _state(store: Path) -> tuple[list[tuple], list[str]]:
    """(submission rows (id, team_id, name, url, description, boxes), upload file names)."""
    with sqlite3.connect(default_db_path(store)) as con:
        rows = con.execute(
            "SELECT id, team_id, name, url, description, boxes FROM submissions ORDER BY id"
        ).fetchall()
    return rows, sorted(p.name for p in uploads_dir(store).iterdir())


def _entries(store: Path) -> list[dict]:
    found = sorted((store / "entries").glob("*.json"))
    return [json.loads(p.read_text()) for p in found if not p.name.startswith(".")]


def _wait(predicate, timeout: float, what: str):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        got = predicate()
        if got:
            return got
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


# ---------------------------------------------------------------------------- web routes


@pytest.fixture
def site(tmp_path, capsys):
    store = tmp_path / "lb"
    tokens = {n: _add_team(store, n, capsys) for n in ("alpha", "beta")}
    app = create_app(store, GT, limits=Limits(max_upload_bytes=200_000, per_team_per_day=50))
    with running(app) as port:
        yield store, port, tokens


def test_auth_ownership_and_pages(site, capsys, tmp_path):
    store, port, tok = site
    st, hd, body = submit(port, None)
    assert st == 401 and hd["www-authenticate"] == "Bearer" and b"authentication" in body
    assert submit(port, None, headers={"Authorization": "Token abc"})[0] == 401
    assert submit(port, "not-a-token")[0] == 401
    assert submit(port, "' OR '1'='1")[0] == 401
    assert submit(port, tok["alpha"] + "x")[0] == 401
    assert _state(store) == ([], [])

    st, _, body = submit(port, tok["alpha"], name="Alpha <b>net</b>")
    assert st == 202, body
    sub = json.loads(body)
    rows, files = _state(store)
    assert [r[0] for r in rows] == [sub["id"]] and files == [f"{sub['id']}.json"]
    assert (uploads_dir(store) / files[0]).read_bytes() == _upload_json()

    own = f"/api/submissions/{sub['id']}"
    st, _, body = call(port, "GET", own, token=tok["alpha"])
    detail = json.loads(body)
    assert st == 200 and detail["state"] == "queued" and detail["team"] == "alpha"
    assert detail["sha256"] == hashlib.sha256(_upload_json()).hexdigest()
    assert "file" not in detail and str(store) not in body.decode()
    # another team neither sees the details nor learns that the id exists
    assert call(port, "GET", own, token=tok["beta"])[0] == 404
    assert call(port, "GET", "/api/submissions/999", token=tok["beta"])[0] == 404
    st, _, body = call(port, "GET", "/api/submissions", token=tok["beta"])
    assert st == 200 and json.loads(body)["submissions"] == []
    st, _, body = call(port, "GET", "/api/submissions", token=tok["alpha"])
    assert [s["id"] for s in json.loads(body)["submissions"]] == [sub["id"]]

    # HTML: 401 without a token, 404 for another team, escaped details for the owner
    page = f"/submissions/{sub['id']}"
    assert call(port, "GET", page)[0] == 401
    assert call(port, "GET", page, cookie=tok["beta"])[0] == 404
    form = f"token={tok['alpha']}".encode()
    st, hd, _ = call(port, "POST", "/login", body=form,
                     headers={"Content-Type": "application/x-www-form-urlencoded"})  # fmt: skip
    assert st == 303 and "httponly" in hd["set-cookie"].lower()
    assert "samesite=strict" in hd["set-cookie"].lower()
    st, hd, body = call(port, "GET", page, cookie=tok["alpha"])
    assert st == 200 and b"Alpha &lt;b&gt;net&lt;/b&gt;" in body and b"<b>net</b>" not in body
    assert "frame-ancestors 'none'" in hd["content-security-policy"]
    assert hd["x-content-type-options"] == "nosniff"

    # revoked: 403 on upload and reads, the earlier submission stays
    capsys.readouterr()
    assert dpeval_main(["leaderboard", "admin", "revoke-team", "alpha", "--store", str(store)]) == 0
    assert submit(port, tok["alpha"])[0] == 403
    assert call(port, "GET", own, token=tok["alpha"])[0] == 403
    assert len(_state(store)[0]) == 1

    # the hidden GT is never served, and no response names it
    gt_bytes = GT.read_bytes()
    paths = [
        "/gt.json",
        "/static/gt.json",
        "/../examples/gt.json",
        "/examples/gt.json",
        "/.server/server.db",
        "/.server/uploads/1.json",
        "/api/submissions/1%20OR%201=1",
    ]
    for path in paths:
        st, _, body = call(port, "GET", path, token=tok["beta"])
        assert st == 404 and gt_bytes[:200] not in body and str(GT).encode() not in body
    st, _, body = call(port, "GET", "/")
    assert st == 200 and b"DensePose leaderboard" in body and str(GT).encode() not in body


def test_rejections_store_nothing(site, capsys):
    store, port, tok = site
    t = tok["beta"]
    good = RECORDS[0]
    box = {"bbox": [0, 0, 4000, 4000], "uv_shape": [3, 4000, 4000]}
    bomb = base64.b64encode(_png(4000, 4000)).decode()  # 48 MB of pixels in ~60 KB
    huge = base64.b64encode(_png(100_000, 100_000, idat=zlib.compress(b"\0" * 1000))).decode()
    corrupt_size = base64.b64encode(_png(7, 5)).decode()
    cases = {
        "oversized": (submit(port, t, data=b"[" + b" " * 300_000 + b"]"), 413),
        "bomb within the pixel cap": (submit(port, t, data=_upload_json(uv_data=bomb, **box)), 400),
        "bomb over the pixel cap": (
            submit(
                port,
                t,
                data=_upload_json(
                    uv_data=huge, bbox=[0, 0, 1e5, 1e5], uv_shape=[3, 100_000, 100_000]
                ),
            ),
            400,
        ),
        "PNG size differs from uv_shape": (
            submit(port, t, data=_upload_json(uv_data=corrupt_size)),
            400,
        ),
        "not base64": (submit(port, t, data=_upload_json(uv_data="%%%%" + good["uv_data"])), 400),
        "malformed JSON": (submit(port, t, data=_upload_json()[:-7]), 400),
        "nested too deeply": (submit(port, t, data=b"[" * 200_000), 400),
        "huge integer": (submit(port, t, data=b"[" + b"9" * 5000 + b"]"), 400),
        "not UTF-8": (submit(port, t, data=b"\xff\xfe[]"), 400),
        "object, not list": (submit(port, t, data=b'{"annotations": []}'), 400),
        "empty list": (submit(port, t, data=b"[]"), 400),
        "empty file": (submit(port, t, data=b""), 400),
        "unknown image": (submit(port, t, data=_upload_json(image_id=987654321)), 400),
        "path traversal": (submit(port, t, filename="../../etc/passwd"), 400),
        "windows traversal": (submit(port, t, filename="..\\..\\x.json"), 400),
        "dot file": (submit(port, t, filename=".htaccess"), 400),
        "no file": (call(port, "POST", "/api/submissions", token=t, fields={"name": "x"}), 400),
        "no name": (submit(port, t, name=""), 400),
        "name too long": (submit(port, t, name="n" * 201), 400),
        "control characters": (submit(port, t, name="a\x00b"), 400),
        "javascript url": (submit(port, t, fields={"url": "javascript:alert(1)"}), 400),
        "SQL in boxes": (submit(port, t, fields={"boxes": "detected' OR '1'='1"}), 400),
        "not multipart": (
            call(
                port,
                "POST",
                "/api/submissions",
                token=t,
                body=_upload_json(),
                headers={"Content-Type": "application/json"},
            ),
            400,
        ),
    }
    for what, ((status, _, body), expected) in cases.items():
        assert status == expected, (what, status, body[:300])
        msg = json.loads(body)["error"]  # a clean one-line JSON error
        assert isinstance(msg, str) and msg and "\n" not in msg and "Traceback" not in msg, what
        assert str(GT) not in msg and str(store) not in msg, (what, msg)
    assert "pixel cap" in json.loads(cases["bomb over the pixel cap"][0][2])["error"]
    assert "4000x4000" in json.loads(cases["bomb within the pixel cap"][0][2])["error"]
    assert _state(store) == ([], [])  # nothing stored, no temporary file left

    # SQL-meta characters in every free-text field are stored verbatim, and harmless
    evil = "x'); DROP TABLE submissions; --"
    team_token = _add_team(store, 'Robert"); DROP TABLE teams;--', capsys)
    fields = {"url": "https://example.org/?q=1');DROP/**/TABLE/**/teams;--", "description": evil}
    st, _, body = submit(port, team_token, name=evil, fields=fields, filename="a'b;--.json")
    assert st == 202, body
    rows, files = _state(store)
    assert [r[2:] for r in rows] == [(evil, fields["url"], evil, "detected")]
    assert files == [f"{rows[0][0]}.json"]
    names = [t.name for t in Database(default_db_path(store)).teams()]
    assert names == ["alpha", "beta", 'Robert"); DROP TABLE teams;--']


def test_50_concurrent_uploads(tmp_path, capsys):
    store = tmp_path / "lb"
    tokens = [_add_team(store, f"team{i}", capsys) for i in range(5)]
    limits = Limits(max_upload_bytes=200_000, per_team_per_day=8, queue_cap=30)
    app = create_app(store, GT, limits=limits)
    payload = _upload_json(3)
    with running(app, threads=8) as port:
        start = time.perf_counter()
        with ThreadPoolExecutor(50) as pool:
            results = list(pool.map(lambda i: submit(port, tokens[i % 5], data=payload,
                                                     name=f"run {i}"), range(50)))  # fmt: skip
        elapsed = time.perf_counter() - start
    accepted, refused = [], 0
    for status, headers, body in results:
        assert status in (202, 429), (status, body[:200])
        data = json.loads(body)
        if status == 202:
            accepted.append(data["id"])
        else:
            refused += 1
            assert "rate limit" in data["error"] or "queue is full" in data["error"], data
            assert headers["retry-after"] == "3600"
    rows, files = _state(store)
    assert len(accepted) == len(set(accepted)) == 30 and refused == 20  # the queue cap binds
    assert sorted(accepted) == [r[0] for r in rows]  # every accepted row, no duplicate
    assert files == sorted(f"{i}.json" for i in accepted)  # one file per row, nothing else
    per_team = {}
    for r in rows:
        per_team[r[1]] = per_team.get(r[1], 0) + 1
    assert max(per_team.values()) <= 8
    assert all((uploads_dir(store) / f).read_bytes() == payload for f in files)
    sys.stderr.write(f"\n50 concurrent uploads answered in {elapsed:.2f} s\n")


def test_database_queue_claims_and_attempts(tmp_path, capsys):
    store = tmp_path / "lb"
    db = Database(default_db_path(store))
    team_id, token = db.add_team("  Lab  ")
    assert db.team_for_token(token).name == "Lab" and db.team_for_token(token + "x") is None
    for bad in ("Lab", "", "a\x00b", "x" * 65):
        with pytest.raises(ParamsError):
            db.add_team(bad)
    place = {"name": "n"}, dict(size=1, sha256="0" * 64, per_team=5, queue_cap=3)

    def explode(sub_id: int) -> str:
        raise OSError("disk full")

    with pytest.raises(OSError):
        db.add_submission(team_id, place[0], place_file=explode, **place[1])
    assert db.counts()["queued"] == 0  # rolled back with the failed file move
    ids = [db.add_submission(team_id, place[0], place_file=str, **place[1]) for _ in range(3)]
    with pytest.raises(LimitError, match="queue is full"):
        db.add_submission(team_id, place[0], place_file=str, **place[1])
    claimed = [db.claim_next(pid=4242).id for _ in range(3)]
    assert claimed == ids and db.claim_next(pid=4242) is None
    assert db.requeue_orphans(lambda pid: pid != 4242) == ids  # worker 4242 is dead
    assert [db.claim_next(pid=1).attempts for _ in range(3)] == [2, 2, 2]
    db.requeue_orphans(None)
    assert db.claim_next(pid=1, max_attempts=2) is None  # each job killed its worker twice
    assert db.counts() == {"queued": 0, "scoring": 0, "done": 0, "failed": 3}
    assert "after 2 attempts" in db.get(ids[0]).error
    with pytest.raises(LimitError, match="rate limit"):  # failed ones still count
        db.add_submission(team_id, place[0], place_file=str, per_team=3, queue_cap=9,
                          size=1, sha256="0" * 64)  # fmt: skip
    capsys.readouterr()
    args = ["leaderboard", "admin", "requeue", str(ids[1]), "--store", str(store)]
    assert dpeval_main(args) == 0 and db.get(ids[1]).state == "queued"
    assert db.get(ids[1]).attempts == 0
    assert dpeval_main(args) == 2  # not finished: refused with one line
    assert "not finished" in capsys.readouterr().err
    assert dpeval_main(["leaderboard", "admin", "list-submissions", "--state", "failed",
                        "--store", str(store)]) == 0  # fmt: skip
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 2 and all("failed" in line and "Lab" in line for line in out)


# ---------------------------------------------------------------------------- worker


def _worker(store: Path, *extra: str, pause: str | None = None, capture: bool = False):
    # a pause (PHASE:SECONDS) is injected through the worker's constructor by a script
    launch = [str(FAULTS), pause] if pause else ["-m", "dpeval.leaderboard.worker"]
    cmd = [sys.executable, *launch, "--store", str(store), "--gt",
           str(GT), "--resamples", "10", "--poll", "0.2", *extra]  # fmt: skip
    err = subprocess.PIPE if capture else subprocess.DEVNULL
    return subprocess.Popen(cmd, cwd=ROOT, stderr=err, text=True)


def _rows(store: Path) -> dict[int, tuple]:
    with sqlite3.connect(default_db_path(store)) as con:
        got = con.execute("SELECT id, state, attempts, worker_pid, entry, error FROM submissions")
        return {r[0]: r[1:] for r in got.fetchall()}


def test_worker_killed_mid_scoring_rescores_once(tmp_path, capsys):
    store = tmp_path / "lb"
    token = _add_team(store, "gamma", capsys)
    app = create_app(store, GT)
    client = app.test_client()
    # a sound PNG whose part ids are out of range: only decoding the pixels (the worker)
    # finds it; a truncated PNG is refused at upload (chunk CRCs, zlib stream)
    from PIL import Image

    shape = RECORDS[0]["uv_shape"]
    pixels = np.full((shape[1], shape[2], 3), 30, np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels, "RGB").save(buf, format="PNG")
    broken = base64.b64encode(buf.getvalue()).decode()
    ids = []
    for name, data in (("Good", _upload_json(4)), ("Broken", _upload_json(uv_data=broken))):
        r = client.post("/api/submissions", headers={"Authorization": f"Bearer {token}"},
                        data={"name": name, "file": (io.BytesIO(data), "p.json")})  # fmt: skip
        assert r.status_code == 202, r.json
        ids.append(r.json["id"])
    first = _worker(store, pause="after-claim:120")
    try:
        _wait(lambda: _rows(store)[ids[0]][0] == "scoring", 60, "the first claim")
        assert _rows(store)[ids[0]][2] == first.pid
        # a second worker is refused while the first holds the lock
        second = _worker(store, "--once")
        assert second.wait(60) == EXIT_LOCKED
        os.kill(first.pid, signal.SIGKILL)
        first.wait(10)
    finally:
        if first.poll() is None:
            first.kill()
    assert _rows(store)[ids[0]][:2] == ("scoring", 1)  # left behind by the dead worker
    again = _worker(store, "--once", capture=True)
    _, err = again.communicate(timeout=120)
    assert again.returncode == 0, err
    rows = _rows(store)
    assert rows[ids[0]][:2] == ("done", 2) and rows[ids[1]][:2] == ("failed", 1)
    entries = _entries(store)
    assert [e["server"]["submission_id"] for e in entries] == [ids[0]]
    assert entries[0]["method"] == {"name": "Good", "team": "gamma", "url": "", "description": ""}
    error = rows[ids[1]][4]
    assert "part id > 24" in error and "\n" not in error
    assert str(tmp_path) not in error and str(GT) not in error and "Traceback" not in error


def test_serve_end_to_end_kill9_and_sigterm(tmp_path, capsys):
    store = tmp_path / "lb"
    token = _add_team(store, "delta", capsys)
    # serve() whose worker pauses after writing the entry (see tests/_worker_faults.py)
    cmd = [sys.executable, str(FAULTS), "serve", "after-write:120", str(store), str(GT),
           "hidden", "10"]  # fmt: skip
    serve = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        line = serve.stdout.readline()
        assert line.startswith("serving http://127.0.0.1:"), line
        port = int(line.split(":")[2].split("/")[0])
        st, _, body = submit(port, token, data=PREDS.read_bytes(), name="Delta <net>",
                             fields={"url": "https://example.org/delta"})  # fmt: skip
        assert st == 202, body
        sub_id = json.loads(body)["id"]
        # the worker writes the entry, then pauses before marking the job done: kill it there
        _wait(lambda: _entries(store), 90, "the first entry")
        state, attempts, pid, *_ = _rows(store)[sub_id]
        assert (state, attempts) == ("scoring", 1) and pid
        os.kill(pid, signal.SIGKILL)
        # the supervisor restarts the worker, which adopts the entry instead of rescoring
        _wait(lambda: _rows(store)[sub_id][0] == "done", 60, "the restarted worker")
        state, attempts, _, entry_id, error = _rows(store)[sub_id]
        entries = _entries(store)
        assert attempts == 2 and error is None and len(entries) == 1
        assert entries[0]["server"]["submission_id"] == sub_id and entries[0]["split"] == "hidden"
        assert (store / "entries" / f"{entry_id}.json").is_file()

        st, _, body = call(port, "GET", f"/api/submissions/{sub_id}", token=token)
        scores = json.loads(body)["scores"]
        assert st == 200 and scores["GPSm AP"].count("[") == 1
        st, _, page = call(port, "GET", "/")
        assert st == 200 and b"Delta &lt;net&gt;" in page and b"<net>" not in page
        assert entry_id.encode() in page and b'href="https://example.org/delta"' in page
        st, _, page = call(port, "GET", f"/submissions/{sub_id}", cookie=token)
        assert st == 200 and b"done" in page and b"GPSm AP" in page
        worker_pid = int(subprocess.check_output(["pgrep", "-P", str(serve.pid)]).split()[0])
    finally:
        serve.send_signal(signal.SIGTERM)
        try:
            rc = serve.wait(30)
        except subprocess.TimeoutExpired:
            serve.kill()
            raise
        finally:
            serve.stdout.close()
    assert rc == 0
    with pytest.raises(ProcessLookupError):  # SIGTERM stopped the worker too
        os.kill(worker_pid, 0)
