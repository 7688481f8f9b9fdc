"""Picture of the template: front/back views coloured by part and the 24 charts."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .parts import PART_NAMES

CHECKER_M = 0.04
DPI = 90  # edge of the 3D checker cells drawn inside the charts


def part_colours() -> np.ndarray:
    """(25, 3) float RGB; row p = colour of part p (row 0 unused).

    Back/front pairs share a tab20 hue (dark = lower id = back, light = front).
    """
    import matplotlib

    tab20 = np.asarray(matplotlib.colormaps["tab20"].colors)
    tab20b = np.asarray(matplotlib.colormaps["tab20b"].colors)
    pairs = [(1, 2), (7, 9), (8, 10), (11, 13), (12, 14), (15, 17), (16, 18), (19, 21), (20, 22), (24, 23)]
    out = np.zeros((25, 3))
    for k, (a, b) in enumerate(pairs):
        out[a], out[b] = tab20[2 * k], tab20[2 * k + 1]
    out[3], out[4], out[5], out[6] = tab20b[0], tab20b[2], tab20b[8], tab20b[10]
    return out


def _view(ax, vertices, faces, face_part, colours, sign: float, title: str):
    from matplotlib.collections import PolyCollection

    p = vertices[faces]
    normal = np.cross(p[:, 1] - p[:, 0], p[:, 2] - p[:, 0])
    normal /= np.linalg.norm(normal, axis=1, keepdims=True)
    facing = sign * normal[:, 2] > 0
    depth = sign * p[:, :, 2].mean(axis=1)
    order = np.where(facing)[0]
    order = order[np.argsort(depth[order], kind="stable")]
    screen = np.stack([sign * p[order, :, 0], p[order, :, 1]], axis=2)
    shade = 0.45 + 0.55 * np.abs(normal[order, 2])[:, None]
    rgb = np.clip(colours[face_part[order]] * shade, 0, 1)
    ax.add_collection(PolyCollection(screen, facecolors=rgb, edgecolors="none", antialiased=False))
    ax.set_xlim(-0.55, 0.55)
    ax.set_ylim(-0.85, 0.9)
    ax.set_aspect("equal")
    ax.set_title(title, fontsize=11)
    ax.set_xlabel("x (m)" if sign > 0 else "-x (m)")
    ax.set_ylabel("y (m)")


def draw(path: Path, mesh, face_part, chart_set, methods, title: str) -> None:
    """Render the overview PNG (matplotlib Agg, no GUI)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.collections import PolyCollection
    from matplotlib.patches import Patch

    colours = part_colours()
    fig = plt.figure(figsize=(16, 19.5), dpi=DPI)
    grid = fig.add_gridspec(2, 1, height_ratios=[1.25, 1.0], hspace=0.1, left=0.04, right=0.99, top=0.95, bottom=0.03)
    top = grid[0].subgridspec(1, 3, width_ratios=[1, 1, 0.62], wspace=0.12)
    ax_front = fig.add_subplot(top[0])
    ax_back = fig.add_subplot(top[1])
    _view(ax_front, mesh.vertices, mesh.faces, face_part, colours, 1.0,
          "front view (character faces viewer, camera on +z)\ncharacter's right (-x) on the viewer's left")
    _view(ax_back, mesh.vertices, mesh.faces, face_part, colours, -1.0,
          "back view (camera on -z)\ncharacter's right (-x) on the viewer's right")
    ax_leg = fig.add_subplot(top[2])
    ax_leg.axis("off")
    handles = [Patch(color=colours[p], label=f"{p:2d} {PART_NAMES[p - 1]}") for p in range(1, 25)]
    ax_leg.legend(handles=handles, loc="center left", fontsize=11, frameon=False, title="DensePose part id")

    bottom = grid[1].subgridspec(4, 6, hspace=0.45, wspace=0.2)
    uv = chart_set.chart_uv.astype(np.float64)
    p3 = mesh.vertices[chart_set.chart_vertex]
    for p in range(1, 25):
        ax = fig.add_subplot(bottom[(p - 1) // 6, (p - 1) % 6])
        cf = chart_set.chart_faces[face_part == p]
        tri = uv[cf]
        centre = p3[cf].mean(axis=1)
        cell = np.floor(centre / CHECKER_M).astype(np.int64).sum(axis=1) % 2
        area2 = (tri[:, 1, 0] - tri[:, 0, 0]) * (tri[:, 2, 1] - tri[:, 0, 1]) - (tri[:, 1, 1] - tri[:, 0, 1]) * (
            tri[:, 2, 0] - tri[:, 0, 0]
        )
        major = np.sign(np.median(area2))
        base = colours[p] * np.where(cell, 1.0, 0.55)[:, None]
        base[area2 * major <= 0] = [1.0, 0.0, 0.0]
        ax.add_collection(PolyCollection(tri, facecolors=base, edgecolors="none", antialiased=False))
        ax.set_xlim(-0.02, 1.02)
        ax.set_ylim(-0.02, 1.02)
        ax.set_aspect("equal")
        ax.tick_params(labelsize=7)
        ax.set_title(f"{p} {PART_NAMES[p - 1]}\n{methods[p]}", fontsize=9)
        if p == 19:
            ax.set_xlabel("U", fontsize=9)
            ax.set_ylabel("V", fontsize=9)
    fig.suptitle(title, fontsize=14, y=0.995)
    fig.text(0.5, 0.008, f"charts: faces shaded by a {CHECKER_M * 100:.0f} cm 3D checker (distortion shows as "
             "stretched cells); folded triangles would be red", ha="center", fontsize=10)
    fig.savefig(path, dpi=DPI, metadata={"Software": None})
    plt.close(fig)
