"""The Slack app's messages in the reaper's state table: one item per (lock acquisition, channel) (adapter).

``pk`` = the partition of the lock's other items (:func:`~tflock_reaper.adapters.state_table.state_pk`),
``sk = SLACK#<digest of (lock ID, channel name)>`` (the policy's name of the channel, as the ledger's), with the
Slack ``channel`` (its ID) and the message's ``ts`` once posted, the readable ``lock_scope``, ``lock_path`` and
``lock_id``, ``notifier`` (the channel's name in the policy), ``acquisition_sk`` (the ``sk`` of the acquisition's own
item, which the buttons carry), the ``state`` the message shows, ``final`` (after ``reaped`` or ``resolved``: never
touched again), ``created_at``/``updated_at`` and a TTL (``expires_at``) of 30 days, renewed by every update (a lock
held for weeks keeps its message). Keys are digests for the reason the ledger's are (a hostile lock ID or path).

One writer at a time. Whoever posts or updates a message first takes the item's lease (``lease_id`` and
``lease_until``, epoch seconds) with one conditional ``UpdateItem`` that also creates the item when there is none
(``attribute_not_exists(lease_until) OR lease_until < :now``), and only the lease holder talks to Slack about that
message. So two senders racing on the first notification of an acquisition (an overlapping sweep, the stream
function's ``resolved``) never post two messages: the second waits for the lease, then finds the ``ts`` and updates
the message in place; an update can never land after, and undo, the final one. A holder that dies leaves its lease
to expire (:data:`LEASE`); every write a holder makes is conditional on its own ``lease_id``.
"""

from __future__ import annotations

import re
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol

from botocore.exceptions import BotoCoreError, ClientError

from tflock_reaper.adapters.errors import AwsAccessError, describe, is_transient
from tflock_reaper.adapters.state_table import digest, state_pk

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

#: Message records expire this long after their last update (DynamoDB TTL on ``expires_at``).
MESSAGE_TTL = timedelta(days=30)
#: How long a lease keeps others off a message: longer than one send (three Slack calls, each bounded).
LEASE = timedelta(minutes=2)
SK_PREFIX = "SLACK#"
#: The ``sk`` prefix of an acquisition's own item (``adapters.state_table``): what the buttons name.
ACQUISITION_PREFIX = "ID#"

_CONDITIONAL_CHECK_FAILED = "ConditionalCheckFailedException"
# Every attribute by a placeholder: ``state``, ``ts`` and others are DynamoDB reserved words, or may become so.
_NAMES = {
    f"#{name}": name
    for name in (
        "channel",
        "ts",
        "state",
        "final",
        "lock_scope",
        "lock_path",
        "lock_id",
        "notifier",
        "acquisition_sk",
        "created_at",
        "updated_at",
        "expires_at",
        "lease_id",
        "lease_until",
    )
}


def _names(*expressions: str) -> dict[str, str]:
    """The placeholders the expressions use (DynamoDB refuses a request that defines one it does not use)."""
    return {
        placeholder: name
        for placeholder, name in _NAMES.items()
        if any(re.search(re.escape(placeholder) + r"(?![A-Za-z0-9_])", e) for e in expressions)
    }


def message_sk(lock_id: str, notifier: str) -> str:
    """The ``sk`` of the message of one acquisition (its lock ID) on one channel (its name in the policy)."""
    return f"{SK_PREFIX}{digest(lock_id, notifier)}"


def acquisition_sk(lock_id: str) -> str:
    """The ``sk`` of the acquisition's own item in the state table (see ``adapters.state_table``)."""
    return f"{ACQUISITION_PREFIX}{digest(lock_id)}"


@dataclass(frozen=True)
class SlackMessage:
    """One acquisition's message on one channel. ``ts`` is ``None`` until posted; ``lease`` is the lease this
    process holds on it (``""`` for a record only read)."""

    scope: str
    lock_path: str
    lock_id: str
    notifier: str
    channel: str
    ts: str | None = None
    state: str | None = None
    final: bool = False
    lease: str = ""

    @property
    def pk(self) -> str:
        return state_pk(self.scope, self.lock_path)

    @property
    def sk(self) -> str:
        return message_sk(self.lock_id, self.notifier)

    @property
    def acquisition_sk(self) -> str:
        return acquisition_sk(self.lock_id)


