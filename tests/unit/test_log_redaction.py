"""Log redaction is installed by the wiring, visibly and idempotently, never as a side effect of an import (issue 14).

``tests/integration/test_secrets_not_logged.py`` proves that no secret reaches the logs through the handlers; these
tests pin down where the redaction comes from.
"""

from __future__ import annotations

import logging
import subprocess
import sys
from collections.abc import Iterator

import pytest
from tflock_reaper.adapters.log_redaction import (
    BOTOCORE_PARSERS,
    URLLIB3_LOGGERS,
    LogRedaction,
    install_log_redaction,
)

SECRET_PATH = "/services/T0000/B0000/XXXXSECRETXXXX"


def _ours(name: str) -> list[logging.Filter]:
    return [f for f in logging.getLogger(name).filters if type(f).__module__.endswith(".log_redaction")]


@pytest.fixture
def clean_loggers() -> Iterator[None]:
    """Take this process's redaction filters off for the test, and put them back after it."""
    names = (BOTOCORE_PARSERS, *URLLIB3_LOGGERS)
    saved = {name: _ours(name) for name in names}
    for name, filters in saved.items():
        for f in filters:
            logging.getLogger(name).removeFilter(f)
    yield
    for name in names:
        for f in _ours(name):
            logging.getLogger(name).removeFilter(f)
        for f in saved[name]:
            logging.getLogger(name).addFilter(f)


def test_importing_the_channels_and_the_wiring_installs_no_log_filter():
    # A fresh interpreter: this one may have run the wiring already.
    code = (
        "import logging\n"
        "import tflock_reaper.adapters.channels.factory, tflock_reaper.adapters.channels.slack\n"
        "import tflock_reaper.adapters.channels.pagerduty, tflock_reaper.adapters.channels.sns\n"
        "import tflock_reaper.entrypoints.wiring, tflock_reaper.entrypoints.cli\n"
        f"names = {(BOTOCORE_PARSERS, *URLLIB3_LOGGERS)!r}\n"
        "print(sum(len(logging.getLogger(name).filters) for name in names))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert done.stdout.strip() == "0"


def test_install_is_idempotent_and_a_new_redaction_takes_the_place_of_the_old(clean_loggers):
    first, second = LogRedaction(), LogRedaction()
    install_log_redaction(first)
    install_log_redaction(first)
    for name in (BOTOCORE_PARSERS, *URLLIB3_LOGGERS):
        assert len(_ours(name)) == 1
    install_log_redaction(second)
    (urllib3_filter,) = _ours("urllib3.connectionpool")
    assert urllib3_filter.redaction is second  # type: ignore[attr-defined]


def test_the_secrets_added_to_the_installed_redaction_are_cut_from_urllib3_records(clean_loggers):
    redaction = LogRedaction()
    install_log_redaction(redaction)
    record = logging.LogRecord("urllib3.connectionpool", logging.DEBUG, __file__, 1, '"POST %s HTTP/1.1"', None, None)
    record.args = (SECRET_PATH,)
    redaction.add(SECRET_PATH)
    assert logging.getLogger("urllib3.connectionpool").filter(record)
    assert record.getMessage() == '"POST <redacted> HTTP/1.1"'


def test_the_wiring_owns_one_redaction_per_process_and_installs_it(clean_loggers):
    from tflock_reaper.entrypoints.wiring import log_redaction  # noqa: PLC0415

    redaction = log_redaction()
    assert log_redaction() is redaction
    for name in URLLIB3_LOGGERS:
        (installed,) = _ours(name)
        assert installed.redaction is redaction  # type: ignore[attr-defined]
    assert len(_ours(BOTOCORE_PARSERS)) == 1
