"""Leaderboard store, submission, ranking and rendering."""

from __future__ import annotations

import json
import re
import warnings
from pathlib import Path

import pytest

from dpeval.errors import DpevalWarning, FormatError, ParamsError
from dpeval.leaderboard import rank, read_entries, render_store, submit, write_entry
from dpeval.leaderboard.cli import add_leaderboard_parser
from dpeval.leaderboard.store import ENTRY_SCHEMA, Entry, slugify, validate_entry

ROOT = Path(__file__).resolve().parents[2]
PREDS, GT = ROOT / "examples" / "preds.json", ROOT / "examples" / "gt.json"
SHA_A, SHA_B, SHA_GT = "a" * 64, "b" * 64, "c" * 64


def _entry(
    name: str,
    value: float,
    lo: float,
    hi: float,
    *,
    split: str = "minival2014",
    template_sha: str = SHA_A,
    boxes: str = "detected",
    url: str = "",
    team: str = "",
    description: str = "",
    date: str = "2026-01-01T00:00:00.000000Z",
) -> dict:
    """A minimal valid entry whose GPSm AP is ``value`` with interval [lo, hi]."""
    tpl = {"id": "open", "sha256": template_sha}
    inputs = {"predictions_sha256": "d" * 64, "ground_truth_sha256": SHA_GT}
    iv = {"value": value, "ci_low": lo, "ci_high": hi, "std": 0.01}
    return {
        "schema": ENTRY_SCHEMA,
        "method": {"name": name, "team": team, "url": url, "description": description},
        "split": split,
        "boxes": boxes,
        "protocol": "challenge2019",
        "template": tpl,
        "inputs": inputs,
        "score": {
            "template": dict(tpl),
            "protocol": "challenge2019",
            "inputs": dict(inputs),
            "metrics": {"gpsm": {"AP": value}, "iou": {"AP": 1 - value}},
            "per_part": {"1": {"name": "torso back", "AUC10": value}},
        },
        "intervals": {"gpsm_AP": iv, "iou_AP": {"value": 1 - value, "ci_low": None,
                                                "ci_high": None, "std": None}},
        "bootstrap": {"resamples": 10, "seed": 0, "level": 0.95},
        "validation": {"warnings": {}},
        "dpeval_version": "0.0.0",
        "hardware": {"cpu_count": 1},
        "date": date,
        "git_commit": None,
    }  # fmt: skip


def _store(tmp_path: Path, *entries: dict) -> Path:
    store = tmp_path / "lb"
    for e in entries:
        write_entry(store, e)
    return store


@pytest.fixture(scope="module")
def submitted(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Entry]]:
    store = tmp_path_factory.mktemp("store")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DpevalWarning)
        first = submit(PREDS, GT, store=store, name="Example net", resamples=20)
        second = submit(PREDS, GT, store=store, name="Example net", resamples=20)
    return store, [first, second]


# ---------------------------------------------------------------------------- submit


def test_submit_twice_writes_two_entries_none_overwritten(submitted):
    store, (first, second) = submitted
    assert first.path != second.path
    files = sorted((store / "entries").glob("*.json"))
    assert [f.name for f in files] == sorted([first.path.name, second.path.name])
    assert re.fullmatch(r"example-net-\d{8}T\d{6}Z-[0-9a-f]{10}(-\d+)?", first.id)
    on_disk = [json.loads(f.read_text()) for f in files]
    assert {e["date"] for e in on_disk} == {first.data["date"], second.data["date"]}
    assert not list((store / "entries").glob(".tmp-*"))


