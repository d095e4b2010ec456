"""Deadlines for outbound requests, and the budget a sweep shares among them. Pure: a clock in, seconds out.

A socket timeout bounds one read, not a request: an endpoint that sends a byte every few seconds keeps a
request alive for as long as it likes. Every outbound HTTP request therefore gets a :class:`Deadline` (wall
clock, monotonic) that covers all of it, every attempt and every wait between attempts; and a sweep's requests
draw on one :class:`Budget`, so that whatever the endpoints do, the sweep keeps the time it needs after them.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

#: A monotonic clock, in seconds (``time.monotonic``; tests inject their own).
Clock = Callable[[], float]


@dataclass(frozen=True)
class Deadline:
    """A moment on ``clock``, after which a request has no time left. ``at`` may be ``math.inf``."""

    at: float
    clock: Clock = field(default=time.monotonic, compare=False)

    @classmethod
    def after(cls, seconds: float, *, clock: Clock = time.monotonic) -> Deadline:
        return cls(clock() + max(seconds, 0.0), clock)

    def remaining(self) -> float:
        """Seconds left (never negative)."""
        return max(self.at - self.clock(), 0.0)

    @property
    def expired(self) -> bool:
        return self.remaining() <= 0.0


class Budget:
    """The time a run may still spend on outbound requests, shared by all of them.

    ``left`` says how many seconds remain (a countdown such as a Lambda's remaining time, less what the run must
    keep for itself); without it the budget is unbounded (the CLI), and only each request's own deadline applies.
    """

    def __init__(self, left: Callable[[], float] | None = None, *, clock: Clock = time.monotonic) -> None:
        self._left = left
        self.clock = clock

    @classmethod
    def keeping(cls, remaining_seconds: Callable[[], float], keep: float, *, clock: Clock = time.monotonic) -> Budget:
        """What ``remaining_seconds()`` leaves once ``keep`` seconds are set aside."""
        return cls(lambda: remaining_seconds() - keep, clock=clock)

    def remaining(self) -> float:
        """Seconds left for outbound requests (``math.inf`` when unbounded, never negative)."""
        return math.inf if self._left is None else max(self._left(), 0.0)

    def spent(self, *, at_least: float = 0.0) -> bool:
        """No time left, or less than ``at_least`` seconds: too little for a request to be worth starting."""
        return self.remaining() <= at_least

    def deadline(self, total: float) -> Deadline:
        """The deadline of a request started now that may take ``total`` seconds: the sooner of that and the
        end of the budget."""
        return Deadline.after(min(total, self.remaining()), clock=self.clock)


#: No budget: each request is bounded by its own deadline only.
UNBOUNDED = Budget()
