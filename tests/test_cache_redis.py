"""The response cache in Redis (``state.backend: redis``): two router
instances share one real ``redis-server``, so an answer stored by one is a
hit on the other; entries are compressed and expire in Redis; and when Redis
dies mid-run the cache fails open (requests go upstream, the outage logged
once per instance) and comes back with Redis."""

from __future__ import annotations

import json
import logging
import zlib

import pytest
import redis

from tests.cache_support import ask, cached, outcome, sdk_answer, streamed
from tests.redis_support import needs_redis
from tests.waiting import poll
from tests.wire import ANTHROPIC, KIND, OPENAI
from tornrouter.validate_stream import validate

pytestmark = needs_redis


@pytest.fixture
def pair(start_router, upstream, redis_server, tmp_path, io_loop):
    """``pair(**rule)`` -> two routers sharing ``redis_server``, the cache on every route."""
    started = []

    def start(**rule):
        routers = []
        for i in range(2):
            config = cached(upstream.url, str(tmp_path / f"requests-{i}.jsonl"), **rule)
            config["state"] = {"backend": "redis", "url": redis_server.url, "timeout_s": 0.25}
            router = start_router(config)
            router.runtime.cache.outage.retry_s = 0.05  # notice Redis is back quickly
            routers.append(router)
        started.extend(routers)
        return routers

    yield start
    for router in started:  # before the routers stop: close the Redis connections
        io_loop.run_sync(router.runtime.cache.aclose)
        io_loop.run_sync(router.runtime.access.aclose)


@pytest.mark.gen_test(timeout=60)
@pytest.mark.parametrize("path,model", [(OPENAI, "gpt-4o"), (ANTHROPIC, "to-openai")])
async def test_an_answer_stored_by_one_instance_is_a_hit_on_the_other(pair, upstream, redis_server, path, model):
    a, b = pair()
    stored = await sdk_answer(a.url, path, model, stream=True)
    await poll(lambda: a.log_entries(), "the stream's log entry")
    await a.runtime.cache.drain()  # the entry is written to Redis after the answer
    for stream in (False, True):
        hit = await sdk_answer(b.url, path, model, stream=stream)
        assert hit.headers["x-tornrouter-cache"] == "hit" and hit.same_answer(stored)
    response, raw = await b.post_stream(path, streamed(path, ask(path, model)))
    assert outcome(response) == "hit" and validate(raw, KIND[path]) == []
    assert len(upstream.requests) == 1

    client = redis.Redis(port=redis_server.port)
    try:
        (name,) = client.keys("tornrouter:cache:*")
        value = client.get(name)
        assert value[:1] == b"\x78"  # zlib
        entry = json.loads(zlib.decompress(value))
        assert len(zlib.decompress(value)) > len(value)
        assert entry["response"]["usage"]["output_tokens"] == 8
        assert b"SECRET" not in zlib.decompress(value)
        assert 0 < client.pttl(name) <= 600_000  # ttl_s, kept by Redis
    finally:
        client.close()


@pytest.mark.gen_test(timeout=90)
async def test_redis_killed_mid_run_the_cache_fails_open_and_comes_back(pair, upstream, redis_server, caplog):
    a, b = pair()
    body = ask(OPENAI, "gpt-4o")
    assert outcome(await a.post(OPENAI, body)) == "store"
    await a.runtime.cache.drain()
    assert outcome(await b.post(OPENAI, body)) == "hit"

    caplog.set_level(logging.INFO, logger="tornrouter")
    redis_server.kill()
    down = [await r.post(path, ask(path, "gpt-4o")) for r in (a, b) for path in (OPENAI, ANTHROPIC) * 3]
    assert [r.code for r in down] == [200] * 12  # served by the upstream, as without a cache
    assert {outcome(r) for r in down} == {"bypass"}
    assert len(upstream.requests) == 1 + 12
    outages = [r for r in caplog.records if "unreachable" in r.getMessage() and "response cache" in r.getMessage()]
    assert len(outages) == 2  # once per instance, not per request
    reasons = {e["cache"]["reason"] for r in (a, b) for e in r.log_entries() if e["cache"]["outcome"] == "bypass"}
    assert reasons == {"the cache's store is unreachable"}

    redis_server.start()  # empty: nothing persisted

    async def cached_again() -> bool:
        return outcome(await a.post(OPENAI, body)) == "store"

    await poll(cached_again, "the cache to store again", timeout=30, every=0.05)
    await a.runtime.cache.drain()
    assert outcome(await b.post(OPENAI, body)) in ("hit", "bypass")  # b may not have retried Redis yet

    async def b_hits() -> bool:
        return outcome(await b.post(OPENAI, body)) == "hit"

    await poll(b_hits, "the other instance to read Redis again", timeout=30, every=0.05)
    assert len([r for r in caplog.records if "reachable again" in r.getMessage()]) == 2
    assert not [r for r in caplog.records if r.exc_info]  # nothing crashed
