"""``tflock-reaper unlock LOCK_PATH --id LOCK_ID``: release one lock by hand, safely.

``terraform force-unlock ID`` needs a checkout of the root module and deletes unconditionally after comparing IDs
(see shared/TERRAFORM_LOCKING.md, 3). This reads the lock, refuses anything that is not the acquisition named
(a digest, an item that is not a lock, an unreadable lock, another ID), shows it, asks (on a terminal), and then
deletes it through the sweep's own reap (:func:`tflock_reaper.services.sweep.unlock`): conditional on the lock
exactly as read and shown, recorded, logged in full, and alerted as ``reaped`` with ``--notify``.
"""

from __future__ import annotations

import getpass
import json
import socket

from tflock_reaper.adapters.lock_table import LockTable
from tflock_reaper.adapters.lockfiles import LockfileBuckets
from tflock_reaper.domain.decision import Outcome
from tflock_reaper.domain.lock import DIGEST_SUFFIX, DigestRecord, LockRecord, SkippedItem
from tflock_reaper.domain.policy import Policy, load_policy
from tflock_reaper.domain.report import LockReport
from tflock_reaper.domain.text import one_line
from tflock_reaper.entrypoints.cli.codes import EXIT_AWS, EXIT_DECLINED, EXIT_NOT_FOUND, EXIT_OK
from tflock_reaper.entrypoints.cli.commands import Run, sources
from tflock_reaper.entrypoints.cli.errors import ConfigError
from tflock_reaper.entrypoints.cli.prompt import ask, interactive
from tflock_reaper.entrypoints.cli.render import describe_notification, lock_preview, where
from tflock_reaper.entrypoints.wiring import make_alerter, state_store
from tflock_reaper.services import lock_lookup
from tflock_reaper.services.lock_lookup import Found, NotTheLockError, Refusal, choose
from tflock_reaper.services.sweep import unlock, utcnow


class RefusedError(Exception):
    """Not the lock asked for: nothing deleted (exit 1). ``details``: what is there, shown below the message."""

    def __init__(self, message: str, details: list[str] | None = None) -> None:
        super().__init__(message)
        self.details = details or []


def run_unlock(run: Run) -> int:
    args = run.args
    if not args.yes and not interactive(run.stdin, run.err):
        raise ConfigError(
            "unlock deletes a lock and asks first, but stdin or stderr is not a terminal, so nobody can answer: "
            "add --yes to unlock without a question"
        )
    if args.notify and not args.policy:
        raise ConfigError("--notify sends the reaped alert to the lock's rule's channels: give the policy (--policy)")
    policy = load_policy(args.policy) if args.policy else Policy()
    tables, lockfiles = sources(args, run.clients)
    try:
        lock = _the_lock(read(args.lock_path, tables, lockfiles), args.lock_path, args.lock_id, tables, lockfiles)
    except RefusedError as refused:
        run.complain(f"{refused}: nothing deleted")
        for line in refused.details:
            run.err.write(line + "\n")
        return EXIT_NOT_FOUND
    if not args.yes:
        run.err.write("tflock-reaper will delete this lock:\n" + lock_preview(lock, utcnow()) + "\n")
        if not ask(run.stdin, run.err, "Delete this lock?"):
            run.err.write("Not confirmed: nothing deleted.\n")
            return EXIT_DECLINED
    state = state_store(run.clients, args.state_table)
    alerts = None
    if args.notify:
        alerts = make_alerter(
            policy,
            table=where(lock),
            clients=run.clients,
            state=state,
            state_table=args.state_table,
            default_topic_arn=args.alert_topic_arn,
        )
    operator = _operator()
    entry = unlock(
        lock,
        tables=tables,
        lockfiles=lockfiles,
        state=state,
        policy=policy,
        reason=f"released by hand: tflock-reaper unlock --id {lock.lock_id}, run by {operator}",
        alerts=alerts,
        by=f"unlock by {operator}",
    )
    return _report(run, entry, tables, lockfiles)


def read(lock_path: str, tables: list[LockTable], lockfiles: LockfileBuckets | None) -> Found:
    """Everything at ``lock_path``: each table's item and the lockfile, classified (consistent reads)."""
    return lock_lookup.read(lock_path, tables, lockfiles, utcnow())


