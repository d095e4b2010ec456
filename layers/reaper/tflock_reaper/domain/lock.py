"""Lock-table items as Terraform and OpenTofu write them, and the one place that tells them apart.

An S3-backend lock table holds two kinds of item (see shared/TERRAFORM_LOCKING.md):

* a lock: ``LockID = <bucket>/<state path>`` and ``Info`` = the LockInfo JSON, nothing else;
* a digest: ``LockID = <bucket>/<state path>-md5`` with ``Digest`` (or, after Terragrunt's
  ``backend migrate``, with no other attribute). Digests are permanent and never touched.

Everything else (bad JSON, wrong attribute types, missing fields, a ``Created`` that cannot be parsed
or lies in the future, attributes Terraform never writes) is *skipped*: reported with its reason and
never acted upon. The raw ``Info`` string is kept exactly as observed, because the reaper's delete is
conditional on it: re-serialising would make the condition compare against something never written.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

#: A lock whose ``Created`` lies further in the future than this is judged skewed and skipped.
FUTURE_TOLERANCE = timedelta(minutes=5)

DIGEST_SUFFIX = "-md5"
#: S3-native locking (``use_lockfile``): the lock of ``<state key>`` is the object ``<state key>.tflock``.
LOCKFILE_SUFFIX = ".tflock"

Backend = Literal["dynamodb", "s3", "dual"]

# RFC 3339 as Go's time.RFC3339Nano writes it: 0-9 fractional digits, ``Z`` (or an explicit offset).
_RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})$")
_WORKSPACE_PREFIX = "env:/"

DynamoItem = dict[str, dict[str, Any]]
"""A DynamoDB item in the low-level client's shape: ``{"LockID": {"S": "..."}}``."""


class LockInfo(BaseModel):
    """The JSON Terraform stores in ``Info`` (and in ``.tflock`` bodies). Field names as Terraform spells them."""

    # Built on the first lock parsed, not at import (cold start).
    model_config = ConfigDict(frozen=True, strict=True, extra="ignore", populate_by_name=True, defer_build=True)

    id: str = Field(alias="ID", min_length=1)
    operation: str = Field(alias="Operation")
    info: str = Field(alias="Info")
    who: str = Field(alias="Who")
    version: str = Field(alias="Version")
    created: datetime = Field(alias="Created")
    path: str = Field(alias="Path")

    @field_validator("created", mode="before")
    @classmethod
    def _parse_created(cls, value: object) -> datetime:
        if not isinstance(value, str):
            raise ValueError(f"must be an RFC 3339 string, got {type(value).__name__}")  # noqa: TRY004
        if not _RFC3339.match(value):
            raise ValueError(f"{value!r} is not an RFC 3339 timestamp")
        return datetime.fromisoformat(value)


def workspace_of(lock_path: str) -> str:
    """The Terraform workspace of a lock path (``<bucket>/env:/<workspace>/...``; else ``default``)."""
    key = lock_path.split("/", 1)[-1]
    if key.startswith(_WORKSPACE_PREFIX):
        return key[len(_WORKSPACE_PREFIX) :].split("/", 1)[0]
    return "default"


def table_scope(table_arn: str | None, table: str | None) -> str:
    """The scope of a lock table's records: its ARN (account, region, name), or its name when the ARN is unknown."""
    return table_arn or f"table/{table or '?'}"


def lockfile_scope(bucket: str) -> str:
    """The scope of a lockfile-only lock's records: its bucket (bucket names are global)."""
    return f"s3://{bucket}"


def is_lockfile_key(key: str) -> bool:
    """``<state key>.tflock``, with a state key in front."""
    return key.endswith(LOCKFILE_SUFFIX) and bool(key.removesuffix(LOCKFILE_SUFFIX))


def lockfile_lock_path(bucket: str, key: str) -> str:
    """``<bucket>/<state key>``: the same lock path (LockID) a DynamoDB lock on this state has."""
    return f"{bucket}/{key.removesuffix(LOCKFILE_SUFFIX)}"


class InBucket:
    """Mixin: an S3 object (or an event about one) named by ``bucket`` and ``key``."""

    bucket: str
    key: str

    @property
    def location(self) -> str:
        return f"{self.bucket}/{self.key}"

    @property
    def lock_path(self) -> str:
        return lockfile_lock_path(self.bucket, self.key)


@dataclass(frozen=True)
class LockfileObject(InBucket):
    """A ``<state key>.tflock`` object exactly as S3 returned it: the reap's delete is conditional on ``etag``."""

    bucket: str
    key: str
    body: bytes
    etag: str
    last_modified: datetime
    """Server time of the write, i.e. of the acquisition (Terraform writes the file once, with If-None-Match)."""


