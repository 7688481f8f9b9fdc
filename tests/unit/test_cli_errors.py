"""Every subcommand's bad input: exit 2, one stderr line ``dpeval: error: ...``, no
traceback, and no suggested option that the command does not have (issue 13 B).

The CLI runs in-process (``dpeval.cli.main``) with pytest's ``capsys``; inputs are
built once per module from ``examples/``.
"""

from __future__ import annotations

import base64
import copy
import json
import pickle
import re
import struct
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest

from dpeval.cli import _parser, active_parser, main
from dpeval.formats.iuv_png import encode_iuv

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def _corrupt_png_b64(h: int, w: int) -> str:
    """A PNG with a sound header and chunk CRCs but a broken zlib stream."""
    png = base64.b64decode(encode_iuv(np.zeros((3, h, w), np.uint8)))
    (n,) = struct.unpack(">I", png[33:37])
    data = bytearray(png[41 : 41 + n])
    data[2:6] = b"\xff\xff\xff\xff"
    chunk = b"IDAT" + bytes(data)
    body = png[:33] + png[33:37] + chunk + struct.pack(">I", zlib.crc32(chunk)) + png[45 + n :]
    return base64.b64encode(body).decode()


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, str]:
    d = tmp_path_factory.mktemp("cli_errors")
    gt = json.loads((EXAMPLES / "gt.json").read_text())
    preds = json.loads((EXAMPLES / "preds.json").read_text())
    out: dict[str, str] = {}

    def put(name: str, doc, raw: str | bytes | None = None) -> None:
        path = d / name
        if isinstance(raw, bytes):
            path.write_bytes(raw)
        else:
            path.write_text(raw if raw is not None else json.dumps(doc))
        out[name] = str(path)

    put("gt.json", gt)
    put("preds.json", preds)
    bad = copy.deepcopy(gt)
    ann = bad["annotations"][1]
    k = next(i for i, m in enumerate(ann["dp_masks"]) if m)
    ann["dp_masks"][k]["counts"] = ann["dp_masks"][k]["counts"][:-4]
    put("gt_bad_rle.json", bad)
    bad = copy.deepcopy(gt)
    bad["annotations"][2]["category_id"] = 7
    put("gt_bad_category.json", bad)
    bad = copy.deepcopy(gt)
    for a in bad["annotations"]:
        for key in ("dp_x", "dp_y", "dp_I", "dp_U", "dp_V", "dp_masks"):
            a.pop(key, None)
    put("gt_no_dense.json", bad)
    text = json.dumps(gt["annotations"][0])
    put(
        "gt_dup_key.json", None, json.dumps(gt).replace(text, text[:-1] + ', "bbox": [0, 0, 1, 1]}')
    )
    put("gt.pkl", None, pickle.dumps(gt, protocol=4))
    bad = copy.deepcopy(preds)
    bad[3]["category_id"] = 2
    put("preds_category.json", bad)
    bad = copy.deepcopy(preds)
    bad[0]["image_id"] = 99999
    put("preds_unknown_image.json", bad)
    bad = copy.deepcopy(preds)
    bad[0].update(bbox=[600.0, 440.0, 20.0, 20.0], uv_shape=[3, 20, 20],
                  uv_data=_corrupt_png_b64(20, 20))  # fmt: skip
    put("preds_corrupt_far.json", bad)
    put("preds_truncated.json", None, json.dumps(preds)[:5000])
    put(
        "gt_img1.json",
        {
            **gt,
            "images": [i for i in gt["images"] if i["id"] == 1],
            "annotations": [a for a in gt["annotations"] if a["image_id"] == 1],
        },
    )
    put("preds_img1.json", [r for r in preds if r["image_id"] == 1])
    dense = d / "dense"
    dense.mkdir()
    from PIL import Image

    Image.fromarray(np.zeros((480, 640, 3), np.uint8), "RGB").save(dense / "1.png")
    out["dense"] = str(dense)
    (d / "empty").mkdir()
    out["empty"] = str(d / "empty")
    out["lb"] = str(d / "lb")
    out["dir"] = str(d)
    return out


