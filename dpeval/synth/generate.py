"""Synth stage 5: the dataset writer behind ``dpeval synth``.

In: an output directory, a split name, an image count and a seed. Out, under
``OUT_DIR``::

    images/<split>/000001.jpg        RGB images (JPEG or PNG)
    iuv/<split>/000001.png           dense ground truth, H x W x 3: I, U*255, V*255
    annotations/densepose_synth_<split>.json   DensePose-COCO ground truth

Every image draws from its own generator seeded by (seed, split, index), so the output
is byte-identical on re-runs and does not depend on the number of workers. Files are
written to temporary names and moved into place with ``os.replace``
(:func:`dpeval._io.write_atomic`); the JSON is removed first and written last, so an
interrupted run never leaves a JSON that points at missing images.
"""

from __future__ import annotations

import json
import logging
import zlib
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .._io import write_atomic
from .._typing import PathLike
from ..errors import ParamsError
from .annotate import AnnotateConfig, add_cse_fields, annotate_frame
from .pose import COCO_KEYPOINTS, COCO_SKELETON
from .scene import SceneConfig, sample_scene

__all__ = ["CATEGORIES", "SynthConfig", "generate_dataset", "render_sample"]

log = logging.getLogger(__name__)

CATEGORIES = [
    {
        "id": 1,
        "name": "person",
        "supercategory": "person",
        "keypoints": list(COCO_KEYPOINTS),
        "skeleton": [list(p) for p in COCO_SKELETON],
    }
]


@dataclass(frozen=True)
class SynthConfig:
    """Everything that defines a synthetic split (besides its seed and size).

    Attributes
    ----------
    scene : SceneConfig
    annotate : AnnotateConfig
    image_format : {"jpg", "png"}
    jpeg_quality : int
    effects : bool
        Random exposure, blur and noise (``render.postprocess``).
    """

    scene: SceneConfig = field(default_factory=SceneConfig)
    annotate: AnnotateConfig = field(default_factory=AnnotateConfig)
    image_format: str = "jpg"
    jpeg_quality: int = 90
    effects: bool = True


@dataclass(frozen=True, eq=False)
class Sample:
    """One generated image: encoded files, its COCO image record and annotations."""

    index: int
    image_bytes: bytes
    iuv_bytes: bytes
    image: dict
    annotations: list[dict]


_STATE: dict[str, Any] = {}


def _models() -> tuple[Any, Any]:
    """Per-process BodyModel and Renderer of the open template (built once)."""
    if "model" not in _STATE:
        from ..template import load_template
        from .pose import BodyModel
        from .render import Renderer

        tpl = load_template("open")
        _STATE["model"], _STATE["renderer"] = BodyModel(tpl), Renderer(tpl)
    return _STATE["model"], _STATE["renderer"]


def image_rng(seed: int, split: str, index: int) -> np.random.Generator:
    """The generator of image ``index`` (0-based) of ``split``."""
    key = (zlib.crc32(split.encode("utf-8")), int(index))
    return np.random.default_rng(np.random.SeedSequence(int(seed), spawn_key=key))


def render_sample(index: int, seed: int, split: str, cfg: SynthConfig) -> Sample:
    """Render and annotate image ``index`` (0-based; its id is ``index + 1``).

    Returns
    -------
    Sample
        Encoded image and IUV PNG, the image record and the annotations (no ids yet).
    """
    from .render import encode_image, postprocess

    model, renderer = _models()
    rng = image_rng(seed, split, index)
    scene = sample_scene(rng, cfg.scene, model)
    frame = renderer.render(
        scene.camera,
        [p.vertices for p in scene.people],
        np.stack([p.material for p in scene.people]),
        scene.light,
        scene.background,
    )
    anns = add_cse_fields(annotate_frame(frame, scene, rng, cfg.annotate), model.template)
    image = postprocess(frame.image, rng) if cfg.effects else frame.image
    ext = cfg.image_format
    name = f"{index + 1:06d}"
    record = {
        "id": index + 1,
        "file_name": f"{name}.{ext}",
        "width": cfg.scene.width,
        "height": cfg.scene.height,
        "iuv_file_name": f"{name}.png",
    }
    return Sample(
        index=index,
        image_bytes=encode_image(image, ext, cfg.jpeg_quality),
        iuv_bytes=encode_image(frame.iuv, "png"),
        image=record,
        annotations=anns,
    )


def _work(job: tuple[int, int, str, SynthConfig, str]) -> tuple[int, dict, list[dict]]:
    index, seed, split, cfg, root = job
    s = render_sample(index, seed, split, cfg)
    base = Path(root)
    write_atomic(base / "images" / split / s.image["file_name"], s.image_bytes)
    write_atomic(base / "iuv" / split / s.image["iuv_file_name"], s.iuv_bytes)
    return index, s.image, s.annotations