@dataclass(frozen=True)
class LockRecord:
    """A well-formed lock, with the raw ``Info`` exactly as read (the reap's delete condition).

    ``lockfile`` is set when the lock is (also) held as an S3 lockfile; ``in_table`` when it is (also) a
    DynamoDB item. A dual backend holds both, with the same lock ID: one record, judged once, reaped on both
    sides. For a lockfile-only lock, ``raw_info`` is the body and ``item`` a DynamoDB-shaped record of it.
    """

    lock_path: str
    raw_info: str
    info: LockInfo
    item: DynamoItem
    lockfile: LockfileObject | None = None
    in_table: bool = True
    table: str | None = None
    """The lock table the item was read from (None for a lockfile-only lock)."""
    table_arn: str | None = None
    """That table's ARN (account, region and name): two tables may hold the same LockID and Info."""

    @property
    def scope(self) -> str:
        """Where this lock lives, for every record of it: the lock table's ARN (its name when the ARN is unknown),
        or, for a lockfile-only lock, ``s3://<bucket>`` (bucket names are global, and the bucket is in the path)."""
        return table_scope(self.table_arn, self.table) if self.in_table else lockfile_scope(self.bucket)

    @property
    def backend(self) -> Backend:
        if self.lockfile is None:
            return "dynamodb"
        return "dual" if self.in_table else "s3"

    @property
    def lock_id(self) -> str:
        return self.info.id

    @property
    def bucket(self) -> str:
        return self.lock_path.split("/", 1)[0]

    @property
    def state_key(self) -> str:
        return self.lock_path.split("/", 1)[1]

    @property
    def workspace(self) -> str:
        """The Terraform workspace, read from the default ``env:/<workspace>/`` key prefix."""
        return workspace_of(self.lock_path)

    @property
    def digest_path(self) -> str:
        return self.lock_path + DIGEST_SUFFIX

    @property
    def digest_like_key(self) -> bool:
        """A lock item whose key ends in ``-md5``, as Terraform's digest items' do (a state key may): the reaper never
        deletes such a key, nor may the stack's role, so no side of this lock is ever deleted."""
        return self.in_table and self.lock_path.endswith(DIGEST_SUFFIX)


@dataclass(frozen=True)
class DigestRecord:
    """Terraform's permanent ``-md5`` item. Recognised so that it is never mistaken for anything else."""

    lock_path: str
    digest: str | None
    item: DynamoItem


@dataclass(frozen=True)
class SkippedItem:
    """An item that is neither a well-formed lock nor a digest. Reported; never deleted.

    ``unreadable``: a lock by its key and shape (an ``Info`` attribute at a ``<bucket>/<state path>`` LockID, or a
    ``<state key>.tflock`` object) that cannot be judged (bad JSON, not a LockInfo, a ``Created`` in the future, a
    Path that is not its key, ...). It blocks every plan on its state as a lock does, so it is alerted about, never
    reaped. Other skipped items (no ``Info``: not Terraform's) are only reported.
    """

    lock_id: str
    reason: str
    item: DynamoItem
    unreadable: bool = False
    table: str | None = None
    table_arn: str | None = None

    @property
    def lock_path(self) -> str:
        """The state's lock path (a lockfile's location without ``.tflock``)."""
        return self.lock_id.removesuffix(LOCKFILE_SUFFIX) if "Lockfile" in self.item else self.lock_id

    @property
    def scope(self) -> str:
        """Where the item lives (see :attr:`LockRecord.scope`)."""
        if "Lockfile" in self.item:
            return lockfile_scope(self.lock_id.split("/", 1)[0])
        return table_scope(self.table_arn, self.table)


Classified = LockRecord | DigestRecord | SkippedItem


def classify_item(
    item: DynamoItem, now: datetime | None, *, table: str | None = None, table_arn: str | None = None
) -> Classified:
    """Tell a lock-table item apart by its attributes (not only its key suffix) and parse it.

    ``now`` is the reaper's clock, for the check that ``Created`` is not in the future; ``None`` skips it
    (the stream audit records what happened, skewed clocks included). ``table``/``table_arn``: where it was read.
    """
    classified = _classify(item, now)
    if isinstance(classified, DigestRecord):
        return classified
    return replace(classified, table=table, table_arn=table_arn)


def _classify(item: DynamoItem, now: datetime | None) -> Classified:
    lock_attr = item.get("LockID")
    if not isinstance(lock_attr, dict) or not isinstance(lock_attr.get("S"), str):
        return SkippedItem("<missing>", "LockID is missing or not a string", item)
    lock_path: str = lock_attr["S"]
    attributes = set(item) - {"LockID"}

    if "Info" in attributes:
        return _classify_lock(lock_path, item, attributes, now)
    if lock_path.endswith(DIGEST_SUFFIX) and attributes <= {"Digest"}:
        digest = item.get("Digest", {}).get("S")
        if "Digest" in attributes and not isinstance(digest, str):
            return SkippedItem(lock_path, "digest item whose Digest is not a string", item)
        return DigestRecord(lock_path, digest, item)
    if not attributes:
        return SkippedItem(lock_path, "item has no Info attribute: not a Terraform lock", item)
    return SkippedItem(
        lock_path,
        f"item has no Info attribute and unexpected attributes: {', '.join(sorted(attributes))}",
        item,
    )