# argv (with {name} placeholders), a regex the message must match
CASES: dict[str, tuple[list[str], str]] = {
    "no command": ([], r"dpeval: no subcommand given"),
    "cache unknown template": (
        ["cache", "build", "--template", "{dir}/nope"],
        r"template '.*nope': no such template or directory",
    ),
    "score missing file": (["score", "{dir}/nope.json", "{gt.json}"], r"nope\.json"),
    "score bad RLE": (
        ["score", "{preds.json}", "{gt_bad_rle.json}"],
        r"dp_masks\[\d+\] is not a valid RLE",
    ),
    "score GT category": (
        ["score", "{preds.json}", "{gt_bad_category.json}"],
        r"annotation 2 .*category_id 7",
    ),
    "score pred category": (
        ["score", "{preds_category.json}", "{gt.json}"],
        r"record 3 .*category_id 2",
    ),
    "score duplicate key": (
        ["score", "{preds.json}", "{gt_dup_key.json}"],
        r"annotations\[0\].*'bbox' appears more",
    ),
    "score GT pickle": (
        ["score", "{preds.json}", "{gt.pkl}"],
        r"gt\.pkl: is a Python pickle, not JSON",
    ),
    "score corrupt far map": (
        ["score", "{preds_corrupt_far.json}", "{gt.json}"],
        r"detection 0 .*truncated or corrupt",
    ),
    "score truncated JSON": (["score", "{preds_truncated.json}", "{gt.json}"], r"looks truncated"),
    "score unknown image": (
        ["score", "{preds_unknown_image.json}", "{gt.json}"],
        r"--allow-unknown-images",
    ),
    "score no dense GT": (
        ["score", "{preds.json}", "{gt_no_dense.json}"],
        r"none of its 14 annotation",
    ),
    "score workers -3": (["score", "{preds.json}", "{gt.json}", "--workers", "-3"], r"--workers"),
    "score workers 0": (["score", "{preds.json}", "{gt.json}", "--workers", "0"], r"--workers"),
    "score bad gate": (
        ["score", "{preds.json}", "{gt.json}", "--fail-under", "AP"],
        r"METRIC\.STAT=VALUE",
    ),
    "score undefined gate": (
        [
            "score",
            "{preds_img1.json}",
            "{gt_img1.json}",
            "-q",
            "--fail-under",
            "gps_perpart.APm=0.5",
        ],
        r"APm.*undefined",
    ),
    "score dense for AP": (
        ["score", "{dense}", "{gt.json}", "--metric", "gps"],
        r"use --metric points",
    ),
    "report dense": (
        ["report", "{dense}", "{gt.json}", "-o", "{dir}/r"],
        r"dpeval score --metric points",
    ),
    "score bad metric": (["score", "{preds.json}", "{gt.json}", "--metric", "nope"], r"--metric"),
    "report unknown image": (
        ["report", "{preds_unknown_image.json}", "{gt.json}", "-o", "{dir}/r"],
        r"not in the ground truth",
    ),
    "report bad RLE": (
        ["report", "{preds.json}", "{gt_bad_rle.json}", "-o", "{dir}/r"],
        r"not a valid RLE",
    ),
    "report workers 0": (
        ["report", "{preds.json}", "{gt.json}", "-o", "{dir}/r", "--workers", "0"],
        r"--workers",
    ),
    "compare unknown image": (
        ["compare", "{preds_unknown_image.json}", "{preds.json}", "{gt.json}"],
        r"not in the ground truth",
    ),
    "compare bad resamples": (
        ["compare", "{preds.json}", "{preds.json}", "{gt.json}", "--resamples", "3"],
        r"--resamples",
    ),
    "convert bad suffix": (["convert", "{preds.json}", "{dir}/out.xyz"], r"--to NAME"),
    "convert missing": (["convert", "{dir}/nope.json", "{dir}/o.json"], r"nope\.json"),
    "validate nothing": (["validate"], r"nothing to check"),
    "validate empty dir": (["validate", "--predictions", "{empty}"], r"holds no predictions"),
    "validate unknown image": (
        ["validate", "--predictions", "{preds_unknown_image.json}", "--gt", "{gt.json}"],
        r"not in the ground truth",
    ),
    "validate pred category": (
        ["validate", "--predictions", "{preds_category.json}", "--gt", "{gt.json}"],
        r"category_id 2",
    ),
    "validate bad RLE": (["validate", "--gt", "{gt_bad_rle.json}"], r"not a valid RLE"),
    "validate duplicate key": (
        ["validate", "--gt", "{gt_dup_key.json}"],
        r"appears more than once",
    ),
    "validate corrupt far map": (
        ["validate", "--predictions", "{preds_corrupt_far.json}"],
        r"truncated or corrupt",
    ),
    "synth no images": (["synth", "{dir}/s", "--images", "0"], r"--images"),
    "synth bad size": (["synth", "{dir}/s", "--size", "big"], r"--size 'big'"),
    "template no action": (["template"], r"no subcommand"),
    "template missing": (["template", "info", "{dir}/nope"], r"nope"),
    "leaderboard no action": (["leaderboard"], r"no subcommand"),
    "submit bad RLE": (
        [
            "leaderboard",
            "submit",
            "{preds.json}",
            "--gt",
            "{gt_bad_rle.json}",
            "--name",
            "m",
            "--store",
            "{lb}",
        ],
        r"not a valid RLE",
    ),
    "submit pred category": (
        [
            "leaderboard",
            "submit",
            "{preds_category.json}",
            "--gt",
            "{gt.json}",
            "--name",
            "m",
            "--store",
            "{lb}",
        ],
        r"category_id 2",
    ),
    "submit unknown image": (
        [
            "leaderboard",
            "submit",
            "{preds_unknown_image.json}",
            "--gt",
            "{gt.json}",
            "--name",
            "m",
            "--store",
            "{lb}",
        ],
        r"absent from the ground",
    ),
    "submit no name": (["leaderboard", "submit", "{preds.json}", "--gt", "{gt.json}"], r"--name"),
    "show bad metric": (["leaderboard", "show", "--store", "{lb}", "--metric", "x"], r"--metric"),
    "render bad metric": (
        ["leaderboard", "render", "--store", "{lb}", "--metric", "x"],
        r"--metric",
    ),
    "serve bad GT": (
        ["leaderboard", "serve", "--gt", "{gt_bad_rle.json}", "--store", "{lb}"],
        r"not a valid RLE",
    ),
    "admin no action": (["leaderboard", "admin"], r"no subcommand"),
    "cse demo missing GT": (
        ["cse", "demo", "{dir}/nope.json", "{dir}/o.npz", "--embeddings-out", "{dir}/e.npz"],
        r"nope\.json",
    ),
}


