"""The notification event: one fact about one lock acquisition, in the words every channel uses.

A :class:`Notification` is built by the sweep (``stale``, ``still_stale``, ``reaped``, ``reap_blocked``) or by the
stream function (``resolved``) and handed to :func:`tflock_reaper.services.dispatch.dispatch`. It carries what
a human needs at a glance (the lock, its holder, its age, the verdict and every reason), the exact command
to release the lock by hand, and, after a reap, what to check.

Severities (PagerDuty's vocabulary, used by every channel):

* ``stale``: warning. A deploy will fail on this lock; nothing is broken yet.
* ``still_stale``: warning. The same lock, still held after ``renotify_every``.
* ``reap_blocked``: error. Past ``reap_after`` and the reaper may not clear it: only a human can.
* ``reaped``: warning. The lock is gone, but a reaped apply may have left state partly written.
* ``resolved``: info. The lock was released.
* ``unreadable_lock``: error. A lock by its key and shape that cannot be read (bad JSON, a ``Created`` in the
  future, ...): it blocks every plan on its state and the reaper never deletes it, so only a human can.

Values from the lock item (``who``, ``lock_path``, ``operation``, ``version``, ``lock_id``, ``created``) are
untrusted, and any value the lock model accepts must render on every channel (a ``Created`` in year 1 included):
renderers escape them; :attr:`Notification.force_unlock_command` shell-quotes them, on one line.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from tflock_reaper.domain.holds import Hold
from tflock_reaper.domain.lock import LockRecord
from tflock_reaper.domain.slack_actions import info_digest
from tflock_reaper.domain.text import human_age, shell_word


class NotificationKind(StrEnum):
    STALE = "stale"
    STILL_STALE = "still_stale"
    REAPED = "reaped"
    REAP_BLOCKED = "reap_blocked"
    RESOLVED = "resolved"
    UNREADABLE_LOCK = "unreadable_lock"


class Severity(StrEnum):
    """PagerDuty Events API v2 severities, used by every channel."""

    CRITICAL = "critical"
    ERROR = "error"
    WARNING = "warning"
    INFO = "info"


SEVERITIES: dict[NotificationKind, Severity] = {
    NotificationKind.STALE: Severity.WARNING,
    NotificationKind.STILL_STALE: Severity.WARNING,
    NotificationKind.REAP_BLOCKED: Severity.ERROR,
    NotificationKind.REAPED: Severity.WARNING,
    NotificationKind.RESOLVED: Severity.INFO,
    NotificationKind.UNREADABLE_LOCK: Severity.ERROR,
}

TITLES: dict[NotificationKind, str] = {
    NotificationKind.STALE: "Stale Terraform lock",
    NotificationKind.STILL_STALE: "Terraform lock still stale",
    NotificationKind.REAP_BLOCKED: "Stale Terraform lock, reap blocked",
    NotificationKind.REAPED: "Stale Terraform lock reaped",
    NotificationKind.RESOLVED: "Terraform lock released",
    NotificationKind.UNREADABLE_LOCK: "Unreadable Terraform lock, never reaped",
}

FOLLOW_UP_UNREADABLE = (
    "This item is where Terraform keeps this state's lock, but it cannot be read as a lock (see Reasons), so the "
    "reaper will never delete it, and every plan and apply on this state fails while it is there. Inspect the item "
    '(the reaper\'s log has it in full, as an "unreadable lock" line); if it is a stale lock, delete it by hand.'
)
#: What an unreadable lock's fields say where a lock's would be read from its Info.
UNREADABLE = "(unreadable)"

#: Operations that never write state: a reaped lock of theirs needs no state review.
READ_ONLY_OPERATIONS = frozenset({"OperationTypePlan"})
APPLY_OPERATION = "OperationTypeApply"  # apply and destroy

FOLLOW_UP_APPLY = (
    "The reaped lock was held by an apply (or destroy): it may have died while writing state, so the state may "
    "be partly written. Run terraform plan and review it before applying. If Terraform reports that the state "
    "data in S3 does not have the expected content, the run died between writing the state and its digest: "
    "follow Terraform's message to repair the digest."
)
FOLLOW_UP_WRITER = (
    "The reaped lock was held by an operation that may write state (see Operation): run terraform plan and "
    "check for unexpected changes before applying."
)
FOLLOW_UP_READ_ONLY = "The reaped lock was held by a plan, which does not write state: re-run it if still needed."
WAITING_PIPELINE_NOTE = (
    'A pipeline waiting for this lock at the moment of the reap may fail once with "unexpected end of JSON '
    'input" (terraform#32690): re-run it.'
)


def force_unlock_command(workspace: str, lock_id: str) -> str:
    """``terraform workspace select W && terraform force-unlock -force ID``, to paste in the root module that uses
    the state (no workspace selection for ``default``), every lock value shell-quoted, on one line."""
    unlock = f"terraform force-unlock -force {shell_word(lock_id)}"
    if workspace == "default":
        return unlock
    return f"terraform workspace select {shell_word(workspace)} && {unlock}"


@dataclass(frozen=True)
class DedupKey:
    """What makes a notification unique: one event about one acquisition (lock path, lock ID) of one lock.

    ``event`` is the kind, followed by ``#<sequence>`` for repeated events (``still_stale#2``).
    """

    lock_path: str
    lock_id: str
    event: str
    scope: str = ""
    """The lock table's ARN (or ``s3://<bucket>``): the same LockID and ID in two tables are two locks."""

    def __str__(self) -> str:
        return f"{self.lock_path}#{self.lock_id}#{self.event}"


