"""Text helpers shared by the renderers: untrusted values made safe to show, fitted to a channel's limits.

Every value that comes out of a lock item (``Who``, ``Path``/``LockID``, ``Operation``, ``Version``, ``ID``,
the inner ``Info``) is written by whoever can write to the lock table. Renderers pass such values through
:func:`one_line` (no forged lines, no bidi tricks) before any channel-specific escaping, show the lock's
``Created`` with :func:`utc_minutes` (which cannot overflow), and quote shell words with :func:`shell_word`.
"""

from __future__ import annotations

import re
import shlex
import unicodedata
from collections.abc import Callable
from datetime import datetime, timedelta
from functools import cache

ELLIPSIS = "…"
REPLACEMENT = "\ufffd"

#: Unicode general categories no rendered value may contain:
#:
#: * ``Cc`` controls: newlines, NEL (U+0085), escape sequences for terminals;
#: * ``Cf`` format characters: bidi marks, embeddings, overrides and isolates (U+200E/F, U+061C, U+202A-E,
#:   U+2066-9: "Trojan Source" text that displays in another order than it reads), zero-width characters that
#:   hide text, the BOM, interlinear annotation;
#: * ``Zl``/``Zp``: U+2028 and U+2029, which ``str.splitlines()``, JavaScript and many viewers take as line breaks;
#: * ``Cs``: lone surrogates, which have no UTF-8 form (JSON can carry them escaped, but SNS, and any channel that
#:   encodes the text, fails on them);
#: * ``Cn``: code points unassigned in this Python's Unicode database: a channel's newer Unicode may assign one
#:   as a format or separator character, which we cannot vet (new emoji are lost to U+FFFD: a fair price).
#:
#: ``Co`` (private use) is kept: such characters have fixed properties (left-to-right, no line break, no
#: formatting effect), display as a font chooses, and are valid UTF-8.
UNSAFE_CATEGORIES = frozenset({"Cc", "Cf", "Zl", "Zp", "Cs", "Cn"})
#: Every character ``str.splitlines()`` breaks a line on (all of them ``Cc``, ``Zl`` or ``Zp``).
LINE_BREAKS = frozenset("\n\r\v\f\x1c\x1d\x1e\x85\u2028\u2029")
_ASTRAL = 0x10000


@cache
def _url() -> re.Pattern[str]:
    """Any URL's scheme, host and the rest; compiled on first use, not at import (cold start)."""
    return re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)(?:[^\s/?#@]*@)?([^\s/?#@]+)[^\s]*")


def unsafe(ch: str) -> bool:
    """Whether one character must not appear in a rendered value (see :data:`UNSAFE_CATEGORIES`)."""
    return unicodedata.category(ch) in UNSAFE_CATEGORIES


def one_line(text: str) -> str:
    """Every unsafe character (line breaks of any kind, controls, format and bidi characters, lone surrogates,
    unassigned code points) becomes U+FFFD: one line that reads as it displays, and encodes as UTF-8."""
    if text.isprintable():  # no Cc, Cf, Cs, Cn, Zl, Zp (nor Co or Zs other than the space): the common case, in C
        return text
    return "".join(REPLACEMENT if unsafe(ch) else ch for ch in text)


def shell_word(value: str) -> str:
    """``value`` as one shell word, on one line, that a shell turns back into exactly ``value``.

    :func:`shlex.quote` when every character is safe to show; otherwise ANSI-C quoting (``$'...'``, bash, zsh,
    ksh and POSIX.1-2024 sh) with each unsafe character written as an escape, so that a lock ID with a newline
    or a bidi override still yields a command that works and shows on one line as it reads.
    """
    if one_line(value) == value:
        return shlex.quote(value)
    return "$'" + "".join(_ansi_c(ch) for ch in value) + "'"


def _ansi_c(ch: str) -> str:
    if ch in "\\'":
        return "\\" + ch
    if not unsafe(ch):
        return ch
    if ch.isascii():  # a control: its byte is the character
        return f"\\x{ord(ch):02x}"
    # All 4 (8) digits, so that a hex digit after the escape is never read into it.
    return f"\\u{ord(ch):04x}" if ord(ch) < _ASTRAL else f"\\U{ord(ch):08x}"


def utc_minutes(when: datetime) -> str:
    """``2026-11-26 09:00 UTC``, for any datetime the lock model accepts.

    A ``Created`` near the ends of the calendar (``0001-01-01T00:00:00+01:00``) has no UTC equivalent that
    :class:`datetime` can hold: :meth:`datetime.astimezone` raises ``OverflowError`` there. Such a time is shown
    as written, with its offset (``0001-01-01 00:00 UTC+01:00``). A naive datetime is taken as UTC.
    """
    offset = when.utcoffset() or timedelta(0)
    try:
        shown = when.replace(tzinfo=None) - offset
        suffix = "UTC"
    except OverflowError:
        shown = when.replace(tzinfo=None)
        sign = "-" if offset < timedelta(0) else "+"
        hours, minutes = divmod(int(abs(offset).total_seconds()) // 60, 60)
        suffix = f"UTC{sign}{hours:02d}:{minutes:02d}"
    # By hand, not strftime: strftime("%Y") does not pad years before 1000 on every platform.
    return f"{shown.year:04d}-{shown.month:02d}-{shown.day:02d} {shown.hour:02d}:{shown.minute:02d} {suffix}"


def human_age(seconds: int) -> str:
    """At most two units, for a glance: ``45s``, ``12m``, ``3h12m``, ``2d4h``."""
    seconds = max(int(seconds), 0)
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d{hours}h" if hours else f"{days}d"
    if hours:
        return f"{hours}h{minutes}m" if minutes else f"{hours}h"
    if minutes:
        return f"{minutes}m"
    return f"{secs}s"


def fit(raw: str, limit: int, render: Callable[[str], str] = lambda s: s) -> str:
    """``render(raw)``, or, when that is longer than ``limit``, ``render`` of the longest prefix of ``raw``
    followed by an ellipsis that fits.

    Cutting the *raw* text before rendering means an escape sequence (``&amp;``) or a code span's closing
    backtick is never cut in half, whatever ``render`` adds. ``render`` must not shrink when its input grows, and
    never returns fewer characters than it is given (escaping and wrapping only add): then no more than
    ``limit + 1`` characters of ``raw`` can matter, and a 400 KB value costs no more than a short one.
    """
    raw = raw[: limit + 1]
    rendered = render(raw)
    if len(rendered) <= limit:
        return rendered
    low, high = 0, len(raw)
    while low < high:  # the largest n with len(render(raw[:n] + ELLIPSIS)) <= limit
        mid = (low + high + 1) // 2
        if len(render(raw[:mid] + ELLIPSIS)) <= limit:
            low = mid
        else:
            high = mid - 1
    result = render(raw[:low] + ELLIPSIS)
    if len(result) > limit:  # render's own wrapping is longer than the limit: nothing useful fits
        return result[:limit]
    return result


def redact(text: str, *secrets: str) -> str:
    """Remove secret values (and, as a safety net, the path and query of any URL) from ``text``.

    Used on every message that leaves an adapter (exceptions, logs): webhook URLs and routing keys must
    never appear in logs, metrics or error messages.
    """
    for secret in sorted((s for s in secrets if s), key=len, reverse=True):
        text = text.replace(secret, "<redacted>")
    return _url().sub(lambda m: f"{m.group(1)}{m.group(2)}/<redacted>", text)
