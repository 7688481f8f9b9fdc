"""Stage 1 (template): DensePose's part tables, the one place they are written.

Part ids are 1..24 as in the files (0 is background); every table is indexed by the
id. :mod:`dpeval.params` reads the coarse parts from here (for the per-part kappas),
and the insight stage reads the names and the mirror map.
"""

from __future__ import annotations

__all__ = ["COARSE_PART", "MIRROR_PART", "N_PARTS", "PART_NAMES"]

N_PARTS = 24
"""Number of DensePose chart parts (ids 1..24; 0 is background)."""

PART_NAMES: tuple[str, ...] = (
    "background",
    "torso back",
    "torso front",
    "right hand",
    "left hand",
    "left foot",
    "right foot",
    "upper leg right back",
    "upper leg left back",
    "upper leg right front",
    "upper leg left front",
    "lower leg right back",
    "lower leg left back",
    "lower leg right front",
    "lower leg left front",
    "upper arm left back",
    "upper arm right back",
    "upper arm left front",
    "upper arm right front",
    "lower arm left back",
    "lower arm right back",
    "lower arm left front",
    "lower arm right front",
    "head right",
    "head left",
)
"""Name of each part id (index = id). DensePose numbers the pairs (1,2 torso; 7,9 upper leg
right; ...) without saying which member is front or back; dpeval's open template uses the
lower id for the back half. The official SMPL charts keep their own convention."""

MIRROR_PART: tuple[int, ...] = (
    0,
    1,
    2,
    4,
    3,
    6,
    5,
    8,
    7,
    10,
    9,
    12,
    11,
    14,
    13,
    16,
    15,
    18,
    17,
    20,
    19,
    22,
    21,
    24,
    23,
)
"""Part id of the left/right mirror image of each part id (index = id)."""

COARSE_PART: tuple[int, ...] = (
    0,
    1,
    1,
    2,
    2,
    3,
    3,
    4,
    4,
    4,
    4,
    5,
    5,
    5,
    5,
    6,
    6,
    6,
    6,
    7,
    7,
    7,
    7,
    8,
    8,
)
"""Coarse body part (1 torso, 2 hands, 3 feet, 4 upper legs, 5 lower legs, 6 upper arms,
7 lower arms, 8 head) of each chart id, the ``CoarseParts`` table of the official code."""
