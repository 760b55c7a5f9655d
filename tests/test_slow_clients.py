"""Slow clients and too many connections, against a real router on loopback
(``tornrouter/server.py``): connections that trickle their headers or body, or
sit idle after a request, are closed once their timeout has passed, while
ordinary requests go on being served; connections beyond
``server.max_connections`` are closed at once.

A slow client here keeps sending, one byte every ``DRIP_S``, far more often
than any timeout: only a deadline for the whole headers or body can stop it.
Nothing asserts an upper bound on how long anything took; waits give up after
``DEADLINE_S``, which only a connection the server never closes reaches.
"""

from __future__ import annotations

import asyncio
import logging
import resource
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest
from tornado.testing import bind_unused_port

from tests.configs import echo_only
from tests.waiting import poll
from tests.wire import OPENAI, chat
from tornrouter.runtime import Runtime
from tornrouter.config import ServerConfig, parse_config
from tornrouter.errors import ConfigError
from tornrouter.lifecycle import Service
from tornrouter.server import SPARE_FDS

ROOT = Path(__file__).resolve().parent.parent
DEADLINE_S = 20.0
DRIP_S = 0.2
TIMEOUT_S = 2.0  # each of the three, in the tests that are about them
SLOW_CLIENTS = 100  # of each kind: 300 connections at once

HEADERS = b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: "  # never ends: 'a' after 'a'
BODY = b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 100000\r\n\r\n"  # a space at a time
KEEP_ALIVE = b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"  # answered, then silence


