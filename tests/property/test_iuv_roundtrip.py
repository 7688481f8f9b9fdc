"""Property: IUV maps of any shape survive every encoding exactly."""

from __future__ import annotations

import tempfile
import warnings
from pathlib import Path

import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from dpeval.errors import DpevalWarning  # noqa: E402
from dpeval.formats import decode_iuv, encode_iuv, load_predictions, save_predictions  # noqa: E402
from dpeval.formats.model import Detection, Predictions  # noqa: E402


@st.composite
def iuv_maps(draw):
    h = draw(st.integers(1, 40))
    w = draw(st.integers(1, 40))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    iuv = rng.integers(0, 256, (3, h, w), dtype=np.uint8)
    style = draw(st.sampled_from(["noise", "blobs", "empty", "extremes"]))
    if style == "blobs":
        iuv[0] = rng.integers(0, 25) * (np.arange(w)[None, :] > w // 2)
    elif style == "empty":
        iuv[:] = 0
    elif style == "extremes":
        iuv[1:] = rng.choice([0, 255], (2, h, w)).astype(np.uint8)
    iuv[0] = np.minimum(iuv[0], 24) if style != "noise" else rng.integers(0, 25, (h, w))
    return iuv


@settings(deadline=None, max_examples=60)
@given(iuv=iuv_maps(), level=st.integers(0, 9))
def test_png_round_trip(iuv, level):
    text = encode_iuv(iuv, compress_level=level)
    out = decode_iuv(text, iuv.shape)
    assert out.shape == iuv.shape and out.dtype == np.uint8
    np.testing.assert_array_equal(out, iuv)


@pytest.mark.parametrize("shape", [(3, 1, 1), (3, 1, 57), (3, 57, 1), (3, 2, 300)])
def test_thin_maps(shape):
    iuv = np.random.default_rng(0).integers(0, 25, shape, dtype=np.uint8)
    np.testing.assert_array_equal(decode_iuv(encode_iuv(iuv), shape), iuv)


@settings(deadline=None, max_examples=15)
@given(
    maps=st.lists(iuv_maps(), min_size=0, max_size=4),
    fmt=st.sampled_from(["challenge-json", "d2-pickle", "d2-compressed", "dpeval-npz"]),
)
def test_every_writer_round_trips(maps, fmt):
    dets = tuple(
        Detection(
            k,
            1,
            np.array([0.5 * k, 1.0, m.shape[2], m.shape[1]]),
            1.0 / (k + 3),
            m.shape,
            k,
            _iuv=m,
        )
        for k, m in enumerate(maps)
    )
    src = Predictions("instances", dets)
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "p.out"
        save_predictions(src, path, fmt)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DpevalWarning)  # "empty predictions" for []
            back = load_predictions(path, format=fmt)
    assert len(back.detections) == len(dets)
    for a, b in zip(dets, back.detections, strict=True):
        assert b.score == a.score and b.image_id == a.image_id
        np.testing.assert_array_equal(b.bbox, a.bbox)
        np.testing.assert_array_equal(b.load_iuv(), a.load_iuv())
