"""In-memory stand-ins with the same semantics as the real adapters (fakes over mocks)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from tflock_reaper.adapters.errors import AwsAccessError
from tflock_reaper.adapters.lock_table import DeleteResult
from tflock_reaper.adapters.lockfiles import LockfileDeleteResult
from tflock_reaper.domain.lock import LockfileObject


class FakeLockTable:
    """A lock table: scan returns copies; the delete is conditional on the exact Info, like DynamoDB's."""

    def __init__(self, items: list[dict[str, Any]], name: str = "tf-locks", account: str = "123456789012") -> None:
        self.name = name
        self.arn = f"arn:aws:dynamodb:us-east-1:{account}:table/{name}"
        self.items = {item["LockID"]["S"]: item for item in items}
        self.deletes: list[str] = []
        self.scans = 0
        self.reads: list[list[str]] = []
        self.stream_arn: str | None = f"{self.arn}/stream/2026-01-01T00:00:00.000"
        self.before_delete: Callable[[str], None] | None = None
        self.fail_deletes = False

    def scan(self) -> Iterator[dict[str, Any]]:
        self.scans += 1
        yield from [dict(item) for item in self.items.values()]

    def read(self, lock_paths: list[str]) -> list[dict[str, Any]]:
        self.reads.append(sorted(set(lock_paths)))
        return [dict(self.items[path]) for path in sorted(set(lock_paths)) if path in self.items]

    def latest_stream_arn(self) -> str | None:
        return self.stream_arn

    def size_bytes(self) -> int:
        return sum(len(json.dumps(item)) for item in self.items.values())

    def delete_if_unchanged(self, lock_path: str, raw_info: str) -> DeleteResult:
        if self.before_delete:
            self.before_delete(lock_path)
        if self.fail_deletes:
            raise AwsAccessError("cannot delete: InternalServerError")
        current = self.items.get(lock_path)
        if current is None or current.get("Info", {}).get("S") != raw_info:
            return DeleteResult(deleted=False, item=current)
        self.deletes.append(lock_path)
        return DeleteResult(deleted=True, item=self.items.pop(lock_path))


class FakeLockfiles:
    """The ``.tflock`` objects of some buckets, with S3's conditional delete (``DeleteObject If-Match``, as in
    dal/lockfiles.py): only the very object read (same ETag) is deleted, and it is then gone."""

    def __init__(self, objects: list[LockfileObject], name: str = "s3://tf-state") -> None:
        self.name = name
        self.objects = list(objects)
        self.deletes: list[str] = []
        self.replaced: dict[str, str] = {}
        """location -> the ETag the object has now (re-written after the scan)."""

    @property
    def scopes(self) -> list[str]:
        return sorted({f"s3://{obj.bucket}" for obj in self.objects} or {self.name})

    def scan(self) -> Iterator[LockfileObject]:
        yield from list(self.objects)

    def read(self, lock_paths: list[str]) -> list[LockfileObject]:
        wanted = set(lock_paths)
        return [obj for obj in self.objects if obj.lock_path in wanted]

    def delete_if_unchanged(self, obj: LockfileObject) -> LockfileDeleteResult:
        current = next((o for o in self.objects if o.location == obj.location), None)
        if current is None:
            return LockfileDeleteResult(deleted=False, reason="NoSuchKey: The specified key does not exist.")
        if self.replaced.get(obj.location, current.etag) != obj.etag:
            return LockfileDeleteResult(
                deleted=False,
                reason="PreconditionFailed: At least one of the pre-conditions you specified did not hold",
            )
        self.objects = [o for o in self.objects if o is not current]
        self.deletes.append(obj.location)
        return LockfileDeleteResult(deleted=True)


class MemoryAuditStore:
    """The stream function's store with the state table's conditional semantics, in memory (one lock table: keyed
    by lock path and ID; the scopes written are kept in ``scopes``)."""

    def __init__(self) -> None:
        self.acquired: dict[tuple[str, str], Any] = {}
        self.released: dict[tuple[str, str], Any] = {}
        self.persisted: dict[str, tuple[Any, str]] = {}
        self.reap_status: dict[tuple[str, str], tuple[str, Any]] = {}
        self.scopes: set[str] = set()
        self.full_requests: list[tuple[str, str]] = []
        self.principals: dict[tuple[str, str], str | None] = {}

    def record_acquired(self, lock: Any, server_time: Any, sequence: str) -> bool:
        key = (lock.lock_path, lock.lock_id)
        self.scopes.add(lock.scope)
        if key in self.acquired:
            return False
        self.acquired[key] = server_time
        return True

    def record_released(
        self, lock: Any, server_time: Any, sequence: str, *, position: str | None = None, principal: str | None = None
    ) -> Any:
        self.scopes.add(lock.scope)
        self.principals[(lock.lock_path, lock.lock_id)] = principal
        from tflock_reaper.domain.records import ReleaseRecord  # noqa: PLC0415

        key = (lock.lock_path, lock.lock_id)
        first = key not in self.released
        self.released.setdefault(key, server_time)
        status, started = self.reap_status.get(key, (None, None))
        return ReleaseRecord(
            acquired_at=self.acquired.get(key), reap_status=status, reap_started_at=started, first=first
        )

    def request_full(self, scope: str, reason: str, now: Any) -> None:
        self.full_requests.append((scope, reason))

    def record_persisted(self, scope: str, state_path: str, server_time: Any, sequence: str) -> bool:
        self.scopes.add(scope)
        last = self.persisted.get(state_path)
        if last is not None and (last[0] > server_time or last[1] == sequence):
            return False
        self.persisted[state_path] = (server_time, sequence)
        return True


@dataclass
class FakeLambdaContext:
    """The part of Lambda's context object the handlers use (Powertools reads the names and the request id)."""

    function_name: str = "tflock-reaper-sweeper"
    remaining_ms: int = 300_000
    function_version: str = "$LATEST"
    memory_limit_in_mb: int = 256
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))

    @property
    def invoked_function_arn(self) -> str:
        return f"arn:aws:lambda:us-east-1:123456789012:function:{self.function_name}"

    def get_remaining_time_in_millis(self) -> int:
        return self.remaining_ms
