"""The live dashboard: the page, its Server-Sent Events feed, and the
aggregate its charts read (``/dashboard/stats``)."""

from __future__ import annotations

import base64
import functools
import hashlib
import re
from importlib import resources
from typing import TYPE_CHECKING

import orjson
from tornado.iostream import StreamClosedError
from tornado.web import StaticFileHandler

from ..access import AdminKey
from ..errors import InvalidRequest
from ..fleet.aggregate import WINDOWS
from .admin import AdminOnly, finish_with_error

if TYPE_CHECKING:
    from ..runtime import Runtime
    from ..events import Subscriber

KEEPALIVE_S = 15.0


class DashboardPageHandler(AdminOnly):
    key_in_query = True  # open it as /dashboard?key=...; the page passes the key on to its feed

    def initialize(self, page: bytes, admin: AdminKey | None = None) -> None:
        self.page = page
        self.admin = admin or AdminKey(None)

    def get(self) -> None:
        self.set_header("Content-Type", "text/html; charset=utf-8")
        self.set_header("Content-Security-Policy", content_policy(self.page))
        self.finish(self.page)


_INLINE_SCRIPT = re.compile(rb"<script>(.*?)</script>", re.S)


@functools.lru_cache(maxsize=4)
def content_policy(page: bytes) -> str:
    """The page's Content-Security-Policy: its own inline script (by hash) and
    files from the router only, images also from https: and data: URLs (a
    conversation's thumbnails), requests to the router only.  The page never
    writes request data as markup; this is the second lock, should it ever."""
    hashes = " ".join(
        f"'sha256-{base64.b64encode(hashlib.sha256(script).digest()).decode()}'"
        for script in _INLINE_SCRIPT.findall(page)
    )
    return (f"default-src 'self'; script-src 'self' {hashes}; style-src 'self' 'unsafe-inline'; "
            "img-src 'self' https: data:; connect-src 'self'; object-src 'none'; base-uri 'none'; "
            "frame-ancestors 'none'; form-action 'none'")


class DashboardEventsHandler(AdminOnly):
    """``GET /dashboard/events``: one ``data:`` line of log-entry JSON per handled
    request (of any process in the fleet), ``event: stats`` and ``event: health``
    once a second (``tornrouter.fleet``), a comment every 15 s when nothing else
    goes out, so proxies keep the connection open.  The
    subscription ends when the browser goes away (``on_connection_close``).
    With ``server.admin_key`` set it takes the key as ``?key=`` (EventSource
    cannot send headers)."""

    key_in_query = True

    def initialize(self, runtime: Runtime, keepalive_s: float = KEEPALIVE_S) -> None:
        self.runtime = runtime
        self.admin = runtime.access.admin
        self.keepalive_s = keepalive_s
        self.subscriber: Subscriber | None = None
        self.closed = False

    async def get(self) -> None:
        self.set_header("Content-Type", "text/event-stream")
        self.set_header("Cache-Control", "no-cache")
        self.set_header("X-Accel-Buffering", "no")  # nginx: do not buffer the feed
        self.request.connection.stream.set_nodelay(True)  # each entry goes out as it comes
        events = self.runtime.events
        self.subscriber = events.subscribe()
        try:
            self.write(": connected\n\n")
            await self.flush()
            while not self.closed:
                named, batch = await self.subscriber.next_events(self.keepalive_s)
                if self.closed:
                    break
                if batch or named:
                    self.write("".join(named) + "".join(f"data: {line}\n\n" for line in batch))
                else:
                    self.write(": keep-alive\n\n")
                await self.flush()
        except StreamClosedError:
            pass
        finally:
            events.unsubscribe(self.subscriber)

    def on_connection_close(self) -> None:
        self.closed = True
        if self.subscriber is not None:
            self.subscriber.close()


class DashboardAssetHandler(StaticFileHandler):
    """``GET /dashboard/static/<path>``: the page's vendored libraries (uPlot).
    Public code, not data, so no admin key; the page names each file with its
    version (``?v=1.6.32``), so a file never changes under its URL and browsers
    may keep it for a year."""

    def set_extra_headers(self, path: str) -> None:
        self.set_header("Cache-Control", "public, max-age=31536000, immutable")
        self.set_header("X-Content-Type-Options", "nosniff")


def assets_path() -> str:
    """Where the vendored files are (``static/vendor`` in the package's data)."""
    return str(resources.files("tornrouter").joinpath("static", "vendor"))


class DashboardStatsHandler(AdminOnly):
    """``GET /dashboard/stats?window=300|3600|86400``: the fleet's aggregate over
    the window, in steps of 1, 10 or 60 s (``tornrouter.fleet.aggregate``)."""

    key_in_query = True

    def initialize(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.admin = runtime.access.admin

    def get(self) -> None:
        window = self.get_query_argument("window", "300")
        if window not in {str(seconds) for seconds in WINDOWS}:
            finish_with_error(self, InvalidRequest("window", f"expected one of {', '.join(map(str, WINDOWS))} (seconds)"))
        self.set_header("Content-Type", "application/json")
        self.set_header("Cache-Control", "no-store")
        self.finish(orjson.dumps(self.runtime.fleet.aggregate.window(int(window))))


def read_page() -> bytes:
    """The page, from the package's data (``tornrouter/static``, the repository's
    ``static/``), wherever the package is installed."""
    return resources.files("tornrouter").joinpath("static", "dashboard.html").read_bytes()
