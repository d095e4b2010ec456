"""The deployed functions' configuration: one frozen model, validated once from the environment."""

from __future__ import annotations

import json
import os
from functools import lru_cache
from typing import Annotated, Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, StringConstraints, field_validator, model_validator

TableName = Annotated[str, StringConstraints(pattern=r"^[a-zA-Z0-9_.-]{3,255}$")]


def _comma_separated(value: object) -> object:
    return tuple(part.strip() for part in value.split(",") if part.strip()) if isinstance(value, str) else value


# Both models are built on the first validation (defer_build), not at import: cold start.
class Target(BaseModel):
    """Lock tables and buckets of another account, swept through a role the reaper assumes there."""

    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)

    role_arn: str = Field(pattern=r"^arn:aws[a-z-]*:iam::[0-9]{12}:role/[A-Za-z0-9_+=,.@/-]{1,512}$")
    lock_tables: tuple[TableName, ...] = ()
    buckets: tuple[str, ...] = ()
    region: str | None = Field(default=None, pattern=r"^[a-z]{2}(-[a-z]+)+-[0-9]$")
    """Default: the reaper's own region."""
    external_id: str | None = Field(default=None, min_length=2, max_length=1224)

    @property
    def account(self) -> str:
        return self.role_arn.split(":")[4]

    @model_validator(mode="after")
    def _something_to_sweep(self) -> Target:
        if not self.lock_tables and not self.buckets:
            raise ValueError(f"target {self.role_arn}: give lock_tables, buckets, or both")
        return self


class Settings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore", populate_by_name=True, defer_build=True)

    lock_table_names: tuple[TableName, ...] = Field(
        default=(), validation_alias=AliasChoices("LOCK_TABLE_NAMES", "LOCK_TABLE_NAME")
    )
    """The Terraform lock tables of this account (DynamoDB locking), comma-separated; ``LOCK_TABLE_NAME`` too."""
    state_buckets: tuple[str, ...] = Field(default=(), alias="STATE_BUCKETS")
    """State buckets whose ``.tflock`` lockfiles are swept (S3-native locking): ``B`` or ``B/prefix``."""
    state_table_name: str | None = Field(default=None, alias="STATE_TABLE_NAME")
    reaper_mode: Literal["dry-run", "enforce"] = Field(default="dry-run", alias="REAPER_MODE")
    policy_path: str = Field(default="policy.yaml", alias="POLICY_PATH")
    """Relative paths are resolved against the function's code directory (``LAMBDA_TASK_ROOT``)."""
    policy_parameter: str | None = Field(default=None, alias="POLICY_PARAMETER")
    """Name of an SSM String parameter holding the policy YAML; when set it wins over ``policy_path``."""
    task_root: str = Field(default=".", alias="LAMBDA_TASK_ROOT")
    alert_topic_arn: str | None = Field(default=None, alias="ALERT_TOPIC_ARN")
    """The stack's SNS topic: where ``type: sns`` channels without a ``topic_arn`` publish."""
    targets: tuple[Target, ...] = Field(default=(), alias="TARGETS")
    """Other accounts to sweep (JSON list of :class:`Target`); state, alerts and logs stay in this account."""
    scan_segments: int | None = Field(default=None, alias="SCAN_SEGMENTS", ge=1, le=16)
    """Parallel Scan segments per lock table; empty: chosen from each table's size."""

    audit_stream_mappings: tuple[str, ...] = Field(default=(), alias="AUDIT_STREAM_MAPPINGS")
    """The UUIDs of the event source mappings that feed the lock tables' streams to the stream function (the
    audit); none: every sweep reads every item."""
    audit_function_name: str | None = Field(default=None, alias="AUDIT_FUNCTION_NAME")
    """The stream function, whose IteratorAge says how far behind the audit is."""
    audit_failure_queue_url: str | None = Field(default=None, alias="AUDIT_FAILURE_QUEUE_URL")
    """The stream function's failure queue: new messages there mean records it gave up on."""
    audit_lockfile_rule: str | None = Field(default=None, alias="AUDIT_LOCKFILE_RULE")
    """The EventBridge rule that passes the state buckets' lockfile events to the stream function."""
    reconcile_every_minutes: int = Field(default=60, alias="RECONCILE_EVERY_MINUTES", ge=1, le=1440)
    """With the audit: a full sweep at least this often (see :mod:`tflock_reaper.domain.reconcile`)."""
    deployment_id: str = Field(default="", alias="DEPLOYMENT_ID")
    """Changes with every deployment of the code (the layer's version ARN): the first sweep after one is full."""
    history_retention_days: int = Field(default=90, alias="HISTORY_RETENTION_DAYS", ge=1, le=3650)
    """Days each acquisition's record (the history) is kept in the state table after its release (its TTL); the
    stack's HistoryRetentionDays."""
    slack_signing_secret_name: str | None = Field(default=None, alias="SLACK_SIGNING_SECRET_NAME")
    """The interactions function: the Secrets Manager secret holding the Slack app's signing secret (its name or
    ARN; the value is read at run time, cached, and never logged)."""
    slack_response_url_prefix: str = Field(
        default="https://hooks.slack.com/", alias="SLACK_RESPONSE_URL_PREFIX", pattern=r"^https?://[^/]+/"
    )
    """The interactions function answers the presser only through a ``response_url`` under this prefix (Slack's)."""

    _comma_separated = field_validator("lock_table_names", "state_buckets", "audit_stream_mappings", mode="before")(
        _comma_separated
    )

    @field_validator("targets", mode="before")
    @classmethod
    def _json(cls, value: object) -> object:
        if isinstance(value, str):
            return json.loads(value) if value.strip() else ()
        return value

    @model_validator(mode="after")
    def _something_to_sweep(self) -> Settings:
        if not self.lock_table_names and not self.state_buckets and not self.targets:
            raise ValueError(
                "set LOCK_TABLE_NAMES (DynamoDB locking), STATE_BUCKETS (lockfiles) or TARGETS (other accounts)"
            )
        return self

    @field_validator(
        "scan_segments",
        "state_table_name",
        "policy_parameter",
        "alert_topic_arn",
        "audit_function_name",
        "audit_failure_queue_url",
        "audit_lockfile_rule",
        "slack_signing_secret_name",
        mode="before",
    )
    @classmethod
    def _blank_is_none(cls, value: object) -> object:
        return None if value == "" else value


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings.model_validate(dict(os.environ))
