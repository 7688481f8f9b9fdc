"""compatibility: removed once the redesign lands (use dpeval.geodesic._reference, dpeval.evaluation._reference)."""  # noqa: E501

from .evaluation._reference import greedy_match
from .geodesic._reference import (
    edge_dijkstra,
    fill_condensed,
    geodesic_field,
    group_by_source,
    lookup_condensed,
)

__all__ = [
    "edge_dijkstra",
    "fill_condensed",
    "geodesic_field",
    "greedy_match",
    "group_by_source",
    "lookup_condensed",
]
