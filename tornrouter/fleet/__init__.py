"""The whole fleet on every dashboard: every process's request entries reach
every other process's feed and aggregate, and each process's health snapshot
reaches the others, once a second.

How they travel (the ``Link``, chosen at the start and kept over reloads):

- ``state.backend: redis``: one pub/sub channel on that Redis
  (``redis_link.RedisLink``), whether one process or ``--processes N`` per
  instance;
- ``--processes N`` without Redis: unix-domain sockets between the workers
  (``sockets.SocketLink``);
- one process without Redis: no link.

Local entries are batched (every ``BATCH_S``) into one message; every
message starts with its sender's origin, so a process skips its own (Redis
sends them back).  An entry line over ``MAX_LINE`` crosses without its texts
(``"trimmed": true``).  Once a second the ticker sends this process's health
snapshot and gives the open feeds ``event: stats`` (the seconds just
completed) and ``event: health``.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import orjson

from .aggregate import Aggregate
from .health import Health, snapshot

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from prometheus_client import Counter

    from ..config import Config
    from ..events import EventBus
    from ..providers.base import Provider

log = logging.getLogger("tornrouter")

BATCH_S = 0.02
BATCH_BYTES = 256 * 1024  # a batch this large goes at once
MAX_LINE = 1024 * 1024
TICK_OFFSET_S = 0.25  # into each second, so entries of the second before have come in from the fleet
MAX_STATS_SECONDS = 300
ENTRIES, HEALTH = b"E", b"H"
BODIES = ("system", "messages", "response")


class Link(Protocol):
    name: str  # the label of tornrouter_dashboard_dropped
    dropped: int  # messages dropped rather than waited for, since the start

    async def start(self, receive: Callable[[bytes], None]) -> None: ...

    def send(self, message: bytes) -> None: ...

    async def aclose(self) -> None: ...


@dataclass(frozen=True)
class Placement:
    """Where this process stands in the fleet: its instance's name and worker
    id (the log entries' ``instance`` and ``worker``) and, under
    ``--processes N``, the directory of the workers' sockets."""

    instance: str
    worker: int | None = None
    workers: int = 1
    socket_dir: str | None = None

    @classmethod
    def of(cls, config: Config, port: int | None = None, **where: Any) -> Placement:
        """``server.instance``, or ``<hostname>:<port>`` (the port listened on)."""
        name = config.server.instance or f"{socket.gethostname()}:{port if port is not None else config.server.port}"
        return cls(name, **where)


def make_link(config: Config, placement: Placement) -> Link | None:
    if config.state.backend == "redis" and config.state.url:
        from .redis_link import RedisLink

        return RedisLink(config.state.url, config.state.prefix + "dashboard", config.state.timeout_s)
    if placement.socket_dir is not None and placement.worker is not None and placement.workers > 1:
        from .sockets import SocketLink

        return SocketLink(placement.socket_dir, placement.worker, placement.workers)
    return None


class Fleet:
    """This process's part: it taps the event bus for its own entries, counts
    every entry it hears of into the aggregate, and runs the ticker."""

    def __init__(self, config: Config, bus: EventBus, placement: Placement, dropped: Counter | None = None) -> None:
        self.placement = placement
        self.bus = bus
        self.dropped = dropped  # tornrouter_dashboard_dropped, kept up with the link's count once a second
        self._dropped_counted = 0
        self.aggregate = Aggregate()
        self.health = Health(placement.instance, placement.worker)
        self.link = make_link(config, placement)
        self.origin = f"{placement.instance}/{placement.worker}/{os.getpid()}/{os.urandom(4).hex()}".encode()
        self.providers: Mapping[str, Provider] = {}
        self.trimmed = 0  # entries sent without their texts (over MAX_LINE)
        self._outbox: list[str] = []
        self._outbox_bytes = 0
        self._send_scheduled = False
        self._ticker: asyncio.Task[None] | None = None
        self._started = False
        bus.taps.append(self._on_local)

    def watch(self, providers: Mapping[str, Provider]) -> None:
        """The providers the health snapshot reads (the current runtime's)."""
        self.providers = providers

    async def start(self) -> None:
        """Start the link and the ticker, once (a reloaded runtime finds them running)."""
        if self._started:
            return
        self._started = True
        if self.link is not None:
            try:
                await self.link.start(self._on_message)
            except OSError as exc:
                log.error("fleet: cannot reach the other processes (%s): the dashboard shows this one only", exc)
                self.link = None
        self._ticker = asyncio.ensure_future(self._tick_forever())

    async def aclose(self) -> None:
        if self._ticker is not None:
            self._ticker.cancel()
            await asyncio.gather(self._ticker, return_exceptions=True)
        self._send_outbox()
        if self.link is not None:
            await self.link.aclose()
        if self._on_local in self.bus.taps:
            self.bus.taps.remove(self._on_local)

    # --- entries --------------------------------------------------------------------

    def _on_local(self, line: str, entry: dict[str, Any] | None) -> None:
        self.aggregate.add(entry if entry is not None else line)
        if self.link is None or not self._started:
            return
        if len(line) > MAX_LINE:
            line = self._without_texts(entry if entry is not None else orjson.loads(line))
        self._outbox.append(line)
        self._outbox_bytes += len(line)
        if self._outbox_bytes >= BATCH_BYTES:
            self._send_outbox()
        elif not self._send_scheduled:
            try:
                asyncio.get_running_loop().call_later(BATCH_S, self._send_outbox)
            except RuntimeError:  # no loop (an entry recorded as the process ends): now or never
                self._send_outbox()
                return
            self._send_scheduled = True

    def _without_texts(self, entry: dict[str, Any]) -> str:
        self.trimmed += 1
        return orjson.dumps({**entry, **dict.fromkeys(BODIES), "trimmed": True}, default=str).decode()

    def _send_outbox(self) -> None:
        self._send_scheduled = False
        if not self._outbox or self.link is None:
            return
        lines, self._outbox, self._outbox_bytes = self._outbox, [], 0
        self.link.send(b"\n".join((self.origin, ENTRIES, "\n".join(lines).encode())))

    def _on_message(self, message: bytes) -> None:
        try:
            origin, kind, payload = message.split(b"\n", 2)
            if origin == self.origin:
                return
            if kind == ENTRIES:
                for line in payload.decode().split("\n"):
                    self.bus.deliver(line)
                    self.aggregate.add(line)
            elif kind == HEALTH:
                self.health.heard(origin.decode(), orjson.loads(payload))
        except (ValueError, UnicodeDecodeError) as exc:  # orjson.JSONDecodeError is a ValueError
            log.warning("fleet: a malformed message skipped (%s)", exc)

    # --- once a second --------------------------------------------------------------

    async def _tick_forever(self) -> None:
        done = int(time.time()) - 1  # the last second given to the feeds
        while True:
            now = time.time()
            await asyncio.sleep(int(now) + 1 + TICK_OFFSET_S - now)
            second = int(time.time())
            try:
                self._tick(max(done + 1, second - MAX_STATS_SECONDS), second)
            except Exception:  # noqa: BLE001 - a bad tick must not end the ticks
                log.exception("fleet: the dashboard's tick failed")
            done = second - 1

    def _tick(self, first: int, second: int) -> None:
        """Send this process's health; give the feeds the seconds from ``first``
        to the one before ``second``, and the fleet's health."""
        own = snapshot(self.providers)
        if self.link is not None:
            self.link.send(b"\n".join((self.origin, HEALTH, orjson.dumps(self.health.message(own)))))
            if self.dropped is not None and self.link.dropped > self._dropped_counted:
                self.dropped.labels(self.link.name).inc(self.link.dropped - self._dropped_counted)
                self._dropped_counted = self.link.dropped
        if not self.bus.subscriber_count:
            self.aggregate.flush()
            return
        if second > first:  # none when the clock was set back
            self.bus.announce("stats", orjson.dumps(self.aggregate.seconds(first, second - first)).decode())
        self.bus.announce("health", orjson.dumps(self.health.report(own, self.aggregate.recent())).decode())
