"""dpeval never imports torch: not at import, not while scoring (the baselines may)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

_SCRIPT = r"""
import contextlib, io, sys
import dpeval, dpeval.api, dpeval.cli, dpeval.leaderboard, dpeval.formats, dpeval.evaluation
assert "torch" not in sys.modules, "torch imported by a dpeval import"
with contextlib.redirect_stdout(io.StringIO()):
    code = dpeval.cli.main(["score", "examples/preds.json", "examples/gt.json"])
assert code == 0, code
bad = sorted(m for m in sys.modules if m == "torch" or m.startswith("torch."))
print("TORCH_MODULES", bad)
"""


def test_dpeval_never_imports_torch():
    proc = subprocess.run(
        [sys.executable, "-c", _SCRIPT], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "TORCH_MODULES []" in proc.stdout, proc.stdout[-2000:]
