"""Text helpers shared by the renderers: untrusted values made safe to show, fitted to a channel's limits.

Every value that comes out of a lock item (``Who``, ``Path``/``LockID``, ``Operation``, ``Version``, ``ID``,
the inner ``Info``) is written by whoever can write to the lock table. Renderers pass such values through
:func:`one_line` (no forged lines, no bidi tricks) before any channel-specific escaping.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable

ELLIPSIS = "…"

# Bidirectional overrides and isolates can make text display in another order than it reads
# ("Trojan Source"); zero-width characters can hide text. None belongs in a lock path or a user name.
_INVISIBLE = frozenset("\u200b\u200c\u200d\u2060\ufeff\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
_URL = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)(?:[^\s/?#@]*@)?([^\s/?#@]+)[^\s]*")


def one_line(text: str) -> str:
    """Control characters (newlines too) and invisible formatting characters become U+FFFD."""
    return "".join("\ufffd" if ch in _INVISIBLE or unicodedata.category(ch) == "Cc" else ch for ch in text)


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
    backtick is never cut in half, whatever ``render`` adds. ``render`` must not shrink when its input grows.
    """
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
    return _URL.sub(lambda m: f"{m.group(1)}{m.group(2)}/<redacted>", text)
