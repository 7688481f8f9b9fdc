"""Posing and skinning: rest pose, rigidity, limits, shapes, keypoints."""

from __future__ import annotations

import numpy as np
import pytest

from dpeval.synth.pose import POSE_KINDS, BodyModel, BodyShape, Pose, rotation


@pytest.fixture(scope="module")
def model(open_template):
    return BodyModel(open_template)


def _rest_pose(model):
    return Pose(local=np.broadcast_to(np.eye(3), (len(model.names), 3, 3)).copy())


def test_rest_pose_reproduces_the_template(model, open_template):
    v, kp = model.skin(BodyShape(), _rest_pose(model))
    t = np.asarray(open_template.vertices, dtype=np.float64)
    shift = np.array([model.joints[0, 0], t[:, 1].min(), model.joints[0, 2]])
    np.testing.assert_allclose(v, t - shift, atol=1e-6)
    assert kp.shape == (17, 3)
    # COCO left = the character's left = +x
    assert kp[5, 0] > 0 > kp[6, 0] and kp[11, 0] > 0 > kp[12, 0]


def test_rotation_is_orthonormal():
    r = rotation((1.0, 2.0, -0.5), 0.7)
    np.testing.assert_allclose(r @ r.T, np.eye(3), atol=1e-12)
    assert np.linalg.det(r) == pytest.approx(1.0)


def test_uniform_scale_scales_the_body(model):
    base, _ = model.skin(BodyShape(), _rest_pose(model))
    big, _ = model.skin(BodyShape(height=1.1), _rest_pose(model))
    assert np.ptp(big[:, 1]) == pytest.approx(1.1 * np.ptp(base[:, 1]), rel=1e-9)


@pytest.mark.parametrize("kind", POSE_KINDS)
def test_poses_are_natural(model, kind):
    rng = np.random.default_rng(POSE_KINDS.index(kind))
    for _ in range(8):
        shape = BodyShape.sample(rng)
        pose = model.sample_pose(rng, kind)
        assert pose.kind == kind
        v, kp = model.skin(shape, pose)
        assert np.isfinite(v).all()
        assert v[:, 1].min() == pytest.approx(0.0, abs=1e-9)  # standing on the ground
        # no exploded limbs: arms raised overhead reach about 2.15 template heights
        assert np.ptp(v, axis=0).max() < 2.25 * shape.height
        # rigid bones: elbow-wrist and knee-ankle distances match the rest body
        for a, b, lo, hi in ((7, 9, 0.17, 0.3), (13, 15, 0.25, 0.47)):
            d = np.linalg.norm(kp[a] - kp[b])
            assert lo * shape.height < d < hi * shape.height


def test_same_generator_state_gives_same_body(model):
    a = model.skin(*_sample(model, 9))
    b = model.skin(*_sample(model, 9))
    np.testing.assert_array_equal(a[0], b[0])


def _sample(model, seed):
    rng = np.random.default_rng(seed)
    return BodyShape.sample(rng), model.sample_pose(rng)
