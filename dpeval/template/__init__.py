"""Stage 1 of the data flow: the body template.

A :class:`BodyTemplate` is a triangle mesh in metres plus DensePose's 24-part chart:
every *chart vertex* has a part id (1..24), chart coordinates (U, V) in [0, 1] and the
id of the 3D vertex it copies (vertices on part borders and on chart seams have one
copy per chart, as in the official ``SMPL_subdiv.mat`` / ``UV_Processed.mat`` layout).

In: a template name (``"open"``, the embedded CC0 body), a directory holding the
official DensePose evaluation files, or an ``.npz`` in the open layout. Out: a frozen
:class:`BodyTemplate`; the geodesic engine (:mod:`dpeval.geodesic`) and the metrics
read it.

The package, by file:

- :mod:`~dpeval.template.parts`: the part tables (names, mirror, coarse parts);
- :mod:`~dpeval.template.model`: :class:`BodyTemplate` and its closest-vertex rule;
- :mod:`~dpeval.template.open_template`: the embedded open template;
- :mod:`~dpeval.template.official`: the official layout, read and written;
- :mod:`~dpeval.template.load`: :func:`load_template`, which picks the reader.

This is the first stage: it imports only :mod:`dpeval.errors`, :mod:`dpeval._typing`
and :mod:`dpeval._io`, never the geodesic stage (exporting distances takes them as an
argument).
"""

from .load import load_template
from .model import BodyTemplate, chart_folds
from .official import export_template, read_official_dir
from .open_template import open_template_path
from .parts import COARSE_PART, MIRROR_PART, N_PARTS, PART_NAMES

__all__ = [
    "COARSE_PART",
    "MIRROR_PART",
    "N_PARTS",
    "PART_NAMES",
    "BodyTemplate",
    "chart_folds",
    "export_template",
    "load_template",
    "open_template_path",
    "read_official_dir",
]
