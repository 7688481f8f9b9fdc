"""Leaderboard text rules shared by every page, table and check: numbers and user text.

In: metric values (fractions in [0, 1]) and text typed by submitters or organisers.
Out: ``"59.6 [55.6, 70.6]"`` strings (:func:`format_interval`, the one place that
formats a value with its 95% interval, for ``show``, ``submit``, the pages and the
server's JSON), the one control-character rule (:func:`has_control`), used by the
entry schema, the team names and the server's upload checks, and the one URL rule
(:func:`is_http_url`, :func:`link_url` for pages).
"""

from __future__ import annotations

import re

__all__ = [
    "MISSING",
    "format_interval",
    "has_control",
    "is_http_url",
    "link_url",
    "one_line",
    "percent",
]

MISSING = "—"
"""Shown for a metric an entry does not have."""

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_CONTROL_MULTILINE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")  # the same less tab, new line
_HTTP_URL = re.compile(r"^https?://[^\s]+$", re.IGNORECASE)
_HTML_SPECIAL = frozenset("<>\"'")


def percent(value: float | None) -> str:
    """A fraction as percent with one decimal (``0.596 -> "59.6"``); ``"—"`` for None.

    Examples
    --------
    >>> percent(0.5964), percent(None)
    ('59.6', '—')
    """
    return MISSING if value is None else f"{100 * value:.1f}"


def format_interval(value: float | None, ci_low: float | None, ci_high: float | None) -> str:
    """``"59.6 [55.6, 70.6]"`` (percent), or the value alone without a full interval.

    Parameters
    ----------
    value, ci_low, ci_high : float or None
        Fractions in [0, 1], as in an entry's ``score`` and ``intervals``.

    Returns
    -------
    str

    Examples
    --------
    >>> format_interval(0.5964, 0.556, 0.706)
    '59.6 [55.6, 70.6]'
    >>> format_interval(0.5964, None, 0.706)
    '59.6'
    """
    if ci_low is None or ci_high is None:
        return percent(value)
    return f"{percent(value)} [{percent(ci_low)}, {percent(ci_high)}]"


def has_control(text: str, *, multiline: bool = False) -> bool:
    """Whether ``text`` holds a control character (C0 or DEL).

    The one rule of the leaderboard: names, team names, URLs and file names refuse every
    control character; free text that may span lines (``multiline=True``: the fields of
    an entry's ``method``, whose description may have paragraphs) allows tab and new
    line, and nothing else (a carriage return is refused: it rewrites terminal lines).

    Examples
    --------
    >>> has_control("a\\tb"), has_control("a\\tb", multiline=True)
    (True, False)
    >>> has_control("a\\rb", multiline=True)
    True
    """
    return bool((_CONTROL_MULTILINE if multiline else _CONTROL).search(text))


def one_line(text: str, limit: int) -> str:
    """``text`` with every run of white space (new lines too) made one space, cut to ``limit``.

    Examples
    --------
    >>> one_line("a\\n  b", 10)
    'a b'
    """
    return " ".join(str(text).split())[:limit]


def is_http_url(url: str) -> bool:
    """Whether ``url`` is an ``http(s)://`` URL without white space (the entry rule).

    Examples
    --------
    >>> is_http_url("https://example.org/a?b=1"), is_http_url("ftp://x"), is_http_url("http://a b")
    (True, False, False)
    """
    return bool(_HTTP_URL.match(url))


def link_url(url: str | None) -> str | None:
    """``url`` if a page may link to it (:func:`is_http_url`, and no ``< > " '``), else None.

    Examples
    --------
    >>> link_url("https://example.org/"), link_url('https://x.org/"onmouseover')
    ('https://example.org/', None)
    """
    if not url or not is_http_url(url) or _HTML_SPECIAL.intersection(url):
        return None
    return url
