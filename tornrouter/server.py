"""``GatewayServer``: Tornado's ``HTTPServer`` with the limits a server exposed
to the internet needs, from the ``server:`` settings.

Tornado's own defaults let a client that trickles its headers hold a connection
for an hour, and accept connections until the process runs out of file
descriptors (``accept`` then fails with ``EMFILE`` on every loop iteration).
What each setting bounds, in Tornado's terms:

- ``header_timeout_s``: a new connection's first request must have sent all its
  headers within this many seconds of the connection being accepted (Tornado's
  ``header_timeout``, a deadline for the whole header block, however fast the
  bytes trickle).
- ``idle_timeout_s``: after a response, a kept-alive connection is closed unless
  the next request's headers are complete within this many seconds.  Tornado
  waits for the next request and reads its headers under one deadline; it is
  the same ``header_timeout``, set per connection to ``idle_timeout_s`` from
  its second request on (``start_request``).
- ``body_timeout_s``: the whole body, from the end of the headers (Tornado's
  ``body_timeout`` bounds the whole read, not each read, so a body sent a byte
  at a time is cut off too; the request is logged as cancelled).
- ``max_connections``: connections open at once; one more is closed as soon as
  it is accepted, with a warning at most every ``REFUSAL_WARNING_S``.

None of them applies while a response is being written: a long stream or a
dashboard feed is not cut off.
"""

from __future__ import annotations

import logging
import resource
import time
from typing import cast

from tornado import httputil
from tornado.http1connection import HTTP1ConnectionParameters, HTTP1ServerConnection
from tornado.httpserver import HTTPServer
from tornado.iostream import IOStream

from .config import ServerConfig

log = logging.getLogger("tornrouter")

REFUSAL_WARNING_S = 10.0
# Descriptors besides client connections and upstream transfers: the listening
# sockets, log files, Redis, the event loop's own, the interpreter's.
SPARE_FDS = 256


class GatewayServer(HTTPServer):
    """``GatewayServer(delegate, settings)``; ``apply(settings)`` again on a reload."""

    def initialize(  # type: ignore[override]  # HTTPServer's takes its settings one by one
        self, delegate: httputil.HTTPServerConnectionDelegate, settings: ServerConfig,
    ) -> None:
        super().initialize(delegate)
        self.open_connections = 0
        self.refused = 0  # since the last warning
        self.warned_at = -REFUSAL_WARNING_S
        self.apply(settings)

    def apply(self, settings: ServerConfig) -> None:
        """Use ``settings`` for the connections accepted and the requests started from now on."""
        self.max_connections = settings.max_connections
        self.conn_params = _params(settings, settings.header_timeout_s)
        self.keep_alive_params = _params(settings, settings.idle_timeout_s)

    def handle_stream(self, stream: IOStream, address: tuple) -> None:
        if self.open_connections >= self.max_connections:
            stream.close()
            self._refused()
            return
        self.open_connections += 1
        super().handle_stream(stream, address)

    def on_close(self, server_conn: object) -> None:
        super().on_close(server_conn)
        self.open_connections -= 1

    def start_request(self, server_conn: object, request_conn: httputil.HTTPConnection) -> httputil.HTTPMessageDelegate:
        # The connection reads each request with the parameters it has when that
        # request starts: this one is already under way, every later one waits
        # as a kept-alive connection.
        cast(HTTP1ServerConnection, server_conn).params = self.keep_alive_params
        return super().start_request(server_conn, request_conn)

    def _refused(self) -> None:
        self.refused += 1
        now = time.monotonic()
        if now - self.warned_at >= REFUSAL_WARNING_S:
            log.warning(
                "server.max_connections (%d) reached: closed %d new connection(s) at once",
                self.max_connections, self.refused,
            )
            self.refused, self.warned_at = 0, now


def _params(settings: ServerConfig, header_timeout: float) -> HTTP1ConnectionParameters:
    return HTTP1ConnectionParameters(
        header_timeout=header_timeout,
        body_timeout=settings.body_timeout_s,
        max_body_size=settings.max_body_bytes,
    )


def fit_open_files_limit(settings: ServerConfig) -> None:
    """Raise this process's soft limit on open files (inherited by ``--processes``
    workers) to what ``server.max_connections`` needs, as far as the hard limit
    allows, and warn if that is not enough: past the limit, connections fail in
    ``accept`` before the cap is reached.  (Under supervisord, ``minfds`` sets the
    limits it starts the router with.)"""
    needed = settings.max_connections + settings.max_clients + SPARE_FDS
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or soft >= needed:
        return
    allowed = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
    if allowed > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (allowed, hard))
    if allowed < needed:
        log.warning(
            "open files are limited to %d (hard limit), but server.max_connections (%d) and server.max_clients "
            "(%d) need about %d: raise the limit (ulimit -n, supervisord's minfds, systemd's LimitNOFILE) "
            "or lower server.max_connections", allowed, settings.max_connections, settings.max_clients, needed,
        )
