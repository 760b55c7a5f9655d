"""A guard in the manner of Tornado's ``ExpectLog``: a test whose router logs a
traceback that the test did not expect fails.

A router must keep its output clean: a traceback in it is a bug somebody has
to read at three in the morning.  ``conftest.py`` puts a ``LogGuard`` on the
root logger for every test; a test that provokes a log line on purpose says so
first with ``log_guard.expect(logger, pattern)``, and the line must then come.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass

WATCHED = ("tornrouter", "tornado", "asyncio")


@dataclass
class Expected:
    logger: str
    pattern: re.Pattern[str]
    seen: int = 0

    def matches(self, record: logging.LogRecord) -> bool:
        return record.name.startswith(self.logger) and bool(self.pattern.search(record.getMessage()))


class LogGuard(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
        self.expected: list[Expected] = []
        self.unexpected: list[str] = []

    def expect(self, logger: str, pattern: str) -> Expected:
        """Allow, for the rest of the test, lines of ``logger`` (or its children)
        matching ``pattern``; at least one must come."""
        expected = Expected(logger, re.compile(pattern))
        self.expected.append(expected)
        return expected

    def emit(self, record: logging.LogRecord) -> None:
        if not record.name.startswith(WATCHED) or not (record.exc_info or record.stack_info):
            return
        for expected in self.expected:
            if expected.matches(record):
                expected.seen += 1
                return
        self.unexpected.append(self.format(record))

    def problems(self) -> list[str]:
        missing = [f"expected a log line from {e.logger!r} matching {e.pattern.pattern!r}; none came"
                   for e in self.expected if not e.seen]
        return missing + [f"unexpected log line:\n{line}" for line in self.unexpected]
