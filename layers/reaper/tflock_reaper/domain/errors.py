"""The one error the services handle from the outside world: raised by adapters, caught by services (which must not
import an adapter to catch it)."""

from __future__ import annotations


class AwsAccessError(Exception):
    """An AWS call failed in a way a retry inside this sweep will not fix (missing table, denied, unreachable).

    ``transient`` (default ``True``): a later attempt may get past it (throttling, an AWS-side error, an endpoint
    that did not answer). ``False``: AWS refused this request for what it holds (a ValidationException on one
    item's key, say): it will fail the same way again, and says nothing about requests for other items.
    """

    def __init__(self, *args: object, transient: bool = True) -> None:
        super().__init__(*args)
        self.transient = transient