def _fill(argv: list[str], files: dict[str, str]) -> list[str]:
    return [re.sub(r"\{([^}]+)\}", lambda m: files[m.group(1)], a) for a in argv]


def _options_named(message: str, argv: list[str]) -> list[tuple[list[str], str]]:
    """(command argv, option) for every ``--option`` the message suggests: an option
    after ``dpeval <command>`` in the text belongs to that command, others to argv's."""
    out = []
    for m in re.finditer(r"(?<![\w-])--[a-z][a-z0-9-]*", message):
        before = message[: m.start()]
        named = re.findall(r"dpeval((?: [a-z]+)+)[ :]", before + " ")
        cmd = named[-1].split() if named else argv
        out.append((cmd, m.group(0)))
    return out


def _parser_for(argv: list[str]):
    parser = _parser()
    node = parser
    for token in argv:
        subs = [a for a in node._actions if a.__class__.__name__ == "_SubParsersAction"]
        if not subs or token not in subs[0].choices:
            break
        node = subs[0].choices[token]
    return node


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_input_one_line_exit_2(case, files, capsys, monkeypatch):
    monkeypatch.setattr(sys, "argv", ["dpeval"])
    argv, pattern = CASES[case]
    argv = _fill(argv, files)
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse usage errors exit from inside parse_args
        code = exc.code
    captured = capsys.readouterr()
    lines = [ln for ln in captured.err.splitlines() if ln.strip()]
    assert code == 2, (case, captured.err)
    assert len(lines) == 1, (case, lines)
    assert lines[0].startswith("dpeval: error: "), (case, lines[0])
    assert "Traceback" not in captured.err and "Traceback" not in captured.out
    assert re.search(pattern, lines[0]), (case, lines[0])
    for cmd, option in _options_named(lines[0], argv):
        node = _parser_for(cmd)
        known = {s for a in node._actions for s in a.option_strings}
        assert option in known, f"{case}: message suggests {option}, not an option of {node.prog}"


def test_report_and_compare_never_suggest_allow_unknown_images(files, capsys):
    """They have no such flag: the remedy is dropped, the rest of the message stays."""
    for argv in (CASES["report unknown image"][0], CASES["compare unknown image"][0]):
        assert main(_fill(argv, files)) == 2
        err = capsys.readouterr().err
        assert "allow-unknown-images" not in err and "allow_unknown_images" not in err
        assert "score against the matching ground truth" in err


def test_active_parser_follows_subcommands():
    parser = _parser()
    args = parser.parse_args(["leaderboard", "admin", "list-teams"])
    assert active_parser(parser, args).prog == "dpeval leaderboard admin list-teams"


def test_every_case_command_is_covered():
    """Each subcommand (and leaderboard action) has at least one bad-input case."""
    parser = _parser()
    top = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
    covered = {argv[0] for argv, _ in CASES.values() if argv}
    assert set(top.choices) <= covered, set(top.choices) - covered
    lb = next(a for a in top.choices["leaderboard"]._actions
              if a.__class__.__name__ == "_SubParsersAction")  # fmt: skip
    covered_lb = {argv[1] for argv, _ in CASES.values() if argv[:1] == ["leaderboard"] and
                  len(argv) > 1}  # fmt: skip
    assert set(lb.choices) <= covered_lb, set(lb.choices) - covered_lb
