"""What the Slack app's buttons do (issue 18): *Reap now*, *Snooze* and *It's mine* on one lock acquisition.

Pure of AWS and of Slack: the state table, the lock tables, the lockfiles, the alerts and the message are ports that
``entrypoints.interactions`` wires; the press arrives parsed and its signature checked.

* **Reap now** deletes the acquisition the message showed, and nothing else, through the same reap as
  ``tflock-reaper unlock`` (:func:`tflock_reaper.services.sweep.unlock`: the intent recorded, the conditional delete
  on the exact raw ``Info`` read, the ``lock reaped`` log line with the full item, the ``reaped`` alert). Only the
  lock's rule's ``approvers`` may press it (none: nobody). The person's approval stands in for the holder check and
  for nothing else: the lock is read again now, and a digest key, an unreadable lock, another acquisition, or the
  same acquisition whose raw ``Info`` is not the one the message showed (its digest, in the button) is refused.
* **Snooze** and **It's mine** record a :class:`~tflock_reaper.domain.holds.Hold` on the acquisition (anyone in the
  channel, unless the rule says ``holds_by_approvers_only``), which keeps automatic reaps off it.

A refused press changes nothing. Every press ends in an :class:`ActionResult`, which the entrypoint logs
(``slack_action``), counts and answers privately to the presser.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta, tzinfo
from enum import StrEnum
from typing import Any, Protocol

from tflock_reaper.domain.decision import Outcome
from tflock_reaper.domain.errors import AwsAccessError
from tflock_reaper.domain.holds import Hold, HoldKind, active_holds
from tflock_reaper.domain.lock import DigestRecord, LockRecord, SkippedItem
from tflock_reaper.domain.memory import StateStore
from tflock_reaper.domain.policy import EffectiveRule, Policy
from tflock_reaper.domain.ports import AlertSink, LockfileSource, LockSource
from tflock_reaper.domain.report import LockReport
from tflock_reaper.domain.slack_actions import ButtonValue, SlackAction, SnoozeFor, info_digest
from tflock_reaper.services import lock_lookup
from tflock_reaper.services.lock_lookup import Found, LockfileReader, NotTheLockError, Refusal, TableReader
from tflock_reaper.services.sweep import unlock, utcnow

logger = logging.getLogger(__name__)

#: *Snooze until tomorrow 09:00*: 09:00 in the policy's ``time_zone``.
TOMORROW_AT = time(9, 0)
_SNOOZES = {SnoozeFor.ONE_HOUR: timedelta(hours=1), SnoozeFor.FOUR_HOURS: timedelta(hours=4)}


@dataclass(frozen=True)
class Presser:
    """Who pressed, as Slack names them: their user ID (what ``approvers`` lists) and their name."""

    user_id: str
    name: str

    @property
    def label(self) -> str:
        """``name (U123)``: how holds, reap records and alerts name them."""
        return f"{self.name} ({self.user_id})"


@dataclass(frozen=True)
class Press:
    """One button press, parsed from Slack's ``block_actions`` payload (its signature checked)."""

    action: SlackAction
    value: ButtonValue
    presser: Presser
    snooze: SnoozeFor | None = None
    """The Snooze menu's option (its duration); None for the buttons."""
    response_url: str = ""
    """Where the presser's private answer goes (valid for 30 minutes)."""
    channel_id: str | None = None
    message_ts: str | None = None
    """The message pressed on (``container.channel_id`` and ``container.message_ts``)."""
    message_blocks: tuple[Mapping[str, Any], ...] = ()
    message_text: str = ""
    """That message's blocks and fallback text as Slack shows them (``message``): what an update after a hold
    keeps, with a line saying who holds it."""

    def __post_init__(self) -> None:
        if (self.action is SlackAction.SNOOZE) != (self.snooze is not None):
            raise ValueError("a Snooze press carries its duration, and only a Snooze press does")


