"""The Slack app's button presses (Reap now, Snooze, It's mine), from the function's URL → one answer each.

Slack posts each press to the function URL (AuthType NONE: the Slack signature is the authentication, checked in
``entrypoints.interactions`` before anything is read or written). The press is acted on, logged (``slack_action``),
counted, answered privately to the presser, and acknowledged with a ``200``; a request that is not a press of this
app is refused with a 4xx and changes nothing. ``policy.yaml`` here is the sweeper's (a link): both read the same.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.logging.utils import copy_config_to_registered_loggers
from aws_lambda_powertools.metrics import MetricUnit
from tflock_reaper.entrypoints import interactions

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.typing import LambdaContext

logger = Logger()
metrics = Metrics()


@logger.inject_lambda_context(log_event=False)  # the body holds the response_url: never logged
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    # The engine logs through the standard ``tflock_reaper`` logger (the reap's ``lock reaped`` line): give it the
    # Powertools handler and JSON format, per invocation (idempotent).
    copy_config_to_registered_loggers(source_logger=logger, include={"tflock_reaper"})
    # Every request, refused or not (``SlackActions`` and ``SlackRequestsRefused`` say how each ended).
    metrics.add_metric(name="SlackRequests", unit=MetricUnit.Count, value=1)
    return interactions.handle_request(
        event,
        interactions.PowertoolsActionLog(logger, metrics),
        remaining_seconds=lambda: context.get_remaining_time_in_millis() / 1000,
    )
