"""The reaper's state table (``pk``/``sk``, TTL on ``expires_at``). One item per lock acquisition:

``pk = LOCK#<digest of (scope, lock path)>``, ``sk = ID#<digest of the lock ID>``, with ``first_seen``,
``warned_at``, ``acquired_at`` and ``released_at`` (written by the stream function, server time) and, once reaped,
``reap_status`` and the full ``reaped_item``. Per state, ``sk = PERSISTED`` holds the last digest write seen on the
stream, and for a lockfile, ``sk = S3#<sequencer>`` one item per S3 event of its ``.tflock`` key, in S3's order (see
:mod:`tflock_reaper.domain.lockfile_audit`). Writes use ``if_not_exists`` so that overlapping sweeps, retries and
the stream function never overwrite each other's first observations.

Keys are digests because what they identify is written by whoever can run Terraform: a LockID may be 2,048 bytes
and a lock ID anything, while DynamoDB refuses a partition key over 2,048 bytes and a sort key over 1,024. A key
that DynamoDB refuses would fail the whole batch it is read or written in, so one hostile lock could stop every
observation, alert and reap of a table. The readable values travel as attributes (``lock_scope``, ``lock_path``,
``lock_id``, ``lock_table``) of every item, and the scope (the lock table's ARN, or ``s3://<bucket>`` for a
lockfile) keeps two tables or two accounts holding the same LockID apart.
"""

from __future__ import annotations

import hashlib
import random
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import TYPE_CHECKING, Any, TypeVar

from botocore.exceptions import BotoCoreError, ClientError

from tflock_reaper.adapters.batch_get import batch_get
from tflock_reaper.adapters.errors import AwsAccessError, describe
from tflock_reaper.domain.holds import HOLD_KEEP, Hold, HoldKind
from tflock_reaper.domain.lock import DynamoItem, LockRecord, lockfile_scope
from tflock_reaper.domain.memory import HeldLock, LockKey, LockState, lock_key
from tflock_reaper.domain.reconcile import ReconcileRecord
from tflock_reaper.domain.records import TTL_PRINCIPAL, Acquisition, LockfileEntry, ReleaseRecord, release_author

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

    from tflock_reaper.domain.history import HistoryRecord

#: Observation records expire this long after they were last refreshed (a lock held longer is refreshed).
OBSERVATION_TTL = timedelta(days=30)
#: A record closer than this to expiry is refreshed when its lock is seen again.
REFRESH_WITHIN = timedelta(days=7)
#: Reap records (with the deleted item) are kept this long for follow-up (or the history's retention, if longer).
REAP_TTL = timedelta(days=90)
#: How long an acquisition's record is kept after its release, by default (the stack's ``HistoryRetentionDays``).
HISTORY_RETENTION = timedelta(days=90)
#: The history: an index of every acquisition by the day (UTC) of its server-side acquisition time, sorted by that
#: time. A time range is one Query per day (in parallel), never a Scan; one state's history is its own partition
#: (``pk``), read with :meth:`StateTable.state_history`.
HISTORY_INDEX = "history-by-day"
HISTORY_KEY = "history_day"
#: What the history index projects besides its keys (``acquired_at``) and the table's (template.yaml, checked by
#: the template tests): what ``domain.history.HistoryRecord`` is made of, never the reaped item.
HISTORY_PROJECTION = (
    "lock_scope",
    "lock_path",
    "lock_id",
    "lock_table",
    "who",
    "operation",
    "released_at",
    "released_by",
    "reap_started_at",
    "warned_at",
    "blocked_at",
    "reap_status",
    "reap_finished_at",
    "reaped_by",
    "first_seen",
    "gone_at",
)
#: Sort key of the per-state item holding the last digest write seen on the stream.
PERSISTED_SK = "PERSISTED"
#: DynamoDB stream sequence numbers have 21 to 40 digits.
SEQUENCE_WIDTH = 40
_BATCH_GET_ATTEMPTS = 5
#: The open set: a sparse index of the acquisitions whose release is not recorded. ``held_scope`` (the lock's scope:
#: its lock table's ARN, or ``s3://<bucket>``) is set when the stream function records an acquisition or a sweep
#: records a lock, and removed when the release is recorded (stream) or a sweep finds the lock gone. One Query of a
#: table's partition lists the locks an incremental sweep reads (the projection carries their path and ID) and the
#: observations a full sweep needs.
HELD_INDEX = "held-locks"
HELD_KEY = "held_scope"
#: The 0.1 open set's attribute (index ``open-locks``, keyed by scope and bucket): removed wherever an item is
#: written, so that the old index empties; nothing reads it any more.
LEGACY_OPEN_KEY = "open_bucket"
#: Sort key of a lock table's reconciliation record (``pk = SWEEP#<digest of the scope>``): its last full sweep.
RECONCILE_SK = "RECONCILE"
#: Concurrent requests for a sweep's batched reads and its observation writes (boto3 clients are thread-safe;
#: botocore's connection pool holds 10 connections).
WORKERS = 8
_T = TypeVar("_T")
_R = TypeVar("_R")


#: Hex digits of a key digest: 128 bits of SHA-256, so that no two locks ever share a key.
DIGEST_HEX = 32


