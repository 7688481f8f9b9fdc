"""Leaderboard ranking: group comparable entries, order them, mark ties in significance.

In: validated :class:`~dpeval.leaderboard.store.Entry` objects. Out: one
:class:`RankedGroup` per (split, ground-truth sha256, template id + sha256, protocol,
box protocol, geodesics: the official table or the engine version). Entries of different
groups are never ranked together, so numbers of different metric versions, templates,
distance definitions or splits are never compared.

Significance rule
-----------------
Each entry carries a 95% percentile bootstrap interval (images resampled) of the
ranking metric. Rows are sorted by the point value; when a row's interval overlaps the
interval of the row directly above it (``ci_high(row) >= ci_low(above)``), the row is
marked ``not_significant`` ("≈" in tables): the two are not significantly different.
Non-overlapping 95% intervals imply a difference at roughly the 1% level; overlapping
ones do not prove equality (the paired test :func:`dpeval.insight.compare` on both
prediction files is more sensitive). Rows without an interval are never marked.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from ..errors import ParamsError
from .store import Entry, GroupKey
from .text import format_interval

__all__ = ["DEFAULT_METRIC", "METRICS", "RankedGroup", "RankedRow", "format_groups", "rank"]

# ranking metric -> (score.metrics block, key in it, intervals key, column title)
METRICS: dict[str, tuple[str, str, str, str]] = {
    "gpsm": ("gpsm", "AP", "gpsm_AP", "GPSm AP"),
    "gps_perpart": ("gps_perpart", "AP", "gps_perpart_AP", "GPS AP (per-part κ)"),
    "gps_paper": ("gps_paper", "AP", "gps_paper_AP", "GPS AP (paper κ)"),
    "iou": ("iou", "AP", "iou_AP", "IoU AP"),
    "auc10": ("points", "AUC10", "AUC10", "AUC10"),
    "auc30": ("points", "AUC30", "AUC30", "AUC30"),
}
DEFAULT_METRIC = "gpsm"
NOT_SIGNIFICANT_MARK = "≈"


@dataclass(frozen=True)
class RankedRow:
    """One entry in its group: rank (1 = best; equal values share a rank), the
    metric value and its 95% interval, and whether it is not significantly different
    from the row above."""

    rank: int
    entry: Entry
    value: float | None
    ci_low: float | None
    ci_high: float | None
    not_significant: bool


@dataclass(frozen=True)
class RankedGroup:
    """Entries that may be compared, best first."""

    key: GroupKey
    metric: str
    rows: tuple[RankedRow, ...]


def metric_value(entry: Entry, metric: str) -> tuple[float | None, float | None, float | None]:
    """``(value, ci_low, ci_high)`` of ``metric`` for one entry (``None`` if absent)."""
    block, key, iv_key, _ = METRICS[metric]
    value = entry.data["score"]["metrics"].get(block, {}).get(key)
    iv = entry.data["intervals"].get(iv_key) or {}
    return value, iv.get("ci_low"), iv.get("ci_high")


def _overlaps(above: RankedRow, row: RankedRow) -> bool:
    if None in (above.ci_low, above.ci_high, row.ci_low, row.ci_high):
        return False
    return row.ci_high >= above.ci_low and above.ci_high >= row.ci_low  # type: ignore[operator]


def rank(
    entries: Iterable[Entry], metric: str = DEFAULT_METRIC, split: str | None = None
) -> list[RankedGroup]:
    """Group entries and rank each group by ``metric``.

    Parameters
    ----------
    entries : iterable of Entry
    metric : {"gpsm", "gps_perpart", "gps_paper", "iou", "auc10", "auc30"}
    split : str, optional
        Keep only this split.

    Returns
    -------
    list of RankedGroup
        Sorted by split, then boxes, protocol, template and GT checksum. In a group,
        rows are sorted by value (descending; missing values last), then by date
        (earlier first), then by entry id.

    Raises
    ------
    ParamsError
        Unknown metric.

    Example
    -------
    >>> from dpeval.leaderboard.store import read_entries
    >>> rank(read_entries("leaderboard"), "gpsm")  # doctest: +SKIP
    """
    if metric not in METRICS:
        raise ParamsError(f"unknown metric {metric!r}; choose from {sorted(METRICS)}")
    groups: dict[GroupKey, list[Entry]] = {}
    for e in entries:
        if split is None or e.data["split"] == split:
            groups.setdefault(e.group, []).append(e)
    out = []
    for key in sorted(
        groups,
        key=lambda k: (k.split, k.boxes, k.protocol, k.template_id, k.template_sha256,
                       k.geodesics, k.ground_truth_sha256),
    ):  # fmt: skip
        scored = [(e, *metric_value(e, metric)) for e in groups[key]]
        scored.sort(key=lambda t: (t[1] is None, -(t[1] or 0.0), t[0].data["date"], t[0].id))
        rows: list[RankedRow] = []
        for i, (e, v, lo, hi) in enumerate(scored):
            r = rows[-1].rank if rows and v is not None and v == rows[-1].value else i + 1
            row = RankedRow(r, e, v, lo, hi, False)
            if rows and _overlaps(rows[-1], row):
                row = RankedRow(r, e, v, lo, hi, True)
            rows.append(row)
        out.append(RankedGroup(key=key, metric=metric, rows=tuple(rows)))
    return out


def format_groups(groups: list[RankedGroup]) -> list[str]:
    """Plain-text tables for ``dpeval leaderboard show`` (one block per group)."""
    if not groups:
        return ["no entries"]
    lines: list[str] = []
    for g in groups:
        title = METRICS[g.metric][3]
        lines += [f"== {g.key.label()}", f"{'rank':>4}  {'':1} {title + ' [95% CI]':<28} method"]
        for r in g.rows:
            mark = NOT_SIGNIFICANT_MARK if r.not_significant else ""
            team = r.entry.data["method"]["team"]
            who = r.entry.name + (f" ({team})" if team else "")
            value = format_interval(r.value, r.ci_low, r.ci_high)
            lines.append(f"{r.rank:>4}  {mark:1} {value:<28} {who}  [{r.entry.id}]")
        lines.append("")
    lines.append(
        f"{NOT_SIGNIFICANT_MARK} = 95% bootstrap interval overlaps the row above "
        "(not significantly different)"
    )
    return lines
