"""``RedisLink``: the instances sharing a Redis (``state.backend: redis``),
and their workers, told of each other's entries over one pub/sub channel.

Sending never waits on Redis: a message joins a bounded queue (the oldest
is dropped, and counted, when it is full) that one task publishes from.
Another task stays subscribed, subscribing again after a failure.  While
Redis is away the dashboard shows this process's own requests only; that is
logged once when it goes and once when it is back (``Outage``), and requests
are served as before, never waiting on it.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from ..access.control import Outage
from ..access.redis_state import call, connect, redacted
from ..access.state import BackendUnavailable

log = logging.getLogger("tornrouter")

MAX_QUEUED = 1000  # messages waiting to be published (each a batch of entries, or a health snapshot)
RETRY_S = 1.0


class RedisLink:
    name = "redis"

    def __init__(self, url: str, channel: str, timeout_s: float) -> None:
        self.url = url
        self.channel = channel
        self.timeout_s = timeout_s
        self.where = redacted(url)
        # Logged apart from the limits' own outage line (access.control), which says what it means for them.
        self.outage = Outage(f"{self.where} (the dashboard's fleet link)", "the dashboard shows this process's requests only",
                             retry_s=RETRY_S)
        self.queue: deque[bytes] = deque()
        self.dropped = 0
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._receive: Callable[[bytes], None] = lambda message: None
        self._publisher = connect(url, timeout_s, decode_responses=False)
        # Its own connection, which waits for messages as long as they take to come.
        self._subscriber = aioredis.Redis.from_url(
            url, decode_responses=False, socket_connect_timeout=timeout_s, socket_timeout=None,
            socket_keepalive=True, health_check_interval=10,
        )

    async def start(self, receive: Callable[[bytes], None]) -> None:
        self._receive = receive
        self._tasks = [asyncio.ensure_future(self._publish_forever()), asyncio.ensure_future(self._listen_forever())]

    def send(self, message: bytes) -> None:
        if len(self.queue) >= MAX_QUEUED:
            self.queue.popleft()
            self.dropped += 1
        self.queue.append(message)
        self._wake.set()

    async def _publish_forever(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self.queue:
                try:
                    await call(self._publisher.publish(self.channel, self.queue[0]), self.timeout_s, self.where)
                except BackendUnavailable as exc:
                    self.outage.failed(exc)
                    await asyncio.sleep(RETRY_S)
                    continue
                self.queue.popleft()
                self.outage.succeeded()

    async def _listen_forever(self) -> None:
        while True:
            pubsub = self._subscriber.pubsub(ignore_subscribe_messages=True)
            try:
                await asyncio.wait_for(pubsub.subscribe(self.channel), 4 * self.timeout_s)
                self.outage.succeeded()
                async for message in pubsub.listen():
                    if message["type"] == "message":
                        self._receive(message["data"])
            except (RedisError, OSError, asyncio.TimeoutError) as exc:
                self.outage.failed(BackendUnavailable(f"redis at {self.where}: {exc.__class__.__name__}: {exc}"))
            finally:
                try:
                    await asyncio.wait_for(pubsub.aclose(), self.timeout_s)
                except (RedisError, OSError, asyncio.TimeoutError):
                    pass
            await asyncio.sleep(RETRY_S)

    async def aclose(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._publisher.aclose()
        await self._subscriber.aclose()
