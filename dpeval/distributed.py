"""Scale-out on Dask, generic part: clients from a scheduler spec, local clusters, shards.

In: a scheduler spec (:func:`open_client`) and a function over shards. Out: the results
gathered on the client in shard order (:func:`map_shards`). Each stage ships its own
tasks beside its code: :mod:`dpeval.evaluation.sharded` (per-image scoring),
:mod:`dpeval.insight.sharded` (bootstrap resamples), :mod:`dpeval.synth.sharded`
(rendering); every number and byte equals the local run.

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
    "local_cluster",
    "map_shards",
    "n_workers",
    "open_client",
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
