"""Insight layer: confidence intervals, per-part errors, RCP curves, error on the body,
error taxonomy, worst instances, and the self-contained HTML report.

Python API (DataFrames and matplotlib Figures, for notebooks):

- :func:`analyze` -> :class:`Insight` (``.intervals``, ``.per_part``, ``.rcp``,
  ``.taxonomy``, ``.confusion``, ``.instances``, ``.figures()``);
- :func:`compare` -> paired bootstrap DataFrame of B - A;
- :func:`write_report` -> ``report.html`` + ``figures/*.png`` + CSV/JSON.
"""

from .analysis import Insight, analyze, compare
from .html import write_report

__all__ = ["Insight", "analyze", "compare", "write_report"]
