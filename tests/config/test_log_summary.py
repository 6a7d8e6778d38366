"""Repeated errors during an outage: the first with its traceback, then a count."""

import logging

from config.log import SummarizeRepeats


def test_repeats_are_counted_not_printed(monkeypatch):
    clock = [1000.0]
    monkeypatch.setattr("config.log.time.monotonic", lambda: clock[0])
    summarize = SummarizeRepeats(interval=10)
    logger = logging.getLogger("outage-test")

    def record(msg="cannot connect to %s", level=logging.ERROR):
        try:
            raise ConnectionError("refused")
        except ConnectionError:
            return logger.makeRecord(logger.name, level, __file__, 1, msg, ("redis",), __import__("sys").exc_info())

    first = record()
    assert summarize.filter(first) and first.exc_info is not None
    assert [summarize.filter(record()) for _ in range(500)] == [False] * 500
    assert summarize.filter(record("another problem"))  # a different message is not held back
    clock[0] += 10
    summary = record()
    assert summarize.filter(summary)
    assert summary.getMessage() == "cannot connect to redis (repeated 500 more times in the last 10 s)"
    assert summary.exc_info is None
    assert summarize.filter(record(level=logging.INFO)) and summarize.filter(record(level=logging.INFO))