def _the_lock(
    found: Found, lock_path: str, lock_id: str, tables: list[LockTable], lockfiles: LockfileBuckets | None
) -> LockRecord:
    """The acquisition ``lock_id`` names, or :class:`RefusedError` saying what is there instead (the choice is
    :func:`tflock_reaper.services.lock_lookup.choose`'s, shared with the Slack app's *Reap now*)."""
    try:
        return choose(found, lock_id)
    except NotTheLockError as refused:
        if refused.refusal is Refusal.AMBIGUOUS:
            held_in = ", ".join(where(lock) for lock in refused.matching)
            raise ConfigError(
                f"{lock_path!r} is held with ID {lock_id!r} in {held_in}: give the one table (--table)"
            ) from None
        if refused.refusal is Refusal.DIGEST_KEY:
            raise RefusedError(
                f"{lock_path!r} ends in {DIGEST_SUFFIX}, as Terraform's digest items do: unlock never deletes such "
                "a key (nor may the stack's role); check it is a lock, then delete the item by hand",
                [lock_preview(refused.matching[0], utcnow())],
            ) from None
        if refused.refusal is Refusal.NOTHING:
            searched = [f"{t.name}" for t in tables] + ([lockfiles.name] if lockfiles else [])
            raise RefusedError(f"no lock at {lock_path!r} in {', '.join(searched)}") from None
    details = [
        f"Held now, by another acquisition (ID {one_line(lock.lock_id)}):\n{lock_preview(lock, utcnow())}"
        for lock in found.locks
    ]
    details += [_describe_other(other) for other in found.others]
    what = "another acquisition holds it" if found.locks else "what is there is not a lock unlock may delete"
    raise RefusedError(f"{lock_path!r} is not locked with ID {lock_id!r}: {what}", details)


def _describe_other(other: DigestRecord | SkippedItem) -> str:
    if isinstance(other, DigestRecord):
        return f"  {one_line(other.lock_path)}: Terraform's state digest item, not a lock: never deleted"
    item = json.dumps(other.item, sort_keys=True, default=str)
    if other.unreadable:
        return (
            f"  {one_line(other.lock_id)}: a lock that cannot be read ({one_line(other.reason)}): unlock deletes only "
            f"a lock it can read and compare. Inspect it, and delete it by hand if it is stale:\n  {one_line(item)}"
        )
    return f"  {one_line(other.lock_id)}: not a Terraform lock ({one_line(other.reason)}): never deleted"


def _operator() -> str:
    """``user@host``, as Terraform writes ``Who``: recorded with the reap."""
    try:
        user = getpass.getuser()
    except (OSError, KeyError):
        user = ""
    return f"{user}@{socket.gethostname()}"


def _report(run: Run, entry: LockReport, tables: list[LockTable], lockfiles: LockfileBuckets | None) -> int:
    lock = entry.lock
    if run.json:
        run.write_json(
            {"unlocked": entry.outcome is Outcome.REAPED, **entry.to_dict(), "deleted_item": entry.deleted_item}
        )
    elif entry.outcome is Outcome.REAPED:
        run.out.write(f"Unlocked {one_line(lock.lock_path)} (ID {one_line(lock.lock_id)}, {where(lock)}).\n")
        for note in entry.notes:
            run.out.write(f"  - {one_line(note)}\n")
        for sent in entry.notifications:
            run.out.write(f"  > {describe_notification(sent)}\n")
    if entry.outcome is Outcome.REAPED:
        return EXIT_OK
    if entry.outcome is Outcome.CHANGED:
        now_there = read(lock.lock_path, tables, lockfiles)
        shown = [lock_preview(other, utcnow()) for other in now_there.locks] or ["  (nothing: released)"]
        run.complain(f"{lock.lock_path!r} changed after it was read ({'; '.join(entry.notes)}): nothing deleted")
        run.err.write("Held now:\n" + "\n".join(shown) + "\n")
        return EXIT_NOT_FOUND
    run.complain(f"unlock of {lock.lock_path!r} failed: {'; '.join(entry.notes)}")
    return EXIT_AWS
