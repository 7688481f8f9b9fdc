"""Summary stage: the results of one scoring run, and their JSON / Markdown / text forms.

In: the numbers from :mod:`dpeval.evaluation`. Out: :class:`Summary`, whose
:meth:`~Summary.to_json` is stable and byte-deterministic for the same inputs:

.. code-block:: text

    {"dpeval_version", "template": {"id", "sha256"}, "protocol",
     "inputs": {"predictions_sha256", "ground_truth_sha256", "predictions_format"},
     "metrics": {"gps_paper": {AP, AP50, AP75, APm, APl, AR, AR50, AR75, ARm, ARl},
                 "gps_perpart": {...}, "gpsm": {..., "kappa"}, "iou": {...},
                 "points": {"AUC10", "AUC30", "n_points", "RCP": {"t_m": [...], "ratio": [...]}}},
     "per_part": {"1": {"name", "n_points", "AUC10", "AUC30", "mean_error_cm", "miss_rate"}, ...},
     "official_summary": {"gps_paper": [18 lines], ...}}

Values are fractions (not percentages); NaN is written as null.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

from .params import AP_AR_NAMES

__all__ = ["METRIC_KEYS", "Summary", "make_summary"]

METRIC_KEYS = ("gps_paper", "gps_perpart", "gpsm", "iou", "points")
"""Keys of ``Summary.metrics`` in print order."""

_TITLES = {
    "gps_paper": "GPS, kappa 0.255 (paper)",
    "gps_perpart": "GPS, per-part kappa (2018/2019 challenges)",
    "gpsm": "GPSm = sqrt(GPS * mask IoU) (2019 challenge, detectron2)",
    "iou": "mask IoU",
}


def _clean(x: Any) -> Any:
    if isinstance(x, float):
        return None if math.isnan(x) else x
    if isinstance(x, dict):
        return {str(k): _clean(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_clean(v) for v in x]
    if hasattr(x, "item") and not hasattr(x, "__len__"):
        return _clean(x.item())
    return x


@dataclass(frozen=True)
class Summary:
    """Everything one ``dpeval score`` run computed.

    Attributes
    ----------
    metrics : dict
        ``gps_paper``, ``gps_perpart``, ``gpsm``, ``iou`` (each the ten named AP/AR
        fractions) and ``points`` (AUC10, AUC30, n_points, RCP), for the metrics run.
    stats : dict
        Per AP/AR metric, the official 18 numbers.
    official_summary : dict
        Per AP/AR metric, the official 18 summary lines.
    per_part_rows : list of dict
        Pointwise numbers per part (see :attr:`per_part`).
    """

    dpeval_version: str
    template_id: str
    template_sha256: str
    protocol: str
    predictions_sha256: str
    ground_truth_sha256: str
    predictions_format: str
    metrics: dict[str, dict[str, Any]] = field(default_factory=dict)
    stats: dict[str, list[float]] = field(default_factory=dict)
    official_summary: dict[str, list[str]] = field(default_factory=dict)
    per_part_rows: list[dict[str, Any]] = field(default_factory=list)
    warnings: dict[str, int] = field(default_factory=dict)
    oracle: str | None = None
    """An upper-bound mode of :data:`dpeval.params.ORACLES`, or None for a real score."""

    @property
    def per_part(self):
        """Pointwise results per part as a pandas DataFrame indexed by part id."""
        import pandas as pd

        if not self.per_part_rows:
            return pd.DataFrame(columns=["name", "n_points", "auc10", "auc30"])
        return pd.DataFrame(self.per_part_rows).set_index("part")

    def to_dict(self) -> dict[str, Any]:
        """The documented JSON structure as Python objects."""
        per_part = {
            str(r["part"]): {
                "name": r["name"],
                "n_points": r["n_points"],
                "AUC10": r["auc10"],
                "AUC30": r["auc30"],
                "mean_error_cm": r["mean_error_cm"],
                "miss_rate": r["miss_rate"],
            }
            for r in self.per_part_rows
        }
        return _clean(
            {
                "dpeval_version": self.dpeval_version,
                "template": {"id": self.template_id, "sha256": self.template_sha256},
                "protocol": self.protocol,
                "inputs": {
                    "predictions_sha256": self.predictions_sha256,
                    "ground_truth_sha256": self.ground_truth_sha256,
                    "predictions_format": self.predictions_format,
                },
                "metrics": self.metrics,
                "per_part": per_part,
                "official_summary": self.official_summary,
                "warnings": self.warnings,
                **({"oracle": self.oracle} if self.oracle else {}),
            }
        )

    def to_json(self) -> str:
        """Stable JSON text (sorted keys, 2-space indent, trailing newline)."""
        return json.dumps(self.to_dict(), indent=2, sort_keys=True, allow_nan=False) + "\n"

    def lines(self, official: bool = False) -> list[str]:
        """Human-readable summary: a compact table, or the official 18-line blocks."""
        out = [
            f"dpeval {self.dpeval_version} | template {self.template_id} "
            f"({self.template_sha256[:12]}) | protocol {self.protocol}"
        ]
        if self.oracle:
            out.append(f"ORACLE {self.oracle}: an upper bound, not the model's score")
        ap_keys = [k for k in METRIC_KEYS if k in self.metrics and k != "points"]
        if official:
            for k in ap_keys:
                out += ["", f"[{k}] {_TITLES[k]}", *self.official_summary.get(k, [])]
        elif ap_keys:
            names = AP_AR_NAMES
            out.append("")
            out.append(f"{'(x100)':<12}" + "".join(f"{n:>7}" for n in names))
            for k in ap_keys:
                m = self.metrics[k]
                out.append(f"{k:<12}" + "".join(_fmt(m.get(n)) for n in names))
        if "points" in self.metrics:
            p = self.metrics["points"]
            out += [
                "",
                f"points: AUC10 {_num(p['AUC10'])}  AUC30 {_num(p['AUC30'])}  "
                f"({p['n_points']} GT points)",
            ]
        for kind, n in sorted(self.warnings.items()):
            out.append(f"warning: {kind}: {n}")
        return out

    def to_markdown(self) -> str:
        """A Markdown table of the AP/AR metrics and the pointwise numbers."""
        names = AP_AR_NAMES
        rows = ["| metric | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
        for k in METRIC_KEYS:
            if k in self.metrics and k != "points":
                m = self.metrics[k]
                rows.append(f"| {k} | " + " | ".join(_num(m.get(n)) for n in names) + " |")
        if "points" in self.metrics:
            p = self.metrics["points"]
            rows += ["", f"AUC10 {_num(p['AUC10'])}, AUC30 {_num(p['AUC30'])}"]
        return "\n".join(rows) + "\n"


def make_summary(
    template: Any,
    preds: Any,
    gt: Any,
    results: dict[str, Any],
    *,
    protocol: str,
    warnings: dict[str, int] | None = None,
) -> Summary:
    """A :class:`Summary` from :func:`dpeval.evaluation.evaluate_similarities` results and
    the inputs they came from (versions, checksums, format).

    ``template`` is anything with an ``id`` and a ``checksum`` (a
    :class:`~dpeval.template.BodyTemplate`, or the meshes of a CSE run); ``preds`` and
    ``gt`` anything with a ``sha256`` (and ``preds`` a ``format``).
    """
    from . import __version__

    return Summary(
        dpeval_version=__version__,
        template_id=template.id,
        template_sha256=template.checksum,
        protocol=protocol,
        predictions_sha256=preds.sha256,
        ground_truth_sha256=gt.sha256,
        predictions_format=preds.format,
        metrics=results["metrics"],
        stats=results["stats"],
        official_summary=results["official_summary"],
        per_part_rows=results["per_part"],
        warnings=dict(warnings or {}),
    )


def _num(v: Any) -> str:
    return "n/a" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.4f}"


def _fmt(v: Any) -> str:
    if v is None or (isinstance(v, float) and (math.isnan(v) or v < 0)):
        return f"{'n/a':>7}"
    return f"{100 * v:>7.2f}"
