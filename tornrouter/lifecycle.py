"""``Service``: one serving process, from its first request to its clean exit.

Signals, handled on the event loop:

- ``SIGHUP`` reloads the config file.  A new ``Runtime`` is built from it and
  its plugins and classifiers are set up (``Runtime.start``) while the old one
  serves; if the file is refused (one error line per problem), a ``setup``
  fails or it cannot be built, the old one goes on serving and nothing
  changes.  Otherwise new requests go to the new runtime at once, while
  requests in flight finish on the runtime they started with, which is closed
  (its plugins' ``close`` included) when its last one is done.  Reloads run
  one at a time; a stop cancels one under way, closing what it had set up.
  The swap is one assignment: ``AppSwitch`` is the HTTP server's delegate and
  hands each request to the current application, and a handler holds the
  runtime it was made with.  Open dashboard feeds carry on, on the event bus
  the new runtime inherits.  The listening address cannot change: a reload
  that changes ``server.host`` or ``server.port`` says so in the log and
  keeps listening where it was.  The client timeouts and
  ``server.max_connections`` apply to the requests and connections that
  start after the reload.
- ``SIGTERM`` and ``SIGINT`` stop: no new connections, then up to
  ``server.drain_s`` for the requests in flight (streams included) to finish,
  then every connection still open is closed (idle keep-alives, dashboard
  feeds, requests cut off), the runtimes are closed (plugins' ``close``, then
  the request log is written out) and ``run`` returns.  A request cut off
  that cannot be interrupted (a non-streamed one waiting on its upstream:
  Tornado cannot cancel a fetch) is recorded as abandoned, so the log still
  has every request once.  A second ``SIGINT`` (Ctrl-C twice) skips what is
  left of the wait.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import socket
from typing import Any, Callable

from tornado import httputil

from .runtime import Runtime, make_app
from .config import Config
from .errors import ConfigError
from .server import GatewayServer

log = logging.getLogger("tornrouter")

SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
# After the connections are closed, how long the requests cut off get to record
# themselves (a stream ends at once, its upstream transfer within about a
# second) before the rest are recorded as abandoned.
CUT_OFF_GRACE_S = 2.0


class AppSwitch(httputil.HTTPServerConnectionDelegate):
    """The HTTP server's delegate: each new request goes to the current ``app``.

    Tornado asks its delegate once per request, keep-alive connections
    included, so replacing ``app`` moves every later request to it while the
    requests already started keep their handlers.  The body limit follows the
    config too (``set_max_body_size`` overrides the server's, per request)."""

    def __init__(self, app: httputil.HTTPServerConnectionDelegate, max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    def start_request(self, server_conn: object, request_conn: httputil.HTTPConnection) -> httputil.HTTPMessageDelegate:
        request_conn.set_max_body_size(self.max_body_bytes)  # type: ignore[attr-defined]  # HTTP1Connection
        return self.app.start_request(server_conn, request_conn)


class Service:
    """Serves ``sockets`` (already bound) with ``runtime`` (started:
    ``Runtime.start``); ``load_config()`` reads the config file again for a
    reload."""

    def __init__(self, runtime: Runtime, load_config: Callable[[], Config], sockets: list[socket.socket]) -> None:
        config = runtime.config
        self.load_config = load_config
        self.runtime = runtime
        self.address = (config.server.host, config.server.port)  # as configured (the port may be 0)
        self.bound = sockets[0].getsockname()[:2]
        self.switch = AppSwitch(make_app(self.runtime), config.server.max_body_bytes)
        self.server = GatewayServer(self.switch, config.server)
        self.server.add_sockets(sockets)
        # Runtimes replaced by a reload, each closed by its task once its requests are done.
        self.retiring: dict[Runtime, asyncio.Task[None]] = {}
        # What a stop must not leave half done: reloads (cancelled), closes of retired runtimes (awaited).
        self.reloads: set[asyncio.Task[bool]] = set()
        self.closing: set[asyncio.Task[None]] = set()
        self.reload_lock = asyncio.Lock()
        self.stopping = asyncio.Event()
        self.hurry = asyncio.Event()

    def install_signal_handlers(self) -> None:
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, self.stop)
        loop.add_signal_handler(signal.SIGINT, self.interrupt)
        loop.add_signal_handler(signal.SIGHUP, self.on_sighup)
        # The command line blocked them before binding the port (a worker inherits
        # that), so one sent as soon as the port accepts waits for now.
        signal.pthread_sigmask(signal.SIG_UNBLOCK, SIGNALS)

    async def run(self) -> None:
        """Serve until ``stop``, then drain and close."""
        self.install_signal_handlers()
        await self.stopping.wait()
        await self.drain()

    def stop(self) -> None:
        self.stopping.set()

    def interrupt(self) -> None:
        if self.stopping.is_set():
            log.warning("interrupted again: not waiting for the requests in flight")
            self.hurry.set()
        self.stop()

    # --- reload ---------------------------------------------------------------------

    def on_sighup(self) -> None:
        """Start a ``reload`` in a task: the new plugins' ``setup`` may take a
        while, and requests go on meanwhile."""
        if self.stopping.is_set():
            log.warning("reload ignored: stopping")
            return
        _keep(self.reloads, asyncio.ensure_future(self.reload()))

    async def reload(self) -> bool:
        """Serve new requests with the config file as it is now; False (and the old
        config goes on serving) if it is refused.  Reloads run one at a time,
        each reading the file when its turn comes."""
        async with self.reload_lock:
            previous = self.runtime
            runtime = await self._start_reloaded(previous)
            if runtime is None:
                return False
            self._swap(previous, runtime)
            return True

    async def _start_reloaded(self, previous: Runtime) -> Runtime | None:
        """The runtime for the config file as it is now, started; None, with the
        reasons logged, if the file is refused or a plugin's ``setup`` failed."""
        source = previous.config.source
        try:
            return await Runtime.start(self.load_config(), previous)
        except ConfigError as exc:
            for problem in exc.problems:
                log.error("reload refused: %s: %s", source, problem)
            log.error("reload refused: still serving the config loaded before (%d problem(s))", len(exc.problems))
        except OSError as exc:  # the file cannot be read, the request log cannot be opened
            log.error("reload refused: %s; still serving the config loaded before", exc)
        return None

    def _swap(self, previous: Runtime, runtime: Runtime) -> None:
        """New requests go to ``runtime``; ``previous`` is closed after its last one."""
        config = runtime.config
        address = (config.server.host, config.server.port)
        if address != self.address:
            log.warning(
                "reload: server.host/port now say %s:%d, but a reload cannot move the listening socket: "
                "still listening on %s:%d (restart to move)", *address, *self.bound,
            )
        self.runtime = runtime
        self.switch.app = make_app(runtime)
        self.switch.max_body_bytes = config.server.max_body_bytes
        self.server.apply(config.server)
        self.retiring[previous] = asyncio.ensure_future(self._close_when_idle(previous))
        log.info("config reloaded from %s (%d request(s) in flight finish on the old one)",
                 config.source, len(previous.in_flight))

    async def _close_when_idle(self, runtime: Runtime) -> None:
        await runtime.in_flight.wait_idle()
        # The transfers of streams whose clients left stop on the next loop turns.
        await self._settle([runtime], runtime.config.server.drain_s)
        del self.retiring[runtime]  # from here on a stop waits for this close instead of doing it
        _keep(self.closing, asyncio.ensure_future(runtime.aclose()))

    # --- stop -----------------------------------------------------------------------

    async def drain(self) -> None:
        for reload in self.reloads:
            reload.cancel()  # a new runtime set up for nothing: closed as it is cancelled
        await asyncio.gather(*self.reloads, return_exceptions=True)
        runtimes = [self.runtime, *self.retiring]
        for task in self.retiring.values():
            task.cancel()  # closed below with the current one
        self.retiring.clear()
        budget = self.runtime.config.server.drain_s
        self.server.stop()
        log.info(
            "stopping: no new connections; waiting up to %g s (server.drain_s) for %d request(s) in flight",
            budget, sum(len(r.in_flight) for r in runtimes),
        )
        await self._wait_idle(runtimes, budget)
        await self.server.close_all_connections()
        await self._settle(runtimes, CUT_OFF_GRACE_S)  # at once, unless a request was cut off
        reason = "router stopped before the request finished"
        abandoned = sum(runtime.abandon_in_flight(reason) for runtime in runtimes)
        if abandoned:
            log.warning("stopping: %d request(s) abandoned, recorded as cancelled", abandoned)
        for runtime in runtimes:
            await runtime.aclose()
        await asyncio.gather(*self.closing)
        log.info("stopped")

    async def _wait_idle(self, runtimes: list[Runtime], timeout: float) -> bool:
        """Wait until no runtime has a request in flight, for at most ``timeout``
        seconds (less on a second Ctrl-C); True if none has."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while any(runtime.in_flight for runtime in runtimes) and not self.hurry.is_set():
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            waiters = {asyncio.ensure_future(_all_idle(runtimes)), asyncio.ensure_future(self.hurry.wait())}
            try:
                await asyncio.wait(waiters, timeout=remaining, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for waiter in waiters:
                    waiter.cancel()
        return not any(runtime.in_flight for runtime in runtimes)

    async def _settle(self, runtimes: list[Runtime], timeout: float) -> None:
        """Give requests cut off (a stream ends at once and records itself) and
        their upstream transfers (stopped at libcurl's next progress call) up to
        ``timeout`` seconds to end.  libcurl says nothing when a transfer
        ends, hence the polling."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while any(r.in_flight or r.upstream_busy() for r in runtimes) and loop.time() < deadline \
                and not self.hurry.is_set():
            await asyncio.sleep(0.05)


def _keep(tasks: set[asyncio.Task[Any]], task: asyncio.Task[Any]) -> None:
    """Hold ``task`` in ``tasks`` until it is done (the loop keeps only a weak reference)."""
    tasks.add(task)
    task.add_done_callback(tasks.discard)


async def _all_idle(runtimes: list[Runtime]) -> None:
    for runtime in runtimes:
        await runtime.in_flight.wait_idle()
