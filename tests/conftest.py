"""Fixtures for every test. The Lambda handlers and the CLI configure the engine's ``tflock_reaper`` logger
(handlers, level, propagation) as they do in production; restore it after each test so that no test's
logging depends on which ran before it."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest


@pytest.fixture(autouse=True)
def _restore_engine_logger() -> Iterator[None]:
    engine = logging.getLogger("tflock_reaper")
    saved = (list(engine.handlers), engine.level, engine.propagate)
    yield
    engine.handlers[:], engine.level, engine.propagate = saved
