"""Scale-out on Dask: the per-image scoring stage, bootstrap resamples and synthetic
rendering as tasks on a ``dask.distributed`` cluster.

In: a ``dask.distributed.Client`` (or a scheduler spec for :func:`open_client`) and the
work a stage would otherwise do on this machine. Out: the same results, gathered on the
client in the local order, so every number and byte equals the local run.

What travels where:

* ``score``: the client reads the inputs, finds the GT points and the top detections,
  and ships each shard of images as :class:`~dpeval.evaluation.images.ImageTask` objects
  (the GT people and the *encoded* IUV maps of those images only). The template's
  closest-vertex table (``uv8_lut``, 6.5 MB) is scattered once to every worker
  (``broadcast=True``); the workers decode, sample and mask. The geodesic distances are
  looked up on the client in one batched call, as locally: the solver chooses between
  its cached all-pairs table and exact per-source fields from the number of sources in
  the call, so splitting the call would change distances in the last digits; a warm
  table lookup of 10 M pairs takes about a second. Matching and accumulation run on the
  client.
* ``report``/``compare``: the per-image tables of the bootstrap are scattered once; each
  task re-weights a block of resamples (rows of the seeded weight matrix, drawn on the
  client), so the intervals do not depend on the cluster.
* ``synth``: each task renders a contiguous shard of image indices (every image has its
  own seeded generator) and writes its files into the output directory, which must be
  a path every worker can write (a shared file system); the JSON is assembled and
  written once, on the client.

The core package never imports dask: this module imports it inside its functions only.
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import logging
import os
import warnings
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np

from .errors import ParamsError

__all__ = [
    "DASK_INSTALL",
    "bootstrap_values",
    "local_cluster",
    "map_images",
    "map_shards",
    "open_client",
    "render_synth",
    "shard_bounds",
]

log = logging.getLogger(__name__)

DASK_INSTALL = 'pip install "dask[distributed]" (or pip install -e ".[dask]")'
"""The install line named when dask is missing."""


def _import_distributed() -> Any:
    try:
        import distributed
    except ImportError as exc:
        raise ParamsError(f"--scheduler needs dask.distributed ({exc}); {DASK_INSTALL}") from None
    return distributed


@contextlib.contextmanager
def open_client(scheduler: str) -> Iterator[Any]:
    """A ``dask.distributed.Client`` for a scheduler spec, closed on exit.

    Parameters
    ----------
    scheduler : str
        ``local:N`` starts a ``LocalCluster`` of N single-threaded worker processes on
        this machine (closed on exit); anything else is the address of a running
        scheduler (``tcp://host:8786``, ``tls://...``) or the path of a scheduler file.

    Yields
    ------
    distributed.Client

    Raises
    ------
    ParamsError
        dask is not installed, ``local:N`` has a bad N, or the scheduler cannot be
        reached.

    Notes
    -----
    Unless the root logger is at DEBUG, the ``distributed`` and ``dask`` loggers are
    set to WARNING (their start-up messages would fill the terminal).
    """
    distributed = _import_distributed()
    if logging.getLogger().getEffectiveLevel() > logging.DEBUG:  # dpeval --debug shows all
        for name in ("distributed", "dask"):  # their INFO start-up chatter is noise here
            logging.getLogger(name).setLevel(logging.WARNING)
    if scheduler.startswith("local:") or scheduler == "local":
        text = scheduler.partition(":")[2] or "2"
        try:
            n = int(text)
        except ValueError:
            n = 0
        if n < 1:
            raise ParamsError(
                f"--scheduler {scheduler!r}: expected local:N with N >= 1 worker processes, "
                "e.g. local:4, or a scheduler address such as tcp://host:8786"
            )
        cluster = local_cluster(n)
        try:
            with distributed.Client(cluster) as client:
                yield client
        finally:
            cluster.close()
        return
    kwargs: dict[str, Any] = {"timeout": 30}
    if scheduler.endswith(".json"):
        if not os.path.isfile(scheduler):
            raise ParamsError(
                f"--scheduler {scheduler}: no such scheduler file; write one with "
                "dask scheduler --scheduler-file FILE or Client.write_scheduler_file(FILE)"
            )
        kwargs["scheduler_file"] = scheduler
    else:
        kwargs["address"] = scheduler
    try:
        client = distributed.Client(**kwargs)
    except OSError as exc:
        raise ParamsError(
            f"--scheduler {scheduler!r}: cannot reach the Dask scheduler ({exc}); start one "
            "(dask scheduler; dask worker ADDRESS) or use --scheduler local:N"
        ) from None
    try:
        yield client
    finally:
        client.close()


def local_cluster(n: int) -> Any:
    """A ``LocalCluster`` of ``n`` single-threaded worker processes, tuned for the
    per-image stage's many medium-sized NumPy temporaries.

    - The workers' statistical profiler is off: it slowed the stage about 3x on the
      project machine.
    - ``MALLOC_MMAP_THRESHOLD_`` is raised to 32 MiB: Dask starts workers with
      ``MALLOC_TRIM_THRESHOLD_`` set, which freezes glibc's mmap threshold at 128 KiB,
      so every larger temporary is mmapped and page-faulted again; in two paired runs
      the stage went from 2.6-2.9x to 1.8-2.0x the in-process time (a contended
      machine; the rest of the gap is not explained).

    Set the same on remote workers (``DASK_DISTRIBUTED__WORKER__PROFILE__ENABLED=False``
    and ``MALLOC_MMAP_THRESHOLD_=33554432`` in their environment).
    """
    import dask

    distributed = _import_distributed()
    tuned = {
        "distributed.worker.profile.enabled": False,
        "distributed.nanny.pre-spawn-environ.MALLOC_MMAP_THRESHOLD_": 2**25,
    }
    with dask.config.set(tuned):
        return distributed.LocalCluster(
            n_workers=n, processes=True, threads_per_worker=1, dashboard_address=None
        )


def n_workers(client: Any) -> int:
    """Workers currently connected to ``client``'s scheduler (at least 1)."""
    return max(1, len(client.scheduler_info().get("workers", {})))


def shard_bounds(n: int, n_shards: int) -> list[tuple[int, int]]:
    """Contiguous ``[a, b)`` ranges cutting ``range(n)`` into at most ``n_shards`` parts."""
    n_shards = max(1, min(n, n_shards))
    bounds = np.linspace(0, n, n_shards + 1).astype(int)
    return [(int(a), int(b)) for a, b in itertools.pairwise(bounds) if b > a]


def map_shards(
    client: Any,
    func: Callable[..., Any],
    shards: Sequence[Any] | Iterator[Any],
    *args: Any,
    progress: Callable[[Any], None] | None = None,
    in_flight: int | None = None,
) -> list[Any]:
    """Run ``func(shard, *args)`` for every shard on the cluster; results in shard order.

    At most ``in_flight`` shards (default 4 per worker) are submitted at a time, so the
    client never holds the encoded inputs of the whole data set in the task graph.
    ``args`` may hold futures (e.g. scattered data); they resolve on the workers. A task
    lost with its worker is rerun elsewhere by the scheduler; an exception raised by
    ``func`` is raised here.
    """
    distributed = _import_distributed()
    limit = in_flight or 4 * n_workers(client)
    it = iter(enumerate(shards))
    out: dict[int, Any] = {}
    pending: dict[Any, int] = {}
    queue = distributed.as_completed()

    def fill() -> None:
        while len(pending) < limit:
            nxt = next(it, None)
            if nxt is None:
                return
            k, shard = nxt
            with warnings.catch_warnings():  # shards are bounded (<= 256 images) by design
                warnings.filterwarnings("ignore", "Sending large graph", UserWarning)
                fut = client.submit(func, shard, *args, pure=False)
            pending[fut] = k
            queue.add(fut)

    fill()
    try:
        for fut in queue:
            k = pending.pop(fut)
            out[k] = fut.result()
            fut.release()
            if progress:
                progress(out[k])
            fill()
    finally:
        for fut in pending:
            fut.cancel()
    return [out[k] for k in range(len(out))]


def _portable(det: Any) -> Any:
    """A detection that pickles small: a native-file map keeps only its own bytes."""
    from .formats.native import _Inflater

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
    from .evaluation.images import image_similarities_many

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


def _values_block(weights: np.ndarray, tables: Sequence[Any]) -> list[dict[str, np.ndarray]]:
    from .insight.bootstrap import _ap_values

    return [_ap_values(t, weights) for t in tables]


def bootstrap_values(
    client: Any, tables: Sequence[Any], weights: np.ndarray
) -> list[dict[str, np.ndarray]]:
    """``_values(t, weights)`` for each of ``tables``: the APs (the costly part: one
    Numba pass per resample) in blocks of resamples on the cluster, each row computed
    alone; the AUCs (two matrix products, whose last bits depend on the block shape) on
    the client over all rows. Equal to the local computation.

    Parameters
    ----------
    client : distributed.Client
    tables : sequence of MetricTables
        One model (report) or two on the same images (compare); scattered once.
    weights : (B, I) float64
        The seeded image multiplicities, drawn on the client.

    Returns
    -------
    list of dict
        Per table: metric name -> (B,) values.
    """
    n_b = len(weights)
    blocks = [weights[a:b] for a, b in shard_bounds(n_b, 4 * n_workers(client))]
    futures = client.scatter(list(tables), broadcast=True, hash=False)  # one per table
    try:
        parts = map_shards(client, _values_block, blocks, futures)
    finally:
        for f in futures:
            f.release()
    from .insight.bootstrap import _auc_values

    out = []
    for t, table in enumerate(tables):
        names = parts[0][t].keys() if parts else []
        values = {n: np.concatenate([p[t][n] for p in parts]) for n in names}
        values.update(_auc_values(table, weights))
        out.append(values)
    return out


def _render_shard(jobs: list[tuple]) -> list[tuple[int, dict, list[dict]]]:
    from pathlib import Path

    from .synth.generate import _work

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
