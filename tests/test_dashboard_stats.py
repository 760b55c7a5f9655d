"""The dashboard's aggregate (``GET /dashboard/stats``) and the feed's
``event: stats`` and ``event: health``, against a real router and the fake
upstream.  Latencies are asserted by order (a delayed upstream is slower than
the echo provider, and no faster than its delay), never by a time budget."""

from __future__ import annotations

import asyncio
import json
import tracemalloc
from typing import Any

import pytest

from tests.configs import base_config, echo_only
from tests.fake_upstream import Reply
from tests.test_dashboard import Feed
from tests.waiting import poll
from tests.wire import OPENAI, chat
from tornrouter.config import parse_config
from tornrouter.errors import ConfigError
from tornrouter.events import NAMED_LIMIT, EventBus
from tornrouter.fleet import histogram
from tornrouter.fleet.aggregate import MAX_NAMES, OTHER, Aggregate

SERIES = {"window", "step", "t", "requests", "latency_ms", "ttft_ms", "overhead_ms", "error_rate", "tokens", "cost", "cache"}
DELAY_S = 0.5


def total(stats: dict[str, Any]) -> int:
    return sum(sum(series) for series in stats["requests"].values())


async def stats(router: Any, window: int | str = 300, **headers: str) -> dict[str, Any]:
    response = await router.client.fetch(f"{router.url}/dashboard/stats?window={window}", headers=headers,
                                         raise_error=False)
    assert response.code == 200, response.body
    assert response.headers["Content-Type"] == "application/json"
    return json.loads(response.body)


