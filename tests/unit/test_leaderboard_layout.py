"""Layout of the leaderboard package (issue 17): one text rule, no import circles, Flask
only for the server, one board template for the render and the server, fault points
injected through the worker's constructor."""

from __future__ import annotations

import ast
import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest
from test_leaderboard import _entry

from dpeval.leaderboard import rank, read_entries, write_entry
from dpeval.leaderboard.render import render_html
from dpeval.leaderboard.text import format_interval, has_control, one_line, percent

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "dpeval" / "leaderboard"
GT = ROOT / "examples" / "gt.json"


# ---------------------------------------------------------------------------- text


def test_format_interval_and_percent():
    assert format_interval(0.5964, 0.5561, 0.7061) == "59.6 [55.6, 70.6]"
    assert format_interval(0.05, 0.0, 0.1) == "5.0 [0.0, 10.0]"
    assert format_interval(0.5964, None, 0.7) == "59.6" == format_interval(0.5964, 0.5, None)
    assert format_interval(None, None, None) == "—" == percent(None)
    assert percent(1.0) == "100.0" and percent(0.00049) == "0.0"


def test_one_control_character_rule():
    for c in [chr(i) for i in range(32)] + ["\x7f"]:
        assert has_control(f"a{c}b"), repr(c)
        # free text may have paragraphs (tab, new line); nothing else
        assert has_control(f"a{c}b", multiline=True) == (c not in "\t\n"), repr(c)
    for ok in ("plain", "ünïcode ≈ κ", "a b", "\x80 is not C0"):
        assert not has_control(ok) and not has_control(ok, multiline=True)
    assert one_line("a\n\t b  c", 4) == "a b "


def test_every_module_uses_the_one_rule():
    """No module but text.py spells a control-character class or a percent format."""
    for path in PACKAGE.glob("*.py"):
        if path.name == "text.py":
            continue
        src = path.read_text()
        assert "\\x1f" not in src and "\\x00" not in src, path.name
        assert "100 * " not in src, f"{path.name} formats percent itself"


# ---------------------------------------------------------------------------- imports


