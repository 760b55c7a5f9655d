"""A closed-loop HTTP/1.1 load generator on asyncio, cheap enough not to be the bottleneck.

``run_cell`` starts ``concurrency`` workers, each with its own keep-alive
connection, each sending the same pre-built request bytes and waiting for the
whole answer before sending the next, for ``warmup + duration`` seconds.
Answers are framed by ``Content-Length`` or by chunked transfer-encoding and
nothing else is parsed: the status code, and a marker that a complete answer
must contain (``chat.completion``, ``[DONE]``...), so a fast stream of errors
never passes for throughput.  A streamed answer also records when the first
body bytes matching ``first_token`` arrive: time to first token.

What is counted: answers that *complete* inside the measuring window (after the
warmup, before the end), their latencies and the errors seen in it; rates
divide by the window's length.  A worker still waiting ``grace`` seconds after
the end is cancelled and its request counted as an error (a hung server must
not hang the benchmark).

With ``synchronized``, the workers send each request together (a barrier
before every round), so that a paced upstream's first tokens arrive together
too: the case where a server that handles events one after another adds the
most to time to first token.

The generator's own ceiling is whatever it reaches against the benchmark
upstream directly: ``bench.py`` measures that in the same run.
"""

from __future__ import annotations

import asyncio
import re
import time
from dataclasses import dataclass, field

_CONTENT_LENGTH = re.compile(rb"\r\ncontent-length:[ \t]*(\d+)")
_CHUNKED = re.compile(rb"\r\ntransfer-encoding:[ \t]*chunked")
_CONNECTION_CLOSE = re.compile(rb"\r\nconnection:[ \t]*close")


@dataclass(frozen=True)
class Target:
    """One kind of request: where it goes and what a good answer looks like."""

    host: str
    port: int
    path: str
    body: bytes
    headers: tuple[tuple[str, str], ...] = ()
    expect: bytes = b""  # a complete, successful answer contains these bytes
    first_token: re.Pattern[bytes] | None = None  # streams: what the first token looks like on the wire

    def request_bytes(self) -> bytes:
        lines = [
            f"POST {self.path} HTTP/1.1",
            f"Host: {self.host}:{self.port}",
            "Content-Type: application/json",
            f"Content-Length: {len(self.body)}",
            *(f"{name}: {value}" for name, value in self.headers),
        ]
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + self.body


@dataclass
class CellResult:
    requests: int = 0
    errors: int = 0
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)  # seconds, successful answers only
    ttfts: list[float] = field(default_factory=list)  # seconds, streams only
    error_samples: list[str] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    def error(self, description: str) -> None:
        self.errors += 1
        if len(self.error_samples) < 3 and description not in self.error_samples:
            self.error_samples.append(description)


