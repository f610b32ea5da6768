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

BEARER = re.compile(r"(?i)(bearer\s+)\S+")


class DropRawRequests(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, HttpProcessingError):
            peer = record.args[0] if isinstance(record.args, tuple) and record.args else "a client"
            record.msg = (f"bad HTTP request from {peer} ({type(exc).__name__}); "
                          "request line and headers not logged")
            record.args, record.exc_info, record.exc_text = (), None, None
        return True


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