def test_submitted_entry_content(submitted):
    _, (entry, _) = submitted
    d = entry.data
    assert d["schema"] == ENTRY_SCHEMA
    assert set(d["score"]["metrics"]) >= {"gps_paper", "gps_perpart", "gpsm", "iou", "points"}
    assert d["score"]["template"] == d["template"]
    assert d["geodesics"] == "engine-fw2"  # the engine's numbers (engine version)
    assert len(d["inputs"]["predictions_sha256"]) == 64
    assert d["inputs"]["n_images"] == 8
    for key in ("gpsm_AP", "gps_perpart_AP", "gps_paper_AP", "iou_AP", "AUC10", "AUC30"):
        iv = d["intervals"][key]
        assert iv["ci_low"] <= iv["value"] <= iv["ci_high"]
    assert d["bootstrap"] == {"resamples": 20, "seed": 0, "level": 0.95}
    assert d["validation"]["warnings"]["ground-truth images without any prediction"] == 1
    assert d["hardware"]["cpu_count"] >= 1 and d["date"].endswith("Z")
    assert d["score"]["metrics"]["gpsm"]["AP"] == pytest.approx(d["intervals"]["gpsm_AP"]["value"])
    assert [e.id for e in read_entries(submitted[0])] == sorted(e.id for e in submitted[1])


def test_same_content_same_second_gets_a_new_name(tmp_path):
    e = _entry("Twin", 0.5, 0.4, 0.6)
    store = _store(tmp_path, e, e, e)
    names = sorted(p.name for p in (store / "entries").glob("*.json"))
    assert len(names) == 3 and len(set(names)) == 3


def test_submit_warns_about_images_over_max_dets(tmp_path):
    recs = json.loads(PREDS.read_text())
    img = recs[0]["image_id"]
    extra = [dict(recs[0], score=0.01 * k) for k in range(1, 25)]
    path = tmp_path / "many.json"
    path.write_text(json.dumps(recs + extra))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", DpevalWarning)
        e = submit(path, GT, store=tmp_path / "lb", name="many", resamples=5)
    assert any("max_dets=20" in str(w.message) for w in caught)
    w = e.data["validation"]["warnings"]
    n_img = sum(r["image_id"] == img for r in recs + extra)
    assert w["detections beyond max_dets=20 (not scored)"] == n_img - 20
    assert any("max_dets" in k and v == 1 for k, v in w.items() if k.startswith("images"))


def test_submit_rejects_unknown_images_and_bad_fields(tmp_path):
    recs = json.loads(PREDS.read_text())
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps([dict(recs[0], image_id=999999)]))
    with pytest.raises(FormatError, match="absent from the ground"):
        submit(bad, GT, store=tmp_path / "lb", name="x", resamples=5)
    with pytest.raises(FormatError, match="http"):
        submit(PREDS, GT, store=tmp_path / "lb", name="x", url="javascript:alert(1)", resamples=5)
    with pytest.raises(ParamsError):
        submit(PREDS, GT, store=tmp_path / "lb", name="x", boxes="oracle", resamples=5)
    assert not (tmp_path / "lb" / "entries").exists() or not list(
        (tmp_path / "lb" / "entries").iterdir()
    )


# ---------------------------------------------------------------------------- store


def test_malformed_entry_is_named(tmp_path):
    store = _store(tmp_path, _entry("Good", 0.5, 0.4, 0.6))
    bad = store / "entries" / "broken-entry.json"
    bad.write_text("{not json")
    with pytest.raises(FormatError, match=re.escape(str(bad))):
        read_entries(store)
    bad.write_text(json.dumps({**_entry("X", 0.5, 0.4, 0.6), "boxes": "oracle"}))
    with pytest.raises(FormatError, match=r"broken-entry\.json.*boxes"):
        read_entries(store)


def test_entry_validation_checks_consistency():
    e = _entry("X", 0.5, 0.4, 0.6)
    e["score"]["template"]["sha256"] = SHA_B
    with pytest.raises(FormatError, match="template"):
        validate_entry(e, "x.json")
    with pytest.raises(FormatError, match="name"):
        validate_entry(_entry("", 0.5, 0.4, 0.6))
    with pytest.raises(FormatError, match="split"):
        validate_entry(_entry("X", 0.5, 0.4, 0.6, split="../up"))


