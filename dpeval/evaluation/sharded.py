"""Stage 4 (evaluation): the per-image stage of :func:`~dpeval.evaluation.prepare.prepare`
on a Dask cluster (``score --scheduler``).

In: a ``dask.distributed.Client``, the client-side :class:`~dpeval.evaluation.images.ImagePlan`
and the template's closest-vertex table. Out: the per-image results in the local order,
identical to :func:`~dpeval.evaluation.images.run_images`. Shards carry only their own GT
people and *encoded* maps; the table is scattered once per worker. The generic Dask
helpers are in :mod:`dpeval.distributed`; dask is imported there, inside functions only.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import numpy as np

from ..distributed import map_shards, n_workers

__all__ = ["map_images"]


def _portable(det: Any) -> Any:
    """A detection that pickles small: a native-file map keeps only its own bytes."""
    from ..formats.native import _Inflater

    loader = det._loader
    if isinstance(loader, _Inflater):
        own = np.array(loader.payload[loader.start : loader.stop], copy=True)
        small = _Inflater(own, 0, len(own), loader.shape, loader.where)
        return dataclasses.replace(det, _loader=small)
    return det


def _portable_task(task: Any) -> Any:
    return task._replace(dets=tuple(_portable(d) for d in task.dets))


def map_images(
    client: Any,
    plan: Any,
    lut: np.ndarray,
    opts: Any,
    *,
    progress: Callable[[int], None] | None = None,
    images_per_shard: int | None = None,
) -> list[Any]:
    """The per-image stage of :func:`~dpeval.evaluation.prepare.prepare` on
    the cluster.

    Parameters
    ----------
    client : distributed.Client
    plan : ImagePlan
        Builds each (image, category) task on the client.
    lut : (25, 256, 256) int
        Scattered once to every worker.
    opts : ImageOptions
    progress : callable, optional
        Called with the number of images done.
    images_per_shard : int, optional
        Default: about 8 shards per worker, at most 256 images each.

    Returns
    -------
    list of ImageResult
        In ``plan.keys`` order (identical to :func:`~dpeval.evaluation.images.run_images`).
    """
    from .images import image_similarities_many

    keys = plan.keys
    if not keys:
        return []
    size = images_per_shard or max(1, min(256, -(-len(keys) // (8 * n_workers(client)))))
    shards = (
        [_portable_task(plan.task(k)) for k in keys[a : a + size]]
        for a in range(0, len(keys), size)
    )
    lut_future = client.scatter(np.ascontiguousarray(lut), broadcast=True, hash=False)
    done = [0]

    def tick(part: list[Any]) -> None:
        done[0] += len(part)
        if progress:
            progress(done[0])

    try:
        parts = map_shards(client, image_similarities_many, shards, lut_future, opts, progress=tick)
    finally:
        lut_future.release()
    return [r for part in parts for r in part]
