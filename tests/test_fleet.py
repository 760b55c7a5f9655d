"""The whole fleet on every dashboard: ``--processes 2`` (the workers'
sockets) and two instances on one Redis (pub/sub), run as users run them
(``python -m tornrouter`` in a subprocess); a Redis that goes away; peers
that never read."""

from __future__ import annotations

import asyncio
import json
import signal
import socket
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from tests.configs import echo_only
from tests.processes import DEADLINE_S, RouterProcess, write_config
from tests.redis_support import needs_redis
from tests.test_dashboard import Feed
from tests.waiting import poll
from tests.wire import chat
from tornrouter.config import parse_config
from tornrouter.events import EventBus
from tornrouter.fleet import Fleet, Placement, sockets
from tornrouter.fleet.redis_link import MAX_QUEUED, RedisLink
from tornrouter.fleet.sockets import SocketLink
from tornrouter.metrics import Metrics

OUTAGE = "the dashboard shows this process's requests only"


def fleet_config(tmp_path: Path, name: str, **sections: Any) -> Path:
    path = write_config(tmp_path / f"{name}.yaml", None, tmp_path / f"{name}.jsonl")
    config = json.loads(path.read_text())
    for section, values in sections.items():
        config[section] = {**config.get(section, {}), **values}
    path.write_text(json.dumps(config))
    return path


async def stats_total(router: RouterProcess) -> int:
    response = await router.client.fetch(router.url + "/dashboard/stats?window=300", raise_error=False)
    assert response.code == 200, response.body
    return sum(sum(series) for series in json.loads(response.body)["requests"].values())


async def sees_instances(feed: Feed, count: int) -> None:
    await poll(lambda: any(len(h["instances"]) == count for h in feed.named("health")),
               f"{count} processes in the feed's health", timeout=DEADLINE_S)


async def send(router: RouterProcess, count: int, label: str, size: int = 0) -> list[str]:
    responses = await asyncio.gather(*(router.post(chat("m", f"{label} {i} " + "x" * size)) for i in range(count)))
    assert [r.code for r in responses] == [200] * count
    return [r.headers["x-request-id"] for r in responses]


async def until_both_workers_served(router, feed: Feed) -> list[str]:
    """Sends batches until the feed has entries of workers 0 and 1; the ids sent."""
    sent: list[str] = []

    async def both_workers_seen() -> bool:
        sent.extend(await send(router, 20, f"batch {len(sent)}"))
        return {e["worker"] for e in feed.entries()} == {0, 1}

    await poll(both_workers_seen, "entries of both workers in one feed", timeout=DEADLINE_S)
    return sent


@pytest.mark.gen_test(timeout=120)
async def test_every_worker_reaches_every_feed(spawn, tmp_path):
    router = await spawn(fleet_config(tmp_path, "router"), "--processes", "2").start()
    await router.wait_for("starting (request log:", count=2)
    feed = Feed(router.url + "/dashboard/events")
    try:
        await sees_instances(feed, 2)
        sent = await until_both_workers_served(router, feed)
        # Large entries cross too: whole up to 1 MB, without their texts beyond.
        sent.extend(await send(router, 6, "large", size=300_000))
        sent.extend(await send(router, 2, "huge", size=1_200_000))
        await poll(lambda: {e["id"] for e in feed.entries()} >= set(sent), "every request in the feed",
                   timeout=DEADLINE_S)
        entries = {e["id"]: e for e in feed.entries()}
        assert {entries[i]["instance"] for i in sent} == {f"{socket.gethostname()}:{router.port}"}
        for entry in entries.values():
            text = entry["messages"][-1]["content"][0]["text"] if entry["messages"] else ""
            if text.startswith("large"):
                assert len(text) > 300_000
            elif entry.get("trimmed"):
                assert entry["messages"] is None and entry["response"] is None and entry["status"] == 200

        # The aggregate of each worker counts the whole fleet's requests.
        async def totals_add_up() -> bool:
            totals = [await stats_total(router) for _ in range(6)]  # new connections: either worker answers
            return all(t == len(sent) for t in totals)

        await poll(totals_add_up, f"stats totals of {len(sent)} from each worker", timeout=DEADLINE_S)

        # A reload keeps the fleet: the feed, the links and the counts carry on.
        router.send(signal.SIGHUP)
        await router.wait_for("config reloaded", count=2)
        before = len(sent)
        sent.extend(await send(router, 20, "after the reload"))
        await poll(lambda: {e["id"] for e in feed.entries()} >= set(sent), "the requests after the reload",
                   timeout=DEADLINE_S)
        assert {e["worker"] for e in feed.entries() if e["id"] in sent[before:]} <= {0, 1}
        await poll(totals_add_up, f"stats totals of {len(sent)} from each worker", timeout=DEADLINE_S)
    finally:
        await feed.close()
    router.send(signal.SIGTERM)
    assert await router.exit_code() == 0  # and no traceback from the links as the workers stop
    logged = sum(len((tmp_path / f"router.{w}.jsonl").read_text().splitlines()) for w in (0, 1))
    assert logged == len(sent)


