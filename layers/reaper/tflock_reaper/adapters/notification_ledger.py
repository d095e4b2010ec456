"""The notification ledger in the reaper's state table: one item per (lock acquisition, event, channel).

``pk`` = the partition of the lock's observation items (a digest of its scope and path, see
:func:`tflock_reaper.adapters.state_table.state_pk`), ``sk = NOTIFY#<digest of (lock ID, event, channel)>``, with
``notify_status`` (``sending`` | ``sent``), ``claim_id``, ``claimed_at``/``claimed_epoch``, ``sent_at``, the readable
``lock_scope``, ``lock_path``, ``lock_id``, ``event`` and ``channel``, and a TTL (``expires_at``) of 30 days. Keys are
digests because the lock ID and path are whatever a Terraform user wrote (a 1,100-byte ID would push a readable
sort key past DynamoDB's 1,024 bytes, and every claim of it would fail). Observation items use ``sk = ID#...``: a
query of a lock's partition must filter on the ``sk`` prefix.

A claim is a conditional ``PutItem``: it succeeds when no item exists (``attribute_not_exists(pk)``), or when
an earlier claim is still ``sending`` and older than the lease (its process died mid-send: a Lambda timeout,
say; without the lease that event would never be sent). ``complete`` and ``release`` are conditional on this
process's ``claim_id``, so a process whose lease was taken over never completes or deletes the new claim.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections import OrderedDict
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from tflock_reaper.adapters.errors import AwsAccessError, describe, is_transient
from tflock_reaper.adapters.state_table import digest, state_pk
from tflock_reaper.domain.notification import DedupKey

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

logger = logging.getLogger(__name__)

#: Ledger records expire this long after the claim (DynamoDB TTL on ``expires_at``).
NOTIFY_TTL = timedelta(days=30)
#: A ``sending`` claim older than this is taken over: longer than any Lambda invocation (15 min).
CLAIM_LEASE = timedelta(minutes=20)

_CONDITIONAL_CHECK_FAILED = "ConditionalCheckFailedException"

#: Notifications this process knows are ``sent`` (final: a sent record is never released or taken over), so that a
#: warm sweeper does not claim them again every sweep only to be refused: at ``rate(1 minute)`` a stale lock's
#: ``stale`` and ``still_stale`` would otherwise cost a refused conditional write (a write unit) per channel per
#: minute. Bounded; the oldest are forgotten first (they are then refused by DynamoDB, as before).
SENT_CACHE_SIZE = 50_000
_SENT: OrderedDict[tuple[str, str, str], None] = OrderedDict()
_SENT_LOCK = threading.Lock()


def _known_sent(entry: tuple[str, str, str]) -> bool:
    with _SENT_LOCK:
        if entry in _SENT:
            _SENT.move_to_end(entry)
            return True
        return False


def _remember_sent(entry: tuple[str, str, str]) -> None:
    with _SENT_LOCK:
        _SENT[entry] = None
        _SENT.move_to_end(entry)
        while len(_SENT) > SENT_CACHE_SIZE:
            _SENT.popitem(last=False)


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _is_condition_failure(err: ClientError) -> bool:
    return err.response.get("Error", {}).get("Code") == _CONDITIONAL_CHECK_FAILED


class DynamoLedger:
    """:class:`tflock_reaper.services.dispatch.NotificationLedger` on the state table (``pk``/``sk`` strings)."""

    def __init__(
        self,
        client: DynamoDBClient,
        table_name: str,
        *,
        clock: Callable[[], datetime] = _utcnow,
        lease: timedelta = CLAIM_LEASE,
        ttl: timedelta = NOTIFY_TTL,
    ) -> None:
        self._client = client
        self.name = table_name
        self._clock = clock
        self._lease = lease
        self._ttl = ttl
        self._claims: dict[tuple[str, str], str] = {}

    @staticmethod
    def key(channel: str, key: DedupKey) -> dict[str, Any]:
        return {
            "pk": {"S": state_pk(key.scope, key.lock_path)},
            "sk": {"S": f"NOTIFY#{digest(key.lock_id, key.event, channel)}"},
        }

    def claim(self, channel: str, key: DedupKey) -> bool:
        now = self._clock()
        claim_id = uuid.uuid4().hex
        item = {
            **self.key(channel, key),
            "notify_status": {"S": "sending"},
            "claim_id": {"S": claim_id},
            "claimed_at": {"S": now.isoformat()},
            "claimed_epoch": {"N": str(int(now.timestamp()))},
            "expires_at": {"N": str(int((now + self._ttl).timestamp()))},
            "lock_scope": {"S": key.scope},
            "lock_path": {"S": key.lock_path},
            "lock_id": {"S": key.lock_id},
            "event": {"S": key.event},
            "channel": {"S": channel},
        }
        entry = (self.name, channel, str(key))
        if _known_sent(entry):
            return False
        refused: dict[str, Any] = {}
        claimed = self._write(
            "claim a notification",
            lambda: self._client.put_item(
                TableName=self.name,
                Item=item,
                ConditionExpression="attribute_not_exists(pk) OR (notify_status = :sending AND claimed_epoch < :stale)",
                ExpressionAttributeValues={
                    ":sending": {"S": "sending"},
                    ":stale": {"N": str(int((now - self._lease).timestamp()))},
                },
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            ),
            refused=refused,
        )
        if not claimed:
            if refused.get("notify_status", {}).get("S") == "sent":
                _remember_sent(entry)
            return False
        self._claims[(channel, str(key))] = claim_id
        return True

    def complete(self, channel: str, key: DedupKey) -> None:
        claim_id = self._claims.pop((channel, str(key)), None)
        if claim_id is None:
            return
        completed = self._write(
            "record a sent notification",
            lambda: self._client.update_item(
                TableName=self.name,
                Key=self.key(channel, key),
                UpdateExpression="SET notify_status = :sent, sent_at = :now",
                ConditionExpression="claim_id = :claim",
                ExpressionAttributeValues={
                    ":sent": {"S": "sent"},
                    ":now": {"S": self._clock().isoformat()},
                    ":claim": {"S": claim_id},
                },
            ),
        )
        if not completed:  # the lease passed and another process took the claim over
            logger.warning("notification claim taken over", extra={"channel": channel, "dedup_key": str(key)})
            return
        _remember_sent((self.name, channel, str(key)))

    def release(self, channel: str, key: DedupKey) -> None:
        claim_id = self._claims.pop((channel, str(key)), None)
        if claim_id is None:
            return
        # A claim that is not ours any more (its condition fails) is left alone.
        self._write(
            "release a notification claim",
            lambda: self._client.delete_item(
                TableName=self.name,
                Key=self.key(channel, key),
                ConditionExpression="claim_id = :claim AND notify_status = :sending",
                ExpressionAttributeValues={":claim": {"S": claim_id}, ":sending": {"S": "sending"}},
            ),
        )

    def _write(self, what: str, write: Callable[[], object], *, refused: dict[str, Any] | None = None) -> bool:
        """One conditional write; ``False`` when its condition failed (``refused`` then gets the item that failed it,
        when DynamoDB returns it). Any other failure raises :class:`AwsAccessError` ("cannot <what> in <table>"):
        transient or not as DynamoDB says (a key it refuses, a ValidationException, fails this notification alone,
        not the channel)."""
        try:
            write()
        except ClientError as err:
            if _is_condition_failure(err):
                if refused is not None:
                    refused.update(err.response.get("Item", {}))  # type: ignore[call-overload]
                return False
            raise AwsAccessError(
                f"cannot {what} in {self.name!r}: {describe(err)}", transient=is_transient(err)
            ) from err
        except BotoCoreError as err:
            raise AwsAccessError(f"cannot {what} in {self.name!r}: {describe(err)}") from err
        return True
