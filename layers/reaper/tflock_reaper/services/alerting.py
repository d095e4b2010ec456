"""Alerts from a sweep: which notifications each verdict calls for, sent through its rule's channels.

``stale`` the first time a lock is reported (``reap_blocked`` instead, when it is already past ``reap_after``
and a gate keeps it), ``still_stale`` once per ``renotify_every`` after that, ``reap_blocked`` the first time
a gate keeps it past ``reap_after``, and ``reaped`` with the deleted item. Every notification is keyed by
(lock path, lock ID, event[, repetition]) in the ledger, so overlapping sweeps and retries send it once.
The stream function sends ``resolved`` when a lock that was alerted about is released.

A person's hold from the Slack app (``domain.holds``) quiets the repeats: while an acquisition is snoozed, nothing
but ``reaped`` is sent about it; once claimed (It's mine), ``still_stale`` comes at most daily, its repetitions
counted on from the last one before the claim (so that each is a new event for the ledger).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from tflock_reaper.domain.decision import STALE_OUTCOMES, Outcome
from tflock_reaper.domain.holds import CLAIM_RENOTIFY, Hold, active_holds, claim_of, snoozed
from tflock_reaper.domain.lock import SkippedItem, workspace_of
from tflock_reaper.domain.memory import StateStore
from tflock_reaper.domain.notification import Notification, NotificationKind
from tflock_reaper.domain.notifier import ChannelStatus, NotificationLedger, Notifier, NotSent, SentNotification
from tflock_reaper.domain.policy import Channel, Policy
from tflock_reaper.domain.report import LockReport
from tflock_reaper.domain.text import fit, one_line, redact

if TYPE_CHECKING:
    from tflock_reaper.services.dispatch import ChannelResult

logger = logging.getLogger(__name__)

#: How long after ``warned_at`` a ``stale`` not yet sent is still offered (with ``renotify_every: 0s``; otherwise
#: ``still_stale`` takes over after one interval). Well within the ledger's 30 days, so never sent twice.
STALE_RETRY = timedelta(days=1)


def notifications_for(entry: LockReport, *, table: str, now: datetime) -> list[Notification]:
    """The notifications one sweep's verdict calls for. Pure: the ledger decides whether each was sent."""
    kinds: list[tuple[NotificationKind, int]] = []
    quiet = snoozed(entry.state.holds, now)
    if entry.outcome is Outcome.REAPED:
        kinds.append((NotificationKind.REAPED, 0))
    elif entry.outcome in (Outcome.BLOCKED, Outcome.FAILED) and not quiet:
        kinds.append((NotificationKind.REAP_BLOCKED, 0))
    if entry.outcome in STALE_OUTCOMES and not quiet:
        warned_at = entry.state.warned_at
        repetition = _repetition(warned_at, entry.verdict.rule.renotify_every, claim_of(entry.state.holds), now)
        if repetition >= 1:
            kinds.append((NotificationKind.STILL_STALE, repetition))
        elif not kinds and (warned_at is None or now - warned_at < STALE_RETRY):
            # Offered again after ``warned_at`` is set (the ledger refuses a repeat): a first alert that failed,
            # or that a sweep which sends nothing (``--show-notifications``) marked as warned, is still sent.
            kinds.append((NotificationKind.STALE, 0))
    return [
        Notification.for_lock(
            kind,
            entry.lock,
            table=table,
            age_seconds=int(entry.verdict.age.total_seconds()),
            age_basis=entry.verdict.age_basis,
            verdict=entry.verdict.action.value,
            outcome=entry.outcome.value,
            reasons=entry.reasons,
            rule=entry.verdict.rule.name,
            deleted_item=entry.deleted_item if kind is NotificationKind.REAPED else None,
            sequence=repetition,
            holds=active_holds(entry.state.holds, now),
        )
        for kind, repetition in kinds
    ]


def _repetition(warned_at: datetime | None, renotify: timedelta, claim: Hold | None, now: datetime) -> int:
    """Which ``still_stale`` is due: one per ``renotify_every`` since the first warning; once claimed, one per
    :data:`CLAIM_RENOTIFY` since the claim at most, numbered on from the last one before it."""
    if warned_at is None or renotify <= timedelta(0):
        return 0
    if claim is None or claim.at < warned_at:
        return int((now - warned_at) / renotify) if claim is None else int((now - claim.at) / CLAIM_RENOTIFY)
    before = int((claim.at - warned_at) / renotify)
    return before + int((now - claim.at) / max(renotify, CLAIM_RENOTIFY))


ChannelFactory = Callable[[str, Channel], Notifier]


@runtime_checkable
class UsabilityCheck(Protocol):
    """A channel that can tell, without sending, that nothing could be sent on it: an SNS channel with no topic, a
    webhook whose secret cannot be read. A dry run shows it ``unusable``, with the reason, not ``would-send``."""

    def unusable(self) -> str | None:
        """Why nothing can be sent on this channel (never a secret), or ``None``."""
        ...


def channel_snapshot(policy: Policy, names: list[str] | tuple[str, ...]) -> str:
    """The channels' definitions (names and references, never secret values), kept with the lock's state so
    that ``resolved`` goes where its alerts went."""
    return json.dumps({name: policy.channels[name].model_dump(mode="json") for name in names}, sort_keys=True)


