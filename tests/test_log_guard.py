"""The guard that keeps the suite's routers log-clean can fail a test."""

from __future__ import annotations

import logging
import sys

from tests.log_guard import LogGuard


def traceback_from(logger: str, message: str) -> logging.LogRecord:
    try:
        raise ValueError("boom")
    except ValueError:
        return logging.getLogger(logger).makeRecord(logger, logging.ERROR, __file__, 1, message, (), sys.exc_info())


def test_an_unexpected_traceback_is_a_problem():
    guard = LogGuard()
    guard.handle(traceback_from("tornado.application", "Uncaught exception POST /v1/messages"))
    (problem,) = guard.problems()
    assert "Uncaught exception POST /v1/messages" in problem and "ValueError: boom" in problem


def test_an_expected_traceback_must_come():
    guard = LogGuard()
    guard.expect("tornrouter.plugins", r"plugin 'x' on_end hook failed")
    assert guard.problems() == ["expected a log line from 'tornrouter.plugins' matching \"plugin 'x' on_end hook failed\"; none came"]
    guard.handle(traceback_from("tornrouter.plugins", "plugin 'x' on_end hook failed: boom"))
    assert guard.problems() == []


def test_lines_without_a_traceback_and_other_loggers_pass():
    guard = LogGuard()
    guard.handle(logging.getLogger("tornrouter").makeRecord("tornrouter", logging.ERROR, __file__, 1, "reload refused", (), None))
    guard.handle(traceback_from("urllib3", "a library's own business"))
    assert guard.problems() == []
