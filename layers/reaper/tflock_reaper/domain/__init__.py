"""The domain: what a Terraform lock is, the policy, the verdicts, the reaper's memory, the reports, notifications and
audit events. Pure: no I/O, no clock (``now`` is a parameter), no boto3, botocore, urllib3 or HTTP client; it
imports nothing from ``services``, ``adapters`` or ``entrypoints`` (``make lint`` checks it)."""
