"""A person's word on one lock acquisition, given from the Slack app's message (pure).

*Snooze* (1 h, 4 h, until tomorrow 09:00): no re-notification and no automatic reap of that acquisition until then.
*It's mine* (a claim): the holder says it is alive (a long import, a debugging session): no automatic reap of that
acquisition at all, and a re-notification at most daily. Either is about one acquisition (lock path and ID): a new
acquisition of the same state starts without one. A human's *Reap now* is not a hold: it reaps.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from tflock_reaper.domain.durations import format_duration

#: A claimed lock that stays stale is re-notified at most this often.
CLAIM_RENOTIFY = timedelta(days=1)
#: Holds older than this are forgotten when another is recorded (the acquisition is long gone, or re-claimed).
HOLD_KEEP = timedelta(days=30)


class HoldKind(StrEnum):
    SNOOZE = "snooze"
    CLAIM = "claim"


@dataclass(frozen=True)
class Hold:
    kind: HoldKind
    by: str
    """Who pressed the button, as Slack names them (``name (U123)``): shown in alerts and logs."""
    at: datetime
    until: datetime | None = None
    """A snooze's end; None for a claim (it lasts as long as the acquisition)."""

    def active(self, now: datetime) -> bool:
        return self.kind is HoldKind.CLAIM or (self.until is not None and now < self.until)

    def reason(self, now: datetime) -> str:
        """Why the reap waits, in the verdict's words."""
        if self.kind is HoldKind.CLAIM:
            return f"claimed by {self.by} (It's mine) at {self.at.isoformat()}: no automatic reap of this acquisition"
        left = format_duration(self.until - now) if self.until else "?"
        until = self.until.isoformat() if self.until else "?"
        return f"snoozed by {self.by} until {until} ({left} left): no automatic reap until then"


def active_holds(holds: tuple[Hold, ...], now: datetime) -> tuple[Hold, ...]:
    return tuple(hold for hold in holds if hold.active(now))


def snoozed(holds: tuple[Hold, ...], now: datetime) -> bool:
    return any(hold.kind is HoldKind.SNOOZE and hold.active(now) for hold in holds)


def claim_of(holds: tuple[Hold, ...]) -> Hold | None:
    return next((hold for hold in holds if hold.kind is HoldKind.CLAIM), None)
