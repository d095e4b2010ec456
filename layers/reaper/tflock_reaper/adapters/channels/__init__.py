"""Alert channels: Slack (webhook), SNS and PagerDuty, and the factory that builds them from the policy."""
