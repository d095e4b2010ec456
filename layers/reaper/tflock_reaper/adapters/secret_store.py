"""Why a secret the policy names could not be read: which secret (its id, ARN or parameter name, never its value)
and AWS's error code and message.

Powertools Parameters wraps every failure of a read in ``GetParameterError(str(exc))``, raised inside its ``except``
block: the botocore error is the wrapper's ``__context__`` (there is no ``__cause__``), and the wrapper's text is
botocore's sentence (``An error occurred (ResourceNotFoundException) when calling the GetSecretValue operation:
...``). :func:`why_unreadable` finds the botocore error in that chain and says ``Code: Message``, as the AWS error
reference names them.
"""

from __future__ import annotations

from botocore.exceptions import BotoCoreError, ClientError

from tflock_reaper.adapters.errors import describe
from tflock_reaper.domain.policy import SecretRef
from tflock_reaper.domain.text import fit, one_line, redact

#: How much of AWS's reason goes into a message (an AccessDenied names the role, the action and the resource).
REASON_MAX = 300


class SecretUnavailableError(Exception):
    """A secret could not be read. The message names it and says why, never what it holds."""


def describe_ref(ref: SecretRef) -> str:
    """``secret NAME`` or ``parameter NAME``: where the secret lives, as the policy names it."""
    return f"secret {ref.secret}" if ref.secret is not None else f"parameter {ref.parameter}"


def why_unreadable(err: BaseException) -> str:
    """AWS's error behind ``err`` (``ResourceNotFoundException: Secrets Manager can't find the specified secret.``),
    else the error itself, one line, without any URL's path."""
    found: BaseException = err
    seen: set[int] = set()
    cause: BaseException | None = err
    while cause is not None and id(cause) not in seen:
        seen.add(id(cause))
        if isinstance(cause, ClientError | BotoCoreError):
            found = cause
            break
        cause = cause.__cause__ or cause.__context__
    text = describe(found) if isinstance(found, Exception) else f"{type(found).__name__}: {found}"
    return fit(one_line(redact(text)), REASON_MAX)


def unavailable(ref: SecretRef, err: BaseException) -> SecretUnavailableError:
    """The error for a read of ``ref`` that raised ``err``: ``secret NAME: Code: Message``."""
    return SecretUnavailableError(f"{describe_ref(ref)}: {why_unreadable(err)}")
