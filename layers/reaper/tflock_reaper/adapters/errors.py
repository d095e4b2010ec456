"""One error type for AWS failures, with a message an operator can act on."""

from __future__ import annotations

from botocore.exceptions import BotoCoreError, ClientError

from tflock_reaper.domain.errors import AwsAccessError

__all__ = ["AwsAccessError", "describe", "is_transient"]

#: Error codes a later attempt can get past: throttling and AWS-side failures (DynamoDB's and the common ones).
TRANSIENT_CODES = frozenset(
    {
        "ProvisionedThroughputExceededException",
        "RequestLimitExceeded",
        "ThrottlingException",
        "Throttling",
        "TooManyRequestsException",
        "LimitExceededException",
        "InternalServerError",
        "InternalFailure",
        "InternalError",
        "ServiceUnavailable",
        "ServiceUnavailableException",
        "TransactionInProgressException",
    }
)
HTTP_TOO_MANY_REQUESTS = 429
HTTP_SERVER_ERROR = 500


def is_transient(err: Exception) -> bool:
    """Whether a botocore error is one a later attempt may get past: throttling, 5xx, no answer. A ClientError
    with any other code (ValidationException, AccessDenied, ResourceNotFound, ...) is not."""
    if not isinstance(err, ClientError):
        return True  # BotoCoreError: unreachable endpoint, timeouts, no credentials yet
    code = err.response.get("Error", {}).get("Code", "")
    status = err.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
    return code in TRANSIENT_CODES or status == HTTP_TOO_MANY_REQUESTS or status >= HTTP_SERVER_ERROR


def describe(err: Exception) -> str:
    if isinstance(err, ClientError):
        error = err.response.get("Error", {})
        return f"{error.get('Code', 'ClientError')}: {error.get('Message', str(err))}"
    if isinstance(err, BotoCoreError):
        return f"{type(err).__name__}: {err}"
    return f"{type(err).__name__}: {err}"
