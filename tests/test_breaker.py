"""The circuit breaker of a provider: ``failures`` failures within ``window_s``
open it; while open the provider is skipped (the next target answers, or a 503
with ``Retry-After``); after ``cooldown_s`` one request probes it, and the
probe's outcome closes or reopens it, even when the probe's client leaves.
``/health?verbose=1`` and the dashboard show each breaker's state.  The
breaker's clock is moved by hand, so nothing waits for a cooldown."""

from __future__ import annotations

import asyncio

import pytest

from tests.answers import native_error, served_by
from tests.configs import primary_and_backup
from tests.fake_upstream import Reply
from tests.upstream_faults import (
    attempts, error_body, health, leave_after_sending, logged_once, request_body, scripted, send,
)
from tests.waiting import poll
from tests.wire import OPENAI


class Clock:
    """A clock the test moves by hand (injected into a provider's breaker)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.gen_test
@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
async def test_breaker_opens_is_skipped_and_a_probe_closes_it(start_router, fakes, tmp_path, stream):
    primary, backup = fakes(), fakes()
    primary.then(*[Reply(status=500, body=error_body("openai", "broken"))] * 3)
    router = start_router(primary_and_backup(
        tmp_path, OPENAI, primary.url, backup.url,
        primary_options={"breaker": {"failures": 3, "window_s": 60, "cooldown_s": 30}},
    ))
    clock = Clock()
    router.runtime.providers["primary"].breaker.clock = clock
    ask = lambda: send(router, OPENAI, request_body(OPENAI, stream=stream))  # noqa: E731

    assert (await health(router))["providers"]["primary"]["breaker"]["state"] == "closed"
    failing = [(await ask())[0] for _ in range(3)]
    state = (await health(router))["providers"]["primary"]["breaker"]
    assert state["state"] == "open" and state["retry_in_s"] == 30

    skipped, _ = await ask()  # open: the primary is not even asked
    assert skipped.code == 200
    served_by(skipped, "backup", "model-b")
    assert len(primary.requests) == 3

    clock.now += 31  # past the cooldown: the next request is the probe, and the primary has recovered
    assert (await health(router))["providers"]["primary"]["breaker"]["retry_in_s"] == 0
    probe, _ = await ask()
    assert probe.code == 200
    served_by(probe, "primary", "model-a")
    assert (await health(router))["providers"]["primary"]["breaker"] == {"state": "closed", "recent_failures": 0}

    entries = await logged_once(router, *failing, skipped, probe)
    for response in failing:
        assert attempts(entries[response.headers["x-request-id"]]) == [("primary", 500), ("backup", 200)]
    skip = entries[skipped.headers["x-request-id"]]["attempts"]
    assert [(a["provider"], a["status"]) for a in skip] == [("primary", None), ("backup", 200)]
    assert "circuit open" in skip[0]["error"]
    assert attempts(entries[probe.headers["x-request-id"]]) == [("primary", 200)]


@pytest.mark.gen_test
async def test_a_failed_probe_opens_the_circuit_again(start_router, fakes, tmp_path):
    primary = fakes()
    primary.then(*[Reply(status=502, body=error_body("openai", "broken"))] * 3)
    router = start_router(primary_and_backup(
        tmp_path, OPENAI, primary.url, None, primary_options={"breaker": {"failures": 2, "window_s": 60, "cooldown_s": 5}},
    ))
    clock = Clock()
    router.runtime.providers["primary"].breaker.clock = clock

    first = [await router.post(OPENAI, request_body(OPENAI)) for _ in range(2)]
    refused = await router.post(OPENAI, request_body(OPENAI))  # open, and no fallback: 503
    clock.now += 6
    probe = await router.post(OPENAI, request_body(OPENAI))  # the probe fails: open again

    assert [r.code for r in first] == [502, 502] and probe.code == 502
    assert refused.code == 503 and refused.headers["Retry-After"]
    assert "circuit open" in native_error(OPENAI, refused)
    assert (await health(router))["providers"]["primary"]["breaker"]["state"] == "open"
    assert len(primary.requests) == 3
    await logged_once(router, *first, refused, probe)


@pytest.mark.gen_test
async def test_a_probe_whose_client_leaves_does_not_wedge_the_breaker(start_router, fakes, tmp_path):
    """The half-open probe is a streamed request whose client goes away while the
    upstream is silent: the breaker must let the next request probe."""
    primary = fakes()
    gate = asyncio.Event()
    primary.then(Reply(status=500, body=error_body("openai", "broken")),
                 Reply(sse=scripted("openai"), gate=gate))
    router = start_router(primary_and_backup(
        tmp_path, OPENAI, primary.url, None, primary_options={"breaker": {"failures": 1, "window_s": 60, "cooldown_s": 5}},
    ))
    clock = Clock()
    router.runtime.providers["primary"].breaker.clock = clock
    assert (await router.post(OPENAI, request_body(OPENAI))).code == 500  # the upstream's own, relayed
    clock.now += 6

    await leave_after_sending(router, OPENAI, request_body(OPENAI, stream=True), lambda: len(primary.requests) == 2)
    await poll(lambda: primary.closed, "the router to let go of the upstream")

    after = await router.post(OPENAI, request_body(OPENAI))  # must be let through as the new probe
    assert after.code == 200
    assert (await health(router))["providers"]["primary"]["breaker"]["state"] == "closed"
    gate.set()


@pytest.mark.gen_test
async def test_breaker_counts_failures_within_the_window_not_in_a_row(start_router, fakes, tmp_path):
    """Failing every other request is failing: the successes between the failures
    do not reset the count; failures older than window_s do not count."""
    primary, backup = fakes(), fakes()
    fail = Reply(status=500, body=error_body("openai", "broken"))
    primary.then(fail, Reply(), fail, Reply(), fail, Reply())
    router = start_router(primary_and_backup(
        tmp_path, OPENAI, primary.url, backup.url,
        primary_options={"breaker": {"failures": 3, "window_s": 60, "cooldown_s": 30}},
    ))
    clock = Clock()
    router.runtime.providers["primary"].breaker.clock = clock

    await router.post(OPENAI, request_body(OPENAI))  # fails (the backup answers)
    clock.now += 61  # that failure ages out of the window
    for _ in range(4):  # ok, fail, ok, fail: two failures within the window
        await router.post(OPENAI, request_body(OPENAI))
    assert (await health(router))["providers"]["primary"]["breaker"] == {"state": "closed", "recent_failures": 2}
    await router.post(OPENAI, request_body(OPENAI))  # ok
    await router.post(OPENAI, request_body(OPENAI))  # the default answer: ok
    assert (await health(router))["providers"]["primary"]["breaker"]["state"] == "closed"
    primary.then(fail)
    await router.post(OPENAI, request_body(OPENAI))  # the third failure within the window
    assert (await health(router))["providers"]["primary"]["breaker"]["state"] == "open"


@pytest.mark.gen_test(timeout=90)
async def test_dashboard_shows_provider_breakers_and_attempts(start_router, fakes, tmp_path, browser):
    primary, backup = fakes(), fakes()
    primary.then(*[Reply(status=500, body=error_body("openai", "broken"))] * 2)
    router = start_router(primary_and_backup(
        tmp_path, OPENAI, primary.url, backup.url, server={"dashboard": True},
        primary_options={"breaker": {"failures": 2, "window_s": 60, "cooldown_s": 600}},
    ))
    card = "document.querySelector('#health .health-card[data-provider=\"primary\"]')"
    await router.ready
    await router.runtime.fleet.start()  # event: health once a second, as a served router has it
    try:
        await browser.goto(router.url + "/dashboard")
        await browser.wait_for(f"{card} !== null && {card}.dataset.breaker === 'closed'")
        # No breaker configured: never open, shown closed.
        backup_card = "document.querySelector('#health .health-card[data-provider=\"backup\"]')"
        assert await browser.evaluate(f"{backup_card}.dataset.breaker") == "closed"

        failed = [await router.post(OPENAI, request_body(OPENAI)) for _ in range(2)]
        assert [r.code for r in failed] == [200, 200]
        await browser.wait_for(f"{card}.dataset.breaker === 'open'", timeout=20)
        assert "circuit open" in await browser.evaluate(f"{card}.title")
    finally:
        await router.runtime.fleet.aclose()

    request_id = failed[0].headers["x-request-id"]
    await browser.click(f'#rows tr[data-id="{request_id}"] td.time')
    await browser.wait_for("document.querySelectorAll('#detail tr.attempt').length === 2")
    rows = await browser.evaluate(
        "Array.from(document.querySelectorAll('#detail tr.attempt'), tr => Array.from(tr.cells, td => td.textContent))"
    )
    assert rows[0][1:4] == ["primary", "model-a", "500"] and "broken" in rows[0][5]
    assert rows[1][1:4] == ["backup", "model-b", "200"]
