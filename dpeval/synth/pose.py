"""Synth stage 1: body shapes, natural random poses and linear blend skinning.

In: the open template (mesh, MakeHuman default rig: joint heads, parents, top-4 skin
weights). Out: posed vertices ``(V, 3) float64`` in a body frame (metres, +y up, feet on
``y = 0``, pelvis above the origin) and the 17 COCO keypoints ``(17, 3)`` built from
template vertices.

Poses rotate a few rig joints (spine, neck, head, shoulders, elbows, wrists, hips,
knees, ankles) within joint limits, drawn from archetypes: standing, walking, sitting,
arms raised and free (uniform within the limits). Shapes scale each bone group:
overall height, build (girth), torso, arm and leg lengths and head size.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from ..template import BodyTemplate
from . import _kernels

__all__ = [
    "COCO_KEYPOINTS",
    "COCO_SKELETON",
    "POSE_KINDS",
    "BodyModel",
    "BodyShape",
    "Pose",
    "rotation",
]

COCO_KEYPOINTS: tuple[str, ...] = (
    "nose",
    "left_eye",
    "right_eye",
    "left_ear",
    "right_ear",
    "left_shoulder",
    "right_shoulder",
    "left_elbow",
    "right_elbow",
    "left_wrist",
    "right_wrist",
    "left_hip",
    "right_hip",
    "left_knee",
    "right_knee",
    "left_ankle",
    "right_ankle",
)
"""COCO's 17 person keypoints; left/right are the character's (left = +x)."""

COCO_SKELETON: tuple[tuple[int, int], ...] = (
    (16, 14), (14, 12), (17, 15), (15, 13), (12, 13), (6, 12), (7, 13), (6, 7), (6, 8),
    (7, 9), (8, 10), (9, 11), (2, 3), (1, 2), (1, 3), (2, 4), (3, 5), (4, 6), (5, 7),
)  # fmt: skip
"""COCO keypoint skeleton (1-based pairs), as in ``person_keypoints_*.json``."""

POSE_KINDS: tuple[str, ...] = ("standing", "walking", "sitting", "arms_raised", "free")
POSE_WEIGHTS = (0.25, 0.25, 0.15, 0.15, 0.20)

# keypoint -> (rig joint whose head the ring surrounds, ring radius) or a surface point
_JOINT_KEYPOINTS = {
    "shoulder": ("upperarm01", 0.08),
    "elbow": ("lowerarm01", 0.07),
    "wrist": ("wrist", 0.05),
    "hip": ("upperleg01", 0.11),
    "knee": ("lowerleg01", 0.08),
    "ankle": ("foot", 0.06),
}
_RING_AXIS = {  # the limb whose axis the ring is perpendicular to
    "shoulder": "upperarm",
    "elbow": "upperarm",
    "wrist": "lowerarm",
    "hip": "upperleg",
    "knee": "upperleg",
    "ankle": "lowerleg",
}
_SURFACE_KEYPOINTS = {  # rest-space points on the head surface (left side; mirrored)
    "nose": (0.0, 0.691, 0.168),
    "eye": (0.031, 0.724, 0.139),
    "ear": (0.088, 0.724, 0.038),
}
KEYPOINT_SURFACE = np.array([k < 5 for k in range(17)])
"""True for keypoints on the surface (face), False for joint centres (inside a limb)."""


def rotation(axis: np.ndarray | tuple[float, float, float], angle: float) -> np.ndarray:
    """(3, 3) float64 rotation by ``angle`` radians about ``axis`` (Rodrigues).

    Example
    -------
    >>> np.round(rotation((0, 0, 1), np.pi / 2) @ [1, 0, 0], 6).tolist()
    [0.0, 1.0, 0.0]
    """
    x, y, z = (float(t) for t in axis)
    n = math.sqrt(x * x + y * y + z * z)
    x, y, z = x / n, y / n, z / n
    c, s = math.cos(angle), math.sin(angle)
    t = 1.0 - c
    return np.array(
        [
            [c + t * x * x, t * x * y - s * z, t * x * z + s * y],
            [t * x * y + s * z, c + t * y * y, t * y * z - s * x],
            [t * x * z - s * y, t * y * z + s * x, c + t * z * z],
        ]
    )


def _rot_between(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a / np.linalg.norm(a)
    b = b / np.linalg.norm(b)
    axis = np.cross(a, b)
    s = np.linalg.norm(axis)
    if s < 1e-9:
        return np.eye(3)
    return rotation(axis, math.atan2(s, float(a @ b)))


_MIRROR = np.diag([-1.0, 1.0, 1.0])


@dataclass(frozen=True)
class BodyShape:
    """Body-shape factors (1 = the template).

    Attributes
    ----------
    height : float
        Uniform scale of the whole body.
    girth : float
        Width and depth of torso and limbs.
    torso, arms, legs, head : float
        Lengths of the torso, the arms, the legs, and the head size.
    """

    height: float = 1.0
    girth: float = 1.0
    torso: float = 1.0
    arms: float = 1.0
    legs: float = 1.0
    head: float = 1.0

    @staticmethod
    def sample(rng: np.random.Generator) -> BodyShape:
        """A random adult (90%) or child (10%) shape."""
        if rng.random() < 0.1:
            return BodyShape(
                height=rng.uniform(0.62, 0.82),
                girth=rng.uniform(0.9, 1.1),
                torso=rng.uniform(0.95, 1.05),
                arms=rng.uniform(0.9, 1.0),
                legs=rng.uniform(0.85, 0.95),
                head=rng.uniform(1.1, 1.25),
            )
        return BodyShape(
            height=float(np.clip(rng.normal(1.0, 0.05), 0.88, 1.13)),
            girth=float(np.clip(rng.normal(1.02, 0.1), 0.82, 1.35)),
            torso=rng.uniform(0.94, 1.06),
            arms=rng.uniform(0.93, 1.07),
            legs=rng.uniform(0.93, 1.07),
            head=rng.uniform(0.94, 1.06),
        )


@dataclass(frozen=True, eq=False)
class Pose:
    """Local joint rotations in the rest frame plus a global rotation.

    Attributes
    ----------
    local : (J, 3, 3) float64
        Rotation of each joint about its head, expressed in rest-pose axes.
    root : (3, 3) float64
        Global rotation of the whole body (yaw, with small pitch and roll).
    kind : str
        The archetype it was drawn from (one of ``POSE_KINDS``).
    """

    local: np.ndarray
    root: np.ndarray = field(default_factory=lambda: np.eye(3))
    kind: str = "rest"


class BodyModel:
    """Poses and skins the template; the costly setup (rig tables, keypoint rings) is
    done once here.

    Parameters
    ----------
    template : BodyTemplate
        Must carry ``skinning`` (the open template does).

    Example
    -------
    >>> from dpeval.template import load_template
    >>> m = BodyModel(load_template("open"))
    >>> rng = np.random.default_rng(0)
    >>> v, kp = m.skin(BodyShape.sample(rng), m.sample_pose(rng))
    >>> v.shape, kp.shape
    ((13380, 3), (17, 3))
    """

    def __init__(self, template: BodyTemplate) -> None:
        sk = template.skinning
        self.template = template
        self.rest = np.ascontiguousarray(template.vertices, dtype=np.float64)
        self.faces = np.ascontiguousarray(template.faces, dtype=np.int64)
        self.skin_joint = np.ascontiguousarray(sk["skin_joint"], dtype=np.int64)
        self.skin_weight = np.ascontiguousarray(sk["skin_weight"], dtype=np.float64)
        self.names = [str(n) for n in sk["joint_name"]]
        self.index = {n: i for i, n in enumerate(self.names)}
        self.joints = np.asarray(sk["joint_position"], dtype=np.float64)
        self.parent = np.asarray(sk["joint_parent"], dtype=np.int64)
        n = len(self.names)
        depth = np.zeros(n, dtype=np.int64)
        for j in range(1, n):  # parents come before children
            depth[j] = depth[self.parent[j]] + 1
        self._levels = [np.flatnonzero(depth == d) for d in range(1, int(depth.max()) + 1)]
        self._group = np.array([_bone_group(nm) for nm in self.names])
        self._dirs = self._group_directions()
        self._group_id = np.array([_GROUPS.index(g) for g in self._group])
        dirs = np.array(
            [
                self._dirs[g if g in self._dirs else f"{g}.{nm[-1]}"]
                for g, nm in zip(self._group, self.names, strict=True)
            ]
        )
        self._dd = np.einsum("ni,nj->nij", dirs, dirs)
        self._arm0 = self._dir("upperarm01.L", "lowerarm01.L")
        self._elbow_axis, self._elbow_rest = self._elbow_frame()
        self._kp_rings = self._keypoint_rings()

    # -- rig helpers ---------------------------------------------------------------
    def _dir(self, a: str, b: str) -> np.ndarray:
        d = self.joints[self.index[b]] - self.joints[self.index[a]]
        return d / np.linalg.norm(d)

    def _group_directions(self) -> dict[str, np.ndarray]:
        y = np.array([0.0, 1.0, 0.0])
        out = {"torso": y, "neck": y, "head": y, "hand": y, "foot": y, "shoulder": y}
        for side in ("L", "R"):
            out[f"upperarm.{side}"] = self._dir(f"upperarm01.{side}", f"lowerarm01.{side}")
            out[f"lowerarm.{side}"] = self._dir(f"lowerarm01.{side}", f"wrist.{side}")
            out[f"upperleg.{side}"] = self._dir(f"upperleg01.{side}", f"lowerleg01.{side}")
            out[f"lowerleg.{side}"] = self._dir(f"lowerleg01.{side}", f"foot.{side}")
        return out

    def _elbow_frame(self) -> tuple[np.ndarray, float]:
        fore = self._dir("lowerarm01.L", "wrist.L")
        axis = np.cross(self._arm0, fore)
        return axis / np.linalg.norm(axis), math.acos(float(self._arm0 @ fore))

    def _keypoint_rings(self) -> list[np.ndarray]:
        """Per COCO keypoint, the template vertices whose posed mean is the keypoint."""
        v = self.rest
        dominant = self.skin_joint[:, 0]
        rings: list[np.ndarray] = []
        for name in COCO_KEYPOINTS:
            kind = name.split("_", 1)[-1]
            sign = -1.0 if name.startswith("right") else 1.0
            if kind in _SURFACE_KEYPOINTS:
                p = np.array(_SURFACE_KEYPOINTS[kind]) * [sign, 1, 1]
                rings.append(np.array([np.argmin(np.linalg.norm(v - p, axis=1))]))
                continue
            joint, radius = _JOINT_KEYPOINTS[kind]
            side = "R" if sign < 0 else "L"
            j = self.index[f"{joint}.{side}"]
            p = self.joints[j]
            d = self._dirs[f"{_RING_AXIS[kind]}.{side}"]
            off = v - p
            along = off @ d
            perp = np.linalg.norm(off - along[:, None] * d, axis=1)
            near_side = np.sign(v[:, 0]) == sign
            ok = (np.abs(along) < 0.012) & (perp < radius) & near_side
            ok &= np.isin(dominant, self._limb_joints(side))
            rings.append(np.flatnonzero(ok))
        return rings

    def _limb_joints(self, side: str) -> np.ndarray:
        limb = ("upperarm", "lowerarm", "hand", "upperleg", "lowerleg", "foot")
        return np.array(
            [
                i
                for i, g in enumerate(self._group)
                if g in limb and self.names[i].endswith("." + side)
            ]
        )

    # -- shape ---------------------------------------------------------------------
    def bone_scales(self, shape: BodyShape) -> np.ndarray:
        """(J, 3, 3) float64: the scale applied around each joint head (length along
        the bone group's axis, girth across it, times the overall height)."""
        length = {
            "torso": shape.torso,
            "shoulder": 1.0,
            "neck": shape.torso,
            "head": shape.head,
            "hand": shape.arms,
            "foot": 0.5 + 0.5 * shape.legs,
            "upperarm": shape.arms,
            "lowerarm": shape.arms,
            "upperleg": shape.legs,
            "lowerleg": shape.legs,
        }
        girth = {"head": shape.head, "hand": 1.0, "foot": 1.0, "neck": 0.5 + 0.5 * shape.girth}
        lg = np.array([length[g] for g in _GROUPS])[self._group_id]
        gt = np.array([girth.get(g, shape.girth) for g in _GROUPS])[self._group_id]
        eye = np.eye(3)[None]
        return shape.height * (gt[:, None, None] * eye + (lg - gt)[:, None, None] * self._dd)

    # -- poses ---------------------------------------------------------------------
    def sample_pose(self, rng: np.random.Generator, kind: str | None = None) -> Pose:
        """A natural random pose (archetype drawn with ``POSE_WEIGHTS`` unless given)."""
        if kind is None:
            kind = POSE_KINDS[int(rng.choice(len(POSE_KINDS), p=POSE_WEIGHTS))]
        a = _sample_angles(rng, kind)
        local = np.broadcast_to(np.eye(3), (len(self.names), 3, 3)).copy()
        fwd, side, twist = a["spine"]
        for nm in ("spine04", "spine03", "spine02", "spine01"):
            local[self.index[nm]] = _ypr(twist / 4, side / 4, fwd / 4)
        nod, turn, tilt = a["head"]
        local[self.index["neck01"]] = _ypr(turn / 2, tilt / 2, nod / 2)
        local[self.index["head"]] = _ypr(turn / 2, tilt / 2, nod / 2)
        for side_name, mirror in (("L", False), ("R", True)):
            arm = a[f"arm.{side_name}"]
            leg = a[f"leg.{side_name}"]
            rots = self._limb_rotations(arm, leg)
            for joint, r in rots.items():
                local[self.index[f"{joint}.{side_name}"]] = _MIRROR @ r @ _MIRROR if mirror else r
        yaw = rng.uniform(-math.pi, math.pi)
        pitch, roll = rng.normal(0, math.radians(3), 2)
        root = rotation((0, 1, 0), yaw) @ rotation((1, 0, 0), pitch) @ rotation((0, 0, 1), roll)
        return Pose(local=local, root=root, kind=kind)

    def _limb_rotations(self, arm: tuple, leg: tuple) -> dict[str, np.ndarray]:
        """Left-side rotations from (elev, azim, twist, elbow, wrist3) and
        (flex, abduct, twist, knee, ankle), angles in radians."""
        elev, azim, twist, elbow, wrist = arm
        target = np.array(
            [math.sin(elev) * math.cos(azim), -math.cos(elev), math.sin(elev) * math.sin(azim)]
        )
        shoulder = rotation(target, twist) @ _rot_between(self._arm0, target)
        out = {
            "upperarm01": shoulder,
            "lowerarm01": rotation(self._elbow_axis, elbow - self._elbow_rest),
            "wrist": _ypr(*wrist),
            # raise the clavicle a little when the arm goes above the shoulder
            "clavicle": rotation((0, 0, 1), 0.25 * max(elev - math.pi / 2, 0.0)),
        }
        flex, abduct, ltwist, knee, ankle = leg
        out["upperleg01"] = (
            rotation((0, 0, 1), abduct) @ rotation((1, 0, 0), -flex) @ rotation((0, 1, 0), ltwist)
        )
        out["lowerleg01"] = rotation((1, 0, 0), knee)
        out["foot"] = rotation((1, 0, 0), -ankle)
        return out

    # -- skinning ------------------------------------------------------------------
    def joint_matrices(self, shape: BodyShape, pose: Pose) -> np.ndarray:
        """(J, 3, 4) float64 skinning matrices (rest point x -> L @ x + t)."""
        scale = self.bone_scales(shape)
        n = len(self.names)
        rw = np.empty((n, 3, 3))
        q = np.empty((n, 3))
        rw[0] = pose.root @ pose.local[0]
        q[0] = self.joints[0]
        par = self.parent
        for idx in self._levels:
            pa = par[idx]
            rw[idx] = rw[pa] @ pose.local[idx]
            off = np.einsum("nij,nj->ni", scale[pa], self.joints[idx] - self.joints[pa])
            q[idx] = q[pa] + np.einsum("nij,nj->ni", rw[pa], off)
        lin = rw @ scale
        mats = np.empty((n, 3, 4))
        mats[:, :, :3] = lin
        mats[:, :, 3] = q - np.einsum("nij,nj->ni", lin, self.joints)
        return mats

    def skin(self, shape: BodyShape, pose: Pose) -> tuple[np.ndarray, np.ndarray]:
        """Posed vertices ``(V, 3) float64`` and keypoints ``(17, 3) float64``.

        The body stands on ``y = 0`` (its lowest vertex) with the root joint above
        ``x = z = 0``.
        """
        mats = self.joint_matrices(shape, pose)
        out = np.empty_like(self.rest)
        _kernels.skin_vertices(self.rest, self.skin_joint, self.skin_weight, mats, out)
        shift = mats[0, :, :3] @ self.joints[0] + mats[0, :, 3]
        shift[1] = out[:, 1].min()
        out -= shift
        kp = np.stack([out[r].mean(axis=0) for r in self._kp_rings])
        return out, kp


def _ypr(yaw: float, roll: float, pitch: float) -> np.ndarray:
    """Rotation about y (yaw), then z (roll / side bend), then x (pitch / forward)."""
    return rotation((0, 1, 0), yaw) @ rotation((0, 0, 1), roll) @ rotation((1, 0, 0), pitch)


_GROUPS = (
    "torso", "shoulder", "neck", "head", "hand", "foot",
    "upperarm", "lowerarm", "upperleg", "lowerleg",
)  # fmt: skip


def _bone_group(name: str) -> str:
    base = name.split(".")[0]
    for prefix, group in (
        ("upperarm", "upperarm"),
        ("lowerarm", "lowerarm"),
        ("upperleg", "upperleg"),
        ("lowerleg", "lowerleg"),
        ("wrist", "hand"),
        ("metacarpal", "hand"),
        ("finger", "hand"),
        ("foot", "foot"),
        ("toe", "foot"),
        ("neck", "neck"),
        ("clavicle", "shoulder"),
        ("shoulder", "shoulder"),
    ):
        if base.startswith(prefix):
            return group
    if base in ("root", "pelvis", "breast") or base.startswith("spine"):
        return "torso"
    return "head"


def _sample_angles(rng: np.random.Generator, kind: str) -> dict[str, tuple]:
    """Joint angles (radians) for one archetype, left-side conventions for both sides.

    Limits (degrees): arm elevation 12..170 from hanging, azimuth -60..110 (0 = out to
    the side, 90 = forward), twist +-40, elbow 0..145; hip flexion -25..110, abduction
    -12..35 (the rest pose already stands 8 degrees apart), twist -25..30, knee 0..140,
    ankle -20..30; spine forward -15..45, side +-25, twist +-35; head nod -30..40,
    turn +-60, tilt +-20.
    """
    r = math.radians
    u = rng.uniform

    def arm(elev, azim, elbow, twist=(-25, 25)):
        wrist = (r(u(-20, 20)), r(u(-25, 25)), r(u(-30, 30)))
        return (r(u(*elev)), r(u(*azim)), r(u(*twist)), r(u(*elbow)), wrist)

    def leg(flex, abduct, knee, twist=(-10, 15), ankle=(-10, 15)):
        return (r(u(*flex)), r(u(*abduct)), r(u(*twist)), r(u(*knee)), r(u(*ankle)))

    spine = (r(u(-5, 10)), r(u(-6, 6)), r(u(-12, 12)))
    head = (r(u(-15, 20)), r(u(-40, 40)), r(u(-10, 10)))
    if kind == "standing":
        arms = [arm((12, 40), (-20, 70), (0, 45)) for _ in range(2)]
        legs = [leg((-8, 12), (-9, 3), (0, 12)) for _ in range(2)]
    elif kind == "walking":
        phase = u(0, 2 * math.pi)
        amp = u(15, 35)
        legs, arms = [], []
        for s in (0.0, math.pi):
            lp = phase + s
            swing = amp * math.sin(lp)
            knee = 5 + 45 * max(0.0, math.cos(lp))
            legs.append(leg((swing, swing), (-8, 0), (knee, knee + 5), ankle=(-10, 20)))
            aswing = -swing * u(0.6, 1.0)
            azim = 90.0 if aswing >= 0 else -75.0
            arms.append(arm((12 + abs(aswing), 14 + abs(aswing)), (azim - 10, azim), (10, 45)))
    elif kind == "sitting":
        spine = (r(u(0, 25)), r(u(-5, 5)), r(u(-15, 15)))
        arms = [arm((15, 45), (70, 100), (40, 100)) for _ in range(2)]
        legs = [leg((70, 100), (-8, 15), (70, 110), ankle=(-5, 20)) for _ in range(2)]
    elif kind == "arms_raised":
        both = rng.random() < 0.6
        arms = [arm((100, 170), (-20, 100), (0, 90))]
        arms.append(
            arm((100, 170), (-20, 100), (0, 90)) if both else arm((12, 45), (-20, 70), (0, 60))
        )
        if rng.random() < 0.5:
            arms.reverse()
        legs = [leg((-8, 15), (-9, 8), (0, 15)) for _ in range(2)]
    else:  # free: anywhere within the limits, with a standing or kneeling base
        spine = (r(u(-15, 45)), r(u(-25, 25)), r(u(-35, 35)))
        head = (r(u(-30, 40)), r(u(-60, 60)), r(u(-20, 20)))
        arms = [arm((12, 170), (-60, 110), (0, 145), twist=(-40, 40)) for _ in range(2)]
        legs = [
            leg((-25, 100), (-12, 35), (0, 140), twist=(-25, 30), ankle=(-20, 30)) for _ in range(2)
        ]
    return {
        "spine": spine,
        "head": head,
        "arm.L": arms[0],
        "arm.R": arms[1],
        "leg.L": legs[0],
        "leg.R": legs[1],
    }
