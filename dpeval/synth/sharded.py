"""Stage 3.5 (synth): DensePose-Synth images rendered in shards on a Dask cluster
(``synth --scheduler``).

In: a ``dask.distributed.Client`` and the jobs of :func:`dpeval.synth.generate_dataset`.
Out: (index, image record, annotations) in index order; the files are written by the
workers into the (shared) output directory, the JSON once by the client. The generic Dask
helpers are in :mod:`dpeval.distributed`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..distributed import map_shards, n_workers
from ..errors import ParamsError

__all__ = ["render_synth"]


def _render_shard(jobs: list[tuple]) -> list[tuple[int, dict, list[dict]]]:
    from pathlib import Path

    from .generate import _work

    for sub in ("images", "iuv"):  # a worker's own view of the shared directory
        (Path(jobs[0][4]) / sub / jobs[0][2]).mkdir(parents=True, exist_ok=True)
    return [_work(job) for job in jobs]


def render_synth(
    client: Any,
    jobs: list[tuple],
    *,
    progress: Callable[[int], None] | None = None,
    images_per_shard: int | None = None,
) -> list[tuple[int, dict, list[dict]]]:
    """Render :func:`dpeval.synth.generate_dataset` jobs in shards on the cluster.

    Each task renders a contiguous range of image indices (each image has its own
    seeded generator, so the bytes do not depend on the sharding) and writes its files
    into the output directory. Afterwards the client checks that every file is visible
    here: a directory that is not shared with the workers is an error, not a JSON that
    points at missing images.

    Parameters
    ----------
    client : distributed.Client
    jobs : list of (index, seed, split, SynthConfig, out_dir)
        ``out_dir`` is made absolute (the workers' working directory may differ).
    progress : callable, optional
        Called with the number of images finished since the last call.
    images_per_shard : int, optional
        Default: about 8 shards per worker, at most 64 images each.

    Returns
    -------
    list of (index, image record, annotations)
        In index order.

    Raises
    ------
    ParamsError
        The workers wrote files this machine cannot see.
    """
    from pathlib import Path

    if not jobs:
        return []
    root = Path(jobs[0][4]).resolve()
    jobs = [(i, seed, split, cfg, str(root)) for i, seed, split, cfg, _ in jobs]
    size = images_per_shard or max(1, min(64, -(-len(jobs) // (8 * n_workers(client)))))
    shards = [jobs[a : a + size] for a in range(0, len(jobs), size)]
    parts = map_shards(
        client, _render_shard, shards, progress=(lambda p: progress(len(p))) if progress else None
    )
    results = [r for part in parts for r in part]
    split = jobs[0][2]
    missing = [
        name
        for _, image, _ in results
        for name in (
            root / "images" / split / image["file_name"],
            root / "iuv" / split / image["iuv_file_name"],
        )
        if not name.is_file()
    ]
    if missing:
        raise ParamsError(
            f"synth --scheduler: {len(missing)} file(s) written by the workers are not "
            f"visible here (first: {missing[0]}); the output directory {root} must be on a "
            "file system shared by the client and every worker"
        )
    return results
