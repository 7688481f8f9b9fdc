"""The bundled example's full ``--json`` output is pinned byte for byte.

The stored file (``tests/data/examples/score_full.json``, see its SOURCE.md) was written
by ``dpeval score examples/preds.json examples/gt.json --json OUT``; any drift in a
number, a key, the order or the formatting fails here.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from dpeval.cli import main

ROOT = Path(__file__).resolve().parents[2]
STORED = ROOT / "tests" / "data" / "examples" / "score_full.json"


@pytest.mark.slow  # ~30 s on a cold geodesic cache (the suite's cache is per session)
def test_example_json_output_is_unchanged(tmp_path, capsys):
    out = tmp_path / "score.json"
    code = main(
        [
            "score",
            str(ROOT / "examples" / "preds.json"),
            str(ROOT / "examples" / "gt.json"),
            "--json",
            str(out),
            "-q",
            "--workers",
            "1",
        ]
    )
    assert code == 0, capsys.readouterr().err
    got, want = out.read_bytes(), STORED.read_bytes()
    if got != want:  # show the first differing line, not two 28 kB blobs
        for n, (a, b) in enumerate(zip(got.splitlines(), want.splitlines(), strict=False)):
            assert a == b, f"line {n + 1}: {a!r} != stored {b!r}"
    assert got == want