@pytest.mark.gen_test(timeout=60)
async def test_stats_count_what_was_served(router, upstream):
    upstream.then(Reply(delay=DELAY_S), Reply(delay=DELAY_S), Reply(status=400, body={"error": {"message": "bad"}}),
                  Reply(status=500, body={"error": {"message": "down"}}))
    answers = [await router.post(OPENAI, chat("gpt-4o", f"slow {i}", stream=False)) for i in range(2)]
    answers += [await router.post(OPENAI, chat("gpt-4o", f"fails {i}", stream=False)) for i in range(2)]
    answers += [await router.post(OPENAI, chat("local", f"fast {i}", stream=False)) for i in range(4)]
    answers.append(await router.post(OPENAI, chat("local", "streamed", stream=True)))
    codes = sorted(a.code for a in answers)
    assert codes[:7] == [200] * 7 and 400 <= codes[7] < 500 and codes[8] >= 500
    await poll(lambda: len(router.log_entries()) == 9, "the nine entries")

    body = await stats(router)
    assert set(body) == SERIES
    assert (body["window"], body["step"], len(body["t"])) == (300, 1, 300)
    assert all(b - a == 1 for a, b in zip(body["t"], body["t"][1:]))
    assert total(body) == len(router.log_entries()) == 9
    assert [sum(body["requests"][c]) for c in ("2xx", "3xx", "4xx", "5xx", "other")] == [7, 0, 1, 1, 0]
    for series in (body["latency_ms"], body["ttft_ms"], body["overhead_ms"]):
        for values in series.values():
            assert len(values) == 300
    # The slow requests are in a bin no lower than their delay, and above the echo's.
    assert max(v for v in body["latency_ms"]["p99"] if v is not None) >= DELAY_S * 1000 * 0.9
    assert min(v for v in body["latency_ms"]["p50"] if v is not None) < DELAY_S * 1000
    assert any(v is not None for v in body["ttft_ms"]["p50"])  # the stream
    # Steps without data: null percentiles, zero counts.
    assert body["latency_ms"]["p50"][0] is None and body["requests"]["2xx"][0] == 0
    # Upstream failures count against their provider, not the echo.
    assert sum(r for r in body["error_rate"]["oai"] if r) > 0
    assert not any(body["error_rate"]["echo"])
    assert sum(body["tokens"]["out"]) > 0

    recent = router.runtime.fleet.aggregate.recent()
    assert recent["oai"]["requests"] == 4 and recent["oai"]["error_rate"] == 0.25
    assert recent["oai"]["p95_ms"] >= DELAY_S * 1000 * 0.9 > recent["echo"]["p95_ms"]

    for window, step in ((3600, 10), (86400, 60)):
        wide = await stats(router, window)
        assert (wide["window"], wide["step"], len(wide["t"])) == (window, step, window // step)
        assert all(b - a == step for a, b in zip(wide["t"], wide["t"][1:]))
        assert wide["t"][-1] <= body["t"][-1] < wide["t"][-1] + step
        assert total(wide) == 9


@pytest.mark.gen_test
async def test_stats_skip_dry_runs_and_mirror_records(router):
    await router.post(OPENAI, chat("local", "counted", stream=False))
    entry = router.log_entries()[0]
    dry = {**entry, "id": "dry", "dry_run": True}
    router.runtime.events.publish(json.dumps(dry), dry)
    router.runtime.events.publish(json.dumps({"type": "mirror", "ts_ms": entry["ts_ms"], "id": entry["id"],
                                              "status": 200, "latency_ms": 3.0}))
    for odd in ("not json", "[1, 2]", '{"ts_ms": "soon"}', '{"ts_ms": 1e400}', '{"ts_ms": 1, "usage": [3]}'):
        router.runtime.events.publish(odd)  # the feed shows what it is given; the aggregate skips it
    assert total(await stats(router)) == 1


@pytest.mark.gen_test
async def test_stats_refuse_another_window(router):
    for window in ("60", "abc", ""):
        response = await router.get(f"/dashboard/stats?window={window}")
        assert response.code == 400
        error = json.loads(response.body)["error"]
        assert error["param"] == "window" and "300, 3600, 86400" in error["message"]


@pytest.mark.gen_test
async def test_stats_need_the_admin_key(start_router, upstream, tmp_path):
    router = start_router(base_config(upstream.url, str(tmp_path / "r.jsonl"), server={"admin_key": "adm-1"}))
    assert (await router.get("/dashboard/stats")).code == 401
    assert (await router.get("/dashboard/stats?key=adm-1")).code == 200
    assert total(await stats(router, 300, Authorization="Bearer adm-1")) == 0


@pytest.mark.gen_test
async def test_entries_say_which_instance_served_them(start_router, upstream, tmp_path):
    router = start_router(base_config(upstream.url, str(tmp_path / "r.jsonl"), server={"instance": "gw-7"}))
    await router.post(OPENAI, chat("local", "who", stream=False))
    (entry,) = router.log_entries()
    assert (entry["instance"], entry["worker"]) == ("gw-7", None)


def test_an_empty_instance_name_is_refused():
    with pytest.raises(ConfigError) as refused:
        parse_config(echo_only(server={"instance": ""}), environ={})
    assert refused.value.problems == ["server.instance: must not be empty"]


def test_names_beyond_the_bound_add_up_under_other():
    now = 1_800_000_000
    aggregate = Aggregate(clock=lambda: now)
    for i in range(MAX_NAMES + 5):
        aggregate.add({"ts_ms": now * 1000, "status": 200, "provider": "p", "sent_model": f"m{i}", "key": "k",
                       "cost_usd": 0.5, "duration_ms": 10.0})
    cost = aggregate.window(300)["cost"]
    assert len(cost["model"]) == MAX_NAMES + 1 and cost["model"][OTHER][-1] == 2.5
    assert cost["provider"]["p"][-1] == cost["key"]["k"][-1] == (MAX_NAMES + 5) * 0.5


def test_percentiles_come_from_the_bins():
    counts = histogram.new()
    for ms in [10.0] * 50 + [100.0] * 45 + [1000.0] * 5:
        counts[histogram.bin_of(ms)] += 1
    p50, p95, p99 = histogram.percentiles(counts, (0.5, 0.95, 0.99))
    for read, true in ((p50, 10), (p95, 100), (p99, 1000)):  # each within its bin: 2**(1/4), 19 %, apart
        assert true / 1.1 < read < true * 1.1, (read, true)
    assert histogram.percentiles(histogram.new(), (0.5,)) == [None]


def test_a_full_day_stays_within_its_bound():
    """Every bucket of every ring filled, with the most names each kind may
    have: the rings hold their fixed number of buckets, in a few MB."""
    now = 1_800_000_000
    tracemalloc.start()
    try:
        aggregate = Aggregate(clock=lambda: now)
        for second in range(86400):
            aggregate.add({"ts_ms": (now - second) * 1000, "status": 200 + 100 * (second % 4),
                           "provider": f"p{second % 3}", "sent_model": f"m{second % 30}", "key": f"k{second % 30}",
                           "cost_usd": 0.001, "duration_ms": float(second % 20000), "stream": True,
                           "ttft_ms": 5.0, "overhead_ms": 1.0, "usage": {"input_tokens": 3, "output_tokens": 2},
                           "cache": {"outcome": "hit"}})
        aggregate.flush()
        held, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert {step: len(ring.slots) for step, ring in aggregate.rings.items()} == {1: 300, 10: 360, 60: 1440}
    assert all(bucket is not None for ring in aggregate.rings.values() for bucket in ring.slots)
    assert held < 32 * 1024 * 1024, held
    day = aggregate.window(86400)
    assert total(day) == now - day["t"][0] + 1  # one a second, from the first step's start
    assert len(day["cost"]["model"]) == MAX_NAMES + 1


# --- the feed's named events ------------------------------------------------------


@pytest.mark.gen_test(timeout=60)
async def test_feed_sends_stats_and_health_each_second(start_router, upstream, tmp_path):
    config = base_config(upstream.url, str(tmp_path / "r.jsonl"))
    config["providers"]["ant"]["breaker"] = {"failures": 1, "window_s": 60, "cooldown_s": 600}
    config["providers"]["oai"]["max_concurrent"] = 1
    router = start_router(config)
    await router.ready
    await router.runtime.fleet.start()
    feed = Feed(router.url + "/dashboard/events")
    try:
        first = await poll(lambda: feed.named("stats"), "an event: stats", timeout=10)
        assert set(first[0]) == SERIES - {"window", "step"}
        # An opened breaker, and requests held by a stalled upstream (one in flight, one queued).
        upstream.then(Reply(status=500, body={"error": {"message": "down"}}))
        assert (await router.post("/v1/messages", {"model": "claude-x", "max_tokens": 5,
                                                   "messages": [{"role": "user", "content": "hi"}]})).code >= 500
        gate = asyncio.Event()
        upstream.then(Reply(gate=gate), Reply(gate=gate))
        held = [asyncio.ensure_future(router.post(OPENAI, chat("gpt-4o", f"held {i}", stream=False))) for i in range(2)]

        def health_shows_it() -> dict[str, Any] | None:
            for health in reversed(feed.named("health")):
                providers = {p["name"]: p for p in health["providers"]}
                if providers["ant"]["breaker"] == "open" and providers["oai"]["in_flight"] == 1 \
                        and providers["oai"]["queued"] == 1:
                    return health
            return None

        health = await poll(health_shows_it, "health with ant open and oai busy", timeout=10)
        ant = {p["name"]: p for p in health["providers"]}["ant"]
        assert ant["requests"] == 1 and ant["error_rate"] == 1.0 and ant["p95_ms"] is not None
        assert health["instances"] == [{"instance": router.runtime.fleet.placement.instance, "worker": None,
                                        "seen_s_ago": 0.0}]
        gate.set()
        assert [(await h).code for h in held] == [200, 200]

        def stats_counted() -> bool:
            seen = feed.named("stats")
            return sum(sum(sum(v) for v in s["requests"].values()) for s in seen) == 3

        await poll(stats_counted, "the three requests in the stats events", timeout=10)
        seconds = [t for s in feed.named("stats") for t in s["t"]]
        assert seconds == sorted(set(seconds))  # each second once, in order
    finally:
        await feed.close()
        await router.runtime.fleet.aclose()


def test_a_feed_that_never_reads_stays_bounded():
    bus = EventBus(per_subscriber=100)
    subscriber = bus.subscribe()
    for i in range(5000):
        bus.publish(json.dumps({"id": i}))
        bus.announce("stats", json.dumps({"t": [i]}))
    assert len(subscriber.pending) == 100
    assert len(subscriber.named) == NAMED_LIMIT
    assert subscriber.named[-1] == 'event: stats\ndata: {"t": [4999]}\n\n'


@pytest.mark.gen_test
async def test_named_events_wake_the_feed_but_not_a_reader_of_entries_only():
    bus = EventBus()
    feed, entries_only = bus.subscribe(), bus.subscribe()
    bus.announce("health", "{}")
    assert await feed.next_events(5) == (["event: health\ndata: {}\n\n"], [])
    asyncio.get_running_loop().call_later(0.05, bus.publish, '{"id": "x"}')
    assert await entries_only.next_batch(5) == ['{"id": "x"}']
    asyncio.get_running_loop().call_later(0.05, feed.close)  # the browser went away
    assert await feed.next_events(60) == ([], ['{"id": "x"}'])
    assert await feed.next_events(60) == ([], [])
