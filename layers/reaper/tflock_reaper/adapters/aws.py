"""boto3 sessions and clients, made lazily (never at import) so that moto and endpoints always apply."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import boto3
from botocore.config import Config

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_sns import SNSClient

_CLIENT_CONFIG = Config(
    retries={"mode": "standard", "max_attempts": 3},
    connect_timeout=5,
    read_timeout=20,
    user_agent_extra="tflock-reaper",
)


@dataclass
class AwsClients:
    """One boto3 session per sweep. ``endpoint_url``/``region`` override the standard AWS configuration
    (profiles, ``AWS_REGION``, ``AWS_ENDPOINT_URL``), which applies otherwise."""

    region: str | None = None
    endpoint_url: str | None = None
    profile: str | None = None
    credentials: dict[str, str] | None = field(default=None, repr=False)
    """Explicit temporary credentials (an assumed role's); None: the standard credential chain."""
    _session: boto3.Session | None = field(default=None, init=False, repr=False)
    _clients: dict[str, Any] = field(default_factory=dict, init=False, repr=False)

    @property
    def session(self) -> boto3.Session:
        if self._session is None:
            explicit = self.credentials or {}
            self._session = boto3.Session(
                profile_name=self.profile,
                region_name=self.region,
                aws_access_key_id=explicit.get("aws_access_key_id"),
                aws_secret_access_key=explicit.get("aws_secret_access_key"),
                aws_session_token=explicit.get("aws_session_token"),
            )
        return self._session

    def assume_role(self, role_arn: str, *, region: str | None = None, external_id: str | None = None) -> AwsClients:
        """Clients acting as ``role_arn`` (another account's), for one sweep: the credentials last an hour,
        far longer than a Lambda invocation. Raises botocore's errors when the role cannot be assumed."""
        kwargs: dict[str, Any] = {"RoleArn": role_arn, "RoleSessionName": "tflock-reaper", "DurationSeconds": 3600}
        if external_id:
            kwargs["ExternalId"] = external_id
        issued = self.client("sts").assume_role(**kwargs)["Credentials"]
        return AwsClients(
            region=region or self.session.region_name,
            endpoint_url=self.endpoint_url,
            credentials={
                "aws_access_key_id": issued["AccessKeyId"],
                "aws_secret_access_key": issued["SecretAccessKey"],
                "aws_session_token": issued["SessionToken"],
            },
        )

    def client(self, service: str) -> Any:
        """A client of any service, from this session and endpoint (for Powertools providers, ...)."""
        if service not in self._clients:
            kwargs: dict[str, Any] = {"config": _CLIENT_CONFIG}
            if self.endpoint_url:
                kwargs["endpoint_url"] = self.endpoint_url
            self._clients[service] = self.session.client(service, **kwargs)
        return self._clients[service]

    def dynamodb(self) -> DynamoDBClient:
        client: DynamoDBClient = self.client("dynamodb")
        return client

    def sns(self) -> SNSClient:
        client: SNSClient = self.client("sns")
        return client


@lru_cache(maxsize=1)
def default_clients() -> AwsClients:
    """One boto3 session per process: a warm Lambda reuses its clients (and its cached secrets)."""
    return AwsClients()