class SlackMessages(Protocol):
    """Where the Slack app keeps its messages (:class:`DynamoSlackMessages`; in memory for a CLI run without a state
    table). Every method raises :class:`~tflock_reaper.adapters.errors.AwsAccessError` when the store fails."""

    def take(self, scope: str, lock_path: str, lock_id: str, notifier: str, *, channel: str) -> SlackMessage | None:
        """The message of this acquisition on this channel, with its lease taken (the record is made if there was
        none, with no ``ts``); ``None`` while another sender holds the lease."""
        ...

    def advance(self, message: SlackMessage, *, state: str, final: bool, ts: str | None = None) -> bool:
        """Record what the message now shows (and its ``ts`` after a post) and give the lease back. ``False``: the
        lease was lost (it expired and another sender took it), nothing was written."""
        ...

    def release(self, message: SlackMessage) -> None:
        """Give the lease back without changing anything (a send that failed); a lease lost meanwhile is left."""
        ...


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _epoch(when: datetime) -> str:
    return str(int(when.timestamp()))


def _text(item: dict[str, Any], name: str) -> str | None:
    value = item.get(name, {}).get("S")
    return value if isinstance(value, str) else None


def _message(item: dict[str, Any], lease: str = "") -> SlackMessage:
    return SlackMessage(
        scope=_text(item, "lock_scope") or "",
        lock_path=_text(item, "lock_path") or "",
        lock_id=_text(item, "lock_id") or "",
        notifier=_text(item, "notifier") or "",
        channel=_text(item, "channel") or "",
        ts=_text(item, "ts"),
        state=_text(item, "state"),
        final=bool(item.get("final", {}).get("BOOL", False)),
        lease=lease,
    )


class DynamoSlackMessages:
    """:class:`SlackMessages` on the state table (``pk``/``sk`` strings): see the module."""

    def __init__(
        self,
        client: DynamoDBClient,
        table_name: str,
        *,
        clock: Callable[[], datetime] = _utcnow,
        lease: timedelta = LEASE,
        ttl: timedelta = MESSAGE_TTL,
    ) -> None:
        self._client = client
        self.name = table_name
        self._clock = clock
        self._lease = lease
        self._ttl = ttl

    @staticmethod
    def key(scope: str, lock_path: str, lock_id: str, notifier: str) -> dict[str, Any]:
        return {"pk": {"S": state_pk(scope, lock_path)}, "sk": {"S": message_sk(lock_id, notifier)}}

    def take(self, scope: str, lock_path: str, lock_id: str, notifier: str, *, channel: str) -> SlackMessage | None:
        now = self._clock()
        lease = uuid.uuid4().hex
        # One request makes the item if there is none and takes its lease: no window between the two.
        values: dict[str, Any] = {
            ":lease": {"S": lease},
            ":until": {"N": _epoch(now + self._lease)},
            ":now": {"N": _epoch(now)},
            ":channel": {"S": channel},
            ":scope": {"S": scope},
            ":path": {"S": lock_path},
            ":id": {"S": lock_id},
            ":notifier": {"S": notifier},
            ":acquisition": {"S": acquisition_sk(lock_id)},
            ":false": {"BOOL": False},
            ":created": {"S": now.isoformat()},
            ":expires": {"N": _epoch(now + self._ttl)},
        }
        update = (
            "SET #lease_id = :lease, #lease_until = :until, #channel = if_not_exists(#channel, :channel), "
            "#lock_scope = if_not_exists(#lock_scope, :scope), #lock_path = if_not_exists(#lock_path, :path), "
            "#lock_id = if_not_exists(#lock_id, :id), #notifier = if_not_exists(#notifier, :notifier), "
            "#acquisition_sk = if_not_exists(#acquisition_sk, :acquisition), #final = if_not_exists(#final, :false), "
            "#created_at = if_not_exists(#created_at, :created), #expires_at = if_not_exists(#expires_at, :expires)"
        )
        condition = "attribute_not_exists(#lease_until) OR #lease_until < :now"
        try:
            answer = self._client.update_item(
                TableName=self.name,
                Key=self.key(scope, lock_path, lock_id, notifier),
                UpdateExpression=update,
                ConditionExpression=condition,
                ExpressionAttributeNames=_names(update, condition),
                ExpressionAttributeValues=values,
                ReturnValues="ALL_NEW",
            )
        except ClientError as err:
            if _condition_failed(err):
                return None
            raise AwsAccessError(
                f"cannot take a Slack message in {self.name!r}: {describe(err)}", transient=is_transient(err)
            ) from err
        except BotoCoreError as err:
            raise AwsAccessError(f"cannot take a Slack message in {self.name!r}: {describe(err)}") from err
        return _message(answer.get("Attributes", {}), lease)

    def advance(self, message: SlackMessage, *, state: str, final: bool, ts: str | None = None) -> bool:
        now = self._clock()
        values: dict[str, Any] = {
            ":lease": {"S": message.lease},
            ":state": {"S": state},
            ":final": {"BOOL": final},
            ":now": {"S": now.isoformat()},
            ":expires": {"N": _epoch(now + self._ttl)},
        }
        update = "SET #state = :state, #final = :final, #updated_at = :now, #expires_at = :expires"
        if ts is not None:
            update += ", #ts = :ts"
            values[":ts"] = {"S": ts}
        update += " REMOVE #lease_id, #lease_until"
        return self._conditional("record a Slack message", message, update, values)

    def release(self, message: SlackMessage) -> None:
        if message.lease:
            self._conditional("release a Slack message", message, "REMOVE #lease_id, #lease_until", {})

    def find(self, pk: str, channel: str, ts: str) -> SlackMessage | None:
        """The message posted in ``channel`` at ``ts`` about a lock of partition ``pk`` (a button's value names the
        partition; Slack's interaction payload names the channel and the message), or ``None``."""
        try:
            pages = self._client.get_paginator("query").paginate(
                TableName=self.name,
                KeyConditionExpression="pk = :pk AND begins_with(sk, :prefix)",
                FilterExpression="#channel = :channel AND #ts = :ts",
                ExpressionAttributeNames={"#channel": "channel", "#ts": "ts"},
                ExpressionAttributeValues={
                    ":pk": {"S": pk},
                    ":prefix": {"S": SK_PREFIX},
                    ":channel": {"S": channel},
                    ":ts": {"S": ts},
                },
                ConsistentRead=True,
            )
            for page in pages:
                for item in page.get("Items", []):
                    return _message(item)
        except (ClientError, BotoCoreError) as err:
            raise AwsAccessError(f"cannot read the Slack messages in {self.name!r}: {describe(err)}") from err
        return None

    def get(self, scope: str, lock_path: str, lock_id: str, notifier: str) -> SlackMessage | None:
        """The message of this acquisition on this channel, as recorded (no lease taken), or ``None``."""
        try:
            item = self._client.get_item(
                TableName=self.name, Key=self.key(scope, lock_path, lock_id, notifier), ConsistentRead=True
            ).get("Item")
        except (ClientError, BotoCoreError) as err:
            raise AwsAccessError(f"cannot read a Slack message in {self.name!r}: {describe(err)}") from err
        return None if item is None else _message(item)

    def _conditional(self, what: str, message: SlackMessage, update: str, values: dict[str, Any]) -> bool:
        """One update of ``message`` conditional on the lease this process holds; ``False`` when it is not ours."""
        try:
            self._client.update_item(
                TableName=self.name,
                Key=self.key(message.scope, message.lock_path, message.lock_id, message.notifier),
                UpdateExpression=update,
                ConditionExpression="#lease_id = :lease",
                ExpressionAttributeNames=_names(update, "#lease_id"),
                ExpressionAttributeValues={**values, ":lease": {"S": message.lease}},
            )
        except ClientError as err:
            if _condition_failed(err):
                return False
            raise AwsAccessError(
                f"cannot {what} in {self.name!r}: {describe(err)}", transient=is_transient(err)
            ) from err
        except BotoCoreError as err:
            raise AwsAccessError(f"cannot {what} in {self.name!r}: {describe(err)}") from err
        return True


