"""Synth stage 3: scene layout (camera, people, crowds, light, backdrop).

In: a :class:`~dpeval.synth.pose.BodyModel`, a :class:`SceneConfig` and a seeded
generator. Out: a :class:`Scene` whose people are posed and placed in camera space,
ready for :class:`~dpeval.synth.render.Renderer`.

People stand on a common ground plane seen by a level pinhole camera, so their image
size follows their distance (COCO-like mix of small, medium and large people), the
near ones are cut by the image border, and people placed next to each other occlude
each other. Some images get a crowd: a tight group of small people that the annotator
marks with one ``iscrowd`` region.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .pose import BodyModel, BodyShape
from .render import Camera, draw_background, sample_light, sample_material

__all__ = ["Person", "Scene", "SceneConfig", "sample_scene"]

NOMINAL_HEIGHT_M = 1.7
"""Standing height used to turn a target pixel height into a distance."""


@dataclass(frozen=True)
class SceneConfig:
    """What scenes look like.

    Attributes
    ----------
    width, height : int
        Image size in pixels.
    max_people : int
        Individually annotated people per image: 1..max_people, uniform.
    crowd_prob : float
        Probability that an image also holds a crowd group.
    crowd_size : (int, int)
        Range (inclusive) of people in a crowd group.
    size_mix : (float, float, float)
        Probabilities of small, medium and large people (target standing height
        25-60, 60-170 and 170-600 px).
    near_prob : float
        Probability that a person is placed next to an earlier one (occlusion).
    """

    width: int = 640
    height: int = 480
    max_people: int = 4
    crowd_prob: float = 0.12
    crowd_size: tuple[int, int] = (5, 10)
    size_mix: tuple[float, float, float] = (0.2, 0.4, 0.4)
    near_prob: float = 0.35


@dataclass(frozen=True, eq=False)
class Person:
    """One posed, placed body.

    Attributes
    ----------
    vertices : (V, 3) float64
        Camera-space vertices.
    keypoints : (17, 3) float64
        Camera-space COCO keypoints.
    material : (24,) float64
    pose_kind : str
    crowd : int
        Crowd group id, or -1 for an individually annotated person.
    """

    vertices: np.ndarray
    keypoints: np.ndarray
    material: np.ndarray
    pose_kind: str
    crowd: int = -1


@dataclass(frozen=True, eq=False)
class Scene:
    """Everything the renderer and the annotator need for one image."""

    camera: Camera
    people: list[Person]
    light: np.ndarray
    background: np.ndarray
    horizon: float


def sample_scene(rng: np.random.Generator, cfg: SceneConfig, model: BodyModel) -> Scene:
    """Draw a scene.

    Parameters
    ----------
    rng : numpy.random.Generator
        The only source of randomness (one generator per image keeps datasets
        reproducible whatever the worker count).
    cfg : SceneConfig
    model : BodyModel

    Returns
    -------
    Scene
    """
    w, h = cfg.width, cfg.height
    f = w * rng.uniform(0.9, 1.5)
    horizon = h * rng.uniform(0.15, 0.55)
    camera = Camera(w, h, f, f, w / 2.0, horizon)
    cam_height = rng.uniform(0.9, 2.2)
    people: list[Person] = []
    placed: list[tuple[float, float]] = []  # (image x, distance)
    for _ in range(int(rng.integers(1, cfg.max_people + 1))):
        size = rng.choice(3, p=cfg.size_mix)
        px_height = rng.uniform(*((25, 60), (60, 170), (170, 600))[size])
        dist = f * NOMINAL_HEIGHT_M / px_height
        x = rng.uniform(-0.05 * w, 1.05 * w)
        if placed and rng.random() < cfg.near_prob:
            x0, d0 = placed[int(rng.integers(len(placed)))]
            dist = d0 * rng.uniform(0.75, 1.3)
            x = x0 + rng.choice((-1, 1)) * rng.uniform(0.2, 0.9) * f / d0  # 0.2-0.9 m aside
        placed.append((x, dist))
        people.append(_person(rng, model, camera, cam_height, x, dist, -1))
    if rng.random() < cfg.crowd_prob:
        n = int(rng.integers(cfg.crowd_size[0], cfg.crowd_size[1] + 1))
        dist = f * NOMINAL_HEIGHT_M / rng.uniform(22, 55)
        centre = rng.uniform(0.1 * w, 0.9 * w)
        spread = 0.35 * n * f / dist  # pixels
        for _ in range(n):
            x = centre + rng.uniform(-0.5, 0.5) * spread
            d = dist + rng.uniform(-1.5, 1.5)
            people.append(_person(rng, model, camera, cam_height, x, d, 0))
    background = draw_background(rng, camera, horizon)
    return Scene(camera, people, sample_light(rng), background, horizon)


def _person(
    rng: np.random.Generator,
    model: BodyModel,
    camera: Camera,
    cam_height: float,
    x_img: float,
    dist: float,
    crowd: int,
) -> Person:
    shape = BodyShape.sample(rng)
    pose = model.sample_pose(rng)
    verts, kp = model.skin(shape, pose)
    offset = np.array([(x_img - camera.cx) * dist / camera.fx, cam_height, dist])
    flip = np.array([1.0, -1.0, -1.0])  # body (+y up, +z front) -> camera (+y down, +z away)
    return Person(
        vertices=verts * flip + offset,
        keypoints=kp * flip + offset,
        material=sample_material(rng),
        pose_kind=pose.kind,
        crowd=crowd,
    )
