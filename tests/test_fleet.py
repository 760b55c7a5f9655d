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

from tests.processes import DEADLINE_S, RouterProcess, write_config
from tests.redis_support import needs_redis
from tests.test_dashboard import Feed
from tests.waiting import poll
from tests.wire import chat
from tornrouter.fleet import sockets
from tornrouter.fleet.redis_link import MAX_QUEUED, RedisLink
from tornrouter.fleet.sockets import SocketLink

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


@pytest.mark.gen_test(timeout=120)
async def test_every_worker_reaches_every_feed(spawn, tmp_path):
    router = await spawn(fleet_config(tmp_path, "router"), "--processes", "2").start()
    await router.wait_for("starting (request log:", count=2)
    feed = Feed(router.url + "/dashboard/events")
    try:
        await sees_instances(feed, 2)
        sent: list[str] = []

        async def both_workers_seen() -> bool:
            sent.extend(await send(router, 20, f"batch {len(sent)}"))
            return {e["worker"] for e in feed.entries()} == {0, 1}

        await poll(both_workers_seen, "entries of both workers in one feed", timeout=DEADLINE_S)
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
            await poll(lambda: {e["id"] for e in feed.entries()} >= set(sent), "both instances' requests",
                       timeout=DEADLINE_S)
            by_instance = Counter(e["instance"] for e in feed.entries() if e["id"] in sent)
            assert by_instance == {"alpha": 5, "beta": 3}
            assert {e["worker"] for e in feed.entries()} == {None}
            assert len(feed.entries()) == len(set(e["id"] for e in feed.entries()))  # none twice
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
    router = await redis_instance(spawn, tmp_path, "solo", redis_server.url).start()
    feed = Feed(router.url + "/dashboard/events")
    try:
        await sees_instances(feed, 1)
        redis_server.kill()
        sent = await send(router, 10, "during")
        await router.wait_for(OUTAGE)
        sent += await send(router, 10, "still during")
        await poll(lambda: {e["id"] for e in feed.entries()} >= set(sent), "this process's own requests",
                   timeout=DEADLINE_S)
        await asyncio.sleep(2.5)  # several ticks' health messages fail meanwhile: still one line
        assert router.output().count(OUTAGE) == 1
        redis_server.start()
        await router.wait_for("fleet link) reachable again")
        await send(router, 3, "after")
        await asyncio.sleep(1.5)
        out = router.output()
        assert out.count(OUTAGE) == 1 and out.count("fleet link) reachable again") == 1
    finally:
        await feed.close()


@pytest.mark.gen_test(timeout=60)
async def test_a_worker_that_never_reads_costs_the_others_nothing(tmp_path):
    """The peer accepts and then never reads: what waits for it stays within
    ``MAX_BUFFERED``, and the rest is dropped and counted."""
    held: list[asyncio.StreamWriter] = []

    async def never_read(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    stuck = await asyncio.start_unix_server(never_read, path=str(tmp_path / "1.sock"))
    link = SocketLink(str(tmp_path), 0, 2)
    await link.start(lambda message: None)
    try:
        await poll(lambda: link.writers, "a connection to the stuck worker")
        writer = link.writers[1]
        message = b"x" * 65536
        for _ in range(1000):  # 64 MB, far more than the socket takes
            link.send(message)
            assert writer.transport.get_write_buffer_size() <= sockets.MAX_BUFFERED
        assert link.dropped > 0
    finally:
        await link.aclose()
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
