"""Log redaction for the libraries that log what they send and receive (adapter).

* botocore logs every response body at DEBUG (``Response body: b'{...}'``), GetSecretValue's and decrypted
  GetParameter's included, before the value reaches us: a function run with its root logger at DEBUG (Lambda's
  ApplicationLogLevel, ``boto3.set_stream_logger``) would write every secret it reads to its log. The values are
  cut from those records as they are logged; the rest of the body stays for debugging.
* urllib3 logs the request path (a Slack webhook's secret) at DEBUG, and in its "Retrying ... after connection
  broken" warning: every URL's path, and every secret this process has used (:class:`LogRedaction`), is cut.
  So is the same from slack_sdk's WebClient's records (the Slack app's bot token).

Nothing is installed on import: the wiring that builds the clients and channels calls
:func:`install_log_redaction` with the process's :class:`LogRedaction`, and the notifiers it builds add the
secrets they read to it.
"""

from __future__ import annotations

import logging
import re
import threading

from tflock_reaper.domain.text import redact

_SECRET_FIELDS = re.compile(rb'("(?:SecretString|SecretBinary)"\s*:\s*)"(?:[^"\\]|\\.)*"')
_PARAMETER_VALUES = re.compile(rb'("Value"\s*:\s*)"(?:[^"\\]|\\.)*"')
_REDACTED = rb'\1"<redacted>"'

#: A filter applies to the records of the logger it is added to, not to its children's: each urllib3 module that
#: may log a request's URL gets one.
URLLIB3_LOGGERS = ("urllib3.connectionpool", "urllib3.util.retry", "urllib3.poolmanager", "urllib3.connection")
#: slack_sdk's WebClient (the Slack app channel) logs its requests and answers at DEBUG, and a failed request at
#: ERROR; it leaves the Authorization header out, and these filters cut the bot token from anything else.
SLACK_SDK_LOGGERS = ("slack_sdk.web.base_client",)
BOTOCORE_PARSERS = "botocore.parsers"


class LogRedaction:
    """The secret strings this process has used (a handful: webhook URLs and their secret parts, routing keys),
    cut from every record of the loggers :func:`install_log_redaction` filters. One per process, owned by the
    wiring; a worker thread may log while another adds, so the strings are replaced, never changed in place."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._secrets: frozenset[str] = frozenset()

    def add(self, *secrets: str) -> None:
        with self._lock:
            self._secrets = self._secrets.union(s for s in secrets if s)

    def cut(self, text: str) -> str:
        """``text`` without any URL's path and query (:func:`~tflock_reaper.domain.text.redact`) nor any secret
        added here."""
        return redact(text, *self._secrets)


def _redact_response_body(arg: object) -> object:
    if not isinstance(arg, bytes | bytearray):
        return arg
    body = _SECRET_FIELDS.sub(_REDACTED, bytes(arg))
    if b'"SecureString"' in body:
        body = _PARAMETER_VALUES.sub(_REDACTED, body)
    return body


class _RedactSecretResponses(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(_redact_response_body(arg) for arg in record.args)
        return True


class _RedactUrls(logging.Filter):
    def __init__(self, redaction: LogRedaction) -> None:
        super().__init__()
        self.redaction = redaction

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = self.redaction.cut(record.getMessage())
        record.args = None
        return True


def install_log_redaction(redaction: LogRedaction) -> None:
    """Filter botocore's response bodies and urllib3's request lines, the latter with ``redaction``'s secrets.
    Idempotent: each logger keeps one filter of each kind; a second :class:`LogRedaction` (a test's fresh process)
    takes the place of the first."""
    parsers = logging.getLogger(BOTOCORE_PARSERS)
    if not any(isinstance(f, _RedactSecretResponses) for f in parsers.filters):
        parsers.addFilter(_RedactSecretResponses())
    for name in (*URLLIB3_LOGGERS, *SLACK_SDK_LOGGERS):
        log = logging.getLogger(name)
        installed = [f for f in log.filters if isinstance(f, _RedactUrls)]
        for existing in installed:
            existing.redaction = redaction
        if not installed:
            log.addFilter(_RedactUrls(redaction))