def json_path(out_dir: PathLike, split: str) -> Path:
    """Path of the ground-truth JSON of ``split`` under ``out_dir``."""
    return Path(out_dir) / "annotations" / f"densepose_synth_{split}.json"


def generate_dataset(
    out_dir: PathLike,
    *,
    split: str = "val",
    n_images: int = 100,
    seed: int = 0,
    config: SynthConfig | None = None,
    workers: int = 1,
    progress: Callable[[int], None] | None = None,
    client: Any = None,
) -> Path:
    """Write a synthetic DensePose-COCO split.

    Parameters
    ----------
    out_dir : path
    split : str
        ``"train"``, ``"val"`` or any other name (it also seeds the images).
    n_images : int
    seed : int
    config : SynthConfig, optional
    workers : int
        Processes rendering in parallel (the output does not depend on it).
    progress : callable, optional
        Called with the number of images finished since the last call.
    client : dask.distributed.Client, optional
        Render contiguous shards of images as tasks on this cluster
        (:func:`dpeval.synth.sharded.render_synth`; ``workers`` is ignored). The workers
        write the images into ``out_dir``, which must be a path every worker can write
        (a shared file system); the JSON is written once, here. Same bytes as a local
        run.

    Returns
    -------
    Path
        The ground-truth JSON.

    Raises
    ------
    ParamsError
        On a non-positive image count, worker count or image size, or an unknown format.

    Example
    -------
    >>> p = generate_dataset("/tmp/synth_demo", n_images=2, seed=1)  # doctest: +SKIP
    """
    cfg = config or SynthConfig()
    _check(split, n_images, workers, cfg)
    root = Path(out_dir)
    target = json_path(root, split)
    for sub in (root / "images" / split, root / "iuv" / split, target.parent):
        sub.mkdir(parents=True, exist_ok=True)
    if target.exists():
        target.unlink()  # the old index must not outlive the images it describes
    jobs = [(i, int(seed), split, cfg, str(root)) for i in range(n_images)]
    results: list[tuple[int, dict, list[dict]]] = []
    if client is not None:
        from .sharded import render_synth

        results = render_synth(client, jobs, progress=progress)
    elif workers == 1:
        for job in jobs:
            results.append(_work(job))
            if progress:
                progress(1)
    else:
        import multiprocessing as mp

        methods = mp.get_all_start_methods()
        ctx = mp.get_context("fork" if "fork" in methods else "spawn")
        with ctx.Pool(workers) as pool:
            for res in pool.imap(_work, jobs, chunksize=max(1, min(8, n_images // (4 * workers)))):
                results.append(res)
                if progress:
                    progress(1)
    doc = _document(results, split, seed, cfg)
    write_atomic(target, json.dumps(doc, separators=(",", ":")))
    log.info("wrote %s (%d images)", target, n_images)
    return target


def _check(split: str, n_images: int, workers: int, cfg: SynthConfig) -> None:
    if not split or "/" in split or split.startswith("."):
        raise ParamsError(f"synth: split {split!r} is not a plain name; use e.g. 'train' or 'val'")
    if n_images < 1:
        raise ParamsError(f"synth: --images must be at least 1, got {n_images}")
    if workers < 1:
        raise ParamsError(f"synth: --workers must be at least 1, got {workers}")
    if cfg.image_format not in ("jpg", "png"):
        raise ParamsError(f"synth: image format {cfg.image_format!r}; expected 'jpg' or 'png'")
    if cfg.scene.width < 16 or cfg.scene.height < 16:
        raise ParamsError(
            f"synth: image size {cfg.scene.width}x{cfg.scene.height} is too small; "
            "use at least 16x16, e.g. --size 640x480"
        )
    if cfg.scene.max_people < 1:
        raise ParamsError(f"synth: --max-people must be at least 1, got {cfg.scene.max_people}")


def _document(
    results: list[tuple[int, dict, list[dict]]], split: str, seed: int, cfg: SynthConfig
) -> dict:
    from .. import __version__
    from ..template import load_template

    tpl = load_template("open")
    results = sorted(results, key=lambda r: r[0])
    images, annotations = [], []
    ann_id = 1
    for _, image, anns in results:
        images.append(image)
        for a in anns:
            annotations.append({"id": ann_id, "image_id": image["id"], **a})
            ann_id += 1
    info = {
        "description": f"DensePose-Synth ({split}): synthetic DensePose-COCO data on the "
        "open template, rendered by dpeval synth",
        "version": __version__,
        "split": split,
        "seed": int(seed),
        "template": {"id": tpl.id, "sha256": tpl.checksum},
        "config": asdict(cfg),
        "iuv_dir": f"iuv/{split}",
        "image_dir": f"images/{split}",
    }
    return {
        "info": info,
        "licenses": [],
        "images": images,
        "annotations": annotations,
        "categories": CATEGORIES,
    }