class ActionOutcome(StrEnum):
    REAPED = "reaped"
    SNOOZED = "snoozed"
    CLAIMED = "claimed"
    UNKNOWN_ACQUISITION = "unknown_acquisition"
    """The button's keys name no acquisition in the state table: not this stack's button (answered 404)."""
    NOT_APPROVED = "not_approved"
    RELEASED = "released"
    """The acquisition is not held any more (nothing at the path, or the release is recorded)."""
    CHANGED = "changed"
    """The state is held by another acquisition now, or by this one with another raw ``Info`` than the message
    showed: nothing deleted."""
    NOT_DELETABLE = "not_deletable"
    """A digest key, an unreadable lock, an item that is not a lock: only a person may delete it, by hand."""
    OUT_OF_REACH = "out_of_reach"
    """The acquisition's lock table or bucket is not one this function reaches (another account's)."""
    FAILED = "failed"
    """AWS failed us (a read, the hold's write, the reap): see the detail."""


#: A press that did what it asked.
DONE = frozenset({ActionOutcome.REAPED, ActionOutcome.SNOOZED, ActionOutcome.CLAIMED})


@dataclass(frozen=True)
class ActionResult:
    press: Press
    outcome: ActionOutcome
    lock_path: str = ""
    lock_id: str = ""
    detail: str = ""
    """Why, in one sentence (the log line's ``detail``)."""
    scope: str = ""
    rule: EffectiveRule | None = None
    held_now: tuple[LockRecord, ...] = ()
    """The locks at the path now, when they are not the one shown (:attr:`ActionOutcome.CHANGED`)."""
    others: tuple[DigestRecord | SkippedItem, ...] = ()
    """What else is at the path (a digest, an unreadable lock), when it is why a press was refused."""
    hold: Hold | None = None
    """The hold this press recorded (*Snooze*, *It's mine*)."""
    holds: tuple[Hold, ...] = ()
    """The acquisition's holds in force after it (this one among them): what its message shows."""
    report: LockReport | None = None
    """The reap's report (*Reap now* that got as far as the delete)."""

    @property
    def done(self) -> bool:
        return self.outcome in DONE


class AcquisitionRef(Protocol):
    """An acquisition as the state table names it (``adapters.state_table.AcquisitionRef``)."""

    @property
    def scope(self) -> str: ...

    @property
    def lock_path(self) -> str: ...

    @property
    def lock_id(self) -> str: ...

    @property
    def table(self) -> str | None: ...

    @property
    def released_at(self) -> datetime | None: ...


class InteractionStore(StateStore, Protocol):
    """The state table: the reap's records, the acquisitions the buttons name, and the holds."""

    def acquisition_by_keys(self, pk: str, sk: str) -> AcquisitionRef | None: ...

    def record_hold(self, scope: str, lock_path: str, lock_id: str, hold: Hold) -> tuple[Hold, ...]:
        """Record ``hold``; the acquisition's holds as written (this one among them)."""
        ...


class Table(LockSource, TableReader, Protocol):
    """A lock table, read by key and reaped from (``adapters.lock_table.LockTable``)."""


class Lockfiles(LockfileSource, LockfileReader, Protocol):
    """The lockfiles of the state buckets, read by lock path and reaped (``adapters.lockfiles.LockfileBuckets``)."""


class MessageUpdater(Protocol):
    """The seam for the lock's Slack message: told of every press that did what it asked (the message shows who
    snoozed or claimed it). A *Reap now* also sends the ``reaped`` alert, which the Slack app channel shows on the
    message itself. Its failures are logged and never change the answer."""

    def update(self, result: ActionResult) -> None: ...


class NoMessageUpdate:
    """The default :class:`MessageUpdater`: the message is left as it is."""

    def update(self, result: ActionResult) -> None:
        return None


@dataclass(frozen=True)
class Collaborators:
    store: InteractionStore
    tables: Sequence[Table]
    lockfiles: Lockfiles | None
    policy: Policy
    alerts: AlertSink | None = None
    """Where the ``reaped`` alert goes (the lock's rule's channels)."""
    clock: Callable[[], datetime] = utcnow
    updater: MessageUpdater = field(default_factory=NoMessageUpdate)


def zone(name: str) -> tzinfo:
    """The policy's ``time_zone`` (validated when the policy was loaded)."""
    if name == "UTC":
        return UTC
    import zoneinfo  # noqa: PLC0415 - only a snooze until tomorrow needs it (cold start)

    return zoneinfo.ZoneInfo(name)