def digest(*parts: str) -> str:
    """A fixed-length key part for values a lock writer controls (unambiguous: each part's length is hashed too)."""
    hasher = hashlib.sha256()
    for part in parts:
        data = part.encode("utf-8", "surrogatepass")
        hasher.update(len(data).to_bytes(8, "big") + data)
    return hasher.hexdigest()[:DIGEST_HEX]


def state_pk(scope: str, lock_path: str) -> str:
    """The partition of one state's lock in one table (or bucket): its acquisitions, its ledger, its writes."""
    return f"LOCK#{digest(scope, lock_path)}"


def _key(scope: str, lock_path: str, lock_id: str) -> dict[str, Any]:
    return {"pk": {"S": state_pk(scope, lock_path)}, "sk": {"S": f"ID#{digest(lock_id)}"}}


def _lock_key(lock: LockRecord) -> dict[str, Any]:
    return _key(*lock_key(lock))


def _key_strings(key: dict[str, Any]) -> tuple[str, str]:
    """(pk, sk) of an item or a key: what the open-locks index projects of every item, whatever else it holds."""
    return (str(key["pk"]["S"]), str(key["sk"]["S"]))


def _readable(lock: LockRecord) -> dict[str, Any]:
    """The attributes that say, in words, which lock an item is about (its keys are digests)."""
    return {":scope": {"S": lock.scope}, ":path": {"S": lock.lock_path}, ":id": {"S": lock.lock_id}}


#: Sort-key prefix of a lockfile's S3 events (``S3#<sequencer position>``): they sort in S3's order.
_LOCKFILE_EVENT = "S3#"


def _lockfile_entry(item: dict[str, Any]) -> LockfileEntry:
    def text(name: str) -> str:
        return str(item.get(name, {}).get("S", ""))

    return LockfileEntry(
        position=text("sk").removeprefix(_LOCKFILE_EVENT),
        kind="created" if text("kind") == "created" else "deleted",
        server_time=datetime.fromisoformat(text("server_time")),
        event_id=text("event_id"),
        sequencer=text("sequencer"),
        body=item.get("body", {}).get("S"),
    )


def _time(item: dict[str, Any], name: str) -> datetime | None:
    value = item.get(name, {}).get("S")
    return datetime.fromisoformat(value) if isinstance(value, str) else None


def _epoch(when: datetime) -> dict[str, str]:
    return {"N": str(int(when.timestamp()))}


def history_day(when: datetime) -> str:
    """The history index's partition of an acquisition: the day (UTC) of its server-side acquisition time."""
    return when.astimezone(UTC).date().isoformat()


#: Sort key of a lock table's (or bucket's) holds record (``pk = HOLDS#<digest of the scope>``).
HOLDS_SK = "HOLDS"
_HOLD_WRITE_ATTEMPTS = 10
#: Jittered wait (times the attempt) before writing the holds record again after another press won the race.
_HOLD_BACKOFF_SECONDS = 0.05


def _holds_key(scope: str) -> dict[str, Any]:
    return {"pk": {"S": f"HOLDS#{digest(scope)}"}, "sk": {"S": HOLDS_SK}}


def _hold_entry_key(lock_path: str, lock_id: str, kind: str) -> str:
    return f"{digest(lock_path, lock_id)}:{kind}"


def _hold_entry(lock_path: str, lock_id: str, hold: Hold) -> dict[str, Any]:
    values: dict[str, Any] = {
        "kind": {"S": hold.kind.value},
        "by": {"S": hold.by},
        "at": {"S": hold.at.isoformat()},
        "lock_path": {"S": lock_path},
        "lock_id": {"S": lock_id},
    }
    if hold.until is not None:
        values["until"] = {"S": hold.until.isoformat()}
    return {"M": values}


def _holds_of(record: dict[str, Any], lock_path: str, lock_id: str) -> tuple[Hold, ...]:
    """The holds the record keeps for one acquisition; an entry that cannot be read is a claim by "unknown" (a
    hold whose end is unknown must keep the reap, never release it)."""
    entries = record.get("holds", {}).get("M", {})
    found = []
    for kind in HoldKind:
        entry = entries.get(_hold_entry_key(lock_path, lock_id, kind))
        if entry is None:
            continue
        fields = entry.get("M", {})
        by = str(fields.get("by", {}).get("S", "unknown"))
        try:
            at, until = _time(fields, "at"), _time(fields, "until")
        except ValueError:
            at = until = None
        if at is None or (kind is HoldKind.SNOOZE and until is None):
            found.append(Hold(HoldKind.CLAIM, f"{by} (unreadable hold record)", at or datetime.now(UTC)))
            continue
        found.append(Hold(kind, by, at, until))
    return tuple(found)


def _history_records(items: Iterable[dict[str, Any]]) -> list[HistoryRecord]:
    """The acquisitions among ``items`` (those with a server-side acquisition time), as the history reads them."""
    # Imported here: the functions never read the history, and the domain's history imports the policy (cold start).
    from tflock_reaper.domain.history import HistoryRecord  # noqa: PLC0415

    def text(item: dict[str, Any], name: str) -> str | None:
        value = item.get(name, {}).get("S")
        return value if isinstance(value, str) else None

    records = []
    for item in items:
        acquired, lock_id = _time(item, "acquired_at"), text(item, "lock_id")
        if acquired is None or lock_id is None:
            continue
        released = _time(item, "released_at")
        reap = ReleaseRecord(None, text(item, "reap_status"), _time(item, "reap_started_at"))
        records.append(
            HistoryRecord(
                scope=text(item, "lock_scope") or "",
                lock_path=text(item, "lock_path") or "",
                lock_id=lock_id,
                who=text(item, "who") or "",
                operation=text(item, "operation") or "",
                acquired_at=acquired,
                released_at=released,
                released_by=release_author(released, text(item, "released_by"), reap) if released else None,
                warned_at=_time(item, "warned_at"),
                blocked_at=_time(item, "blocked_at"),
                reap_status=reap.reap_status,
                reaped_by=text(item, "reaped_by"),
                gone_at=_time(item, "gone_at"),
                table=text(item, "lock_table"),
            )
        )
    return records