def _imports(path: Path) -> set[str]:
    """Sibling modules imported by ``path`` anywhere (top level or inside functions)."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            if node.module:
                out.add(node.module.split(".")[0])
            else:
                out.update(a.name for a in node.names)
    return out


def test_no_import_circle_in_the_leaderboard_package():
    graph = {p.stem: _imports(p) - {p.stem} for p in PACKAGE.glob("*.py")}
    graph.pop("__init__")
    state: dict[str, int] = {}  # 1 visiting, 2 done

    def visit(node: str, trail: list[str]) -> None:
        if state.get(node) == 2 or node not in graph:
            return
        assert state.get(node) != 1, "import circle: " + " -> ".join([*trail, node])
        state[node] = 1
        for nxt in sorted(graph[node]):
            visit(nxt, [*trail, node])
        state[node] = 2

    for node in sorted(graph):
        visit(node, [])
    assert "supervisor" not in graph["server"] | graph["worker"] | graph["views"]
    assert "server" not in graph["views"] | graph["worker"]


def test_package_render_and_cli_work_without_flask(tmp_path):
    """Flask is the 'serve' extra: importing, rendering and the CLI parser must not need it."""
    code = (
        "import sys; sys.modules['flask'] = None; sys.modules['waitress'] = None\n"
        "import dpeval.leaderboard as lb\n"
        "from dpeval.cli import main\n"
        f"sys.exit(main(['leaderboard', 'render', '--store', {str(tmp_path / 'lb')!r}]))\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                       timeout=120)  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert r.stdout.count("wrote ") == 2 and (tmp_path / "lb" / "index.html").is_file()


# ---------------------------------------------------------------------------- pages


def test_served_board_is_the_rendered_board_plus_navigation(tmp_path):
    pytest.importorskip("flask")
    from dpeval.formats import load_ground_truth
    from dpeval.leaderboard.server import create_app

    store = tmp_path / "lb"
    sha = load_ground_truth(GT).sha256

    def add(name: str, v: float, **kw: str) -> None:
        e = _entry(name, v, v - 0.1, v + 0.1, split="test", **kw)
        e["inputs"]["ground_truth_sha256"] = e["score"]["inputs"]["ground_truth_sha256"] = sha
        write_entry(store, e)

    add("A <b>", 0.6, url="https://example.org/?a=1&b=2", description="two\nlines")
    add("B & co", 0.55)
    add("Other GT", 0.9)  # not on this ground truth: not on the served page
    other = next((store / "entries").glob("other-gt-*.json"))
    other.write_text(other.read_text().replace(sha, "e" * 64))
    app = create_app(store, GT)
    served = app.test_client().get("/").get_data(as_text=True)
    static = render_html(rank([e for e in read_entries(store) if e.name != "Other GT"]))
    nav = (
        '<p><a href="/submissions">My submissions</a> · <a href="/login">Sign in</a> · split '
        "<code>test</code> (hidden ground truth)</p>\n"
    )
    assert served.count(nav) == 1 and served.replace(nav, "") == static
    assert "A &lt;b&gt;" in static and "B &amp; co" in static and "<b>" not in static
    assert 'href="https://example.org/?a=1&amp;b=2"' in static and "Other GT" not in static
    add("C", 0.7)  # the page follows the entries folder
    assert ">C</td>" in app.test_client().get("/").get_data(as_text=True)


# ---------------------------------------------------------------------------- worker


class _Crash(Exception):
    pass


def test_fault_points_and_adoption_after_a_crash(tmp_path):
    """``faults`` is called after the claim and after the entry is written; a worker
    that dies between writing and marking done leaves an entry the next one adopts."""
    from dpeval.leaderboard.db import Database, default_db_path, uploads_dir
    from dpeval.leaderboard.worker import FAULT_PHASES, ScoringWorker

    store = tmp_path / "lb"
    db = Database(default_db_path(store))
    team_id, _ = db.add_team("gamma")
    uploads_dir(store).mkdir(parents=True)

    def place(sub_id: int) -> str:
        (uploads_dir(store) / f"{sub_id}.json").write_bytes(b"[]")
        return f"{sub_id}.json"

    sub_id = db.add_submission(team_id, {"name": "Net"}, size=2, place_file=place, per_team=9,
                               queue_cap=9, sha256=hashlib.sha256(b"[]").hexdigest())  # fmt: skip
    seen: list[tuple[str, int]] = []
    builds: list[str] = []

    def build(upload, gt, **kw):
        builds.append(upload)
        return _entry(kw["name"], 0.5, 0.4, 0.6, split=kw["split"], team=kw["team"])

    def crash_after_write(phase: str, job) -> None:
        seen.append((phase, job.attempts))
        if phase == "after-write":
            raise _Crash

    first = ScoringWorker(store, GT, faults=crash_after_write)
    with pytest.raises(_Crash):
        first.score(db.claim_next(pid=1), build=build)
    assert [p for p, _ in seen] == list(FAULT_PHASES) and len(builds) == 1
    assert db.get(sub_id).state == "scoring"  # the entry exists, the job is not done
    (written,) = [p for p in (store / "entries").glob("*.json")]

    second = ScoringWorker(store, GT)
    assert second.lock() and second.recover() == [sub_id]
    second.score(db.claim_next(pid=2), build=build)
    row = db.get(sub_id)
    assert (row.state, row.attempts, row.entry) == ("done", 2, written.stem)
    assert len(builds) == 1 and len(list((store / "entries").glob("*.json"))) == 1


def test_cli_serve_prints_its_address_and_stops_on_sigterm(tmp_path):
    """``dpeval leaderboard serve`` end to end through the CLI's output layer (the kill
    tests start ``serve()`` through tests/_worker_faults.py instead)."""
    pytest.importorskip("waitress")
    import signal

    cmd = [sys.executable, "-m", "dpeval.cli", "leaderboard", "serve", "--gt", str(GT),
           "--store", str(tmp_path / "lb"), "--port", "0"]  # fmt: skip
    serve = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        line = serve.stdout.readline()
        assert line.startswith("serving http://127.0.0.1:") and line.endswith("Ctrl-C stops\n")
        worker = int(subprocess.check_output(["pgrep", "-P", str(serve.pid)]).split()[0])
    finally:
        serve.send_signal(signal.SIGTERM)
        try:
            rc = serve.wait(30)
        finally:
            serve.stdout.close()
    assert rc == 0
    with pytest.raises(ProcessLookupError):  # the supervised worker stopped too
        os.kill(worker, 0)
