"""Stage 2 of the data flow: geodesic distances on the body template.

In: a :class:`~dpeval.template.BodyTemplate` (or plain ``vertices``/``faces``) and
vertex ids. Out: distances in the template's unit (metres), ``float64``.

The package, by file:

- :mod:`~dpeval.geodesic.solver`: :class:`GeodesicSolver` (costly setup once, then
  ``field``/``pairs``/``condensed_table`` queries) and :func:`geodesic_distance`;
  its docstring describes the algorithm and its error budget;
- :mod:`~dpeval.geodesic.mesh`: mesh validation and the arrays the kernels read;
- :mod:`~dpeval.geodesic.table`: the quantised all-pairs table on disk (build,
  verify, read);
- :mod:`~dpeval.geodesic._kernels`: the Numba kernels, beside their slow twins in
  :mod:`~dpeval.geodesic._reference`.

This stage imports only the template stage's types (by duck typing) and the shared
infrastructure (:mod:`dpeval._io`, :mod:`dpeval.errors`).
"""

from .solver import (
    CACHE_LIMIT_BYTES,
    ENGINE_VERSION,
    QUANT_MAX,
    TABLE_SOURCE_FRACTION,
    GeodesicSolver,
    default_cache_dir,
    geodesic_distance,
)

__all__ = [
    "CACHE_LIMIT_BYTES",
    "ENGINE_VERSION",
    "QUANT_MAX",
    "TABLE_SOURCE_FRACTION",
    "GeodesicSolver",
    "default_cache_dir",
    "geodesic_distance",
]