@dataclass(frozen=True)
class Notification:
    """One event about one lock acquisition. Build it with :meth:`for_lock` from a parsed lock."""

    kind: NotificationKind
    lock_path: str
    lock_id: str
    who: str
    operation: str
    version: str
    created: datetime
    age_seconds: int
    workspace: str
    verdict: str
    """``keep`` | ``warn`` | ``reap`` (the sweep's :class:`tflock_reaper.domain.decision.Action`)."""
    outcome: str
    """What happened: the sweep's outcome (``warned``, ``blocked``, ``reaped``, ...) or ``released``."""
    reasons: tuple[str, ...]
    rule: str
    table: str
    """The lock table's name."""
    deleted_item: dict[str, Any] | None = field(default=None, compare=False)
    """For ``reaped``: the full item the reaper deleted, in the DynamoDB client's shape."""
    sequence: int = 0
    """For repeated events (``still_stale``): 1 for the first repetition, 2 for the next, ... Each number is
    its own exactly-once event. 0 for events that happen once per acquisition."""
    scope: str = ""
    """Where the lock lives (:attr:`tflock_reaper.domain.lock.LockRecord.scope`): part of the exactly-once key."""
    age_basis: str = ""
    """What ``age_seconds`` was measured from (server time, the holder's Created, the reaper's first sighting)."""
    identity: str = ""
    """For ``unreadable_lock``: a digest of the item, so that each distinct unreadable item is announced once."""
    info_digest: str = ""
    """SHA-256 of the lock's raw ``Info`` (a lockfile's body) as read (:func:`~tflock_reaper.domain.slack_actions.
    info_digest`): what the Slack app's buttons carry, so that *Reap now* acts on this very lock. Not shown."""
    holds: tuple[Hold, ...] = field(default=(), compare=False)
    """The people's holds on the acquisition in force (*Snooze*, *It's mine*): its Slack app message says who."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "kind", NotificationKind(self.kind))
        object.__setattr__(self, "reasons", tuple(self.reasons))
        if self.sequence < 0:
            raise ValueError("sequence must not be negative")

    @classmethod
    def for_unreadable(
        cls,
        lock_path: str,
        *,
        reason: str,
        item: dict[str, Any],
        scope: str,
        table: str,
        rule: str,
        seen: datetime,
        workspace: str,
    ) -> Notification:
        """An ``unreadable_lock`` event: sent once per distinct item (its content's digest is part of the key)."""
        content = json.dumps(item, sort_keys=True, separators=(",", ":"), default=str).encode("utf-8", "replace")
        return cls(
            kind=NotificationKind.UNREADABLE_LOCK,
            lock_path=lock_path,
            lock_id=UNREADABLE,
            who=UNREADABLE,
            operation=UNREADABLE,
            version=UNREADABLE,
            created=seen,
            age_seconds=0,
            workspace=workspace,
            verdict="keep",
            outcome="unreadable",
            reasons=(reason, "never reaped: a lock that cannot be read cannot be judged"),
            rule=rule,
            table=table,
            scope=scope,
            age_basis="unknown: the item cannot be read",
            identity=hashlib.sha256(content).hexdigest()[:32],
        )

    @classmethod
    def for_lock(
        cls,
        kind: NotificationKind | str,
        lock: LockRecord,
        *,
        table: str,
        age_seconds: int,
        verdict: str,
        outcome: str,
        reasons: tuple[str, ...] | list[str],
        rule: str,
        deleted_item: dict[str, Any] | None = None,
        sequence: int = 0,
        age_basis: str = "",
        holds: tuple[Hold, ...] = (),
    ) -> Notification:
        info = lock.info
        return cls(
            kind=NotificationKind(kind),
            lock_path=lock.lock_path,
            lock_id=info.id,
            who=info.who,
            operation=info.operation,
            version=info.version,
            created=info.created,
            age_seconds=int(age_seconds),
            workspace=lock.workspace,
            verdict=str(verdict),
            outcome=str(outcome),
            reasons=tuple(reasons),
            rule=rule,
            table=table,
            deleted_item=deleted_item,
            sequence=sequence,
            scope=lock.scope,
            age_basis=age_basis,
            info_digest=info_digest(lock.raw_info),
            holds=holds,
        )

    # -- derived -----------------------------------------------------------------------------------------
    @property
    def severity(self) -> Severity:
        return SEVERITIES[self.kind]

    @property
    def title(self) -> str:
        return TITLES[self.kind]

    @property
    def age(self) -> str:
        """The age for humans: ``3h12m`` (``unknown`` for an unreadable lock: its Created cannot be read)."""
        if self.kind is NotificationKind.UNREADABLE_LOCK:
            return "unknown"
        return human_age(self.age_seconds)

    @property
    def held(self) -> str:
        """The age with what it was measured from, for humans: ``3h12m by Created, the holder's clock``."""
        return f"{self.age} by {self.age_basis}" if self.age_basis else self.age

    @property
    def state_key(self) -> str:
        """The lock path without its bucket: the state's key in the bucket."""
        return self.lock_path.split("/", 1)[-1]

    @property
    def ledger_key(self) -> DedupKey:
        event = str(self.kind) if not self.sequence else f"{self.kind}#{self.sequence}"
        if self.identity:
            event += f"#{self.identity}"
        return DedupKey(self.lock_path, self.lock_id, event, self.scope)

    @property
    def dedup_key(self) -> str:
        """The exactly-once key: ``<lock path>#<lock ID>#<kind>`` (``#<sequence>`` appended for repeats)."""
        return str(self.ledger_key)

    @property
    def force_unlock_command(self) -> str:
        """The command a human would run, from the root module that uses this state.

        Both the workspace and the lock ID come from the lock item, so they are shell-quoted: a hostile ID
        pasted into a terminal stays one argument (a UUID is printed unchanged), and the command is one line
        whatever the ID holds (see :func:`~tflock_reaper.domain.text.shell_word`).
        """
        return force_unlock_command(self.workspace, self.lock_id)

    @property
    def follow_up(self) -> str | None:
        """For ``reaped``: what a human should check now; for ``unreadable_lock``: what to do. ``None`` otherwise."""
        if self.kind is NotificationKind.UNREADABLE_LOCK:
            return FOLLOW_UP_UNREADABLE
        if self.kind is not NotificationKind.REAPED:
            return None
        if self.operation == APPLY_OPERATION:
            text = FOLLOW_UP_APPLY
        elif self.operation in READ_ONLY_OPERATIONS:
            text = FOLLOW_UP_READ_ONLY
        else:
            text = FOLLOW_UP_WRITER
        return f"{text} {WAITING_PIPELINE_NOTE}"

    @property
    def needs_unlock(self) -> bool:
        """Whether the lock is still held (so the force-unlock command is worth showing)."""
        return self.kind not in (NotificationKind.REAPED, NotificationKind.RESOLVED, NotificationKind.UNREADABLE_LOCK)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: every field, plus the derived severity, keys, command and follow-up."""
        return {
            "event": str(self.kind),
            "severity": str(self.severity),
            "title": self.title,
            "lock_path": self.lock_path,
            "lock_id": self.lock_id,
            "who": self.who,
            "operation": self.operation,
            "version": self.version,
            "created": self.created.isoformat(),
            "age_seconds": self.age_seconds,
            "age": self.age,
            "age_basis": self.age_basis,
            "scope": self.scope,
            "workspace": self.workspace,
            "verdict": self.verdict,
            "outcome": self.outcome,
            "reasons": list(self.reasons),
            "rule": self.rule,
            "table": self.table,
            "sequence": self.sequence,
            "dedup_key": self.dedup_key,
            "force_unlock_command": self.force_unlock_command if self.needs_unlock else None,
            "follow_up": self.follow_up,
            "deleted_item": self.deleted_item,
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True, default=str)