def redis_instance(spawn: Any, tmp_path: Path, name: str, redis_url: str) -> RouterProcess:
    conf = fleet_config(tmp_path, name, server={"instance": name}, state={"backend": "redis", "url": redis_url,
                                                                          "timeout_s": 0.25})
    return spawn(conf)


@needs_redis
@pytest.mark.gen_test(timeout=120)
async def test_two_instances_on_one_redis_see_each_other(spawn, tmp_path, redis_server):
    alpha = await redis_instance(spawn, tmp_path, "alpha", redis_server.url).start()
    beta = await redis_instance(spawn, tmp_path, "beta", redis_server.url).start()
    feeds = [Feed(alpha.url + "/dashboard/events"), Feed(beta.url + "/dashboard/events")]
    try:
        for feed in feeds:
            await sees_instances(feed, 2)
        sent = await send(alpha, 5, "to alpha") + await send(beta, 3, "to beta")
        for feed in feeds:
            await poll(lambda feed=feed: {e["id"] for e in feed.entries()} >= set(sent), "both instances' requests",
                       timeout=DEADLINE_S)
            by_instance = Counter(e["instance"] for e in feed.entries() if e["id"] in sent)
            assert by_instance == {"alpha": 5, "beta": 3}
            assert {e["worker"] for e in feed.entries()} == {None}
            assert len(feed.entries()) == len({e["id"] for e in feed.entries()})  # none twice
        for router in (alpha, beta):
            async def counted(router: RouterProcess = router) -> bool:
                return await stats_total(router) == len(sent)

            await poll(counted, "stats totals of both instances' requests", timeout=DEADLINE_S)
    finally:
        for feed in feeds:
            await feed.close()


@needs_redis
@pytest.mark.gen_test(timeout=120)
async def test_a_redis_outage_is_logged_once_and_requests_go_on(spawn, tmp_path, redis_server):
    alpha = await redis_instance(spawn, tmp_path, "alpha", redis_server.url).start()
    beta = await redis_instance(spawn, tmp_path, "beta", redis_server.url).start()
    feed = Feed(alpha.url + "/dashboard/events")
    try:
        await sees_instances(feed, 2)
        redis_server.kill()
        sent = await send(alpha, 10, "during")
        await alpha.wait_for(OUTAGE)
        sent += await send(alpha, 10, "still during")
        await poll(lambda: {e["id"] for e in feed.entries()} >= set(sent), "this process's own requests",
                   timeout=DEADLINE_S)
        await asyncio.sleep(2.5)  # several ticks' health messages fail meanwhile: still one line
        assert alpha.output().count(OUTAGE) == 1
        redis_server.start()
        for router in (alpha, beta):
            await router.wait_for("fleet link) reachable again")
        # Subscribed again (each side within a second): the other instance's requests come through once more.
        after: list[str] = []

        async def beta_seen_again() -> bool:
            after.extend(await send(beta, 1, "after"))
            return any(e["id"] in after for e in feed.entries())

        await poll(beta_seen_again, "beta's requests after the outage", timeout=DEADLINE_S, every=0.2)
        for router in (alpha, beta):
            out = router.output()
            assert out.count(OUTAGE) == 1 and out.count("fleet link) reachable again") == 1
        metrics = (await alpha.client.fetch(alpha.url + "/metrics")).body.decode()
        assert "tornrouter_dashboard_dropped_total{" not in metrics  # a short outage: queued, then sent
    finally:
        await feed.close()


