"""The command line: help, version, template info, exit codes."""

from __future__ import annotations

import json
import subprocess
import sys

from dpeval import __version__
from dpeval.cli import main


def test_version(capsys):
    try:
        main(["--version"])
    except SystemExit as exc:
        assert exc.code == 0
    assert __version__ in capsys.readouterr().out


def test_help_lists_commands(capsys):
    try:
        main(["--help"])
    except SystemExit as exc:
        assert exc.code == 0
    assert "template" in capsys.readouterr().out


def test_template_info_table(capsys, open_template):
    assert main(["template", "info", "open"]) == 0
    out = capsys.readouterr().out
    assert open_template.checksum in out
    assert f"vertices        {open_template.n_vertices}" in out
    assert "head left" in out and "right hand" in out


def test_template_info_json(capsys, open_template):
    assert main(["template", "info", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["sha256"] == open_template.checksum
    assert len(info["parts"]) == 24
    assert sum(p["faces"] for p in info["parts"]) == open_template.n_faces
    assert all(p["folded_faces"] == 0 for p in info["parts"])


def test_bad_template_exit_code_2(capsys):
    assert main(["template", "info", "/no/such/dir"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("dpeval: error:") and "no such template" in err
    assert "Traceback" not in err


def test_console_script_runs():
    out = subprocess.run(
        [sys.executable, "-m", "dpeval.cli", "--version"], capture_output=True, text=True
    )
    assert out.returncode == 0 and __version__ in out.stdout


# ------------------------------------------------------------------- scoring
EXAMPLES = __import__("pathlib").Path(__file__).resolve().parents[2] / "examples"


def test_score_examples_json_is_deterministic(tmp_path, capsys):
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    args = [str(EXAMPLES / "preds.json"), str(EXAMPLES / "gt.json"), "--quiet"]
    assert main(["score", *args, "--json", str(a)]) == 0
    assert main(["score", *args, "--json", str(b)]) == 0
    assert a.read_bytes() == b.read_bytes()
    doc = json.loads(a.read_text())
    assert set(doc["metrics"]) == {"gps_paper", "gps_perpart", "gpsm", "iou", "points"}
    for key in ("gps_paper", "gps_perpart", "gpsm", "iou"):
        assert set(doc["metrics"][key]) >= {
            "AP",
            "AP50",
            "AP75",
            "APm",
            "APl",
            "AR",
            "AR50",
            "AR75",
            "ARm",
            "ARl",
        }
        assert 0 < doc["metrics"][key]["AP"] < 1
    assert doc["template"]["id"] == "open" and len(doc["template"]["sha256"]) == 64
    assert len(doc["metrics"]["points"]["RCP"]["ratio"]) == 301
    assert len(doc["official_summary"]["gpsm"]) == 18


def test_score_fail_under_gate(capsys):
    args = [str(EXAMPLES / "preds.json"), str(EXAMPLES / "gt.json"), "--metric", "gps", "-q"]
    assert main(["score", *args, "--fail-under", "gps_perpart.AP=0.01"]) == 0
    assert main(["score", *args, "--fail-under", "gps_perpart.AP=0.99"]) == 1
    assert "gate missed: gps_perpart.AP" in capsys.readouterr().err
    assert main(["score", *args, "--fail-under", "gpsm.AP=0.1"]) == 2  # not computed
    assert main(["score", *args, "--fail-under", "nonsense"]) == 2


def test_score_bad_input_exit_2(tmp_path, capsys):
    bad = tmp_path / "preds.json"
    bad.write_text("[{ not json")
    assert main(["score", str(bad), str(EXAMPLES / "gt.json")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("dpeval: error:") and "preds.json" in err and "Traceback" not in err


def test_score_unknown_images(tmp_path, capsys):
    preds = json.loads((EXAMPLES / "preds.json").read_text())
    preds[0]["image_id"] = 999999
    p = tmp_path / "preds.json"
    p.write_text(json.dumps(preds))
    assert main(["score", str(p), str(EXAMPLES / "gt.json"), "-q", "--metric", "gps"]) == 2
    assert "999999" in capsys.readouterr().err
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rc = main(
            [
                "score",
                str(p),
                str(EXAMPLES / "gt.json"),
                "--metric",
                "gps",
                "--allow-unknown-images",
            ]
        )
    assert rc == 0
    assert "predictions left out" in capsys.readouterr().out


def test_convert_round_trip_same_scores(tmp_path, capsys):
    out = tmp_path / "preds.npz"
    assert main(["convert", str(EXAMPLES / "preds.json"), str(out), "--to", "dpeval-npz"]) == 0
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    gt = str(EXAMPLES / "gt.json")
    assert main(["score", str(EXAMPLES / "preds.json"), gt, "-q", "--json", str(a)]) == 0
    assert main(["score", str(out), gt, "-q", "--json", str(b)]) == 0
    ma, mb = json.loads(a.read_text()), json.loads(b.read_text())
    assert ma["metrics"] == mb["metrics"]
    assert mb["inputs"]["predictions_format"] == "dpeval-npz"


def test_validate(capsys):
    assert (
        main(
            [
                "validate",
                "--predictions",
                str(EXAMPLES / "preds.json"),
                "--gt",
                str(EXAMPLES / "gt.json"),
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "all decoded and valid" in out and "with dense points" in out
