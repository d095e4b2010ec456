"""The Slack app's buttons: what each one is called, and what it carries (pure).

A button's ``value`` names the lock acquisition its message shows, never the lock's own text: a lock path may be
2,048 bytes and a button value may hold 2,000 characters. It carries the keys of the acquisition's state-table item
(``pk``/``sk``: digests, see ``adapters.state_table``) and a digest of the raw ``Info`` the message showed (for a
lockfile, its body), so that *Reap now* deletes only that very lock: the interactions function reads the lock again,
refuses unless its raw ``Info`` has that digest, and deletes conditionally on the raw ``Info`` read.

``value = "v1|<pk>|<sk>|<info digest>"``; Slack sends it back unchanged, signed with the app's signing secret.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from enum import StrEnum


class SlackAction(StrEnum):
    """The ``action_id`` of each button (Snooze's is a menu: its option's ``value`` says for how long)."""

    REAP_NOW = "tflock_reap_now"
    SNOOZE = "tflock_snooze"
    MINE = "tflock_mine"


class SnoozeFor(StrEnum):
    """Snooze's options (the menu option's ``value``)."""

    ONE_HOUR = "1h"
    FOUR_HOURS = "4h"
    TOMORROW_0900 = "tomorrow-09:00"


VALUE_VERSION = "v1"
_VALUE = re.compile(r"^v1\|(LOCK#[0-9a-f]{32})\|(ID#[0-9a-f]{32})\|([0-9a-f]{64})$")


def info_digest(raw_info: str) -> str:
    """SHA-256 of the raw ``Info`` (or lockfile body) exactly as read: what *Reap now* must find again."""
    return hashlib.sha256(raw_info.encode("utf-8", "surrogatepass")).hexdigest()


@dataclass(frozen=True)
class ButtonValue:
    """The acquisition a button acts on: its state-table keys and the digest of the lock its message showed."""

    pk: str
    sk: str
    info_digest: str

    def encode(self) -> str:
        return f"{VALUE_VERSION}|{self.pk}|{self.sk}|{self.info_digest}"

    @classmethod
    def decode(cls, value: str) -> ButtonValue:
        """The value of a button this app made, or ``ValueError`` (anything else is refused, never guessed)."""
        match = _VALUE.match(value)
        if match is None:
            raise ValueError("not a tflock-reaper button value")
        return cls(*match.groups())