def percentile(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile ``q`` (0-100) of ``values``; None when empty."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * q // 100))  # ceil without floats drifting
    return ordered[int(rank) - 1]


@dataclass(frozen=True)
class Response:
    status: int
    body: bytes  # de-chunked
    first_token_at: float | None  # perf_counter() when ``first_token`` was first seen


class _Connection(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection with at most one request in flight."""

    def __init__(self, first_token: re.Pattern[bytes] | None) -> None:
        self.first_token = first_token
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.waiter: asyncio.Future[Response] | None = None
        self.buf = bytearray()
        self._reset()

    def _reset(self) -> None:
        self.body_start = -1  # index in buf where the body starts; -1 while reading the head
        self.status = 0
        self.length = -1  # Content-Length, or -1 for chunked
        self.keep_alive = True
        self.pos = 0  # chunked: where the next chunk-size line starts
        self.parts: list[bytes] = []
        self.first_token_at: float | None = None
        self.scanned = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport  # asyncio sets TCP_NODELAY on TCP sockets itself

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(exc or ConnectionResetError("connection closed by the server"))

    def request(self, payload: bytes) -> asyncio.Future[Response]:
        assert self.transport is not None and self.waiter is None
        self.waiter = asyncio.get_running_loop().create_future()
        self.transport.write(payload)
        return self.waiter

    def close(self) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.cancel()  # nobody will wait for it any more
        if self.transport is not None:
            self.transport.close()

    def data_received(self, data: bytes) -> None:
        self.buf += data
        try:
            self._parse()
        except ValueError as exc:  # garbage framing: this connection is done for
            if self.waiter is not None and not self.waiter.done():
                self.waiter.set_exception(ConnectionError(f"bad response framing: {exc}"))
            self.close()

    def _parse(self) -> None:
        buf = self.buf
        if self.body_start < 0:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(buf[:end]).lower()
            self.status = int(head[9:12])
            self.body_start = self.pos = end + 4
            self.keep_alive = _CONNECTION_CLOSE.search(head) is None
            match = _CONTENT_LENGTH.search(head)
            if match:
                self.length = int(match.group(1))
            elif not _CHUNKED.search(head):
                raise ValueError("neither Content-Length nor chunked")
        if self.first_token is not None and self.first_token_at is None:
            start = max(self.body_start, self.scanned - 64)  # a marker may straddle two reads
            if self.first_token.search(buf, start):
                self.first_token_at = time.perf_counter()
            self.scanned = len(buf)
        if self.length >= 0:
            end = self.body_start + self.length
            if len(buf) < end:
                return
            self._done(bytes(buf[self.body_start : end]), end)
            return
        while True:  # chunked: size line, data, CRLF ... then "0" CRLF CRLF (no trailers)
            line_end = buf.find(b"\r\n", self.pos)
            if line_end < 0:
                return
            size = int(bytes(buf[self.pos : line_end]).split(b";")[0], 16)
            data_end = line_end + 2 + size
            if len(buf) < data_end + 2:
                return
            if size == 0:
                self._done(b"".join(self.parts), data_end + 2)
                return
            self.parts.append(bytes(buf[line_end + 2 : data_end]))
            self.pos = data_end + 2

    def _done(self, body: bytes, consumed: int) -> None:
        response = Response(self.status, body, self.first_token_at)
        keep_alive = self.keep_alive
        del self.buf[:consumed]
        self._reset()
        waiter, self.waiter = self.waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(response)
        if not keep_alive:
            self.close()


async def _connect(target: Target) -> _Connection:
    loop = asyncio.get_running_loop()
    _, protocol = await loop.create_connection(lambda: _Connection(target.first_token), target.host, target.port)
    return protocol


async def _worker(
    target: Target, payload: bytes, measure_from: float, end: float, result: CellResult, barrier: asyncio.Barrier | None
) -> None:
    conn: _Connection | None = None
    clock = time.perf_counter
    try:
        while True:
            if barrier is not None:
                try:
                    await barrier.wait()
                except asyncio.BrokenBarrierError:  # another worker is done: so is the round
                    return
            started = clock()
            if started >= end:
                return
            try:
                if conn is None or conn.closed:
                    conn = await _connect(target)
                response = await conn.request(payload)
            except OSError as exc:  # refused, reset, bad framing: reconnect and go on
                conn = None
                if clock() >= measure_from:
                    result.error(f"{type(exc).__name__}: {exc}")
                await asyncio.sleep(0.01)  # a server that is down must not become a busy loop
                continue
            finished = clock()
            if not measure_from <= finished <= end:
                continue
            if response.status != 200 or target.expect not in response.body:
                result.error(f"HTTP {response.status}: {response.body[:300]!r}")
                continue
            result.requests += 1
            result.latencies.append(finished - started)
            if target.first_token is not None:
                if response.first_token_at is None:
                    result.error("stream without a token")
                else:
                    result.ttfts.append(response.first_token_at - started)
    finally:
        if barrier is not None:
            await barrier.abort()  # nobody waits for a worker that has stopped
        if conn is not None:
            conn.close()


async def run_cell(
    target: Target, concurrency: int, duration: float, warmup: float = 0.0, grace: float = 10.0,
    synchronized: bool = False,
) -> CellResult:
    """Drive ``target`` with ``concurrency`` closed-loop workers; see the module docstring."""
    payload = target.request_bytes()
    result = CellResult()
    measure_from = time.perf_counter() + warmup
    end = measure_from + duration
    barrier = asyncio.Barrier(concurrency) if synchronized and concurrency > 1 else None
    tasks = [
        asyncio.create_task(_worker(target, payload, measure_from, end, result, barrier)) for _ in range(concurrency)
    ]
    _, pending = await asyncio.wait(tasks, timeout=end + grace - time.perf_counter())
    for task in pending:
        task.cancel()
        result.error(f"no answer {grace:g} s after the end")
    if pending:
        await asyncio.wait(pending)
    result.seconds = duration
    return result