@pytest.fixture(autouse=True)
def enough_open_files():
    """Both ends of every connection are in this process."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = 4096 if hard == resource.RLIM_INFINITY else min(4096, hard)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
    yield
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


@dataclass
class SlowClient:
    """One raw connection: ``head`` at once, then ``drip`` a byte every ``DRIP_S``."""

    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    drip: bytes
    opened: float

    @classmethod
    async def open(cls, port: int, head: bytes, drip: bytes = b"") -> SlowClient:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(head)
        return cls(reader, writer, drip, asyncio.get_running_loop().time())

    async def closed_after(self, deadline_s: float = DEADLINE_S) -> float | None:
        """Seconds from the connect until the server closed the connection, or
        None if it was still open ``deadline_s`` after the connect."""
        loop = asyncio.get_running_loop()
        try:
            while loop.time() - self.opened < deadline_s:
                try:
                    data = await asyncio.wait_for(self.reader.read(4096), DRIP_S)
                except asyncio.TimeoutError:
                    self.writer.write(self.drip)
                    continue
                if not data:
                    return loop.time() - self.opened
            return None
        except ConnectionError:  # reset: closed too
            return loop.time() - self.opened
        finally:
            self.writer.close()


async def open_many(port: int, head: bytes, drip: bytes, count: int) -> list[SlowClient]:
    clients: list[SlowClient] = []
    while len(clients) < count:  # a batch at a time: the listen backlog is 128
        batch = min(25, count - len(clients))
        clients += await asyncio.gather(*(SlowClient.open(port, head, drip) for _ in range(batch)))
    return clients


async def keep_asking(router, stop: asyncio.Event) -> list[int]:
    """Ordinary requests, one after another, until ``stop``: their statuses."""
    codes: list[int] = []
    while not stop.is_set() and len(codes) < 500:
        codes.append((await router.post(OPENAI, chat("echo-model", f"hello {len(codes)}"))).code)
        codes.append((await router.get("/health")).code)
        await asyncio.sleep(0.02)
    return codes


@pytest.mark.gen_test(timeout=90)
async def test_hundreds_of_slow_clients_are_cut_off_while_others_are_served(start_router, caplog):
    timeouts = {"header_timeout_s": TIMEOUT_S, "body_timeout_s": TIMEOUT_S, "idle_timeout_s": TIMEOUT_S}
    router = start_router(server=timeouts)
    slow = await open_many(router.port, HEADERS, b"a", SLOW_CLIENTS)
    slow += await open_many(router.port, BODY, b" ", SLOW_CLIENTS)
    slow += await open_many(router.port, KEEP_ALIVE, b"", SLOW_CLIENTS)
    stop = asyncio.Event()
    asking = asyncio.ensure_future(keep_asking(router, stop))
    closed = await asyncio.gather(*(client.closed_after() for client in slow))
    stop.set()
    codes = await asking

    assert None not in closed, f"{closed.count(None)} of {len(slow)} slow connections still open after {DEADLINE_S} s"
    assert min(closed) >= TIMEOUT_S / 2  # by their timeout, not at once
    assert codes and set(codes) == {200}
    # The requests whose bodies never came are each logged once, as cancelled, and none is left in flight.
    await poll(lambda: not router.runtime.in_flight, "the cut-off requests to end")
    cut_off = [entry for entry in router.log_entries() if entry["status"] == 499]
    assert len(cut_off) == SLOW_CLIENTS
    assert all(entry["error"].startswith("the connection closed before the whole body arrived") for entry in cut_off)
    await poll(lambda: router.server.open_connections == 0, "the server to count no connections")
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]


@pytest.mark.gen_test
async def test_a_client_that_hangs_up_mid_body_is_logged_once(start_router):
    router = start_router()
    client = await SlowClient.open(router.port, BODY + b'{"model": "echo-model", ')
    await poll(lambda: router.runtime.in_flight, "the request to reach the router")
    client.writer.close()
    await poll(lambda: not router.runtime.in_flight, "the request to end")
    (entry,) = router.log_entries()
    assert entry["status"] == 499 and entry["cancelled"]


@pytest.mark.gen_test(timeout=60)
async def test_a_new_connection_has_header_timeout_s_a_kept_alive_one_idle_timeout_s(start_router):
    router = start_router(server={"header_timeout_s": 1.0, "idle_timeout_s": 60.0})
    silent = await SlowClient.open(router.port, b"")
    kept_alive = await SlowClient.open(router.port, KEEP_ALIVE)
    assert await silent.closed_after() is not None  # long before idle_timeout_s
    assert await kept_alive.closed_after(3.0) is None  # well past header_timeout_s


@pytest.mark.gen_test(timeout=60)
async def test_connections_over_max_connections_are_closed_at_once(start_router, caplog):
    router = start_router(server={"max_connections": 20, "header_timeout_s": 60.0})
    held = await open_many(router.port, b"", b"", 20)
    await poll(lambda: router.server.open_connections == 20, "20 connections to be open")
    over = [await SlowClient.open(router.port, b"") for _ in range(3)]
    for client in over:
        assert await client.closed_after() is not None
    warnings = [r.getMessage() for r in caplog.records if "server.max_connections" in r.getMessage()]
    assert warnings == ["server.max_connections (20) reached: closed 1 new connection(s) at once"]  # then quiet for a while

    # The connections already open are served.
    held[0].writer.write(KEEP_ALIVE)
    assert (await asyncio.wait_for(held[0].reader.readline(), DEADLINE_S)).startswith(b"HTTP/1.1 200")
    # Once some close, new ones are taken again.
    for client in held[:5]:
        client.writer.close()
    await poll(lambda: router.server.open_connections == 15, "5 connections to close")
    assert (await router.post(OPENAI, chat("echo-model", "hello"))).code == 200
    for client in held[5:]:
        client.writer.close()


@pytest.mark.gen_test
async def test_a_reload_applies_the_settings_to_new_connections():
    def config(max_connections: int):
        server = {"max_connections": max_connections, "header_timeout_s": 60.0}
        return parse_config(echo_only(server=server), environ={})

    sock, port = bind_unused_port()
    service = Service(await Runtime.start(config(100)), lambda: config(1), [sock])
    try:
        held = await SlowClient.open(port, b"")
        await poll(lambda: service.server.open_connections == 1, "the connection to be open")
        assert await service.reload()
        over = await SlowClient.open(port, b"")
        assert await over.closed_after() is not None
        held.writer.close()
    finally:
        await service.drain()


def test_the_settings_are_checked():
    assert parse_config(echo_only(), environ={}).server == ServerConfig()
    settings = {"header_timeout_s": 5, "body_timeout_s": 30.5, "idle_timeout_s": 90, "max_connections": 10000}
    server = parse_config(echo_only(server=settings), environ={}).server
    assert (server.header_timeout_s, server.body_timeout_s, server.idle_timeout_s, server.max_connections) == (5, 30.5, 90, 10000)

    bad = {"header_timeout_s": 0, "body_timeout_s": -1, "idle_timeout_s": "long", "max_connections": 0, "header_timeout": 5}
    with pytest.raises(ConfigError) as caught:
        parse_config(echo_only(server=bad), environ={})
    assert sorted(caught.value.problems) == [
        "server.body_timeout_s: Must be greater than 0.",
        "server.header_timeout: Unknown field.",
        "server.header_timeout_s: Must be greater than 0.",
        "server.idle_timeout_s: Not a valid number.",
        "server.max_connections: Must be greater than or equal to 1.",
    ]


def test_the_open_files_limit_is_raised_for_max_connections():
    """In a process of its own, started with a soft limit of 1024, as many a shell or service gets."""
    script = textwrap.dedent("""
        import resource
        from tornrouter.config import ServerConfig
        from tornrouter.server import fit_open_files_limit
        fit_open_files_limit(ServerConfig(max_connections=3000))
        print(resource.getrlimit(resource.RLIMIT_NOFILE)[0])
    """)
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    needed = 3000 + ServerConfig().max_clients + SPARE_FDS
    if hard != resource.RLIM_INFINITY and hard < needed:
        pytest.skip(f"the hard limit ({hard}) is below {needed}")
    out = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, check=True,
                         timeout=60, preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (1024, hard)))
    assert int(out.stdout) == needed
