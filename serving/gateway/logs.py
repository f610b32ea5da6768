"""Logging for the gateway process, configured so no API key can reach a log line.

aiohttp logs a malformed request with its parser's exception, and that exception quotes the
raw request line or header (a folded or garbled `Authorization` header included). The
filter keeps the fact and drops the bytes; the formatter masks any bearer token that a
message or traceback might still carry.
"""

from __future__ import annotations

import logging
import re
import sys

from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.web_protocol import RequestPayloadError

BEARER = re.compile(r"(?i)(bearer\s+)\S+")


class DropRawRequests(logging.Filter):
    """A request aiohttp's parser refuses is the client's fault: one INFO line, no traceback,
    no raw bytes (aiohttp 3.14 logs it as ERROR "Error handling request" with the parser's
    exception, web_protocol.py `handle_error`)."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, HttpProcessingError):
            peer = record.args[0] if isinstance(record.args, tuple) and record.args else "a client"
            record.msg = (f"bad HTTP request from {peer} ({type(exc).__name__}); "
                          "request line and headers not logged")
        elif isinstance(exc, RequestPayloadError):
            # after the gateway answered 400 for a body it could not read, aiohttp drains the
            # rest of it ("lingering", web_protocol.py `start`) and meets the same error again
            cause = type(exc.__cause__).__name__ if exc.__cause__ else type(exc).__name__
            record.msg = f"a client's request body could not be read ({cause}); connection closed"
        else:
            return True
        record.args, record.exc_info, record.exc_text = (), None, None
        record.levelno, record.levelname = logging.INFO, "INFO"
        return True


def quiet_parser_errors() -> None:
    """Apply the filter where aiohttp creates the record, so every handler sees the result."""
    server = logging.getLogger("aiohttp.server")
    if not any(isinstance(f, DropRawRequests) for f in server.filters):
        server.addFilter(DropRawRequests())


class MaskingFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return BEARER.sub(r"\1[REDACTED]", super().format(record))


def configure_logging(level: int = logging.INFO) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(MaskingFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(DropRawRequests())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
