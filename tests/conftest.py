"""Shared fixtures: the real open template (session scope) and a tiny chart mesh."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("NUMBA_NUM_THREADS", "2")
if "DPEVAL_CACHE_DIR" not in os.environ:  # hermetic: never touch the user's cache
    import tempfile

    os.environ["DPEVAL_CACHE_DIR"] = tempfile.mkdtemp(prefix="dpeval-test-cache-")

try:
    from hypothesis import settings

    settings.register_profile("ci", deadline=None, max_examples=40)
    settings.load_profile("ci")
except ImportError:  # pragma: no cover
    pass

from _templates import make_tiny_template

from dpeval.template import BodyTemplate, load_template


@pytest.fixture(scope="session")
def open_template() -> BodyTemplate:
    return load_template("open")


@pytest.fixture()
def tiny_template() -> BodyTemplate:
    return make_tiny_template()