def _condition_failed(err: ClientError) -> bool:
    return err.response.get("Error", {}).get("Code") == _CONDITIONAL_CHECK_FAILED


class MemorySlackMessages:
    """:class:`SlackMessages` for one process: a CLI run without a state table updates the messages it posted
    itself (the next run posts new ones). Never the Lambda functions': two processes would not share it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._messages: dict[tuple[str, str, str, str], SlackMessage] = {}

    def take(self, scope: str, lock_path: str, lock_id: str, notifier: str, *, channel: str) -> SlackMessage | None:
        key = (scope, lock_path, lock_id, notifier)
        with self._lock:
            message = self._messages.get(key) or SlackMessage(scope, lock_path, lock_id, notifier, channel)
            if message.lease:
                return None
            self._messages[key] = replace(message, lease=uuid.uuid4().hex)
            return self._messages[key]

    def advance(self, message: SlackMessage, *, state: str, final: bool, ts: str | None = None) -> bool:
        key = (message.scope, message.lock_path, message.lock_id, message.notifier)
        with self._lock:
            held = self._messages.get(key)
            if held is None or held.lease != message.lease:
                return False
            self._messages[key] = replace(held, state=state, final=final, ts=ts or held.ts, lease="")
            return True

    def release(self, message: SlackMessage) -> None:
        key = (message.scope, message.lock_path, message.lock_id, message.notifier)
        with self._lock:
            held = self._messages.get(key)
            if held is not None and held.lease and held.lease == message.lease:
                self._messages[key] = replace(held, lease="")