@pytest.mark.parametrize(
    "name",
    ["../../escape", "..", "/etc/passwd", "a/../../b", "..\\..\\win", "\u540d\u524d", "...."],
)
def test_names_cannot_escape_the_store(tmp_path, name):
    store = tmp_path / "lb"
    entry = write_entry(store, _entry(name, 0.5, 0.4, 0.6))
    assert entry.path.resolve().parent == (store / "entries").resolve()
    assert [p.name for p in tmp_path.rglob("*.json")] == [entry.path.name]
    assert re.fullmatch(r"[a-z0-9-]+", slugify(name))


# ---------------------------------------------------------------------------- rank


def test_groups_are_never_mixed(tmp_path):
    store = _store(
        tmp_path,
        _entry("A", 0.6, 0.55, 0.65),
        _entry("B", 0.9, 0.85, 0.95, template_sha=SHA_B),
        _entry("C", 0.7, 0.65, 0.75, split="test2015"),
        _entry("D", 0.5, 0.45, 0.55, boxes="gt"),
        _entry("E", 0.4, 0.35, 0.45),
    )
    groups = rank(read_entries(store))
    names = [[r.entry.name for r in g.rows] for g in groups]
    assert sorted(names) == sorted([["A", "E"], ["B"], ["C"], ["D"]])
    for g in groups:
        assert len({r.entry.group for r in g.rows}) == 1
    only = rank(read_entries(store), split="test2015")
    assert [[r.entry.name for r in g.rows] for g in only] == [["C"]]


def test_entries_of_other_geodesics_are_ranked_apart(tmp_path):
    """An entry without the field is an engine-fw1 one; engine versions and the official
    table never share a ranking."""
    new = {**_entry("N", 0.6, 0.55, 0.65), "geodesics": "engine-fw2"}
    legacy = {**_entry("L", 0.8, 0.75, 0.85), "geodesics": "legacy"}
    store = _store(tmp_path, _entry("O", 0.7, 0.65, 0.75), new, legacy)
    groups = rank(read_entries(store))
    assert sorted([r.entry.name for r in g.rows] for g in groups) == [["L"], ["N"], ["O"]]
    assert {g.rows[0].entry.group.geodesics for g in groups} == {
        "engine-fw1",
        "engine-fw2",
        "legacy",
    }
    labels = {g.rows[0].entry.name: g.key.label() for g in groups}
    assert "geodesics engine-fw2" in labels["N"]


def test_ranking_order_and_significance_mark():
    entries = [
        Entry(f"e{i}", None, validate_entry(_entry(n, v, lo, hi)))
        for i, (n, v, lo, hi) in enumerate(
            [
                ("third", 0.60, 0.50, 0.70),  # overlaps "second" -> mark
                ("first", 0.80, 0.78, 0.82),
                ("second", 0.70, 0.65, 0.75),  # above: [0.78, 0.82], no overlap
                ("fourth", 0.40, 0.35, 0.45),  # above: [0.50, 0.70], no overlap
                ("fifth", 0.40, 0.38, 0.42),  # equal value: same rank, overlaps
            ]
        )
    ]
    (group,) = rank(entries, "gpsm")
    got = [(r.rank, r.entry.name, r.not_significant) for r in group.rows]
    assert got == [
        (1, "first", False),
        (2, "second", False),
        (3, "third", True),
        (4, "fourth", False),
        (4, "fifth", True),
    ]
    (by_iou,) = rank(entries, "iou")  # no intervals: ordered, never marked
    assert [r.entry.name for r in by_iou.rows][:1] == ["fourth"]
    assert not any(r.not_significant for r in by_iou.rows)
    with pytest.raises(ParamsError, match="unknown metric"):
        rank(entries, "bleu")


def test_touching_intervals_count_as_overlap():
    a = Entry("a", None, _entry("a", 0.8, 0.7, 0.9))
    b = Entry("b", None, _entry("b", 0.6, 0.5, 0.7))
    (g,) = rank([a, b])
    assert [r.not_significant for r in g.rows] == [False, True]


