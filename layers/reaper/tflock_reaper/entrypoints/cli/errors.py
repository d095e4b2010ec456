"""What the CLI says when it cannot do its work: one line naming the cause and the fix, and the exit code.

An operator's mistake (no region, a profile that does not exist, a region that is not one, no credentials, a bad
policy) is configuration (exit 2); AWS refusing or not answering is exit 3. Anything else is a bug, and raises.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from urllib.parse import urlsplit

from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    EndpointConnectionError,
    InvalidRegionError,
    NoCredentialsError,
    NoRegionError,
    PartialCredentialsError,
    ProfileNotFound,
    SSOError,
    TokenRetrievalError,
)

from tflock_reaper.adapters.errors import AwsAccessError, describe
from tflock_reaper.adapters.table_admin import StreamConfigError
from tflock_reaper.domain.policy import PolicyError
from tflock_reaper.entrypoints.cli.codes import EXIT_AWS, EXIT_CONFIG


class ConfigError(Exception):
    """A mistake in the command line or the local configuration: exit 2, with this message."""


#: What the CLI turns into one line and an exit code (everything else is a bug and raises).
HANDLED = (ConfigError, PolicyError, StreamConfigError, AwsAccessError, BotoCoreError, ClientError)

_REGION_LABEL = re.compile(r"^[a-z]{2}(?:-[a-z]+)+-\d+$")


def operator_error(err: Exception) -> tuple[int, str]:
    """The exit code and the one line (cause, then fix) for one of :data:`HANDLED`."""
    if isinstance(err, ConfigError | PolicyError | StreamConfigError):
        return EXIT_CONFIG, str(err)
    for cause in _chain(err):
        local = _local_configuration(cause)
        if local is not None:
            return EXIT_CONFIG, local
    if isinstance(err, AwsAccessError):
        return EXIT_AWS, str(err)
    return EXIT_AWS, f"AWS could not be used: {describe(err)}"


def _chain(err: BaseException) -> Iterator[BaseException]:
    """The error and its causes (an adapter's AwsAccessError is raised from botocore's)."""
    seen: set[int] = set()
    current: BaseException | None = err
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def _local_configuration(err: BaseException) -> str | None:
    """The message for an AWS configuration mistake on this machine, or None."""
    if isinstance(err, NoRegionError):
        aside = " (AWS_REGION is set, but boto3 reads AWS_DEFAULT_REGION)" if os.environ.get("AWS_REGION") else ""
        return "no AWS region configured: give --region (e.g. --region eu-west-1), or set AWS_DEFAULT_REGION" + aside
    if isinstance(err, ProfileNotFound):
        return (
            f"AWS profile {err.kwargs.get('profile')!r} not found (from --profile or AWS_PROFILE): "
            "`aws configure list-profiles` lists the profiles this machine has"
        )
    if isinstance(err, InvalidRegionError):
        return (
            f"{err.kwargs.get('region_name')!r} is not an AWS region name (from --region, AWS_DEFAULT_REGION or the "
            "profile): "
            "give one like us-east-1 or eu-west-1"
        )
    if isinstance(err, NoCredentialsError | PartialCredentialsError):
        return (
            "no AWS credentials found: log in (`aws sso login`, `aws configure`), or choose a profile with --profile "
            "or AWS_PROFILE"
        )
    if isinstance(err, SSOError | TokenRetrievalError):
        return (
            f"the AWS SSO login has expired or is missing ({err}): run `aws sso login` (with --profile if you use one)"
        )
    if isinstance(err, EndpointConnectionError):
        region = _unknown_region(str(err.kwargs.get("endpoint_url", "")))
        if region:
            return (
                f"cannot reach AWS in region {region!r}, which is not an AWS region botocore knows: "
                "check --region (or AWS_DEFAULT_REGION, or the profile's region)"
            )
    return None


def _unknown_region(endpoint_url: str) -> str | None:
    """The region of an AWS endpoint (``https://dynamodb.us-east-9.amazonaws.com/``) when no partition has it."""
    host = urlsplit(endpoint_url).hostname or ""
    if not host.endswith((".amazonaws.com", ".amazonaws.com.cn")):
        return None  # --endpoint-url: a local or private endpoint, not a region's
    labels = [label for label in host.split(".") if _REGION_LABEL.match(label)]
    if not labels:
        return None
    import botocore.session  # noqa: PLC0415 - only on this error path: the endpoints' data takes a while to load

    session = botocore.session.get_session()
    known = {
        region
        for partition in session.get_available_partitions()
        for region in session.get_available_regions("dynamodb", partition_name=partition)
    }
    return None if labels[0] in known else labels[0]
