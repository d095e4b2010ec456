"""Durations as policies write them (``90s``, ``30m``, ``2h``, ``1d``, ``1h30m``): parsed and formatted.

Apart from the policy models so that code that only formats a duration (the stream function) does not build them.
"""

from __future__ import annotations

import re
from datetime import timedelta

_DURATION = re.compile(r"^(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")


def parse_duration(value: object) -> timedelta:
    """``90s``, ``30m``, ``2h``, ``1d`` or combinations such as ``1h30m``."""
    if isinstance(value, timedelta):  # defaults built in code; YAML never yields one
        return value
    if not isinstance(value, str):
        raise ValueError(f"must be a duration string like 90s, 30m, 2h or 1d, not {value!r}")  # noqa: TRY004
    match = _DURATION.match(value.strip())
    if not value.strip() or not match:
        raise ValueError(f"{value!r} is not a duration (use 90s, 30m, 2h, 1d or combinations like 1h30m)")
    days, hours, minutes, seconds = (int(g) if g else 0 for g in match.groups())
    try:
        return timedelta(days=days, hours=hours, minutes=minutes, seconds=seconds)
    except OverflowError as err:
        raise ValueError(f"{value!r} is too long a duration (at most 999999999d)") from err


def format_duration(delta: timedelta) -> str:
    """The inverse of :func:`parse_duration`, for messages: ``1h30m``, ``45s``, ``0s``."""
    total = int(delta.total_seconds())
    sign = "-" if total < 0 else ""
    total = abs(total)
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if total >= size:
            parts.append(f"{total // size}{unit}")
            total %= size
    return sign + ("".join(parts) or "0s")
