"""One error type for AWS failures, with a message an operator can act on."""

from __future__ import annotations

from botocore.exceptions import BotoCoreError, ClientError


class AwsAccessError(Exception):
    """An AWS call failed in a way a retry inside this sweep will not fix (missing table, denied, unreachable)."""


def describe(err: Exception) -> str:
    if isinstance(err, ClientError):
        error = err.response.get("Error", {})
        return f"{error.get('Code', 'ClientError')}: {error.get('Message', str(err))}"
    if isinstance(err, BotoCoreError):
        return f"{type(err).__name__}: {err}"
    return f"{type(err).__name__}: {err}"