def snooze_until(option: SnoozeFor, now: datetime, time_zone: str) -> datetime:
    """When a snooze pressed at ``now`` ends: in 1 h, in 4 h, or tomorrow at 09:00 in ``time_zone`` (UTC out)."""
    if option in _SNOOZES:
        return now + _SNOOZES[option]
    where = zone(time_zone)
    tomorrow = now.astimezone(where).date() + timedelta(days=1)
    return datetime.combine(tomorrow, TOMORROW_AT, tzinfo=where).astimezone(UTC)


def approved(presser: Presser, rule: EffectiveRule) -> bool:
    """Whether the rule's ``approvers`` list the presser's user ID (no approvers: nobody is)."""
    return presser.user_id in rule.approvers


def act(press: Press, deps: Collaborators) -> ActionResult:
    """Do what ``press`` asks, or refuse it with nothing changed. Never raises for AWS's failures: they are the
    :attr:`ActionOutcome.FAILED` outcome (what was done before the failure is in the detail)."""
    try:
        ref = deps.store.acquisition_by_keys(press.value.pk, press.value.sk)
    except AwsAccessError as err:
        return ActionResult(press, ActionOutcome.FAILED, detail=f"the state table could not be read: {err}")
    if ref is None:
        return ActionResult(press, ActionOutcome.UNKNOWN_ACQUISITION, detail="the button names no acquisition")
    try:
        result = _reap(press, ref, deps) if press.action is SlackAction.REAP_NOW else _hold(press, ref, deps)
    except AwsAccessError as err:
        return ActionResult(press, ActionOutcome.FAILED, ref.lock_path, ref.lock_id, detail=str(err), scope=ref.scope)
    if result.done:
        try:
            deps.updater.update(result)
        except Exception:
            logger.exception("the Slack message could not be updated", extra={"lock_path": ref.lock_path})
    return result


def _reachable(ref: AcquisitionRef, deps: Collaborators) -> bool:
    """Whether the acquisition's lock table (its ARN) or bucket (``s3://<bucket>``) is one of this deployment's."""
    if deps.lockfiles is not None and ref.scope in deps.lockfiles.scopes:
        return True
    return any(table.arn == ref.scope for table in deps.tables)


def _read(ref: AcquisitionRef, deps: Collaborators) -> LockRecord | NotTheLockError:
    """The acquisition's lock now, read consistently (by its ID; in its own table when the same ID is held in
    several), or why it is not there (with what is)."""
    found = lock_lookup.read(ref.lock_path, deps.tables, deps.lockfiles, deps.clock())
    try:
        return lock_lookup.choose(found, ref.lock_id, prefer=lambda lock: lock.scope == ref.scope)
    except NotTheLockError as refused:
        return refused


def _result(
    press: Press,
    ref: AcquisitionRef,
    outcome: ActionOutcome,
    detail: str,
    rule: EffectiveRule,
    *,
    found: Found | None = None,
    hold: Hold | None = None,
    holds: tuple[Hold, ...] = (),
    report: LockReport | None = None,
) -> ActionResult:
    return ActionResult(
        press,
        outcome,
        ref.lock_path,
        ref.lock_id,
        detail=detail,
        scope=ref.scope,
        rule=rule,
        held_now=tuple(found.locks) if found is not None else (),
        others=tuple(found.others) if found is not None else (),
        hold=hold,
        holds=holds,
        report=report,
    )


