"""Synth stage 2: rendering posed bodies into an image and its exact IUV ground truth.

In: camera-space vertices of each body (metres, +x right, +y down, +z forward), a
pinhole :class:`Camera`, per-body materials. Out: a :class:`Frame` holding the RGB
image, the per-pixel IUV map ``(H, W, 3) uint8`` (I, round(U*255), round(V*255)), the
body index per pixel, the depth and the winning face.

The rasteriser is a Numba z-buffer (``_kernels.rasterize``) sampling pixel centres;
it equals one ray cast per pixel (tested against ``_reference.rasterize``). Appearance
is learnable: clothes, skin, hair and face marks are painted in rest space, so they
follow the body; Lambert shading shows the shape; backgrounds are procedural.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np

from ..template import BodyTemplate
from . import _kernels

__all__ = [
    "Camera",
    "Frame",
    "Renderer",
    "draw_background",
    "postprocess",
    "sample_light",
    "sample_material",
]

_SKIN_TONES = np.array(
    [[0.96, 0.80, 0.69], [0.90, 0.71, 0.56], [0.78, 0.57, 0.44], [0.62, 0.43, 0.31],
     [0.45, 0.30, 0.22], [0.33, 0.22, 0.16], [0.98, 0.86, 0.77]]
)  # fmt: skip
_HAIR = np.array(
    [[0.08, 0.06, 0.05], [0.25, 0.16, 0.09], [0.45, 0.30, 0.15], [0.75, 0.62, 0.38],
     [0.55, 0.55, 0.55], [0.40, 0.12, 0.06]]
)  # fmt: skip


@dataclass(frozen=True)
class Camera:
    """Pinhole camera looking along +z (+x right, +y down); pixel (px, py) samples its
    centre ``(px + 0.5, py + 0.5)``.

    Attributes
    ----------
    width, height : int
    fx, fy, cx, cy : float
        Focal lengths and principal point in pixels.
    """

    width: int
    height: int
    fx: float
    fy: float
    cx: float
    cy: float

    def project(self, points: np.ndarray) -> np.ndarray:
        """(N, 2) float64 image coordinates of camera-space points ``(N, 3)``."""
        p = np.asarray(points, dtype=np.float64)
        return np.stack(
            [self.fx * p[:, 0] / p[:, 2] + self.cx, self.fy * p[:, 1] / p[:, 2] + self.cy],
            axis=1,
        )


@dataclass(frozen=True, eq=False)
class Frame:
    """One rendered image and its exact ground truth.

    Attributes
    ----------
    image : (H, W, 3) uint8
    iuv : (H, W, 3) uint8
        I (0 background, 1..24), round(U * 255), round(V * 255).
    person : (H, W) int16
        Index of the body seen at each pixel, -1 on background.
    depth : (H, W) float64
        Camera depth of the visible surface (``inf`` on background).
    face : (H, W) int32
        ``body * F + face`` of the visible triangle, -1 on background.
    """

    image: np.ndarray
    iuv: np.ndarray
    person: np.ndarray
    depth: np.ndarray
    face: np.ndarray


class Renderer:
    """Rasterises and shades bodies of one template (arrays prepared once).

    Parameters
    ----------
    template : BodyTemplate

    Example
    -------
    >>> from dpeval.template import load_template
    >>> r = Renderer(load_template("open"))
    >>> cam = Camera(64, 64, 80.0, 80.0, 32.0, 32.0)
    >>> v = r.rest * [1, -1, -1] + [0, 0, 3]  # facing the camera, 3 m away
    >>> f = r.render(cam, [v], sample_material(np.random.default_rng(0))[None])
    >>> int(f.iuv[..., 0].max()) <= 24
    True
    """

    def __init__(self, template: BodyTemplate) -> None:
        self.faces = np.ascontiguousarray(template.faces, dtype=np.int64)
        self.face_part = np.ascontiguousarray(template.face_part, dtype=np.int64)
        self.chart_faces = np.ascontiguousarray(template.chart_faces, dtype=np.int64)
        self.chart_uv = np.ascontiguousarray(template.chart_uv, dtype=np.float64)
        self.rest = np.ascontiguousarray(template.vertices, dtype=np.float64)
        self.n_faces = len(self.faces)
        self.n_verts = len(self.rest)

    def rasterize(
        self, camera: Camera, bodies: list[np.ndarray]
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Depth ``(H, W) float64``, face ``(H, W) int32`` and barycentrics
        ``(H, W, 3) float64`` of the bodies (face ids offset by ``body * F``)."""
        h, w = camera.height, camera.width
        zbuf = np.full((h, w), np.inf)
        fid = np.full((h, w), -1, dtype=np.int32)
        bary = np.zeros((h, w, 3))
        for k, v in enumerate(bodies):
            _kernels.rasterize(
                np.ascontiguousarray(v, dtype=np.float64),
                self.faces,
                float(camera.fx),
                float(camera.fy),
                float(camera.cx),
                float(camera.cy),
                k * self.n_faces,
                zbuf,
                fid,
                bary,
            )
        return zbuf, fid, bary

    def render(
        self,
        camera: Camera,
        bodies: list[np.ndarray],
        materials: np.ndarray,
        light: np.ndarray | None = None,
        background: np.ndarray | None = None,
    ) -> Frame:
        """Render bodies over a background.

        Parameters
        ----------
        camera : Camera
        bodies : list of (V, 3) float64
            Camera-space vertices, one array per body.
        materials : (P, 24) float64
            From :func:`sample_material`.
        light : (5,) float64, optional
            From :func:`sample_light` (default: frontal light).
        background : (H, W, 3) uint8, optional
            Copied; mid grey if absent.

        Returns
        -------
        Frame
        """
        h, w = camera.height, camera.width
        zbuf, fid, bary = self.rasterize(camera, bodies)
        normals = np.empty((max(len(bodies), 1) * self.n_verts, 3))
        for k, v in enumerate(bodies):
            _kernels.vertex_normals(
                np.ascontiguousarray(v, dtype=np.float64),
                self.faces,
                normals[k * self.n_verts : (k + 1) * self.n_verts],
            )
        image = np.full((h, w, 3), 128, dtype=np.uint8) if background is None else background.copy()
        iuv = np.zeros((h, w, 3), dtype=np.uint8)
        person = np.full((h, w), -1, dtype=np.int16)
        if light is None:
            light = np.array([0.3, -0.4, -0.87, 0.35, 0.75])
        _kernels.shade(
            fid,
            bary,
            self.n_faces,
            self.n_verts,
            self.faces,
            self.face_part,
            self.chart_faces,
            self.chart_uv,
            self.rest,
            normals,
            np.ascontiguousarray(materials, dtype=np.float64).reshape(-1, 24),
            np.ascontiguousarray(light, dtype=np.float64),
            image,
            iuv,
            person,
        )
        return Frame(image=image, iuv=iuv, person=person, depth=zbuf, face=fid)


