"""Logging pieces used by settings.LOGGING and the servers: a quiet beat, one access line per
request, and outages summarized rather than repeated.

When Redis or a shard goes away, every worker and request logs the same connection error
many times a second (64,300 lines with 2,540 tracebacks in 21 s were measured):
``SummarizeRepeats`` lets the first occurrence of a warning or error through with its
traceback, then counts repeats of the same message and reports them once per interval.

The access line says what was asked and how it went, and nothing a request carries: no query
string (it may hold tokens), no headers (Authorization), no body.
"""

from __future__ import annotations

import logging
import threading
import time

access_logger = logging.getLogger("config.access")

# Gunicorn's equivalent of ``access_line``: method, path without query string, status, duration.
GUNICORN_ACCESS_LOG_FORMAT = "%(m)s %(U)s %(s)s %(M)sms"


class DemoteBeatTicks(logging.Filter):
    """Beat logs "Scheduler: Sending due task ..." at INFO every time it sends a periodic task
    (every second for the delivery sweep). That is a DEBUG-level event: rewrite it as DEBUG and
    let it through only where DEBUG is enabled. Beat's other lines (starting, errors) stay."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno == logging.INFO and str(record.msg).startswith("Scheduler: Sending due task"):
            record.levelno, record.levelname = logging.DEBUG, "DEBUG"
            return logging.getLogger(record.name).isEnabledFor(logging.DEBUG)
        return True


def access_line(method: str, path: str, status: int | None, seconds: float) -> str:
    return f"{method} {path.split('?', 1)[0]} {status} {round(seconds * 1000)}ms"


def daphne_access_log(protocol: str, action: str, details: dict) -> None:
    """Daphne's ``action_logger``: one line per completed HTTP request."""
    if protocol == "http" and action == "complete":
        access_logger.info(
            "%s", access_line(details["method"], details["path"], details["status"], details["time_taken"])
        )


class SummarizeRepeats(logging.Filter):
    """Pass the first record of each (logger, level, message template); summarize repeats."""

    def __init__(self, interval: float = 10.0, min_level: int = logging.WARNING):
        super().__init__()
        self.interval = float(interval)
        self.min_level = min_level
        self._seen: dict[tuple, list] = {}  # key -> [window start, repeats]
        self._lock = threading.Lock()

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < self.min_level:
            return True
        key = (record.name, record.levelno, str(record.msg))
        now = time.monotonic()
        with self._lock:
            entry = self._seen.get(key)
            if entry is None or now - entry[0] >= self.interval:
                repeats = entry[1] if entry else 0
                self._seen[key] = [now, 0]
                if len(self._seen) > 1000:  # bounded: forget the oldest templates
                    for stale in sorted(self._seen, key=lambda k: self._seen[k][0])[:500]:
                        del self._seen[stale]
                if repeats:
                    record.msg = f"{record.msg} (repeated {repeats} more times in the last {self.interval:g} s)"
                    record.exc_info = record.exc_text = None  # the first one had the traceback
                return True
            entry[1] += 1
            return False
