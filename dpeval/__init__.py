"""dpeval: evaluation and benchmarking for dense human pose estimation (DensePose).

Stages: template -> geodesic -> formats -> evaluation (prepare, match, accumulate, summarize)
-> summary -> insight / leaderboard -> cli.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from .api import score
from .errors import (
    DpevalError,
    DpevalWarning,
    FormatError,
    GeodesicError,
    ParamsError,
    StateError,
    TemplateError,
)
from .template import BodyTemplate, load_template

try:
    __version__ = version("dpeval")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0+unknown"

__all__ = [
    "BodyTemplate",
    "DpevalError",
    "DpevalWarning",
    "FormatError",
    "GeodesicError",
    "ParamsError",
    "StateError",
    "TemplateError",
    "__version__",
    "load_template",
    "score",
]