def _classify_lock(
    lock_path: str, item: DynamoItem, attributes: set[str], now: datetime | None
) -> LockRecord | SkippedItem:
    if "/" not in lock_path.strip("/"):
        return SkippedItem(lock_path, "LockID is not of the form <bucket>/<state path>", item)
    # From here on, the item is a lock by its key and shape: one that cannot be judged is unreadable.
    extra = attributes - {"Info"}
    if extra:
        return SkippedItem(
            lock_path,
            f"unexpected attributes beside Info: {', '.join(sorted(extra))} (Terraform writes none)",
            item,
            unreadable=True,
        )
    info_attr = item["Info"]
    raw_info = info_attr.get("S")
    if not isinstance(raw_info, str):
        kind = next(iter(info_attr), "?")
        return SkippedItem(lock_path, f"Info is not a string (DynamoDB type {kind})", item, unreadable=True)
    parsed = _parse_info(raw_info, lock_path, now, source="Info", key_name="LockID")
    if isinstance(parsed, str):
        return SkippedItem(lock_path, parsed, item, unreadable=True)
    return LockRecord(lock_path=lock_path, raw_info=raw_info, info=parsed, item=item)


def _parse_info(raw_info: str, lock_path: str, now: datetime | None, *, source: str, key_name: str) -> LockInfo | str:
    """The LockInfo in ``raw_info``, or why it is not a lock on ``lock_path`` (shared by items and lockfiles)."""
    try:
        data = json.loads(raw_info)
    except json.JSONDecodeError as err:
        return f"{source} is not valid JSON: {err.msg} at position {err.pos}"
    if not isinstance(data, dict):
        return f"{source} JSON is a {type(data).__name__}, not an object"
    try:
        info = LockInfo.model_validate(data)
    except ValidationError as err:
        return f"{source} is not a Terraform LockInfo: {describe_validation_error(err, root='Info')}"
    if info.created.tzinfo is None:  # pragma: no cover - the RFC 3339 pattern requires an offset
        return "Created has no time zone"
    if info.path != lock_path:
        return f"Info.Path {info.path!r} differs from {key_name}"
    if now is not None and info.created - now > FUTURE_TOLERANCE:
        ahead = int((info.created - now).total_seconds())
        return f"Created {info.created.isoformat()} is {ahead}s in the future: holder clock skewed"
    return info


def lockfile_item(obj: LockfileObject, *, with_body: bool = True) -> DynamoItem:
    """A lockfile as a record in the lock table's shape (for reports, logs and the reap record): its lock path,
    where it lives, its ETag and (when it is UTF-8) its body as ``Info``."""
    record: DynamoItem = {
        "LockID": {"S": obj.lock_path},
        "Lockfile": {"S": f"s3://{obj.location}"},
        "ETag": {"S": obj.etag},
    }
    if with_body:
        record["Info"] = {"S": obj.body.decode("utf-8", "replace")}
    return record


def classify_lockfile(obj: LockfileObject, now: datetime | None) -> LockRecord | SkippedItem:
    """Parse a ``.tflock`` object with the same lock model as a lock item; anything else is skipped.

    Its lock path is ``<bucket>/<key without .tflock>`` and must equal ``Info.Path``, as a LockID must.
    """
    record = lockfile_item(obj, with_body=False)
    if not is_lockfile_key(obj.key):
        return SkippedItem(obj.location, "not a <state key>.tflock object", record)
    try:
        raw_info = obj.body.decode("utf-8")
    except UnicodeDecodeError as err:
        return SkippedItem(
            obj.location, f"lockfile body is not UTF-8: {err.reason} at byte {err.start}", record, unreadable=True
        )
    record["Info"] = {"S": raw_info}
    parsed = _parse_info(raw_info, obj.lock_path, now, source="lockfile body", key_name="the lockfile's key")
    if isinstance(parsed, str):
        return SkippedItem(obj.location, parsed, record, unreadable=True)
    return LockRecord(obj.lock_path, raw_info, parsed, record, lockfile=obj, in_table=False)


def merge_backends(table_locks: list[LockRecord], file_locks: list[LockRecord]) -> list[LockRecord]:
    """One record per acquisition: a lockfile and a lock item with the same path and ID are a dual backend (a
    lockfile joins the first table's item of its acquisition: one file cannot belong to two tables)."""
    files = {(f.lock_path, f.lock_id): f for f in file_locks}
    merged = [
        replace(lock, lockfile=files.pop((lock.lock_path, lock.lock_id)).lockfile)
        if (lock.lock_path, lock.lock_id) in files
        else lock
        for lock in table_locks
    ]
    return merged + list(files.values())


def describe_validation_error(err: ValidationError, *, root: str = "") -> str:
    """``field.path: message; ...`` (``root`` names an error on the whole value)."""
    return "; ".join(f"{'.'.join(str(p) for p in e['loc']) or root}: {e['msg']}" for e in err.errors(include_url=False))