def _reap(press: Press, ref: AcquisitionRef, deps: Collaborators) -> ActionResult:
    if not _reachable(ref, deps):
        rule = deps.policy.rule_for_path(ref.lock_path)
        return _result(press, ref, ActionOutcome.OUT_OF_REACH, f"{ref.scope} is not reached from here", rule)
    read = _read(ref, deps)
    lock = read if isinstance(read, LockRecord) else None
    rule = deps.policy.rule_for(lock) if lock is not None else deps.policy.rule_for_path(ref.lock_path)
    if not approved(press.presser, rule):
        why = "the rule names no approvers" if not rule.approvers else "not one of the rule's approvers"
        return _result(press, ref, ActionOutcome.NOT_APPROVED, why, rule)
    if isinstance(read, NotTheLockError):
        return _refused(press, ref, read, rule)
    if info_digest(read.raw_info) != press.value.info_digest:
        detail = "held by this acquisition with another Info than the message showed"
        return _result(press, ref, ActionOutcome.CHANGED, detail, rule, found=Found(locks=[read]))
    entry = unlock(
        read,
        tables=deps.tables,
        lockfiles=deps.lockfiles,
        state=deps.store,
        policy=deps.policy,
        reason=f"reaped from Slack: approved by {press.presser.label}",
        clock=deps.clock,
        alerts=deps.alerts,
        by=f"slack by {press.presser.label}",
    )
    detail = "; ".join(entry.notes)
    if entry.outcome is Outcome.REAPED:
        return _result(press, ref, ActionOutcome.REAPED, detail, rule, report=entry)
    if entry.outcome is Outcome.CHANGED:
        again = lock_lookup.read(ref.lock_path, deps.tables, deps.lockfiles, deps.clock())
        detail = f"changed between the read and the delete: {detail}"
        return _result(press, ref, ActionOutcome.CHANGED, detail, rule, found=again, report=entry)
    return _result(press, ref, ActionOutcome.FAILED, detail, rule, report=entry)


def _refused(press: Press, ref: AcquisitionRef, refused: NotTheLockError, rule: EffectiveRule) -> ActionResult:
    found = refused.found
    if refused.refusal is Refusal.NOTHING:
        return _result(press, ref, ActionOutcome.RELEASED, "nothing is held at the path now", rule, found=found)
    if refused.refusal is Refusal.OTHER_ACQUISITION:
        detail = "another acquisition holds the state now"
        return _result(press, ref, ActionOutcome.CHANGED, detail, rule, found=found)
    if refused.refusal is Refusal.DIGEST_KEY:
        detail = "its key ends in -md5, as Terraform's digest items' do: never deleted here"
    elif refused.refusal is Refusal.AMBIGUOUS:
        detail = "held with this ID in several lock tables, none of them the acquisition's"
    elif refused.unreadable:
        detail = f"the lock there cannot be read ({refused.unreadable[0].reason}): only a person may delete it"
    else:
        detail = "what is there is not a lock that may be deleted"
    return _result(press, ref, ActionOutcome.NOT_DELETABLE, detail, rule, found=found)


def _hold(press: Press, ref: AcquisitionRef, deps: Collaborators) -> ActionResult:
    """Snooze or claim. The acquisition must still be held: its release not recorded and, where this function
    reaches its lock table or bucket, its ID held at the path (another account's is known by its record alone)."""
    lock: LockRecord | None = None
    if ref.released_at is not None:
        detail = "its release is recorded"
        return _result(press, ref, ActionOutcome.RELEASED, detail, deps.policy.rule_for_path(ref.lock_path))
    if _reachable(ref, deps):
        read = _read(ref, deps)
        if isinstance(read, NotTheLockError) and read.refusal is not Refusal.DIGEST_KEY:
            detail = "this acquisition does not hold the state any more"
            rule = deps.policy.rule_for_path(ref.lock_path)
            return _result(press, ref, ActionOutcome.RELEASED, detail, rule, found=read.found)
        lock = read if isinstance(read, LockRecord) else read.matching[0]
    rule = deps.policy.rule_for(lock) if lock is not None else deps.policy.rule_for_path(ref.lock_path)
    if rule.holds_by_approvers_only and not approved(press.presser, rule):
        return _result(press, ref, ActionOutcome.NOT_APPROVED, "holds are for the rule's approvers only", rule)
    now = deps.clock()
    if press.snooze is not None:
        until = snooze_until(press.snooze, now, deps.policy.defaults.time_zone)
        hold, outcome = Hold(HoldKind.SNOOZE, press.presser.label, now, until), ActionOutcome.SNOOZED
    else:
        hold, outcome = Hold(HoldKind.CLAIM, press.presser.label, now), ActionOutcome.CLAIMED
    holds = active_holds(deps.store.record_hold(ref.scope, ref.lock_path, ref.lock_id, hold), now)
    return _result(press, ref, outcome, hold.reason(now), rule, hold=hold, holds=holds)