def sample_material(rng: np.random.Generator) -> np.ndarray:
    """(24,) float64 clothing and skin parameters of one person (see ``_kernels.shade``)."""
    skin = _SKIN_TONES[rng.integers(len(_SKIN_TONES))] * rng.uniform(0.92, 1.06)
    top = _random_colour(rng)
    top2 = _random_colour(rng)
    bottom = _random_colour(rng, dark=rng.random() < 0.5)
    shoes = _random_colour(rng, dark=rng.random() < 0.7)
    hair = _HAIR[rng.integers(len(_HAIR))] * rng.uniform(0.85, 1.15)
    sleeve = (0.0, 0.26, 0.36, 0.47)[rng.choice(4, p=(0.1, 0.35, 0.15, 0.4))]
    trouser = (-0.9, -0.55, -0.22)[rng.choice(3, p=(0.6, 0.15, 0.25))]  # long, 3/4, shorts
    pattern = rng.choice(3, p=(0.5, 0.3, 0.2))
    period = rng.uniform(0.03, 0.09)
    hair_y = rng.uniform(0.76, 0.80)
    hair_z = rng.uniform(-0.02, 0.06)
    colours = np.concatenate([skin, top, top2, bottom, shoes, hair]).clip(0.0, 1.0)
    return np.concatenate([colours, [sleeve, trouser, pattern, period, hair_y, hair_z]])


def _random_colour(
    rng: np.random.Generator, dark: bool = False, sat_max: float = 0.9
) -> np.ndarray:
    import colorsys

    hue = rng.random()
    sat = rng.uniform(0.0, sat_max)
    val = rng.uniform(0.12, 0.45) if dark else rng.uniform(0.3, 0.98)
    return np.array(colorsys.hsv_to_rgb(hue, sat, val))


