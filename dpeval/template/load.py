"""Stage 1 (template): :func:`load_template`, the one entry point that picks the reader.

In: a name (``"open"``), a directory in the official DensePose layout, or an ``.npz`` in
the open layout. Out: a cached :class:`~dpeval.template.model.BodyTemplate`.
"""

from __future__ import annotations

import functools
from pathlib import Path

from .._typing import PathLike
from ..errors import TemplateError
from .model import BodyTemplate
from .official import read_official_dir
from .open_template import load_open_template, open_template_path

__all__ = ["load_template"]


@functools.lru_cache(maxsize=8)
def _load_cached(key: str) -> BodyTemplate:
    if key == "open":
        return load_open_template(open_template_path())
    path = Path(key)
    if path.is_file() and path.suffix == ".npz":
        return load_open_template(path)
    return read_official_dir(path)


def load_template(name: PathLike = "open") -> BodyTemplate:
    """Load a body template.

    Parameters
    ----------
    name : str or path
        ``"open"`` for the embedded CC0 body (no build step, no network); a directory
        with the official DensePose files ``SMPL_subdiv.mat``,
        ``SMPL_SUBDIV_TRANSFORM.mat`` and optionally ``Pdist_matrix.pkl`` /
        ``Pdist_matrix.mat`` (see :mod:`dpeval.template.official`); or a ``.npz`` file written
        in the open template's layout.

    Returns
    -------
    BodyTemplate
        Cached: the same name returns the same object.

    Raises
    ------
    TemplateError
        If the name is unknown or the files are missing or malformed.

    Example
    -------
    >>> t = load_template("open")
    >>> t.n_vertices > 10000
    True
    """
    if isinstance(name, str) and name == "open":
        return _load_cached("open")
    path = Path(name).expanduser()
    if not path.exists():
        raise TemplateError(
            f"template {str(name)!r}: no such template or directory; use 'open' for the "
            "embedded body, or a directory holding SMPL_subdiv.mat and "
            "SMPL_SUBDIV_TRANSFORM.mat"
        )
    return _load_cached(str(path.resolve()))
