"""Fixtures: fake upstreams and a real router in front of them, all on loopback;
the log guard every test runs under; a headless browser for the dashboard."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
import sys
from pathlib import Path
from typing import Any

import pytest
from tornado.httpclient import AsyncHTTPClient, HTTPResponse
from tornado.iostream import IOStream
from tornado.tcpclient import TCPClient
from tornado.testing import bind_unused_port

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from tests.browser import Browser, find_chromium  # noqa: E402
from tests.configs import base_config  # noqa: E402
from tests.fake_upstream import FakeUpstream  # noqa: E402
from tests.log_guard import LogGuard  # noqa: E402
from tests.processes import RouterProcess  # noqa: E402
from tests.redis_support import RedisServer  # noqa: E402
from tornrouter.runtime import Runtime, make_app  # noqa: E402
from tornrouter.config import parse_config  # noqa: E402
from tornrouter.server import GatewayServer  # noqa: E402


class RunningRouter:
    """A router serving on a loopback port, with helpers to call it and read its log."""

    def __init__(self, runtime: Runtime, server: GatewayServer, port: int, log_path: str) -> None:
        self.runtime = runtime
        self.server = server
        self.port = port
        self.log_path = log_path
        self.client = AsyncHTTPClient(force_instance=True)
        self.ready: asyncio.Future[None] | None = None  # ``serve``, which requests wait for

    async def serve(self, sock: socket.socket) -> None:
        """As a real start does: set the plugins and classifiers up, then accept
        (a connection that comes before waits in the listen backlog)."""
        try:
            await self.runtime.components.setup()
        except BaseException:
            sock.close()
            raise
        self.server.add_socket(sock)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def post(self, path: str, body: Any, headers: dict[str, str] | None = None) -> HTTPResponse:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        await self.ready
        return await self.client.fetch(
            self.url + path, method="POST", body=data, raise_error=False,
            headers={"Content-Type": "application/json", **(headers or {})}, request_timeout=20,
        )

    async def post_stream(self, path: str, body: Any, headers: dict[str, str] | None = None) -> tuple[HTTPResponse, bytes]:
        """POST and collect the answer as it streams in (``response.body`` stays
        empty with a ``streaming_callback``, error bodies included)."""
        chunks: list[bytes] = []
        response = await self.client.fetch(
            self.url + path, method="POST", body=json.dumps(body), raise_error=False, request_timeout=20,
            headers={"Content-Type": "application/json", **(headers or {})}, streaming_callback=chunks.append,
        )
        return response, b"".join(chunks)

    async def send_raw(self, path: str, body: Any) -> IOStream:
        """POST ``body`` over a raw socket, which the test may close at any point
        (``AsyncHTTPClient`` cannot hang up on a request in flight)."""
        stream = await TCPClient().connect("127.0.0.1", self.port)
        data = json.dumps(body).encode()
        await stream.write(
            f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(data)}\r\n\r\n".encode() + data
        )
        return stream

    async def get(self, path: str) -> HTTPResponse:
        await self.ready
        return await self.client.fetch(self.url + path, raise_error=False, request_timeout=20)

    def log_lines(self) -> list[dict[str, Any]]:
        """Every line of the request log as written so far (waits for the writer thread)."""
        self.runtime.request_log.flush()
        with open(self.log_path, encoding="utf-8") as f:
            return [json.loads(line) for line in f]

    def log_entries(self) -> list[dict[str, Any]]:
        """The requests' entries in the request log (not the mirrors' records)."""
        return [line for line in self.log_lines() if line.get("type") != "mirror"]

    def mirror_records(self) -> list[dict[str, Any]]:
        """The mirrors' records in the request log."""
        return [line for line in self.log_lines() if line.get("type") == "mirror"]

    async def stop(self) -> None:
        self.client.close()
        self.ready.cancel()  # a setup still running closes what it set up
        await asyncio.gather(self.ready, return_exceptions=True)
        self.server.stop()
        await self.server.close_all_connections()
        await self.runtime.mirrors.aclose()
        await self.runtime.components.close()
        self.runtime.close()


@pytest.fixture(autouse=True)
def log_guard():
    """Every test: fail it if the router logged a traceback it did not expect
    (``log_guard.expect(logger, pattern)`` declares one; see ``tests/log_guard.py``)."""
    guard = LogGuard()
    root = logging.getLogger()
    root.addHandler(guard)
    yield guard
    root.removeHandler(guard)
    if problems := guard.problems():
        pytest.fail("\n".join(problems), pytrace=False)


@pytest.fixture
def upstream(io_loop):
    fake = FakeUpstream().start()
    yield fake
    io_loop.run_sync(fake.stop)


@pytest.fixture
def fakes(io_loop):
    """``fakes()`` -> one more fake upstream on loopback (all stopped after the test)."""
    started: list[FakeUpstream] = []

    def start() -> FakeUpstream:
        fake = FakeUpstream().start()
        started.append(fake)
        return fake

    yield start
    for fake in started:
        io_loop.run_sync(fake.stop)


@pytest.fixture
def start_router(io_loop, upstream, tmp_path):
    """``start_router(**config_overrides)`` -> a ``RunningRouter`` (stopped after the test)."""
    started: list[RunningRouter] = []

    def start(config: dict[str, Any] | None = None, **overrides: Any) -> RunningRouter:
        log_path = str(tmp_path / f"requests-{len(started)}.jsonl")
        raw = config if config is not None else base_config(upstream.url, log_path, **overrides)
        runtime = Runtime(parse_config(raw, environ=dict(os.environ)))
        sock, port = bind_unused_port()
        server = GatewayServer(make_app(runtime), runtime.config.server)
        router = RunningRouter(runtime, server, port, runtime.config.request_log or log_path)
        router.ready = io_loop.asyncio_loop.create_task(router.serve(sock))
        started.append(router)
        return router

    yield start
    for router in started:
        io_loop.run_sync(router.stop)


@pytest.fixture
def router(start_router):
    return start_router()


@pytest.fixture
def redis_server(tmp_path):
    """A real ``redis-server`` of the test's own (``tests/redis_support.py``;
    mark the test ``needs_redis``)."""
    server = RedisServer(str(tmp_path))
    server.start()
    yield server
    server.kill()


@pytest.fixture
def browser(io_loop):
    """A headless chromium (``tests/browser.py``); the test is skipped where none is installed."""
    if find_chromium() is None:
        pytest.skip("chromium is not installed (apt-get install -y chromium)")
    browser = io_loop.run_sync(Browser.launch, timeout=30)
    yield browser
    io_loop.run_sync(browser.close, timeout=30)


@pytest.fixture
def spawn(tmp_path):
    started: list[RouterProcess] = []

    def start(conf: Path, *args: str) -> RouterProcess:
        process = RouterProcess(tmp_path, conf, *args)
        started.append(process)
        return process

    yield start
    for process in started:
        process.kill()
    for process in started:  # however the test ended it, a router's output has no traceback
        assert "Traceback" not in process.output(), process.output()