def sample_light(rng: np.random.Generator) -> np.ndarray:
    """(5,) float64: unit direction towards the light (camera frame), ambient, diffuse."""
    d = np.array([rng.uniform(-0.8, 0.8), rng.uniform(-1.0, 0.1), -rng.uniform(0.4, 1.0)])
    ambient = rng.uniform(0.25, 0.5)
    return np.concatenate([d / np.linalg.norm(d), [ambient, rng.uniform(0.55, 0.9)]])


def draw_background(rng: np.random.Generator, camera: Camera, horizon: float) -> np.ndarray:
    """A procedural backdrop ``(H, W, 3) uint8``: sky gradient, tiled or plain floor,
    value noise and a few coloured blocks (walls, furniture, poles)."""
    from PIL import Image

    h, w = camera.height, camera.width
    # the smooth backdrop is drawn at half resolution and upsampled (a soft focus)
    hh, hw = (h + 1) // 2, (w + 1) // 2
    half = np.empty((hh, hw, 3), dtype=np.uint8)
    sky0, sky1 = _random_colour(rng, sat_max=0.5), _random_colour(rng, sat_max=0.4)
    g0 = _random_colour(rng, sat_max=0.6)
    g1 = np.clip(g0 * rng.uniform(0.6, 1.4), 0, 1)
    tile = rng.uniform(0.4, 1.5) if rng.random() < 0.6 else 0.0
    gh, gw = int(rng.integers(3, 10)), int(rng.integers(3, 12))
    lum = rng.uniform(0.7, 1.3, (gh, gw, 1))
    noise = lum * rng.uniform(0.92, 1.08, (gh, gw, 3))
    sx, sy = hw / w, hh / h
    _kernels.draw_background(
        half, float(horizon) * sy, sky0, sky1, g0, g1, tile, noise, camera.fx * sx, camera.cx * sx
    )
    image = np.array(Image.fromarray(half).resize((w, h), Image.Resampling.BILINEAR))
    for _ in range(int(rng.integers(0, 9))):
        bw, bh = rng.uniform(0.03, 0.4) * w, rng.uniform(0.05, 0.8) * h
        x0, y0 = rng.uniform(-0.1 * w, w), rng.uniform(-0.1 * h, horizon + 0.2 * h)
        x0i, y0i = max(int(x0), 0), max(int(y0), 0)
        x1i, y1i = min(int(x0 + bw), w), min(int(y0 + bh), h)
        if x1i <= x0i or y1i <= y0i:
            continue
        col = _random_colour(rng)
        ramp = np.linspace(rng.uniform(0.7, 1.0), rng.uniform(0.7, 1.0), x1i - x0i)
        block = (255 * col[None, None, :] * ramp[None, :, None]).clip(0, 255)
        image[y0i:y1i, x0i:x1i] = block.astype(np.uint8)
    return image


def postprocess(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Camera effects, each drawn at random: exposure and tint, box blur and
    pixel noise. Returns a new ``(H, W, 3) uint8`` image (same size)."""
    from PIL import Image, ImageFilter

    out = image
    if rng.random() < 0.5:
        gain = rng.uniform(0.8, 1.2) * rng.uniform(0.93, 1.07, 3)
        lut = np.clip(np.arange(256)[None, :] * gain[:, None] + 0.5, 0, 255).astype(np.uint8)
        out = np.stack([lut[c][out[..., c]] for c in range(3)], axis=-1)
    if rng.random() < 0.25:
        radius = float(rng.uniform(0.5, 1.5))
        out = np.asarray(Image.fromarray(out).filter(ImageFilter.BoxBlur(radius)))
    if rng.random() < 0.4:
        out = np.array(out, copy=True)
        _kernels.add_noise(out, float(rng.uniform(1.0, 6.0)), int(rng.integers(1, 2**62)))
    return np.ascontiguousarray(out)


def encode_image(image: np.ndarray, fmt: str, quality: int = 90) -> bytes:
    """JPEG (4:2:0, fixed quality, no optimisation flags, so bytes are reproducible) or
    PNG bytes of an ``(H, W, 3) uint8`` image."""
    from PIL import Image

    buf = io.BytesIO()
    if fmt == "jpg":
        Image.fromarray(image).save(buf, format="JPEG", quality=quality)
    else:
        Image.fromarray(image).save(buf, format="PNG", compress_level=1)
    return buf.getvalue()
