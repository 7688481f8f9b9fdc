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
