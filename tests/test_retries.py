"""Retries: a target that fails with a retryable error is asked again, up to
``retries`` more times, then the next target; a retry that succeeds stays on its
target; client errors (4xx but 429) are neither retried nor failed over; the
wait between attempts follows ``Retry-After`` up to ``retry_after_max_s``, or
else exponential backoff with jitter up to ``retry_backoff_max_s``."""

from __future__ import annotations

import random

import pytest

from tests.answers import answer_text, native_error, served_by
from tests.configs import primary_and_backup
from tests.fake_upstream import OPENAI_TEXT, Reply
from tests.upstream_faults import FAST_RETRIES, attempts, error_body, logged_entry, request_body, send
from tests.wire import OPENAI
from tornrouter.config import ProviderConfig
from tornrouter.dispatch import Dispatcher


@pytest.mark.gen_test
@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
@pytest.mark.parametrize("retries", [1, 3])
async def test_n_retries_make_n_plus_one_attempts_then_fallback(start_router, fakes, tmp_path, retries, stream):
    primary, backup = fakes(), fakes()
    primary.then(*[Reply(status=503, body=error_body("openai", "busy"))] * (retries + 1))
    router = start_router(primary_and_backup(
        tmp_path, OPENAI, primary.url, backup.url, primary_options={"retries": retries, **FAST_RETRIES}
    ))

    response, _ = await send(router, OPENAI, request_body(OPENAI, stream=stream))

    assert response.code == 200
    served_by(response, "backup", "model-b")
    entry = await logged_entry(router, response)
    assert attempts(entry) == [("primary", 503)] * (retries + 1) + [("backup", 200)]
    assert len(primary.requests) == retries + 1 and len(backup.requests) == 1


@pytest.mark.gen_test
async def test_a_retry_that_succeeds_stays_on_the_same_target(start_router, fakes, tmp_path):
    primary, backup = fakes(), fakes()
    primary.then(Reply(drop=True, reset=True), Reply(status=502, body=error_body("openai", "bad gateway")))
    router = start_router(primary_and_backup(
        tmp_path, OPENAI, primary.url, backup.url, primary_options={"retries": 2, **FAST_RETRIES}
    ))

    response = await router.post(OPENAI, request_body(OPENAI))

    assert response.code == 200 and answer_text(OPENAI, response) == OPENAI_TEXT
    served_by(response, "primary", "model-a")
    entry = await logged_entry(router, response)
    assert attempts(entry) == [("primary", 599), ("primary", 502), ("primary", 200)]
    assert backup.requests == []


@pytest.mark.gen_test
@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
@pytest.mark.parametrize("status", [400, 401, 403, 404, 413, 422])
async def test_client_errors_are_neither_retried_nor_failed_over(start_router, fakes, tmp_path, status, stream):
    primary, backup = fakes(), fakes()
    primary.then(Reply(status=status, body=error_body("openai", f"refused with {status}", "invalid_request_error")))
    router = start_router(primary_and_backup(
        tmp_path, OPENAI, primary.url, backup.url, primary_options={"retries": 3, **FAST_RETRIES}
    ))

    response, raw = await send(router, OPENAI, request_body(OPENAI, stream=stream))

    assert response.code == status
    response._body = raw
    assert f"refused with {status}" in native_error(OPENAI, response)
    entry = await logged_entry(router, response)
    assert attempts(entry) == [("primary", status)]
    assert len(primary.requests) == 1 and backup.requests == []


@pytest.mark.gen_test
@pytest.mark.parametrize("status", [429, 503, 529])
async def test_retry_after_is_honoured_up_to_the_cap(start_router, fakes, tmp_path, status):
    """An hour's Retry-After under a cap of 50 ms: the retries happen (and the
    request completes within the client's timeout), then the fallback answers."""
    primary, backup = fakes(), fakes()
    primary.then(*[Reply(status=status, body=error_body("openai", "later"), headers={"Retry-After": "3600"})] * 3)
    router = start_router(primary_and_backup(
        tmp_path, OPENAI, primary.url, backup.url,
        primary_options={"retries": 2, "retry_backoff_s": 3600, "retry_backoff_max_s": 3600, "retry_after_max_s": 0.05},
    ))

    response = await router.post(OPENAI, request_body(OPENAI))

    assert response.code == 200
    entry = await logged_entry(router, response)
    assert attempts(entry) == [("primary", status)] * 3 + [("backup", 200)]


def test_backoff_schedule():
    """Retry-After (seconds or an HTTP date) wins, capped; nonsense falls back to
    exponential backoff with jitter, itself capped."""
    dispatcher = Dispatcher(random.Random(1))
    config = ProviderConfig(name="p", kind="openai", retry_backoff_s=0.5, retry_backoff_max_s=4.0, retry_after_max_s=30.0)
    assert dispatcher.backoff(config, 0, "2") == 2.0
    assert dispatcher.backoff(config, 0, "0") == 0.0
    assert dispatcher.backoff(config, 5, "3600") == 30.0
    assert dispatcher.backoff(config, 0, "inf") == 30.0
    assert dispatcher.backoff(config, 0, "Wed, 21 Oct 2015 07:28:00 GMT") == 0.0  # a date gone by: now
    assert dispatcher.backoff(config, 0, "Fri, 01 Jan 2100 00:00:00 GMT") == 30.0
    for attempt, ceiling in [(0, 0.5), (1, 1.0), (2, 2.0), (3, 4.0), (8, 4.0)]:
        for retry_after in (None, "", "soon", "nan", "-5"):
            delay = dispatcher.backoff(config, attempt, retry_after)
            assert ceiling / 2 <= delay <= ceiling, (attempt, retry_after, delay)