@pytest.mark.gen_test(timeout=60)
async def test_a_worker_that_never_reads_costs_the_others_nothing(tmp_path):
    """Worker 1 accepts and then never reads: what waits for it stays within
    ``MAX_BUFFERED``, the rest is dropped, and ``/metrics`` counts it."""
    held: list[asyncio.StreamWriter] = []

    async def never_read(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    stuck = await asyncio.start_unix_server(never_read, path=str(tmp_path / "1.sock"))
    metrics, bus = Metrics(), EventBus()
    placement = Placement("gw", worker=0, workers=2, socket_dir=str(tmp_path))
    fleet = Fleet(parse_config(echo_only(), environ={}), bus, placement, metrics.fleet_dropped)
    await fleet.start()
    try:
        link = fleet.link
        assert isinstance(link, SocketLink)
        await poll(lambda: link.writers, "a connection to the stuck worker")
        writer = link.writers[1]
        line = json.dumps({"ts_ms": 1, "status": 200, "messages": [], "note": "x" * 500_000})
        for _ in range(200):  # 100 MB, far more than the socket takes
            bus.publish(line)
            assert writer.transport.get_write_buffer_size() <= sockets.MAX_BUFFERED
        assert link.dropped > 0

        def counted() -> bool:
            return metrics.registry.get_sample_value("tornrouter_dashboard_dropped_total", {"link": "sockets"}) \
                == link.dropped

        await poll(counted, "the drops in /metrics", timeout=5)
    finally:
        await fleet.aclose()
        for w in held:
            w.close()
        stuck.close()


@needs_redis
@pytest.mark.gen_test(timeout=60)
async def test_messages_for_a_redis_that_is_away_stay_bounded(redis_server):
    redis_server.kill()
    link = RedisLink(redis_server.url, "tornrouter:dashboard", 0.25)
    await link.start(lambda message: None)
    try:
        for i in range(3 * MAX_QUEUED):
            link.send(b"message %d" % i)
        assert len(link.queue) <= MAX_QUEUED and link.dropped >= 2 * MAX_QUEUED - 1
        assert link.queue[-1] == b"message %d" % (3 * MAX_QUEUED - 1)  # the newest kept
    finally:
        await link.aclose()


@needs_redis
@pytest.mark.gen_test(timeout=120)
async def test_workers_on_redis_see_each_other_once(spawn, tmp_path, redis_server):
    """``--processes 2`` with Redis: Redis alone carries the entries, so none comes twice."""
    conf = fleet_config(tmp_path, "router", state={"backend": "redis", "url": redis_server.url, "timeout_s": 0.25})
    router = await spawn(conf, "--processes", "2").start()
    await router.wait_for("starting (request log:", count=2)
    feed = Feed(router.url + "/dashboard/events")
    try:
        await sees_instances(feed, 2)
        sent = await until_both_workers_served(router, feed)
        await poll(lambda: {e["id"] for e in feed.entries()} >= set(sent), "every request in the feed",
                   timeout=DEADLINE_S)
        await asyncio.sleep(0.5)  # time for a second copy, were one on its way
        ids = [e["id"] for e in feed.entries()]
        assert sorted(ids) == sorted(set(ids)) and set(ids) == set(sent)

        async def totals_add_up() -> bool:
            return all([await stats_total(router) == len(sent) for _ in range(6)])

        await poll(totals_add_up, "stats totals from each worker", timeout=DEADLINE_S)
    finally:
        await feed.close()
    router.send(signal.SIGTERM)
    assert await router.exit_code() == 0