# ---------------------------------------------------------------------------- render


def test_render_escapes_and_has_one_row_per_entry(tmp_path):
    evil = '<script>alert("x")</script>'
    store = _store(
        tmp_path,
        _entry(evil, 0.6, 0.5, 0.7, team=evil, description=evil, url="https://e.org/?a=1&b=<2>"),
        _entry("Plain | net", 0.5, 0.45, 0.55, url="https://example.org/p"),
        _entry("Other split", 0.5, 0.45, 0.55, split="test"),
    )
    md, page = render_store(store)
    text, readme = page.read_text(), md.read_text()
    assert text.count("<script>") == 1  # only the page's own sorting script
    assert "<script>alert" not in text and "<script>alert" not in readme
    assert "&lt;script&gt;" in text
    assert text.count('<tr class="entry">') == 3
    assert text.count('<table class="lb">') == 2
    assert 'href="https://example.org/p"' in text
    assert "https://e.org/?a=1&b=<2>" not in text  # unsafe URL: no raw link at all
    assert "<svg" in text and 'http-equiv="Content-Security-Policy"' in text
    assert readme.count("| 1 |") == 2 and "Plain \\| net" in readme


def test_render_empty_store(tmp_path):
    md, page = render_store(tmp_path / "empty")
    assert "No entries yet" in md.read_text() and "No entries yet" in page.read_text()


# ---------------------------------------------------------------------------- CLI


def test_cli_show_and_render(tmp_path, capsys):
    import argparse

    store = _store(tmp_path, _entry("A", 0.6, 0.5, 0.7), _entry("B", 0.55, 0.5, 0.6))
    parser = argparse.ArgumentParser()
    add_leaderboard_parser(parser.add_subparsers())
    args = parser.parse_args(["leaderboard", "show", "--store", str(store)])
    assert args.func(args) == 0
    out = capsys.readouterr().out
    assert re.search(r"1\s+60\.0 \[50\.0, 70\.0\]\s+A", out)
    assert re.search(r"2\s+≈ 55\.0", out)
    args = parser.parse_args(["leaderboard", "render", "--store", str(store)])
    assert args.func(args) == 0
    assert (store / "index.html").is_file() and (store / "README.md").is_file()
    with pytest.raises(SystemExit):
        parser.parse_args(["leaderboard", "submit", "p.json", "--gt", "g", "--name", "x",
                           "--resamples", "0"])  # fmt: skip


def test_training_record_is_validated_and_kept(tmp_path):
    e = _entry("X", 0.5, 0.4, 0.6)
    e["training"] = {"config": {"depth": 18}, "iterations": 2000, "hardware": "cpu"}
    assert validate_entry(e)["training"]["iterations"] == 2000
    store = _store(tmp_path, e)
    assert read_entries(store)[0].data["training"] == e["training"]
    for bad, msg in (
        ([1, 2], "training"),
        ({"x": "y" * 20000}, "at most 16384"),
        ({"x": float("nan")}, "finite"),
    ):
        e["training"] = bad
        with pytest.raises(FormatError, match=msg):
            validate_entry(e, "x.json")


def test_cli_submit_training_file_errors(tmp_path):
    import argparse

    parser = argparse.ArgumentParser()
    add_leaderboard_parser(parser.add_subparsers())
    base = ["leaderboard", "submit", str(PREDS), "--gt", str(GT), "--name", "x",
            "--store", str(tmp_path / "lb"), "--training"]  # fmt: skip
    (tmp_path / "t.json").write_text("[1]")
    for path, msg in ((tmp_path / "missing.json", "cannot read"), (tmp_path / "t.json", "object")):
        args = parser.parse_args([*base, str(path)])
        with pytest.raises(FormatError, match=msg):
            args.func(args)
    assert not (tmp_path / "lb").exists()
