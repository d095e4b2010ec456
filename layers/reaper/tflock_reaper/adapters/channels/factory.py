"""Build notifiers from the policy's ``channels``. Secrets are resolved lazily at send time through Powertools
Parameters (cached), from Secrets Manager or SSM SecureString: only their names are in the policy."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from tflock_reaper.adapters.aws import AwsClients
from tflock_reaper.adapters.log_redaction import LogRedaction
from tflock_reaper.adapters.secret_store import unavailable
from tflock_reaper.domain.deadline import UNBOUNDED, Budget
from tflock_reaper.domain.notifier import Notifier, NotifyError
from tflock_reaper.domain.policy import Channel, PagerDutyChannel, SecretRef, SlackAppChannel, SlackChannel

if TYPE_CHECKING:
    from tflock_reaper.adapters.slack_messages import SlackMessages
    from tflock_reaper.domain.notification import Notification

#: Secrets are re-read at most this often by a warm function (rotation is picked up within this time).
SECRET_CACHE_SECONDS = 300


class SecretResolver:
    """Resolves a :class:`SecretRef` with Powertools Parameters providers bound to our boto3 session."""

    def __init__(self, clients: AwsClients) -> None:
        self.clients = clients
        self._providers: dict[str, Any] = {}

    def _provider(self, kind: str) -> Any:
        if kind not in self._providers:
            from aws_lambda_powertools.utilities import parameters  # noqa: PLC0415 - cold start

            if kind == "secret":
                self._providers[kind] = parameters.SecretsProvider(boto3_client=self.clients.client("secretsmanager"))
            else:
                self._providers[kind] = parameters.SSMProvider(boto3_client=self.clients.client("ssm"))
        return self._providers[kind]

    def __call__(self, ref: SecretRef) -> str:
        """The secret's value, or :class:`~tflock_reaper.adapters.secret_store.SecretUnavailableError` naming the
        secret and AWS's error (never a value)."""
        try:
            if ref.secret is not None:
                value = self._provider("secret").get(ref.secret, max_age=SECRET_CACHE_SECONDS)
            else:
                value = self._provider("parameter").get(ref.parameter, decrypt=True, max_age=SECRET_CACHE_SECONDS)
        except Exception as err:  # Powertools wraps every failure in GetParameterError: say which secret, and why
            raise unavailable(ref, err) from err
        return str(value)


_RESOLVERS: dict[int, SecretResolver] = {}


def secret_resolver(clients: AwsClients) -> SecretResolver:
    """One resolver per clients object, so that Powertools' cache lives as long as the (warm) process's clients."""
    resolver = _RESOLVERS.get(id(clients))
    if resolver is None or resolver.clients is not clients:
        resolver = _RESOLVERS[id(clients)] = SecretResolver(clients)
    return resolver


@dataclass(frozen=True)
class _Unconfigured:
    """A channel that cannot be built (an SNS channel with no topic): every send fails, visibly."""

    name: str
    why: str

    def unusable(self) -> str:
        """Why: a dry run shows the channel as unusable, with this, instead of a message it would send."""
        return self.why

    def render(self, notification: Notification) -> dict[str, Any]:
        return {"error": self.why}

    def send(self, notification: Notification) -> None:
        raise NotifyError(self.name, self.why, retryable=False)


def make_channel_factory(
    clients: AwsClients,
    *,
    default_topic_arn: str | None,
    redaction: LogRedaction | None = None,
    resolve: Callable[[SecretRef], str] | None = None,
    budget: Budget = UNBOUNDED,
    state_table: str | None = None,
) -> Callable[[str, Channel], Notifier]:
    """The notifier of each channel. Slack and PagerDuty sends draw on ``budget`` (the sweep's time for outbound
    requests): once it is spent they fail at once, retryably. They tell ``redaction`` (installed by the wiring) of
    every secret they read, so that no library's log shows it.

    ``state_table``: where the Slack app's channels keep each acquisition's message (its ``ts``), so that every
    process updates the same message. Without one (the CLI), the messages a run posted are known to that run only.
    """
    secret = resolve or secret_resolver(clients)
    stores: list[SlackMessages] = []

    def slack_messages() -> SlackMessages:
        """One store for every slack_app channel of this factory, made when the first one is built."""
        if not stores:
            from tflock_reaper.adapters import slack_messages as messages  # noqa: PLC0415

            store: SlackMessages = (
                messages.DynamoSlackMessages(clients.dynamodb(), state_table)
                if state_table
                else messages.MemorySlackMessages()
            )
            stores.append(store)
        return stores[0]

    # Each adapter is imported when a channel of its kind is first built, not at a cold start: urllib3 and the
    # others cost a Lambda's init time even when the policy names no such channel.
    def build(name: str, channel: Channel) -> Notifier:
        if isinstance(channel, SlackChannel):
            from tflock_reaper.adapters.channels.slack import SlackNotifier  # noqa: PLC0415

            ref = channel.webhook
            return SlackNotifier(lambda: secret(ref), name=name, budget=budget, redaction=redaction)
        if isinstance(channel, SlackAppChannel):
            from tflock_reaper.adapters.channels.slack_app import SlackAppNotifier  # noqa: PLC0415

            token = channel.bot_token
            return SlackAppNotifier(
                lambda: secret(token),
                channel=channel.channel_id,
                messages=slack_messages(),
                name=name,
                api_url=channel.api_url,
                budget=budget,
                redaction=redaction,
            )
        if isinstance(channel, PagerDutyChannel):
            from tflock_reaper.adapters.channels.pagerduty import PagerDutyNotifier  # noqa: PLC0415

            key = channel.routing_key
            return PagerDutyNotifier(
                lambda: secret(key), url=channel.url, name=name, budget=budget, redaction=redaction
            )
        topic = channel.topic_arn or default_topic_arn
        if not topic:
            return _Unconfigured(name, "no topic_arn in the policy and no ALERT_TOPIC_ARN in the deployment")
        from tflock_reaper.adapters.channels.sns import SnsNotifier  # noqa: PLC0415

        return SnsNotifier(clients.sns, topic, name=name)

    return build
