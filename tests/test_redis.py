"""Two router instances sharing one real ``redis-server``: one limit across both
under concurrent load, and what happens when Redis dies and comes back.

Each test starts its own ``redis-server`` on a free loopback port, in a temp
dir, persisting nothing; the tests are skipped (saying why) only when the
binary is not installed."""

from __future__ import annotations

import asyncio
import json
import logging

import pytest

from tests.access_support import ADMIN_KEY, TEAM_A, TEAM_B, bearer, error_of
from tests.fake_upstream import Reply
from tests.redis_support import needs_redis
from tests.waiting import poll
from tests.wire import ANTHROPIC, OPENAI, body_for, chat

pytestmark = needs_redis


@pytest.fixture
def instances(start_router, redis_server, io_loop, monkeypatch):
    """``instances(**config)`` -> two routers sharing ``redis_server``."""
    monkeypatch.setenv("TEAM_A_KEY", TEAM_A)
    started = []

    def start(*, on_error: str = "fail_open", **team_a):
        config = {
            "server": {"dashboard": False, "admin_key": ADMIN_KEY},
            "keys": [{"name": "team-a", "key": "${TEAM_A_KEY}", **team_a}, {"name": "team-b", "key": TEAM_B}],
            "state": {"backend": "redis", "url": redis_server.url, "on_error": on_error, "timeout_s": 0.25},
        }
        pair = [start_router(**config), start_router(**config)]
        for router in pair:
            router.runtime.access.outage.retry_s = 0.05  # notice Redis is back quickly
        started.extend(pair)
        return pair

    yield start
    for router in started:  # before the routers stop: close the Redis connections
        io_loop.run_sync(router.runtime.access.aclose)


@pytest.mark.gen_test(timeout=60)
async def test_two_instances_enforce_one_limit_under_concurrent_load(instances):
    a, b = instances(rpm=7)
    responses = await asyncio.gather(*[
        router.post(path, body_for(path, "local-echo"), headers=bearer(TEAM_A))
        for _ in range(6) for router in (a, b) for path in (OPENAI, ANTHROPIC)
    ])
    codes = [r.code for r in responses]
    assert codes.count(200) == 7 and codes.count(429) == 17
    assert all(1 <= int(r.headers["Retry-After"]) <= 60 for r in responses if r.code == 429)
    # another key's limit is its own
    assert (await b.post(OPENAI, chat("local-echo"), headers=bearer(TEAM_B))).code == 200
    # usage totals are the sum of both instances'
    for router in (a, b):
        await router.runtime.access.drain()
    response = await a.client.fetch(a.url + "/v1/usage?period=day", headers=bearer(ADMIN_KEY))
    report = json.loads(response.body)
    assert report["keys"]["team-a"]["total"]["requests"] == 7
    assert report["keys"]["team-b"]["total"]["requests"] == 1


@pytest.mark.gen_test(timeout=60)
async def test_a_budget_spent_on_one_instance_is_spent_on_the_other(instances):
    a, b = instances(budget_usd_per_day=0.0001)
    # the fake upstream's gpt-4o answer at the default prices costs 0.0001075 USD
    assert (await a.post(OPENAI, chat("gpt-4o"), headers=bearer(TEAM_A))).code == 200
    await a.runtime.access.drain()
    refused = await b.post(ANTHROPIC, body_for(ANTHROPIC, "local-echo"), headers=bearer(TEAM_A))
    assert refused.code == 429 and "daily budget" in error_of(ANTHROPIC, refused.body)["message"]


@pytest.mark.gen_test(timeout=60)
async def test_concurrency_slots_are_shared(instances, upstream):
    a, b = instances(concurrency=2)
    upstream.then(Reply(delay=0.5), Reply(delay=0.5))
    slow = [asyncio.ensure_future(r.post(OPENAI, chat("gpt-4o"), headers=bearer(TEAM_A))) for r in (a, b)]
    await poll(lambda: len(upstream.requests) == 2, "both slow requests to reach the upstream")
    third = await a.post(OPENAI, chat("local-echo"), headers=bearer(TEAM_A))
    assert third.code == 429 and "2 requests in flight" in error_of(OPENAI, third.body)["message"]
    assert [r.code for r in await asyncio.gather(*slow)] == [200, 200]

    async def admitted() -> bool:
        return (await b.post(OPENAI, chat("local-echo"), headers=bearer(TEAM_A))).code == 200

    await poll(admitted, "the slots given back", timeout=15, every=0.05)


@pytest.mark.gen_test(timeout=90)
@pytest.mark.parametrize("on_error", ["fail_open", "fail_closed"])
async def test_redis_down_then_back(instances, redis_server, on_error, caplog):
    a, b = instances(rpm=3, on_error=on_error)
    assert [(await r.post(OPENAI, chat("local-echo"), headers=bearer(TEAM_A))).code for r in (a, b)] == [200, 200]

    caplog.set_level(logging.INFO, logger="tornrouter.access")
    redis_server.kill()
    down = [await r.post(path, body_for(path, "local-echo"), headers=bearer(TEAM_A)) for r in (a, b) for path in (OPENAI, ANTHROPIC) for _ in range(3)]
    if on_error == "fail_open":
        assert [r.code for r in down] == [200] * 12  # served without limits, more than rpm allows
    else:
        assert [r.code for r in down] == [503] * 12
        for response, path in zip(down, [OPENAI] * 3 + [ANTHROPIC] * 3 + [OPENAI] * 3 + [ANTHROPIC] * 3):
            assert "state backend unreachable" in error_of(path, response.body)["message"]
            assert response.headers["Retry-After"] == "1"
    # a key without limits needs no state: served either way
    assert (await a.post(OPENAI, chat("local-echo"), headers=bearer(TEAM_B))).code == 200
    assert (await a.get("/health")).code == 200
    outages = [r for r in caplog.records if "unreachable" in r.getMessage()]
    assert len(outages) == 2  # once per instance, not per request
    assert all(ADMIN_KEY not in r.getMessage() and TEAM_A not in r.getMessage() for r in caplog.records)

    redis_server.start()  # empty: nothing persisted

    async def enforced() -> bool:
        codes = [(await r.post(OPENAI, chat("local-echo"), headers=bearer(TEAM_A))).code for r in (a, b)]
        return 429 in codes

    await poll(enforced, "the limit to be enforced again", timeout=30, every=0.05)
    assert all(r.runtime.access.outage.since is None for r in (a, b))
    burst = await asyncio.gather(*[r.post(OPENAI, chat("local-echo"), headers=bearer(TEAM_A)) for r in (a, b) for _ in range(4)])
    assert [r.code for r in burst] == [429] * 8
    assert len([r for r in caplog.records if "reachable again" in r.getMessage()]) == 2
    assert not [r for r in caplog.records if r.exc_info]  # nothing crashed
