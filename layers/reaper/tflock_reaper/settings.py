"""The deployed functions' configuration: one frozen model, validated once from the environment."""

from __future__ import annotations

import os
from functools import lru_cache
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator


class Settings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore", populate_by_name=True)

    lock_table_name: str = Field(alias="LOCK_TABLE_NAME", min_length=3, max_length=255)
    state_table_name: str | None = Field(default=None, alias="STATE_TABLE_NAME")
    reaper_mode: Literal["dry-run", "enforce"] = Field(default="dry-run", alias="REAPER_MODE")
    policy_path: str = Field(default="policy.yaml", alias="POLICY_PATH")
    """Relative paths are resolved against the function's code directory (``LAMBDA_TASK_ROOT``)."""
    policy_parameter: str | None = Field(default=None, alias="POLICY_PARAMETER")
    """Name of an SSM String parameter holding the policy YAML; when set it wins over ``policy_path``."""
    task_root: str = Field(default=".", alias="LAMBDA_TASK_ROOT")
    alert_topic_arn: str | None = Field(default=None, alias="ALERT_TOPIC_ARN")
    """The stack's SNS topic: where ``type: sns`` channels without a ``topic_arn`` publish."""

    @field_validator("state_table_name", "policy_parameter", "alert_topic_arn", mode="before")
    @classmethod
    def _blank_is_none(cls, value: object) -> object:
        return None if value == "" else value


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings.model_validate(dict(os.environ))
