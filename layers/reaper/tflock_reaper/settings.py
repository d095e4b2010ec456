"""The deployed functions' configuration: one frozen model, validated once from the environment."""

from __future__ import annotations

import os
from functools import lru_cache
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator


class Settings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore", populate_by_name=True)

    lock_table_name: str | None = Field(default=None, alias="LOCK_TABLE_NAME", min_length=3, max_length=255)
    """The Terraform lock table (DynamoDB locking), if any."""
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

    @field_validator("state_buckets", mode="before")
    @classmethod
    def _comma_separated(cls, value: object) -> object:
        return tuple(part.strip() for part in value.split(",") if part.strip()) if isinstance(value, str) else value

    @model_validator(mode="after")
    def _something_to_sweep(self) -> Settings:
        if not self.lock_table_name and not self.state_buckets:
            raise ValueError("set LOCK_TABLE_NAME (DynamoDB locking), STATE_BUCKETS (lockfiles), or both")
        return self

    @field_validator("lock_table_name", "state_table_name", "policy_parameter", "alert_topic_arn", mode="before")
    @classmethod
    def _blank_is_none(cls, value: object) -> object:
        return None if value == "" else value


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings.model_validate(dict(os.environ))
