"""compatibility: removed once the redesign lands (use dpeval.geodesic._kernels, dpeval.evaluation._kernels)."""  # noqa: E501

from .evaluation._kernels import greedy_match
from .geodesic._kernels import (
    fill_condensed,
    geodesic_field,
    group_by_source,
    lookup_condensed,
    pairs_by_source,
)

__all__ = [
    "fill_condensed",
    "geodesic_field",
    "greedy_match",
    "group_by_source",
    "lookup_condensed",
    "pairs_by_source",
]
