"""S3-native lockfiles (``use_lockfile``): ``<state key>.tflock`` objects in the state buckets.

Read with ListObjectsV2 and GetObject; written only by one conditional delete. Terraform's own release
compares the lock ID and then deletes unconditionally; a reaper cannot afford that race, so the delete
carries ``If-Match: <ETag observed>``: a lockfile released and re-acquired meanwhile (a new object, a new
ETag) fails the precondition and is left alone.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING

from botocore.exceptions import BotoCoreError, ClientError

from tflock_reaper.adapters.errors import AwsAccessError, describe
from tflock_reaper.domain.lock import LOCKFILE_SUFFIX, LockfileObject, lockfile_scope

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

#: Error codes meaning "the object is no longer the one judged": not an error, the outcome ``changed``.
#: 412 PreconditionFailed (ETag differs), 409 ConditionalRequestConflict (a concurrent write), and the
#: object gone altogether (released meanwhile).
_CHANGED_CODES = frozenset({"PreconditionFailed", "412", "ConditionalRequestConflict", "409", "NoSuchKey", "404"})


@dataclass(frozen=True)
class BucketLocation:
    """``bucket`` or ``bucket/prefix``, as given to ``--bucket``."""

    bucket: str
    prefix: str = ""

    @classmethod
    def parse(cls, text: str) -> BucketLocation:
        bucket, _, prefix = text.strip().removeprefix("s3://").partition("/")
        if not bucket:
            raise ValueError(f"{text!r} is not a bucket name or bucket/prefix")
        return cls(bucket, prefix)

    def __str__(self) -> str:
        return f"{self.bucket}/{self.prefix}" if self.prefix else self.bucket

    def holds(self, lock_path: str) -> bool:
        bucket, _, key = lock_path.partition("/")
        return bucket == self.bucket and key.startswith(self.prefix)


@dataclass(frozen=True)
class LockfileDeleteResult:
    """``deleted``, or not deleted because the object changed (``reason`` says how)."""

    deleted: bool
    reason: str | None = None


#: Concurrent GetObject requests of an incremental read (botocore's pool holds 10 connections).
READ_WORKERS = 8


class LockfileBuckets:
    def __init__(self, client: S3Client, locations: Sequence[BucketLocation], *, page_size: int = 1000) -> None:
        self._client = client
        self._page_size = page_size
        self.locations = tuple(dict.fromkeys(locations))
        self.name = ", ".join(f"s3://{location}" for location in self.locations)

    def scan(self) -> Iterator[LockfileObject]:
        """Every ``.tflock`` object under the configured locations (each read once), page by page."""
        seen: set[tuple[str, str]] = set()
        for location in self.locations:
            for key in self._keys(location):
                if (location.bucket, key) in seen:
                    continue
                seen.add((location.bucket, key))
                obj = self._get(location.bucket, key)
                if obj is not None:
                    yield obj

    @property
    def scopes(self) -> list[str]:
        """The scope of each bucket's lockfile-only locks (``s3://<bucket>``): their open sets."""
        return [lockfile_scope(bucket) for bucket in dict.fromkeys(loc.bucket for loc in self.locations)]

    def read(self, lock_paths: Sequence[str]) -> list[LockfileObject]:
        """The lockfiles of these states (``<bucket>/<state key>``) that exist under the configured locations, each
        read with one GetObject (several at a time): what an incremental sweep reads instead of listing the
        buckets."""
        paths = sorted(set(lock_paths))
        if not paths:
            return []
        with ThreadPoolExecutor(max_workers=min(READ_WORKERS, len(paths)), thread_name_prefix="lockfile") as pool:
            return [obj for obj in pool.map(self.get, paths) if obj is not None]

    def get(self, lock_path: str) -> LockfileObject | None:
        """The lockfile of ``lock_path`` (``<bucket>/<state key>``) if a configured location holds it."""
        if not any(location.holds(lock_path) for location in self.locations):
            return None
        bucket, _, key = lock_path.partition("/")
        return self._get(bucket, key + LOCKFILE_SUFFIX)

    def delete_if_unchanged(self, obj: LockfileObject) -> LockfileDeleteResult:
        """Delete the lockfile only if it is still the very object judged (same ETag)."""
        try:
            self._client.delete_object(Bucket=obj.bucket, Key=obj.key, IfMatch=obj.etag)
        except ClientError as err:
            code = str(err.response.get("Error", {}).get("Code", ""))
            if code in _CHANGED_CODES:
                return LockfileDeleteResult(deleted=False, reason=describe(err))
            raise AwsAccessError(f"cannot delete s3://{obj.location}: {describe(err)}") from err
        except BotoCoreError as err:
            raise AwsAccessError(f"cannot delete s3://{obj.location}: {describe(err)}") from err
        return LockfileDeleteResult(deleted=True)

    def _keys(self, location: BucketLocation) -> Iterator[str]:
        paginator = self._client.get_paginator("list_objects_v2")
        try:
            pages = paginator.paginate(
                Bucket=location.bucket, Prefix=location.prefix, PaginationConfig={"PageSize": self._page_size}
            )
            for page in pages:
                for entry in page.get("Contents", []):
                    if entry["Key"].endswith(LOCKFILE_SUFFIX):
                        yield entry["Key"]
        except (ClientError, BotoCoreError) as err:
            raise AwsAccessError(f"cannot list s3://{location}: {describe(err)}") from err

    def _get(self, bucket: str, key: str) -> LockfileObject | None:
        """The object as read, or None when it is gone (released between the listing and the read)."""
        try:
            response = self._client.get_object(Bucket=bucket, Key=key)
            body = response["Body"].read()
        except ClientError as err:
            if err.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                return None
            raise AwsAccessError(f"cannot read s3://{bucket}/{key}: {describe(err)}") from err
        except BotoCoreError as err:
            raise AwsAccessError(f"cannot read s3://{bucket}/{key}: {describe(err)}") from err
        return LockfileObject(bucket, key, body, response["ETag"], response["LastModified"])
