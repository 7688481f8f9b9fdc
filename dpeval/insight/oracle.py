"""Insight stage: the official upper-bound ("oracle") table of a report.

In: the ground truth, instance predictions, the template and solver, and the similarities
of the real run. Out: a DataFrame with one row per mode of :data:`dpeval.params.ORACLES`
plus the real scores: what GPS, GPSm and the AUCs would be if the parts (and/or the
chart coordinates) were perfect, as in the DensePose paper's analysis.

Mask IoUs do not depend on the oracle, so each mode recomputes only the per-point
geodesic part (``with_masks=False``) and reuses the real run's mask IoUs for GPSm.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from ..evaluation import evaluate_similarities, prepare
from ..evaluation.prepare import Similarities
from ..formats.model import GroundTruth, Predictions
from ..params import ORACLES
from ..template import BodyTemplate

__all__ = ["oracle_table"]


def _row(mode: str, what: str, out: dict[str, Any]) -> dict[str, Any]:
    m = out["metrics"]
    return {
        "mode": mode,
        "what": what,
        "gps_perpart_AP": m["gps_perpart"]["AP"],
        "gps_paper_AP": m["gps_paper"]["AP"],
        "gpsm_AP": m["gpsm"]["AP"],
        "AUC10": m["points"]["AUC10"],
        "AUC30": m["points"]["AUC30"],
    }


def oracle_table(
    gt: GroundTruth,
    preds: Predictions,
    template: BodyTemplate,
    solver: Any,
    sims: Similarities,
    *,
    kappa: str = "per-part",
    protocol: str = "challenge2019",
    min_iou: float = 0.5,
    max_dets: int = 20,
    workers: int = 2,
    client: Any = None,
) -> Any:
    """Scores of the model and of each official upper-bound mode.

    Parameters
    ----------
    gt, preds : GroundTruth, Predictions
        As scored (instance predictions).
    template, solver
    sims : Similarities
        The real run's similarities (their mask IoUs are reused).
    kappa, protocol, min_iou, max_dets, workers, client
        As in :func:`dpeval.score`.

    Returns
    -------
    pandas.DataFrame
        Index ``mode`` (``model`` first, then the oracles); columns ``what``,
        ``gps_perpart_AP``, ``gps_paper_AP``, ``gpsm_AP``, ``AUC10``, ``AUC30`` (fractions).
    """
    import pandas as pd

    opts = dict(kappa=kappa, protocol=protocol, min_iou=min_iou, max_dets=max_dets)
    wanted = ["gps", "gpsm", "points"]
    rows = [_row("model", "the predictions as they are", evaluate_similarities(
        sims, gt, wanted, **opts))]  # fmt: skip
    for mode, what in ORACLES.items():
        o = prepare(
            preds, gt, template, solver, protocol=protocol, with_masks=False,
            max_dets=max_dets, workers=workers, oracle=mode, client=client,
        )  # fmt: skip
        images = [
            dataclasses.replace(img, mask_iou=real.mask_iou)
            for img, real in zip(o.images, sims.images, strict=True)
        ]
        o = dataclasses.replace(o, images=images)
        rows.append(_row(mode, what, evaluate_similarities(o, gt, wanted, **opts)))
    return pd.DataFrame(rows).set_index("mode")