class Alerter:
    """Sends (or, with ``send=False``, only renders) the notifications of each sweep entry. One per sweep."""

    def __init__(
        self,
        policy: Policy,
        *,
        table: str,
        factory: ChannelFactory,
        ledger: NotificationLedger,
        state: StateStore,
        send: bool = True,
    ) -> None:
        self._policy = policy
        self._table = table
        self._factory = factory
        self._ledger = ledger
        self._state = state
        self._send = send
        self._notifiers: dict[str, Notifier] = {}
        self._unusable: dict[str, str | None] = {}
        """A dry run's finding per channel: why it cannot be used (``None``: it can)."""
        self._down: dict[str, str] = {}
        """Channels that failed retryably in this sweep: skipped for the rest of it (the next sweep retries), so
        that a hanging endpoint costs one timeout per sweep, not one per lock. Only a failure of the channel or the
        ledger is retryable (see :mod:`tflock_reaper.services.dispatch`): one that this lock's data caused (a
        renderer's exception, a 400, a key the ledger refuses) fails this notification alone, and the next lock
        still gets its alert on the channel."""

    def _notifier(self, name: str) -> Notifier:
        if name not in self._notifiers:
            self._notifiers[name] = self._factory(name, self._policy.channels[name])
        return self._notifiers[name]

    def on_entry(self, entry: LockReport, now: datetime) -> list[SentNotification]:
        channels = entry.verdict.rule.channels
        records: list[SentNotification] = []
        for notification in notifications_for(entry, table=self._table, now=now):
            record = self._deliver(notification, channels)
            if record.sent_count:
                self._remember_channels(entry, list(channels))
            records.append(record)
        return records

    def on_unreadable(self, item: SkippedItem, now: datetime) -> list[SentNotification]:
        """An unreadable lock, routed like a stale lock of its path (its operation and holder cannot be read), sent
        once per distinct item through the ledger."""
        rule = self._policy.rule_for_path(item.lock_path)
        notification = Notification.for_unreadable(
            item.lock_path,
            reason=item.reason,
            item=item.item,
            scope=item.scope,
            table=item.table or self._table,
            rule=rule.name,
            seen=now,
            workspace=workspace_of(item.lock_path),
        )
        return [self._deliver(notification, rule.channels)]

    def _deliver(self, notification: Notification, channels: Sequence[str]) -> SentNotification:
        """Send (or render) one notification on its channels: what happened, per channel."""
        notifiers = [self._notifier(name) for name in channels]
        if not self._send:
            return self._preview(notification, notifiers)
        live = [n for n in notifiers if n.name not in self._down]
        from tflock_reaper.services.dispatch import dispatch  # noqa: PLC0415 - cold start: only a sweep that alerts

        result = dispatch(notification, live, self._ledger)
        statuses: dict[str, ChannelStatus] = {r.channel: r.status for r in result.results}
        statuses.update({n.name: NotSent.SKIPPED for n in notifiers if n.name in self._down})
        self._mark_down([r for r in result.failed if r.retryable], notification.lock_path)
        return SentNotification(
            notification.kind,
            notification.sequence,
            channels=statuses,
            errors={r.channel: r.error or "" for r in result.failed},
        )

    def _preview(self, notification: Notification, notifiers: Sequence[Notifier]) -> SentNotification:
        """A dry run: each channel either would send (and what it would get), or is unusable (and why), not both."""
        statuses: dict[str, ChannelStatus] = {}
        errors: dict[str, str] = {}
        rendered: dict[str, dict[str, Any]] = {}
        for notifier in notifiers:
            why = self._unusable_channel(notifier)
            if why is None:
                try:
                    rendered[notifier.name] = notifier.render(notification)
                except Exception as err:  # noqa: BLE001 - a renderer's bug must not hide the other channels' previews
                    why = _describe(err, "cannot render the notification: ")
            statuses[notifier.name] = NotSent.WOULD_SEND if why is None else NotSent.UNUSABLE
            if why is not None:
                errors[notifier.name] = why
        return SentNotification(
            notification.kind, notification.sequence, channels=statuses, errors=errors, rendered=rendered
        )

    def _unusable_channel(self, notifier: Notifier) -> str | None:
        """Why ``notifier`` cannot be used at all (asked once a sweep: it may read a secret), or ``None``."""
        name = notifier.name
        if name not in self._unusable:
            why: str | None = None
            if isinstance(notifier, UsabilityCheck):
                try:
                    why = notifier.unusable()
                except Exception as err:  # noqa: BLE001 - a check that fails says the channel cannot be used
                    why = _describe(err, "cannot check the channel: ")
            self._unusable[name] = why
        return self._unusable[name]

    def _mark_down(self, failed: list[ChannelResult], lock_path: str) -> None:
        for result in failed:
            self._down[result.channel] = result.error or "failed"
            logger.warning(
                "channel down for the rest of the sweep",
                extra={"channel": result.channel, "lock_path": lock_path, "error": result.error},
            )

    def _remember_channels(self, entry: LockReport, names: list[str]) -> None:
        try:
            self._state.mark_alerted(entry.lock, channel_snapshot(self._policy, names))
        except Exception as err:  # noqa: BLE001 - the alert went out; only the resolve routing is lost
            logger.warning("cannot record alert channels", extra={"lock_path": entry.lock.lock_path, "error": str(err)})


def _describe(err: Exception, prefix: str) -> str:
    """An exception as a one-line, secret-free reason (it may quote the hostile value that caused it: cut)."""
    from tflock_reaper.services.dispatch import ERROR_MAX  # noqa: PLC0415 - cold start: only a sweep that alerts

    return fit(one_line(redact(f"{prefix}{type(err).__name__}: {err}")), ERROR_MAX)