@dataclass(frozen=True)
class AcquisitionRef:
    """An acquisition as its state-table item names it in words (see :meth:`StateTable.acquisition_by_keys`)."""

    scope: str
    lock_path: str
    lock_id: str
    table: str | None
    released_at: datetime | None


@dataclass(frozen=True)
class _Observation:
    """One lock's writes at the end of a sweep (see :meth:`StateTable.settle`)."""

    lock: LockRecord
    seen: datetime | None = None
    warned: datetime | None = None
    blocked: datetime | None = None


class StateTable:
    def __init__(
        self,
        client: DynamoDBClient,
        name: str,
        *,
        workers: int = WORKERS,
        history_retention: timedelta = HISTORY_RETENTION,
    ) -> None:
        self._client = client
        self.name = name
        self._workers = workers
        self._retention = history_retention
        self._unrecorded: dict[LockKey, tuple[LockRecord, datetime]] = {}
        """Locks observed by the current sweep whose observation is still to be written (see :meth:`settle`)."""
        self._gone: list[tuple[str, str]] = []
        """Open-set entries of the swept scopes whose lock the sweep did not find: closed by :meth:`settle`."""
        self._held: dict[str, list[dict[str, Any]]] = {}
        """The open set of each scope, as the sweep read it before reading the locks (see :meth:`held`)."""

    def _in_parallel(self, work: Callable[[_T], _R], tasks: Sequence[_T]) -> list[_R]:
        """``work`` over ``tasks``, several requests at a time (in order); the first error is raised."""
        if len(tasks) <= 1:
            return [work(task) for task in tasks]
        with ThreadPoolExecutor(max_workers=min(self._workers, len(tasks))) as pool:
            return list(pool.map(work, tasks))

    # -- reads -----------------------------------------------------------------------------------------
    def _batch_get(self, keys: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Consistent reads of ``keys``, 100 to a BatchGetItem, the batches concurrently."""
        return batch_get(
            self._client,
            self.name,
            keys,
            workers=self._workers,
            attempts=_BATCH_GET_ATTEMPTS,
            label=f"state table {self.name!r}",
        )

    def _query_held(self, scope: str) -> list[dict[str, Any]]:
        """The open set of one lock table (or bucket): one partition of the held-locks index, eventually consistent
        (see :meth:`observe`)."""
        items: list[dict[str, Any]] = []
        for page in self._client.get_paginator("query").paginate(
            TableName=self.name,
            IndexName=HELD_INDEX,
            KeyConditionExpression=f"{HELD_KEY} = :scope",
            ExpressionAttributeValues={":scope": {"S": scope}},
        ):
            items.extend(dict(item) for item in page.get("Items", []))
        return items

    def held(self, scope: str) -> list[HeldLock]:
        """The open set of ``scope`` as of now (a snapshot kept until :meth:`settle`): read it BEFORE reading the
        locks, so that an entry a later read does not find was released before that read."""
        try:
            self._held[scope] = self._query_held(scope)
        except (ClientError, BotoCoreError) as err:
            raise AwsAccessError(f"cannot read the open set from state table {self.name!r}: {describe(err)}") from err
        return [
            HeldLock(scope, item["lock_path"]["S"], item["lock_id"]["S"])
            for item in self._held[scope]
            if "S" in item.get("lock_path", {}) and "S" in item.get("lock_id", {})
        ]

    def observe(self, locks: Sequence[LockRecord], now: datetime) -> dict[LockKey, LockState]:
        """Reads only: a lock not seen before is first seen ``now``, written by :meth:`settle` together with
        its warning (one write per new lock, not two).

        The observations of locks already recorded come from the open set (the held-locks index, one Query per
        scope, or the snapshot :meth:`held` took); the locks it does not list (new ones, or an index a moment
        behind) are read with consistent BatchGetItem calls. A lagging index can only miss an observation, never
        give a wrong one (each time is written once), and a missed one is read consistently: so the index is safe
        to read eventually consistent. The open-set entries of these scopes that match no lock read are closed by
        :meth:`settle` (the lock was released)."""
        try:
            # Keys are digests: an item is matched to its lock by the keys the lock would have.
            by_keys = {_key_strings(_lock_key(lock)): lock_key(lock) for lock in locks}
            wanted = set(by_keys.values())
            found: dict[LockKey, dict[str, Any]] = {}
            open_keys: list[tuple[str, str]] = []
            scopes = sorted({lock.scope for lock in locks} | set(self._held))
            unread = [scope for scope in scopes if scope not in self._held]
            for scope, items in zip(unread, self._in_parallel(self._query_held, unread), strict=True):
                self._held[scope] = items
            for item in (i for scope in scopes for i in self._held[scope]):
                keys = _key_strings(item)
                open_keys.append(keys)
                if keys in by_keys:
                    found[by_keys[keys]] = item
            indexed = set(found)
            missing = [_key(*key) for key in wanted - indexed]
            for item in self._batch_get(missing):
                found[by_keys[_key_strings(item)]] = item
            lock_scopes = sorted({lock.scope for lock in locks})
            holds = dict(zip(lock_scopes, self._in_parallel(self._read_holds, lock_scopes), strict=True))
        except (ClientError, BotoCoreError) as err:
            raise AwsAccessError(f"cannot use state table {self.name!r}: {describe(err)}") from err
        # A dual backend's lock (item and lockfile, one record under the table's scope) is in the open set twice: the
        # lockfile audit records its lockfile under the bucket's scope. Both are present.
        present = set(by_keys) | {
            _key_strings(_key(lockfile_scope(lock.bucket), lock.lock_path, lock.lock_id))
            for lock in locks
            if lock.lockfile is not None and lock.in_table
        }
        self._gone = sorted(keys for keys in open_keys if keys not in present)
        states: dict[LockKey, LockState] = {}
        for lock in locks:
            key = lock_key(lock)
            item = found.get(key, {})
            expires = int(item.get("expires_at", {}).get("N", "0"))
            if key not in indexed or _time(item, "first_seen") is None or expires < (now + REFRESH_WITHIN).timestamp():
                self._unrecorded.setdefault(key, (lock, now))
            states[key] = LockState(
                first_seen=_time(item, "first_seen") or now,
                acquired_at=_time(item, "acquired_at"),
                warned_at=_time(item, "warned_at"),
                holds=_holds_of(holds[lock.scope], lock.lock_path, lock.lock_id),
            )
        return states

    def acquisition_by_keys(self, pk: str, sk: str) -> AcquisitionRef | None:
        """Which acquisition the item ``pk``/``sk`` records (a Slack button carries these keys, not the lock's own
        text), read consistently; None when there is no such acquisition item."""
        try:
            response = self._client.get_item(
                TableName=self.name, Key={"pk": {"S": pk}, "sk": {"S": sk}}, ConsistentRead=True
            )
        except (ClientError, BotoCoreError) as err:
            raise AwsAccessError(f"cannot read state table {self.name!r}: {describe(err)}") from err
        item = dict(response.get("Item", {}))
        scope, path, lock_id = (item.get(name, {}).get("S") for name in ("lock_scope", "lock_path", "lock_id"))
        if not sk.startswith("ID#") or not (
            isinstance(scope, str) and isinstance(path, str) and isinstance(lock_id, str)
        ):
            return None
        return AcquisitionRef(
            scope=scope,
            lock_path=path,
            lock_id=lock_id,
            table=item.get("lock_table", {}).get("S"),
            released_at=_time(item, "released_at"),
        )

    # -- holds: what people said of an acquisition from the Slack app ----------------------------------
    def _read_holds(self, scope: str) -> dict[str, Any]:
        """The holds record of one lock table (or bucket): a map of hold entries (consistent: a snooze given a
        moment ago must keep the very next sweep's reap)."""
        response = self._client.get_item(TableName=self.name, Key=_holds_key(scope), ConsistentRead=True)
        return dict(response.get("Item", {}))

    def record_hold(self, scope: str, lock_path: str, lock_id: str, hold: Hold) -> tuple[Hold, ...]:
        """Record ``hold`` on one acquisition (replacing a hold of the same kind on it), and forget the holds older
        than :data:`~tflock_reaper.domain.holds.HOLD_KEEP`; the acquisition's holds as written are returned. One
        record per lock table: holds are few (people press buttons) and a sweep reads them with one GetItem per
        table. The write is conditional on the record as read (its version), retried a few times when another
        press wrote it meanwhile."""
        entry = _hold_entry(lock_path, lock_id, hold)
        for attempt in range(_HOLD_WRITE_ATTEMPTS):
            try:
                record = self._read_holds(scope)
                version = int(record.get("version", {}).get("N", "0"))
                entries = {
                    k: v
                    for k, v in record.get("holds", {}).get("M", {}).items()
                    if (_time(v.get("M", {}), "at") or hold.at) > hold.at - HOLD_KEEP
                }
                entries[_hold_entry_key(lock_path, lock_id, hold.kind)] = entry
                self._client.put_item(
                    TableName=self.name,
                    Item={
                        **_holds_key(scope),
                        "lock_scope": {"S": scope},
                        "holds": {"M": entries},
                        "version": {"N": str(version + 1)},
                    },
                    ConditionExpression="attribute_not_exists(pk) OR version = :v",
                    ExpressionAttributeValues={":v": {"N": str(version)}},
                )
            except ClientError as err:
                if err.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
                    time.sleep(random.uniform(0, _HOLD_BACKOFF_SECONDS * (attempt + 1)))  # noqa: S311 - jitter
                    continue
                raise AwsAccessError(f"cannot record the hold in state table {self.name!r}: {describe(err)}") from err
            except BotoCoreError as err:
                raise AwsAccessError(f"cannot record the hold in state table {self.name!r}: {describe(err)}") from err
            return _holds_of({"holds": {"M": entries}}, lock_path, lock_id)
        raise AwsAccessError(f"cannot record the hold in state table {self.name!r}: written by others meanwhile")

    def settle(self, warned: Iterable[LockRecord], now: datetime, blocked: Iterable[LockRecord] = ()) -> None:
        """Write the sweep's observations: first seen (``if_not_exists``: an overlapping sweep's earlier time
        stays) for the locks :meth:`observe` had no record of, ``warned_at`` for ``warned`` and ``blocked_at`` for
        ``blocked`` (each kept from the first time: the history says whether a lock was ever so). One UpdateItem
        per lock that needs a write, several at a time: BatchWriteItem cannot update (it would replace the
        stream function's attributes), and TransactWriteItems would double the write cost.

        Every write is attempted; if some fail, :class:`AwsAccessError` says how many (those locks are simply
        first seen again by the next sweep)."""
        writes: dict[LockKey, _Observation] = {
            key: _Observation(lock, seen) for key, (lock, seen) in self._unrecorded.items()
        }
        self._unrecorded = {}
        for lock in warned:
            write = writes.get(lock_key(lock), _Observation(lock))
            writes[lock_key(lock)] = replace(write, warned=now)
        for lock in blocked:
            write = writes.get(lock_key(lock), _Observation(lock))
            writes[lock_key(lock)] = replace(write, blocked=now)
        gone, self._gone, self._held = self._gone, [], {}
        errors = [err for err in self._in_parallel(self._settle_one, list(writes.values())) if err is not None]
        errors += [err for err in self._in_parallel(partial(self._close, now=now), gone) if err is not None]
        if errors:
            total = len(writes) + len(gone)
            raise AwsAccessError(f"{len(errors)} of {total} observation writes failed: {errors[0]}")

    def _close(self, keys: tuple[str, str], now: datetime) -> str | None:
        """Take a lock the sweep no longer finds out of the open set (its record stays, with when the sweep found
        it gone; the stream function records the release itself, with its server time)."""
        key = {"pk": {"S": keys[0]}, "sk": {"S": keys[1]}}
        try:
            self._client.update_item(
                TableName=self.name,
                Key=key,
                UpdateExpression=f"SET gone_at = if_not_exists(gone_at, :now), expires_at = :ttl "
                f"REMOVE {HELD_KEY}, {LEGACY_OPEN_KEY}",
                ExpressionAttributeValues={":now": {"S": now.isoformat()}, ":ttl": _epoch(now + self._retention)},
            )
        except (ClientError, BotoCoreError) as err:
            return describe(err)
        return None

    def _settle_one(self, write: _Observation) -> str | None:
        lock, seen = write.lock, write.seen
        parts: list[str] = []
        values: dict[str, Any] = {}
        if seen is not None:
            parts.append("first_seen = if_not_exists(first_seen, :seen)")
            parts.append(f"expires_at = :ttl, {HELD_KEY} = :scope")
            values |= {":seen": {"S": seen.isoformat()}, ":ttl": _epoch(seen + OBSERVATION_TTL)}
        if write.warned is not None:
            parts.append("warned_at = if_not_exists(warned_at, :warned)")
            values[":warned"] = {"S": write.warned.isoformat()}
        if write.blocked is not None:
            parts.append("blocked_at = if_not_exists(blocked_at, :blocked)")
            values[":blocked"] = {"S": write.blocked.isoformat()}
        remove = f" REMOVE {LEGACY_OPEN_KEY}" if seen is not None else ""
        try:
            self._update(lock, "SET " + ", ".join(parts), values, remove=remove)
        except (ClientError, BotoCoreError) as err:
            return describe(err)
        return None

    # -- reconciliation: each lock table's last full sweep ------------------------------------------------
    @staticmethod
    def _reconcile_key(scope: str) -> dict[str, Any]:
        return {"pk": {"S": f"SWEEP#{digest(scope)}"}, "sk": {"S": RECONCILE_SK}}

    def reconcile_record(self, scope: str) -> ReconcileRecord:
        try:
            response = self._client.get_item(TableName=self.name, Key=self._reconcile_key(scope), ConsistentRead=True)
        except (ClientError, BotoCoreError) as err:
            raise AwsAccessError(f"cannot read state table {self.name!r}: {describe(err)}") from err
        item = dict(response.get("Item", {}))
        return ReconcileRecord(
            last_full_at=_time(item, "last_full_at"),
            deployment=item.get("deployment", {}).get("S"),
            failed_records=int(item.get("failed_records", {}).get("N", "0")),
            requested=item.get("full_requested", {}).get("S"),
        )

    def record_full(self, scope: str, now: datetime, *, deployment: str, failed_records: int) -> None:
        """A full sweep of ``scope``, begun at ``now``, read every lock: record it, and clear a request for one made
        before it began (a request made since, e.g. by the stream function, is kept for the next sweep)."""
        expression = "SET last_full_at = :now, deployment = :deployment, failed_records = :failed, lock_scope = :scope"
        values = {
            ":now": {"S": now.isoformat()},
            ":deployment": {"S": deployment},
            ":failed": {"N": str(max(failed_records, 0))},
            ":scope": {"S": scope},
        }
        cleared, _ = self._conditional(
            self._reconcile_key(scope),
            expression + " REMOVE full_requested, full_requested_at",
            "attribute_not_exists(full_requested_at) OR full_requested_at <= :now",
            values,
        )
        if cleared:
            return
        self._write_reconcile(scope, expression, values)

    def request_full(self, scope: str, reason: str, now: datetime) -> None:
        self._write_reconcile(
            scope,
            "SET full_requested = :reason, full_requested_at = :now, lock_scope = :scope",
            {":reason": {"S": reason}, ":now": {"S": now.isoformat()}, ":scope": {"S": scope}},
        )

    def _write_reconcile(self, scope: str, expression: str, values: dict[str, Any]) -> None:
        try:
            self._client.update_item(
                TableName=self.name,
                Key=self._reconcile_key(scope),
                UpdateExpression=expression,
                ExpressionAttributeValues=values,
            )
        except (ClientError, BotoCoreError) as err:
            raise AwsAccessError(f"cannot write to state table {self.name!r}: {describe(err)}") from err

    def last_persisted(self, scope: str, state_path: str) -> datetime | None:
        try:
            response = self._client.get_item(
                TableName=self.name,
                Key={"pk": {"S": state_pk(scope, state_path)}, "sk": {"S": PERSISTED_SK}},
                ConsistentRead=True,
            )
        except (ClientError, BotoCoreError) as err:
            raise AwsAccessError(f"cannot read state table {self.name!r}: {describe(err)}") from err
        return _time(dict(response.get("Item", {})), "last_persisted_at")

    def _acquisition_items(self, scope: str, lock_path: str) -> list[dict[str, Any]]:
        """The ``ID#`` items of one state's partition (its acquisitions; not ``PERSISTED`` nor ledger items),
        read consistently."""
        items: list[dict[str, Any]] = []
        try:
            for page in self._client.get_paginator("query").paginate(
                TableName=self.name,
                KeyConditionExpression="pk = :pk AND begins_with(sk, :id)",
                ExpressionAttributeValues={":pk": {"S": state_pk(scope, lock_path)}, ":id": {"S": "ID#"}},
                ConsistentRead=True,
            ):
                items.extend(dict(item) for item in page.get("Items", []))
        except (ClientError, BotoCoreError) as err:
            raise AwsAccessError(f"cannot read state table {self.name!r}: {describe(err)}") from err
        return items

    def acquisitions(self, scope: str, lock_path: str) -> list[Acquisition]:
        """Every acquisition recorded for ``lock_path`` in ``scope``."""
        items = self._acquisition_items(scope, lock_path)
        return [
            Acquisition(
                lock_id=item.get("lock_id", {}).get("S", ""),
                acquired_at=_time(item, "acquired_at"),
                released_at=_time(item, "released_at"),
                released_seq=item.get("released_seq", {}).get("S"),
                who=item.get("who", {}).get("S"),
                operation=item.get("operation", {}).get("S"),
            )
            for item in items
            if isinstance(item.get("lock_id", {}).get("S"), str)
        ]

    # -- the history -----------------------------------------------------------------------------------
    def history(self, since: datetime, until: datetime) -> list[HistoryRecord]:
        """Every acquisition recorded between ``since`` and ``until`` (server time), oldest first: one Query of the
        history index per day (UTC) of the range, several at a time; never a Scan."""
        first, last = since.astimezone(UTC).date(), until.astimezone(UTC).date()
        days = [(first + timedelta(days=n)).isoformat() for n in range((last - first).days + 1)]
        bounds = {":lo": {"S": since.isoformat()}, ":hi": {"S": until.isoformat()}}

        def day_items(day: str) -> list[dict[str, Any]]:
            items: list[dict[str, Any]] = []
            for page in self._client.get_paginator("query").paginate(
                TableName=self.name,
                IndexName=HISTORY_INDEX,
                KeyConditionExpression=f"{HISTORY_KEY} = :day AND acquired_at BETWEEN :lo AND :hi",
                ExpressionAttributeValues={":day": {"S": day}, **bounds},
            ):
                items.extend(dict(item) for item in page.get("Items", []))
            return items

        try:
            pages = self._in_parallel(day_items, days)
        except (ClientError, BotoCoreError) as err:
            raise AwsAccessError(f"cannot read the history in state table {self.name!r}: {describe(err)}") from err
        records = [record for items in pages for record in _history_records(items)]
        return sorted(records, key=lambda r: r.acquired_at)

    def state_history(self, scope: str, lock_path: str) -> list[HistoryRecord]:
        """Every acquisition recorded for one state (its partition of the table, consistent), oldest first."""
        return sorted(_history_records(self._acquisition_items(scope, lock_path)), key=lambda r: r.acquired_at)

    def open_acquisitions(self, scope: str, lock_path: str) -> list[Acquisition]:
        """The acquisitions of ``lock_path`` in ``scope`` whose release is not recorded."""
        return [a for a in self.acquisitions(scope, lock_path) if a.open]

    # -- writes ----------------------------------------------------------------------------------------
    def _update(self, lock: LockRecord, expression: str, values: dict[str, Any], *, remove: str = "") -> dict[str, Any]:
        """Every write names the lock in words too (its keys are digests): scope, path, ID and table."""
        expression += ", lock_scope = :scope, lock_path = :path, lock_id = :id"
        values = {**values, **_readable(lock)}
        if lock.table is not None:
            expression += ", lock_table = :table"
            values[":table"] = {"S": lock.table}
        expression += remove
        response = self._client.update_item(
            TableName=self.name,
            Key=_lock_key(lock),
            UpdateExpression=expression,
            ExpressionAttributeValues=values,
            ReturnValues="ALL_NEW",
        )
        return dict(response.get("Attributes", {}))

    def mark_alerted(self, lock: LockRecord, channels: str) -> None:
        self._write(lock, "SET alert_channels = if_not_exists(alert_channels, :c)", {":c": {"S": channels}})

    def begin_reap(self, lock: LockRecord, now: datetime, reasons: Sequence[str], by: str = "sweep") -> None:
        self._write(
            lock,
            "SET reap_status = :pending, reap_started_at = :now, reaped_item = :item, reap_reasons = :reasons, "
            "reaped_by = :by, expires_at = :ttl",
            {
                ":pending": {"S": "pending"},
                ":now": {"S": now.isoformat()},
                ":item": {"M": lock.item},
                ":reasons": {"L": [{"S": r} for r in reasons]},
                ":by": {"S": by},
                ":ttl": _epoch(now + max(REAP_TTL, self._retention)),
            },
        )

    def end_reap(self, lock: LockRecord, outcome: str, now: datetime, item: DynamoItem | None) -> None:
        values: dict[str, Any] = {":outcome": {"S": outcome}, ":now": {"S": now.isoformat()}}
        expression = "SET reap_status = :outcome, reap_finished_at = :now"
        if item is not None and outcome != "reaped":
            expression += ", found_item = :found"
            values[":found"] = {"M": item}
        self._write(lock, expression, values)

    # -- the stream function's records ------------------------------------------------------------------
    def _conditional(
        self, key: dict[str, Any], expression: str, condition: str, values: dict[str, Any]
    ) -> tuple[bool, dict[str, Any]]:
        """An idempotent write: (written, the item after it), or (False, the item as it was) when the condition
        says it was recorded already (DynamoDB returns that item with the failure: no second read)."""
        try:
            response = self._client.update_item(
                TableName=self.name,
                Key=key,
                UpdateExpression=expression,
                ConditionExpression=condition,
                ExpressionAttributeValues=values,
                ReturnValues="ALL_NEW",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as err:
            if err.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
                return False, dict(err.response.get("Item", {}))  # type: ignore[call-overload]
            raise AwsAccessError(f"cannot write to state table {self.name!r}: {describe(err)}") from err
        except BotoCoreError as err:
            raise AwsAccessError(f"cannot write to state table {self.name!r}: {describe(err)}") from err
        return True, dict(response.get("Attributes", {}))

    def record_acquired(self, lock: LockRecord, server_time: datetime, sequence: str) -> bool:
        """The acquisition, in the open set and in the history (``history_day``: its day, UTC)."""
        info = lock.info
        table = ", lock_table = :table" if lock.table is not None else ""
        written, _ = self._conditional(
            _lock_key(lock),
            "SET acquired_at = :t, acquired_seq = :seq, lock_scope = :scope, lock_path = :path, lock_id = :id, "
            f"who = :who, operation = :op, expires_at = if_not_exists(expires_at, :ttl), {HELD_KEY} = :scope, "
            f"{HISTORY_KEY} = :day{table}",
            "attribute_not_exists(acquired_at)",
            {
                ":t": {"S": server_time.isoformat()},
                ":day": {"S": history_day(server_time)},
                ":seq": {"S": sequence},
                **_readable(lock),
                **({":table": {"S": lock.table}} if lock.table is not None else {}),
                ":who": {"S": info.who},
                ":op": {"S": info.operation},
                ":ttl": _epoch(server_time + OBSERVATION_TTL),
            },
        )
        return written

    def record_released(
        self,
        lock: LockRecord,
        server_time: datetime,
        sequence: str,
        *,
        position: str | None = None,
        principal: str | None = None,
    ) -> ReleaseRecord:
        """With ``position`` (a lockfile deletion's sequencer position), the release replaces one recorded from a
        later deletion: S3 events arrive in any order, and the earliest deletion after the create is the release.

        ``released_by`` is written from the stream record's ``principal`` (``ttl`` for DynamoDB's TTL process, else
        ``terraform``); a reader takes the reap record over it (``domain.records.release_author``): the stream may
        deliver the release before the sweeper records its reap. The record is then kept for the history's
        retention after the release."""
        values: dict[str, Any] = {
            ":t": {"S": server_time.isoformat()},
            ":seq": {"S": sequence},
            **_readable(lock),
            ":ttl": _epoch(server_time + self._retention),
            ":by": {"S": "ttl" if principal == TTL_PRINCIPAL else "terraform"},
        }
        by_position, condition = "", "attribute_not_exists(released_at)"
        if position is not None:
            by_position, condition = ", released_position = :pos", f"{condition} OR released_position > :pos"
            values[":pos"] = {"S": position}
        written, attributes = self._conditional(
            _lock_key(lock),
            "SET released_at = :t, released_seq = :seq, lock_scope = :scope, lock_path = :path, lock_id = :id, "
            f"released_by = :by, expires_at = :ttl{by_position} REMOVE {HELD_KEY}, {LEGACY_OPEN_KEY}",
            condition,
            values,
        )
        if written:
            self._keep_reap_record(lock, attributes)
        return ReleaseRecord(
            acquired_at=_time(attributes, "acquired_at"),
            reap_status=attributes.get("reap_status", {}).get("S"),
            reap_started_at=_time(attributes, "reap_started_at"),
            alert_channels=attributes.get("alert_channels", {}).get("S"),
            first=written,
            warned_at=_time(attributes, "warned_at"),
            reaped_by=attributes.get("reaped_by", {}).get("S"),
        )

    def _keep_reap_record(self, lock: LockRecord, attributes: dict[str, Any]) -> None:
        """A release keeps the record for the history's retention; a reap record (with the deleted item) is kept at
        least :data:`REAP_TTL` after its reap, whatever the retention: the release does not shorten it."""
        started = _time(attributes, "reap_started_at")
        if started is None:
            return
        keep = _epoch(started + max(REAP_TTL, self._retention))
        if int(attributes.get("expires_at", {}).get("N", "0")) >= int(keep["N"]):
            return
        try:
            self._client.update_item(
                TableName=self.name,
                Key=_lock_key(lock),
                UpdateExpression="SET expires_at = :keep",
                ExpressionAttributeValues={":keep": keep},
            )
        except (ClientError, BotoCoreError) as err:
            raise AwsAccessError(f"cannot write to state table {self.name!r}: {describe(err)}") from err

    def revoke_release(self, scope: str, lock_path: str, lock_id: str, position: str) -> bool:
        """Forget a release recorded from the lockfile deletion at ``position`` (and only that one)."""
        revoked, _ = self._conditional(
            _key(scope, lock_path, lock_id),
            "REMOVE released_at, released_seq, released_position",
            "released_position = :pos",
            {":pos": {"S": position}},
        )
        return revoked

    # -- S3 lockfile events, kept in S3's order (sequencer positions) ----------------------------------------
    def record_lockfile_event(self, scope: str, lock_path: str, entry: LockfileEntry) -> tuple[bool, LockfileEntry]:
        """Keep one S3 event of a lockfile (``sk = S3#<position>``, in the lock's partition) unless that position is
        kept already: (written, the entry kept, the first delivery's on a redelivery)."""
        values: dict[str, Any] = {
            ":kind": {"S": entry.kind},
            ":t": {"S": entry.server_time.isoformat()},
            ":event": {"S": entry.event_id},
            ":sequencer": {"S": entry.sequencer},
            ":scope": {"S": scope},
            ":path": {"S": lock_path},
            ":ttl": _epoch(entry.server_time + OBSERVATION_TTL),
        }
        expression = "SET kind = :kind, server_time = :t, event_id = :event, sequencer = :sequencer, "
        expression += "lock_scope = :scope, lock_path = :path, expires_at = :ttl"
        if entry.body is not None:
            expression += ", body = :body"
            values[":body"] = {"S": entry.body}
        written, item = self._conditional(
            {"pk": {"S": state_pk(scope, lock_path)}, "sk": {"S": _LOCKFILE_EVENT + entry.position}},
            expression,
            "attribute_not_exists(sk)",
            values,
        )
        return written, _lockfile_entry(item)

    def lockfile_neighbours(
        self, scope: str, lock_path: str, position: str
    ) -> tuple[LockfileEntry | None, LockfileEntry | None]:
        """The kept events of the lockfile right before and right after ``position`` (two consistent Queries of
        at most two items: the key's history is never read whole)."""
        pk, here = state_pk(scope, lock_path), _LOCKFILE_EVENT + position
        before = self._next_entry(pk, (_LOCKFILE_EVENT, here), here, forward=False)
        after = self._next_entry(pk, (here, _LOCKFILE_EVENT + "~"), here, forward=True)
        return before, after

    def _next_entry(self, pk: str, between: tuple[str, str], here: str, *, forward: bool) -> LockfileEntry | None:
        try:
            response = self._client.query(
                TableName=self.name,
                KeyConditionExpression="pk = :pk AND sk BETWEEN :low AND :high",
                ExpressionAttributeValues={":pk": {"S": pk}, ":low": {"S": between[0]}, ":high": {"S": between[1]}},
                ScanIndexForward=forward,
                Limit=2,
                ConsistentRead=True,
            )
        except (ClientError, BotoCoreError) as err:
            raise AwsAccessError(f"cannot read state table {self.name!r}: {describe(err)}") from err
        items = [dict(item) for item in response.get("Items", []) if item["sk"]["S"] != here]
        return _lockfile_entry(items[0]) if items else None

    def record_persisted(self, scope: str, state_path: str, server_time: datetime, sequence: str) -> bool:
        # Stream sequence numbers grow with time for an item; two digest writes may share a second, so the
        # order (and idempotency) comes from the sequence number, zero-padded to compare as a string.
        written, _ = self._conditional(
            {"pk": {"S": state_pk(scope, state_path)}, "sk": {"S": PERSISTED_SK}},
            "SET last_persisted_at = :t, persisted_seq = :seq, lock_scope = :scope, lock_path = :path, "
            "expires_at = :ttl",
            "attribute_not_exists(persisted_seq) OR persisted_seq < :seq",
            {
                ":t": {"S": server_time.isoformat()},
                ":seq": {"S": sequence.zfill(SEQUENCE_WIDTH)},
                ":scope": {"S": scope},
                ":path": {"S": state_path},
                ":ttl": _epoch(server_time + OBSERVATION_TTL),
            },
        )
        return written

    def _write(self, lock: LockRecord, expression: str, values: dict[str, Any]) -> None:
        try:
            self._update(lock, expression, values)
        except (ClientError, BotoCoreError) as err:
            raise AwsAccessError(f"cannot write to state table {self.name!r}: {describe(err)}") from err
