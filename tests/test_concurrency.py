"""Concurrency limits: a provider's ``max_concurrent`` requests in flight and
``max_queue`` waiting, beyond which a request goes to the next target or is
refused with 503 and ``Retry-After``; the router-wide ``server.max_in_flight``
refusing in the client's own API shape; and ``/health?verbose=1`` reporting
each provider's load, with no secret in it."""

from __future__ import annotations

import asyncio
import json

import pytest

from tests.answers import native_error, served_by
from tests.configs import primary_and_backup
from tests.fake_upstream import Reply
from tests.upstream_faults import attempts, health, logged_once, request_body, scripted, send
from tests.waiting import poll
from tests.wire import ANTHROPIC, OPENAI


@pytest.mark.gen_test
@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
@pytest.mark.parametrize("with_fallback", [True, False], ids=["fallback", "alone"])
async def test_max_concurrent_and_max_queue(start_router, fakes, tmp_path, with_fallback, stream):
    """One slot and one queue place: the first request holds the slot, the second
    waits, the third is refused (503) or goes to the fallback target."""
    primary, backup = fakes(), fakes()
    gate = asyncio.Event()
    held = scripted("openai") if stream else None
    primary.then(Reply(sse=held, gate=gate), Reply(sse=held))
    router = start_router(primary_and_backup(
        tmp_path, OPENAI, primary.url, backup.url if with_fallback else None,
        primary_options={"max_concurrent": 1, "max_queue": 1},
    ))
    ask = lambda: asyncio.ensure_future(send(router, OPENAI, request_body(OPENAI, stream=stream)))  # noqa: E731

    first = ask()
    await poll(lambda: len(primary.requests) == 1, "the first request upstream")
    second = ask()
    await poll(lambda: router.runtime.providers["primary"].limit.queued == 1, "the second request to queue")
    status = (await health(router))["providers"]["primary"]
    assert (status["in_flight"], status["queued"]) == (1, 1)
    third, raw = await ask()
    gate.set()
    (first, _), (second, _) = await first, await second

    assert first.code == 200 and second.code == 200
    served_by(first, "primary", "model-a")
    served_by(second, "primary", "model-a")
    entries = await logged_once(router, first, second, third)
    entry = entries[third.headers["x-request-id"]]
    if with_fallback:
        assert third.code == 200
        served_by(third, "backup", "model-b")
        assert attempts(entry) == [("primary", 503), ("backup", 200)]
        assert "limit" in entry["attempts"][0]["error"]
    else:
        assert third.code == 503 and third.headers["Retry-After"] == "1"
        third._body = raw
        assert "limit of 1 concurrent requests and 1 queued" in native_error(OPENAI, third)
        assert entry["status"] == 503
    assert len(primary.requests) == 2
    await poll(lambda: router.runtime.providers["primary"].in_flight == 0, "the slot to be given back")


@pytest.mark.gen_test
@pytest.mark.parametrize("path", [OPENAI, ANTHROPIC])
async def test_max_in_flight_refuses_with_503_in_the_native_shape(start_router, fakes, tmp_path, path):
    primary = fakes()
    gate = asyncio.Event()
    primary.then(Reply(gate=gate), Reply(gate=gate))
    router = start_router(primary_and_backup(tmp_path, path, primary.url, None, server={"max_in_flight": 2}))

    held = [asyncio.ensure_future(router.post(path, request_body(path))) for _ in range(2)]
    await poll(lambda: len(primary.requests) == 2, "both requests upstream")
    assert (await health(router))["in_flight"] == 2
    refused = await router.post(path, request_body(path))
    gate.set()
    held = await asyncio.gather(*held)

    assert refused.code == 503 and refused.headers["Retry-After"] == "1"
    assert "limit of 2 requests in flight" in native_error(path, refused)
    assert [r.code for r in held] == [200, 200]
    assert len(primary.requests) == 2
    entries = await logged_once(router, refused, *held)
    assert entries[refused.headers["x-request-id"]]["status"] == 503
    after = await router.post(path, request_body(path))  # the slots are back
    assert after.code == 200


@pytest.mark.gen_test
async def test_health_verbose_shows_every_provider_and_no_secret(start_router, fakes, tmp_path):
    primary, backup = fakes(), fakes()
    router = start_router(primary_and_backup(
        tmp_path, OPENAI, primary.url, backup.url, primary_options={"breaker": {}, "max_concurrent": 4},
    ))

    plain = await router.get("/health")
    verbose = await router.get("/health?verbose=1")

    assert plain.body == b"ok"
    body = json.loads(verbose.body)
    assert body["status"] == "ok" and body["in_flight"] == 0
    assert body["providers"] == {
        "primary": {"kind": "openai", "in_flight": 0, "queued": 0, "breaker": {"state": "closed", "recent_failures": 0}},
        "backup": {"kind": "anthropic", "in_flight": 0, "queued": 0, "breaker": None},
    }
    assert b"SECRET" not in verbose.body and b"127.0.0.1" not in verbose.body
