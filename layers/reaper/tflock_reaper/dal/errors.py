"""One error type for AWS failures, with a message an operator can act on."""

from __future__ import annotations

from botocore.exceptions import BotoCoreError, ClientError

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


class AwsAccessError(Exception):
    """An AWS call failed in a way a retry inside this sweep will not fix (missing table, denied, unreachable).

    ``transient`` (default ``True``): a later attempt may get past it (throttling, an AWS-side error, an endpoint
    that did not answer). ``False``: AWS refused this request for what it holds (a ValidationException on one
    item's key, say): it will fail the same way again, and says nothing about requests for other items. See
    :func:`is_transient`.
    """

    def __init__(self, *args: object, transient: bool = True) -> None:
        super().__init__(*args)
        self.transient = transient


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
