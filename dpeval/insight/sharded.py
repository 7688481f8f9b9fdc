"""Stage 6 (insight): bootstrap resamples as Dask tasks (``report``/``compare --scheduler``).

In: a ``dask.distributed.Client``, the per-image tables of one or two models and the seeded
weight matrix drawn on the client. Out: per table, metric name -> (B,) values, equal to the
local computation. The generic Dask helpers are in :mod:`dpeval.distributed`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ..distributed import map_shards, n_workers, shard_bounds

__all__ = ["bootstrap_values"]


def _values_block(weights: np.ndarray, tables: Sequence[Any]) -> list[dict[str, np.ndarray]]:
    from .bootstrap import _ap_values

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
    from .bootstrap import _auc_values

    out = []
    for t, table in enumerate(tables):
        names = parts[0][t].keys() if parts else []
        values = {n: np.concatenate([p[t][n] for p in parts]) for n in names}
        values.update(_auc_values(table, weights))
        out.append(values)
    return out
