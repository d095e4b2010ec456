"""Fixtures for every test. The Lambda handlers and the CLI configure the engine's ``tflock_reaper`` logger
(handlers, level, propagation) as they do in production; restore it after each test so that no test's
logging depends on which ran before it."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest


@pytest.fixture(autouse=True)
def _fresh_process_caches() -> Iterator[None]:
    """A warm Lambda keeps its boto3 clients (and secret caches) across invocations; tests are separate
    "processes", each with its own moto backend, so they start cold."""
    from tflock_reaper.adapters import lock_table, notification_ledger  # noqa: PLC0415
    from tflock_reaper.adapters.channels import factory as channels  # noqa: PLC0415
    from tflock_reaper.entrypoints import wiring  # noqa: PLC0415 - after pytest set the import path

    yield
    wiring.default_clients.cache_clear()
    wiring._process_redaction.cache_clear()
    channels._RESOLVERS.clear()
    lock_table._SEGMENTS.clear()
    notification_ledger._SENT.clear()


@pytest.fixture(autouse=True)
def _restore_engine_logger() -> Iterator[None]:
    engine = logging.getLogger("tflock_reaper")
    saved = (list(engine.handlers), engine.level, engine.propagate)
    yield
    engine.handlers[:], engine.level, engine.propagate = saved
